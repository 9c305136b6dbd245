/**
 * Checks cogflow's graph builders against torch on the components `make_components.py` wrote:
 * builds the component's graph, creates its session, runs it on the stored inputs (the VAE
 * through diffusers' temporal chunk loop, as nodes/vae_decode.ts does) and prints the largest
 * differences from the stored torch outputs, with graph build, session creation and run times and
 * the process's resident memory (anonymous versus file-backed) after the session's creation.
 *
 * ```sh
 * deno run -A bench/real_width/check_components.ts --dir /tmp/real-width \
 *   --component transformer_2b --provider cuda      # build, create, run, compare
 * deno run -A bench/real_width/check_components.ts --dir /tmp/real-width \
 *   --component vae --provider cpu --no-run         # build and create only (memory)
 * ```
 *
 * Components: text_encoder, transformer_2b, transformer_5b, vae (folders under --dir, cases in
 * `<dir>/cases/<component>.safetensors`). The last line of the output is one JSON object
 * (`RESULT {...}`). Run the CUDA provider with `NVIDIA_TF32_OVERRIDE=0` for float32 products.
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import {
  CONV_CACHE_INPUT_PREFIX,
  CONV_CACHE_OUTPUT_PREFIX,
  emptyConvCacheShape,
} from "../../builders/cogvideox_vae_decoder.ts";
import { chunkedDecode, type ConvCaches, sliceFrames } from "../../diffusion/chunked_vae_decode.ts";
import { prepareRotaryPositionalEmbeddings } from "../../diffusion/rotary_embedding.ts";
import { cogVideoXPositionalEmbedding } from "../../diffusion/sincos_pos_embedding.ts";
import { readSafetensors } from "../../runtime/safetensors.ts";
import { createTensor, type Tensor } from "../../runtime/tensor.ts";
import { type ComponentKind, openComponent, readMemorySplit } from "./component_measure.ts";

/** The components and their kinds. */
export const COMPONENTS: Readonly<Record<string, ComponentKind>> = {
  text_encoder: "text_encoder",
  transformer_2b: "transformer",
  transformer_5b: "transformer",
  vae: "vae",
};

/** How far an output is from torch's. */
export interface Difference {
  /** The compared tensor. */
  name: string;
  /** Its shape. */
  shape: number[];
  /** max |cogflow - torch|. */
  maxAbs: number;
  /** max |torch|. */
  maxRef: number;
  /** maxAbs / maxRef. */
  relative: number;
  /** mean |cogflow - torch|. */
  meanAbs: number;
  /** Root mean square of torch's values. */
  rmsRef: number;
}

/** Compares `actual` with `expected` element by element (same length). */
export function difference(
  name: string,
  shape: readonly number[],
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
): Difference {
  if (actual.length !== expected.length) {
    throw new Error(`${name}: ${actual.length} values, torch has ${expected.length}`);
  }
  let maxAbs = 0;
  let maxRef = 0;
  let sumAbs = 0;
  let sumSquares = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (!(d <= maxAbs)) maxAbs = Number.isNaN(d) ? NaN : Math.max(maxAbs, d);
    maxRef = Math.max(maxRef, Math.abs(expected[i]));
    sumAbs += d;
    sumSquares += expected[i] * expected[i];
  }
  return {
    name,
    shape: [...shape],
    maxAbs,
    maxRef,
    relative: maxAbs / maxRef,
    meanAbs: sumAbs / actual.length,
    rmsRef: Math.sqrt(sumSquares / actual.length),
  };
}

function toOrt(tensor: Tensor): ort.Tensor {
  return new ort.Tensor(tensor.dtype as "float32", tensor.data as Float32Array, [...tensor.shape]);
}

function fromOrt(tensor: ort.Tensor): Tensor<"float32"> {
  return createTensor("float32", tensor.dims, tensor.data as Float32Array);
}

/** Runs the VAE decoder graph through the temporal chunk loop (nodes/vae_decode.ts runDecoder). */
async function decodeChunked(
  session: ort.InferenceSession,
  z: Tensor<"float32">,
): Promise<Tensor<"float32">> {
  const cacheInputs = session.inputNames.filter((name) => name.startsWith(CONV_CACHE_INPUT_PREFIX));
  return await chunkedDecode(z, async (chunk, caches) => {
    const feeds: Record<string, ort.Tensor> = { latent_sample: toOrt(chunk) };
    for (const name of cacheInputs) {
      const path = name.slice(CONV_CACHE_INPUT_PREFIX.length);
      const cache = caches?.[path];
      if (cache) {
        feeds[name] = toOrt(cache);
      } else {
        const metadata = session.inputMetadata.find((input) => input.name === name);
        const dims = metadata && metadata.isTensor ? metadata.shape : [];
        feeds[name] = new ort.Tensor(
          "float32",
          new Float32Array(0),
          emptyConvCacheShape(dims, chunk.shape),
        );
      }
    }
    const outputs = await session.run(feeds);
    const next: ConvCaches = {};
    for (const [name, value] of Object.entries(outputs)) {
      if (name.startsWith(CONV_CACHE_OUTPUT_PREFIX)) {
        next[name.slice(CONV_CACHE_OUTPUT_PREFIX.length)] = fromOrt(value);
      }
    }
    return { sample: fromOrt(outputs.sample), caches: next };
  });
}

/**
 * Runs the component on the case's inputs; returns the differences and each run's ms. With
 * `frames`, the VAE decodes only the first `frames` latent frames: an odd count of at least 3
 * decodes in the same first chunks as the whole (3, then 2s) and is compared with torch's first
 * `(frames - 1) * 4 + 1` frames; other counts are run without a comparison.
 */
async function runCase(
  component: string,
  session: ort.InferenceSession,
  config: Record<string, unknown>,
  tensors: Map<string, Tensor>,
  runs: number,
  frames?: number,
): Promise<{ differences: Difference[]; runMs: number[] }> {
  const get = (key: string) => {
    const tensor = tensors.get(key);
    if (!tensor) throw new Error(`The case of ${component} has no tensor "${key}"`);
    return tensor;
  };
  const differences: Difference[] = [];
  const runMs: number[] = [];
  const kind = COMPONENTS[component];
  let run: () => Promise<Tensor<"float32">>;
  let outputName: string;
  if (kind === "text_encoder") {
    outputName = "last_hidden_state";
    run = async () =>
      fromOrt((await session.run({ input_ids: toOrt(get("input_ids")) }))[outputName]);
  } else if (kind === "transformer") {
    outputName = "sample";
    const latents = get("hidden_states");
    const feeds: Record<string, ort.Tensor> = {
      hidden_states: toOrt(latents),
      encoder_hidden_states: toOrt(get("encoder_hidden_states")),
      timestep: toOrt(get("timestep")),
    };
    if (config.use_rotary_positional_embeddings) {
      const [, frames, , height, width] = latents.shape;
      const tables = prepareRotaryPositionalEmbeddings(
        { height: height * 8, width: width * 8, latentFrames: frames },
        config as unknown as Parameters<typeof prepareRotaryPositionalEmbeddings>[1],
      );
      for (const [name, table] of [["cos", tables.cos], ["sin", tables.sin]] as const) {
        const expected = get(`image_rotary_emb_${name}`);
        differences.push(
          difference(
            `image_rotary_emb_${name}`,
            table.shape,
            table.data,
            expected.data as Float32Array,
          ),
        );
        feeds[`image_rotary_emb_${name}`] = toOrt(table);
      }
    } else {
      feeds.pos_embedding = toOrt(
        cogVideoXPositionalEmbedding(
          config as unknown as Parameters<typeof cogVideoXPositionalEmbedding>[0],
          latents.shape,
        ),
      );
    }
    run = async () => fromOrt((await session.run(feeds)).sample);
  } else {
    outputName = "sample";
    let z = get("latent_sample") as Tensor<"float32">;
    if (frames !== undefined && frames < z.shape[2]) {
      z = sliceFrames(z, 0, frames);
      const sample = get("sample") as Tensor<"float32">;
      const comparable = frames >= 3 && frames % 2 === 1;
      if (comparable) tensors.set("sample", sliceFrames(sample, 0, (frames - 1) * 4 + 1));
      else tensors.delete("sample");
    }
    run = () => decodeChunked(session, z);
  }
  let output: Tensor<"float32"> | undefined;
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    output = await run();
    runMs.push(performance.now() - started);
  }
  const expected = tensors.get(outputName);
  if (expected) {
    differences.push(
      difference(outputName, output!.shape, output!.data, expected.data as Float32Array),
    );
  }
  return { differences, runMs };
}

/** Per provider: nodes run and their kernel time; the op types that ran on the CPU provider. */
export interface ProfileSummary {
  /** Provider -> distinct nodes and summed kernel microseconds. */
  providers: Record<string, { nodes: number; us: number }>;
  /** Op type -> distinct nodes on the CPU provider and their summed kernel microseconds. */
  cpuOps: Record<string, { nodes: number; us: number }>;
}

/** Summarizes an ONNX Runtime profile file (Chrome trace events of `cat: "Node"`). */
export function summarizeProfile(events: unknown[]): ProfileSummary {
  const providers: ProfileSummary["providers"] = {};
  const cpuOps: ProfileSummary["cpuOps"] = {};
  const seen = new Set<string>();
  for (const raw of events) {
    const event = raw as {
      cat?: string;
      name?: string;
      dur?: number;
      args?: Record<string, string>;
    };
    if (event.cat !== "Node" || !event.name?.endsWith("_kernel_time")) continue;
    const provider = event.args?.provider ?? "unknown";
    const op = event.args?.op_name ?? "unknown";
    const entry = providers[provider] ??= { nodes: 0, us: 0 };
    entry.us += event.dur ?? 0;
    const first = !seen.has(event.name);
    seen.add(event.name);
    if (first) entry.nodes++;
    if (provider === "CPUExecutionProvider") {
      const cpu = cpuOps[op] ??= { nodes: 0, us: 0 };
      cpu.us += event.dur ?? 0;
      if (first) cpu.nodes++;
    }
  }
  return { providers, cpuOps };
}

function format(value: number): string {
  return value.toExponential(2);
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      dir: { type: "string" },
      component: { type: "string" },
      provider: { type: "string", default: "cpu" },
      "no-run": { type: "boolean" },
      runs: { type: "string", default: "1" },
      threads: { type: "string", default: "0" },
      frames: { type: "string" },
      profile: { type: "boolean" },
    },
  });
  const component = values.component ?? "";
  if (!values.dir || !(component in COMPONENTS)) {
    console.error(
      `Usage: check_components.ts --dir DIR --component ${Object.keys(COMPONENTS).join("|")} ` +
        `[--provider cpu|cuda] [--no-run] [--runs N] [--threads N] [--frames N] [--profile]`,
    );
    Deno.exit(2);
  }
  const dir = join(values.dir, component);
  const config = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
  const { session, measure } = await openComponent({
    dir,
    kind: COMPONENTS[component],
    provider: values.provider,
    intraOpThreads: Number(values.threads),
    profilePrefix: values.profile
      ? join(values.dir, `profile-${component}-${values.provider}`)
      : undefined,
  });
  const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
  console.log(
    `${component} (${values.provider}): ${measure.tensors} tensors, ${
      mib(measure.weightBytes)
    } of safetensors; headers ${measure.weightsMs.toFixed(1)} ms, graph build ${
      measure.buildMs.toFixed(1)
    } ms (${(measure.graphBytes / 1024).toFixed(0)} KiB), session create ${
      measure.sessionMs.toFixed(0)
    } ms`,
  );
  for (const [when, memory] of [["before", measure.before], ["after", measure.after]] as const) {
    console.log(
      `  memory ${when} session: rss ${mib(memory.rss)}, anonymous ${mib(memory.rssAnon)}, file ${
        mib(memory.rssFile)
      } (smaps_rollup Rss ${mib(memory.smapsRss)}, Anonymous ${mib(memory.smapsAnonymous)})`,
    );
  }
  let differences: Difference[] = [];
  let runMs: number[] = [];
  if (!values["no-run"]) {
    const { tensors } = await readSafetensors(
      join(values.dir, "cases", `${component}.safetensors`),
    );
    ({ differences, runMs } = await runCase(
      component,
      session,
      config,
      tensors,
      Number(values.runs),
      values.frames === undefined ? undefined : Number(values.frames),
    ));
    console.log(`  run ${runMs.map((ms) => ms.toFixed(0)).join(", ")} ms`);
    for (const d of differences) {
      console.log(
        `  ${d.name} [${d.shape}]: max abs ${format(d.maxAbs)}, max |torch| ${
          format(d.maxRef)
        }, relative ${format(d.relative)}, mean abs ${format(d.meanAbs)}, rms torch ${
          format(d.rmsRef)
        }`,
      );
    }
  }
  const afterRun = readMemorySplit();
  console.log(
    `  memory after run: rss ${mib(afterRun.rss)}, anonymous ${mib(afterRun.rssAnon)}, file ${
      mib(afterRun.rssFile)
    }`,
  );
  let profile: ProfileSummary | undefined;
  if (values.profile) {
    session.endProfiling();
    const prefix = `profile-${component}-${values.provider}`;
    const files = [...Deno.readDirSync(values.dir)].map((entry) => entry.name)
      .filter((name) => name.startsWith(prefix) && name.endsWith(".json")).sort();
    if (files.length > 0) {
      const text = await Deno.readTextFile(join(values.dir, files[files.length - 1]));
      profile = summarizeProfile(JSON.parse(text));
      for (const [provider, entry] of Object.entries(profile.providers)) {
        console.log(
          `  profile ${provider}: ${entry.nodes} nodes, ${(entry.us / 1000).toFixed(0)} ms`,
        );
      }
      const cpuOps = Object.entries(profile.cpuOps).sort((a, b) => b[1].us - a[1].us);
      for (const [op, entry] of cpuOps.slice(0, 10)) {
        console.log(`    on CPU: ${op} x${entry.nodes}, ${(entry.us / 1000).toFixed(0)} ms`);
      }
    } else {
      console.log(`  no profile file ${prefix}*.json in ${values.dir}`);
    }
  }
  await session.release();
  console.log(
    `RESULT ${JSON.stringify({ component, ...measure, runMs, differences, afterRun, profile })}`,
  );
}
