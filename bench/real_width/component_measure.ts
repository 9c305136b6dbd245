/**
 * Builds one Hugging Face component folder's graph with cogflow's builders and creates its ONNX
 * Runtime session as cogflow's session worker does (graph bytes plus the weights' folder), timing
 * each step and reading the process's resident memory around the session's creation: anonymous
 * versus file-backed, from `/proc/self/status` and `/proc/self/smaps_rollup` (the question being
 * whether weights read from safetensors stay file-backed pages or become private copies).
 *
 * Shared by `bench/model_build_bench.ts` (the tiny fixtures) and `check_components.ts`
 * (real-width components on the GPU machine). Reading `/proc` needs `--allow-all`.
 *
 * @module
 */

import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { buildCogVideoXTransformer } from "../../builders/cogvideox_transformer.ts";
import { buildCogVideoXVaeDecoder } from "../../builders/cogvideox_vae_decoder.ts";
import { buildT5Encoder } from "../../builders/t5_encoder.ts";
import type { GraphBuilderFunction } from "../../builders/built_model.ts";
import { type ComponentWeights, loadComponentWeights } from "../../builders/safetensors_weights.ts";

/** The kinds of component measured. */
export type ComponentKind = "text_encoder" | "transformer" | "vae";

/** The builder of each kind. */
export const BUILDERS: Readonly<Record<ComponentKind, GraphBuilderFunction>> = {
  text_encoder: buildT5Encoder,
  transformer: buildCogVideoXTransformer,
  vae: buildCogVideoXVaeDecoder,
};

/** Resident memory in bytes, as the kernel splits it. */
export interface MemorySplit {
  /** VmRSS of /proc/self/status. */
  rss: number;
  /** RssAnon of /proc/self/status: private heap, ONNX Runtime's copies of weights. */
  rssAnon: number;
  /** RssFile of /proc/self/status: resident pages of mapped files. */
  rssFile: number;
  /** Rss of /proc/self/smaps_rollup (0 where unreadable). */
  smapsRss: number;
  /** Anonymous of /proc/self/smaps_rollup (0 where unreadable). */
  smapsAnonymous: number;
}

/** What building and opening one component took. */
export interface ComponentMeasure {
  /** The component folder. */
  dir: string;
  /** Its kind. */
  kind: ComponentKind;
  /** Bytes of its safetensors files. */
  weightBytes: number;
  /** Number of checkpoint tensors. */
  tensors: number;
  /** Milliseconds to read the safetensors headers. */
  weightsMs: number;
  /** Milliseconds to build the graph (ModelProto bytes), the process's first build. */
  buildMs: number;
  /** Milliseconds of a second build in the same process (compiled code warm); -1 if not asked. */
  rebuildMs: number;
  /** Size of the graph without its weights. */
  graphBytes: number;
  /** Milliseconds of `InferenceSession.create`. */
  sessionMs: number;
  /** The provider asked for. */
  provider: string;
  /** Memory just before the session's creation (after the build). */
  before: MemorySplit;
  /** Memory just after. */
  after: MemorySplit;
}

/** Parses `kB` fields of `/proc/self/status` or `/proc/self/smaps_rollup` text. */
export function parseKiloBytes(text: string): Map<string, number> {
  const fields = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match = /^(\w+):\s+(\d+)\s+kB/.exec(line);
    if (match) fields.set(match[1], Number(match[2]) * 1024);
  }
  return fields;
}

function readOptional(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}

/** Reads the process's resident memory now. */
export function readMemorySplit(): MemorySplit {
  const status = parseKiloBytes(readOptional("/proc/self/status"));
  const smaps = parseKiloBytes(readOptional("/proc/self/smaps_rollup"));
  return {
    rss: status.get("VmRSS") ?? Deno.memoryUsage().rss,
    rssAnon: status.get("RssAnon") ?? 0,
    rssFile: status.get("RssFile") ?? 0,
    smapsRss: smaps.get("Rss") ?? 0,
    smapsAnonymous: smaps.get("Anonymous") ?? 0,
  };
}

/** The session options cogflow's session worker uses for a built graph. */
export function sessionOptions(
  weights: ComponentWeights,
  provider: string,
  intraOpThreads = 0,
  profilePrefix?: string,
): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: [provider],
    graphOptimizationLevel: "all",
    logSeverityLevel: 3,
    ...(intraOpThreads > 0 ? { intraOpNumThreads: intraOpThreads } : {}),
    ...(profilePrefix ? { enableProfiling: true, profileFilePrefix: profilePrefix } : {}),
    extra: {
      session: {
        model_external_initializers_file_folder_path: weights.folder,
        "intra_op.allow_spinning": "0",
      },
    },
  };
}

/** Options of {@link openComponent}. */
export interface OpenComponentOptions {
  /** The component folder (config.json and safetensors). */
  dir: string;
  /** Its kind. */
  kind: ComponentKind;
  /** Execution provider (default cpu). */
  provider?: string;
  /** Intra-op threads (default 0: ONNX Runtime's choice). */
  intraOpThreads?: number;
  /** Build the graph a second time and time that too. */
  rebuild?: boolean;
  /** Profile the session (ONNX Runtime's profile file, `<prefix>_<date>.json`). */
  profilePrefix?: string;
}

/** Builds and opens one component; returns the session and the measurements. */
export async function openComponent(
  options: OpenComponentOptions,
): Promise<
  { session: ort.InferenceSession; measure: ComponentMeasure; weights: ComponentWeights }
> {
  const provider = options.provider ?? "cpu";
  const configPath = join(options.dir, "config.json");
  const config = JSON.parse(await Deno.readTextFile(configPath));
  let started = performance.now();
  const weights = await loadComponentWeights(options.dir);
  const weightsMs = performance.now() - started;
  started = performance.now();
  const bytes = BUILDERS[options.kind]({ config, configPath, weights });
  const buildMs = performance.now() - started;
  let rebuildMs = -1;
  if (options.rebuild) {
    started = performance.now();
    BUILDERS[options.kind]({ config, configPath, weights });
    rebuildMs = performance.now() - started;
  }
  let weightBytes = 0;
  for await (const entry of Deno.readDir(weights.folder)) {
    if (entry.name.endsWith(".safetensors")) {
      weightBytes += (await Deno.stat(join(weights.folder, entry.name))).size;
    }
  }
  const before = readMemorySplit();
  started = performance.now();
  const session = await ort.InferenceSession.create(
    bytes,
    sessionOptions(weights, provider, options.intraOpThreads, options.profilePrefix),
  );
  const sessionMs = performance.now() - started;
  const after = readMemorySplit();
  return {
    session,
    weights,
    measure: {
      dir: options.dir,
      kind: options.kind,
      weightBytes,
      tensors: weights.tensors.size,
      weightsMs,
      buildMs,
      rebuildMs,
      graphBytes: bytes.length,
      sessionMs,
      provider,
      before,
      after,
    },
  };
}
