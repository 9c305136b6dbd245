/**
 * Reading and writing the `.safetensors` format: an 8-byte little-endian header length,
 * a JSON header naming each tensor's dtype, shape and byte range, then the raw data.
 *
 * @module
 */

import {
  allocate,
  BYTES_PER_ELEMENT,
  createTensor,
  type DType,
  elementCount,
  type Tensor,
} from "./tensor.ts";

/** A decoded safetensors file. */
export interface SafetensorsContent {
  /** Tensors by name, in the file's order. */
  tensors: Map<string, Tensor>;
  /** The free-form string metadata of the header (`__metadata__`). */
  metadata: Record<string, string>;
}

const DTYPE_CODES: Readonly<Record<DType, string>> = {
  float32: "F32",
  float64: "F64",
  float16: "F16",
  int64: "I64",
  int32: "I32",
  uint8: "U8",
  bool: "BOOL",
};

const DTYPES_BY_CODE: ReadonlyMap<string, DType> = new Map(
  Object.entries(DTYPE_CODES).map(([dtype, code]) => [code, dtype as DType]),
);

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** Decodes a safetensors file from its bytes; throws a message saying what is malformed. */
export function decodeSafetensors(
  bytes: Uint8Array,
  source = "safetensors data",
): SafetensorsContent {
  if (bytes.byteLength < 8) {
    throw new Error(`Invalid safetensors file ${source}: shorter than its header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > bytes.byteLength - 8) {
    throw new Error(
      `Invalid safetensors file ${source}: header length ${headerLength} exceeds the file`,
    );
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  } catch (error) {
    throw new Error(
      `Invalid safetensors file ${source}: header is not JSON: ${(error as Error).message}`,
    );
  }
  const dataStart = 8 + headerLength;
  const dataLength = bytes.byteLength - dataStart;
  const tensors = new Map<string, Tensor>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = value as Record<string, string>;
      continue;
    }
    const entry = value as HeaderEntry;
    const dtype = DTYPES_BY_CODE.get(entry?.dtype);
    if (!dtype) {
      throw new Error(`Unsupported dtype "${entry?.dtype}" for tensor "${name}" in ${source}`);
    }
    const [begin, end] = entry.data_offsets ?? [];
    const count = elementCount(entry.shape ?? []);
    if (
      !Number.isInteger(begin) || !Number.isInteger(end) || begin < 0 || end > dataLength ||
      end - begin !== count * BYTES_PER_ELEMENT[dtype]
    ) {
      throw new Error(`Invalid byte range for tensor "${name}" in ${source}`);
    }
    // Copy into a fresh, aligned buffer: offsets in the file need not be aligned.
    const data = allocate(dtype, count);
    new Uint8Array(data.buffer).set(bytes.subarray(dataStart + begin, dataStart + end));
    tensors.set(name, createTensor(dtype, entry.shape, data));
  }
  return { tensors, metadata };
}

/** Encodes tensors (and optional string metadata) as safetensors bytes. */
export function encodeSafetensors(
  tensors: Iterable<[string, Tensor]> | Record<string, Tensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const entries = Symbol.iterator in tensors ? [...tensors] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, tensor] of entries) {
    const size = tensor.data.byteLength;
    header[name] = {
      dtype: DTYPE_CODES[tensor.dtype],
      shape: tensor.shape,
      data_offsets: [offset, offset + size],
    };
    offset += size;
  }
  let headerText = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
  headerText += " ".repeat((8 - ((8 + new TextEncoder().encode(headerText).length) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let position = 8 + headerBytes.length;
  for (const [, tensor] of entries) {
    const data = tensor.data;
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), position);
    position += data.byteLength;
  }
  return out;
}

/** Reads and decodes a safetensors file. */
export async function readSafetensors(path: string): Promise<SafetensorsContent> {
  return decodeSafetensors(await Deno.readFile(path), `"${path}"`);
}
