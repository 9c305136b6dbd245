/**
 * The weights of one model component as downloaded: one `.safetensors` file, or shards listed by
 * an index (`model.safetensors.index.json`, `diffusion_pytorch_model.safetensors.index.json`).
 * Only headers are read: each tensor is known by its file, byte range, dtype and shape, so a graph
 * can point its initializers straight at the bytes (ONNX external data).
 *
 * Files are followed through symlinks (the Hugging Face cache links `snapshots/` to `blobs/`):
 * ONNX Runtime reads a tensor by a location relative to one folder, so every file of a component
 * must resolve into the same folder, which {@link ComponentWeights.folder} names.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { UserError } from "../runtime/user_error.ts";

/** Storage dtypes of weights that graphs can read. */
export type WeightDType = "float32" | "float16" | "bfloat16";

/** One tensor inside a safetensors file. */
export interface WeightRef {
  /** The checkpoint key (`transformer_blocks.0.attn1.to_q.weight`). */
  name: string;
  /** Storage dtype. */
  dtype: WeightDType;
  /** Dimensions. */
  shape: number[];
  /** The file as the component folder names it. */
  file: string;
  /** The file's name inside {@link ComponentWeights.folder} (a blob name in the HF cache). */
  location: string;
  /** Byte offset of the data in the file. */
  offset: number;
  /** Byte length of the data. */
  length: number;
}

/** The weights of a component, by checkpoint key. */
export interface ComponentWeights {
  /** The folder every weight file resolves into (real path). */
  folder: string;
  /** Weights by checkpoint key. */
  tensors: Map<string, WeightRef>;
  /** The weight files (as the component folder names them), for fingerprints. */
  files: string[];
  /** `name:size:mtime` of each weight file, in order, for cache keys. */
  fingerprint: string;
}

const DTYPES: Readonly<Record<string, WeightDType>> = {
  F32: "float32",
  F16: "float16",
  BF16: "bfloat16",
};

const BYTES: Readonly<Record<WeightDType, number>> = { float32: 4, float16: 2, bfloat16: 2 };

/** Most bytes a safetensors header may have (the format's own limit is 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

/**
 * The weight files of a component folder: `<base>.safetensors`, or the shards named by
 * `<base>.safetensors.index.json`. `bases` are tried in order (`model`,
 * `diffusion_pytorch_model`). Missing files are errors naming the folder and what was looked for.
 */
export async function findWeightFiles(
  dir: string,
  bases: readonly string[] = ["model", "diffusion_pytorch_model"],
): Promise<string[]> {
  for (const base of bases) {
    const index = join(dir, `${base}.safetensors.index.json`);
    const text = await readTextIfPresent(index);
    if (text !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (error) {
        throw new UserError(`Invalid JSON in "${index}": ${(error as Error).message}`);
      }
      const weightMap = (parsed as { weight_map?: unknown })?.weight_map;
      if (typeof weightMap !== "object" || weightMap === null || Array.isArray(weightMap)) {
        throw new UserError(`Invalid shard index "${index}": no "weight_map" object`);
      }
      const shards = [...new Set(Object.values(weightMap as Record<string, unknown>))];
      for (const shard of shards) {
        if (typeof shard !== "string" || shard.includes("/") || shard.includes("\\")) {
          throw new UserError(
            `Invalid shard index "${index}": shard ${JSON.stringify(shard)} is not a file name`,
          );
        }
      }
      return (shards as string[]).sort().map((shard) => join(dir, shard));
    }
    const single = join(dir, `${base}.safetensors`);
    if (await exists(single)) return [single];
  }
  throw new UserError(
    `Missing weights in "${dir}": expected ${
      bases.map((base) => `${base}.safetensors or ${base}.safetensors.index.json`).join(", or ")
    }`,
  );
}

/**
 * Reads the headers of a component's weight files. Every file must resolve (through symlinks)
 * into one folder; a tensor named twice, an unsupported dtype, or a byte range that does not fit
 * its shape or its file is an error naming the file and the tensor.
 */
export async function openComponentWeights(files: readonly string[]): Promise<ComponentWeights> {
  const tensors = new Map<string, WeightRef>();
  const stamps: string[] = [];
  let folder: string | undefined;
  for (const file of files) {
    let real: string;
    try {
      real = await Deno.realPath(file);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) throw new UserError(`Missing file "${file}"`);
      throw new UserError(`Cannot read "${file}": ${(error as Error).message}`);
    }
    if (folder === undefined) folder = dirname(real);
    else if (dirname(real) !== folder) {
      throw new UserError(
        `Weight files of one component must lie in one folder: "${file}" resolves to "${real}", outside "${folder}"`,
      );
    }
    const stat = await Deno.stat(real);
    stamps.push(`${basename(file)}:${stat.size}:${stat.mtime?.getTime() ?? 0}`);
    for (const ref of await readHeader(file, basename(real), stat.size)) {
      if (tensors.has(ref.name)) {
        throw new UserError(
          `Tensor "${ref.name}" is in both "${tensors.get(ref.name)!.file}" and "${file}"`,
        );
      }
      tensors.set(ref.name, ref);
    }
  }
  if (folder === undefined) throw new UserError("No weight files given");
  return { folder, tensors, files: [...files], fingerprint: stamps.join(";") };
}

/** The tensors listed in one safetensors header, with absolute byte offsets. */
async function readHeader(file: string, location: string, size: number): Promise<WeightRef[]> {
  const handle = await Deno.open(file, { read: true });
  try {
    const head = new Uint8Array(8);
    if ((await readFully(handle, head)) < 8) {
      throw new UserError(`Invalid safetensors file "${file}": shorter than its header`);
    }
    const headerLength = Number(new DataView(head.buffer).getBigUint64(0, true));
    if (headerLength > MAX_HEADER_BYTES || headerLength > size - 8) {
      throw new UserError(
        `Invalid safetensors file "${file}": header length ${headerLength} exceeds the file`,
      );
    }
    const headerBytes = new Uint8Array(headerLength);
    await readFully(handle, headerBytes);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(new TextDecoder().decode(headerBytes));
    } catch (error) {
      throw new UserError(
        `Invalid safetensors file "${file}": header is not JSON (${(error as Error).message})`,
      );
    }
    const dataStart = 8 + headerLength;
    const refs: WeightRef[] = [];
    for (const [name, entry] of Object.entries(header)) {
      if (name === "__metadata__") continue;
      const { dtype, shape, data_offsets } = entry as {
        dtype?: string;
        shape?: number[];
        data_offsets?: [number, number];
      };
      const weightDType = dtype ? DTYPES[dtype] : undefined;
      if (!weightDType) {
        throw new UserError(
          `Unsupported dtype ${
            JSON.stringify(dtype)
          } of tensor "${name}" in "${file}": expected F32, F16 or BF16`,
        );
      }
      if (
        !Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0) ||
        !Array.isArray(data_offsets) || data_offsets.length !== 2
      ) {
        throw new UserError(`Invalid entry of tensor "${name}" in "${file}"`);
      }
      const [begin, end] = data_offsets;
      const expected = shape.reduce((a, b) => a * b, 1) * BYTES[weightDType];
      if (end - begin !== expected || begin < 0 || dataStart + end > size) {
        throw new UserError(
          `Invalid tensor "${name}" in "${file}": bytes ${begin}..${end} do not hold ${weightDType} [${
            shape.join(", ")
          }] inside the file`,
        );
      }
      refs.push({
        name,
        dtype: weightDType,
        shape,
        file,
        location,
        offset: dataStart + begin,
        length: end - begin,
      });
    }
    return refs;
  } finally {
    handle.close();
  }
}

/** Reads the whole of a component's weight file set, by folder: {@link findWeightFiles} then open. */
export async function loadComponentWeights(
  dir: string,
  bases?: readonly string[],
): Promise<ComponentWeights> {
  return await openComponentWeights(await findWeightFiles(dir, bases));
}

/** Reads one tensor's bytes (small tensors: biases and tables a builder needs to see). */
export async function readWeightBytes(ref: WeightRef): Promise<Uint8Array> {
  const handle = await Deno.open(ref.file, { read: true });
  try {
    const bytes = new Uint8Array(ref.length);
    await readRange(handle, ref.offset, bytes);
    return bytes;
  } finally {
    handle.close();
  }
}

/** Reads into `into` from byte `offset` of `handle`; returns the bytes read (fewer at the end). */
export async function readRange(
  handle: Deno.FsFile,
  offset: number,
  into: Uint8Array,
): Promise<number> {
  await handle.seek(offset, Deno.SeekMode.Start);
  return await readFully(handle, into);
}

async function readFully(handle: Deno.FsFile, into: Uint8Array): Promise<number> {
  let done = 0;
  while (done < into.length) {
    const n = await handle.read(into.subarray(done));
    if (n === null) break;
    done += n;
  }
  return done;
}

async function readTextIfPresent(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new UserError(`Cannot read "${path}": ${(error as Error).message}`);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw new UserError(`Cannot read "${path}": ${(error as Error).message}`);
  }
}
