/**
 * How a part of a split transformer loads and computes, and what sequential offload's per-call
 * time comes to, under each way of loading parts:
 *
 * 1. One block part in this process, interleaved rounds: created with its weights repacked
 *    ("packed", ONNX Runtime's default), without ("unpacked"), and from an optimized copy that
 *    holds the repacked weights in its external data (`session.save_external_prepacked_constant_
 *    initializers`, written once); each from a plain split and from one whose MatMul weights are
 *    stored transposed (`transposeMatMulWeights`, the default).
 * 2. The whole transformer: a resident session (no hook) against SequentialRunner with prefetch,
 *    per call, interleaved, with the largest difference of the outputs from the resident model.
 *
 * ```sh
 * deno run -A bench/part_loading.ts                 # 48 and 1728 video tokens
 * deno run -A bench/part_loading.ts --tokens 48 --rounds 7 --calls 5
 * ```
 *
 * Uses the bench preset's synthetic pipeline (`bench/out/synthetic-full`) and its splits in
 * `bench/out/split`. Prints markdown; writes `bench/out/part_loading.json`.
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { modelContentHash, splitModel, type SplitResult } from "../runtime/onnx_split.ts";
import { readProcessMemory } from "../runtime/process_memory.ts";
import { type PrepackPolicy, SequentialRunner } from "../runtime/sequential_runner.ts";
import { SessionWorker } from "../runtime/session_client.ts";
import type { WorkerSessionOptions } from "../runtime/session_worker.ts";
import { createTensor, maxAbsDiff, type Tensor } from "../runtime/tensor.ts";
import {
  ensureSyntheticPipeline,
  loadavg,
  markdownTable,
  median,
  OUT_DIR,
  writeResults,
} from "./bench_util.ts";
import { latentSizeForVideoTokens } from "../tests/synthetic_models.ts";

/** One way of creating a block part's session, measured in this process. */
interface PartResult {
  label: string;
  createMs: number;
  firstRunMs: number;
  /** Anonymous (heap) memory the creation added. */
  heapMiB: number;
  maxDiffFromPacked: number;
}

/** One way of running the whole transformer, per call. */
interface CallResult {
  label: string;
  callMs: number[];
  blockRunMs: number;
  blockLoadMs: number;
  maxDiffFromWhole: number;
}

const UNPACKED = { extra: { session: { disable_prepacking: "1" } } };
const CPU: WorkerSessionOptions = {
  executionProviders: ["cpu"],
  fallbackToCpu: false,
  intraOpThreads: 0,
  interOpThreads: 0,
  graphOptimizationLevel: "all",
};

/** Deterministic feeds of the synthetic transformer at a number of video tokens (batch 1). */
function transformerFeeds(videoTokens: number): Record<string, Tensor> {
  const latent = latentSizeForVideoTokens(videoTokens);
  const noise = (count: number, seed: number) => {
    const data = new Float32Array(count);
    let state = seed;
    for (let i = 0; i < count; i++) {
      state = (state * 1664525 + 1013904223) >>> 0;
      data[i] = state / 2 ** 31 - 1;
    }
    return data;
  };
  const { frames, height, width } = latent;
  return {
    hidden_states: createTensor(
      "float32",
      [1, frames, 16, height, width],
      noise(frames * 16 * height * width, 1),
    ),
    encoder_hidden_states: createTensor("float32", [1, 226, 1024], noise(226 * 1024, 2)),
    timestep: createTensor("int64", [1], BigInt64Array.from([500n])),
  };
}

function fromOrt(tensor: ort.Tensor): Tensor {
  return createTensor("float32", [...tensor.dims], tensor.data as Float32Array);
}

function toOrt(tensor: Tensor): ort.Tensor {
  return new ort.Tensor(tensor.dtype as "float32", tensor.data as Float32Array, [...tensor.shape]);
}

/** Writes the optimized copy of a part with its repacked weights in its external data, once. */
async function savedPrepacked(part: string, dir: string): Promise<string> {
  const path = join(dir, "saved_prepacked.onnx");
  if (await Deno.stat(path).then(() => true, () => false)) return path;
  await Deno.mkdir(dir, { recursive: true });
  const session = await ort.InferenceSession.create(part, {
    optimizedModelFilePath: path,
    extra: {
      session: {
        optimized_model_external_initializers_file_name: "saved_prepacked.onnx.data",
        optimized_model_external_initializers_min_size_in_bytes: "1024",
        save_external_prepacked_constant_initializers: "1",
      },
    },
  });
  await session.release();
  return path;
}

async function measureBlockPart(
  plain: SplitResult,
  transposed: SplitResult,
  videoTokens: number,
  rounds: number,
): Promise<PartResult[]> {
  // The first block part's inputs: the prologue's outputs.
  const prologue = await ort.InferenceSession.create(plain.parts[0].path);
  const made = await prologue.run(
    Object.fromEntries(
      Object.entries(transformerFeeds(videoTokens)).map(([name, tensor]) => [name, toOrt(tensor)]),
    ),
  );
  await prologue.release();
  const block = plain.parts.findIndex((part) => part.kind === "blocks");
  const feeds = Object.fromEntries(plain.parts[block].inputs.map((name) => [name, made[name]]));
  const saved = await savedPrepacked(plain.parts[block].path, join(plain.dir, "saved-prepacked"));
  const variants: [string, string, ort.InferenceSession.SessionOptions][] = [
    ["MatMul, packed", plain.parts[block].path, {}],
    ["MatMul, unpacked", plain.parts[block].path, UNPACKED],
    ["MatMul, saved prepacked (optimized copy)", saved, {}],
    ["FusedMatMul on W^T, unpacked", transposed.parts[block].path, UNPACKED],
    ["FusedMatMul on W^T, packed", transposed.parts[block].path, {}],
  ];
  const samples = new Map<string, { create: number[]; run: number[]; heap: number[] }>();
  const outputs = new Map<string, ort.InferenceSession.ReturnType>();
  for (let round = 0; round < rounds; round++) {
    for (const [label, path, options] of variants) {
      const before = readProcessMemory().rssAnon;
      const started = performance.now();
      const session = await ort.InferenceSession.create(path, options);
      const created = performance.now();
      const heap = readProcessMemory().rssAnon - before;
      const result = await session.run(feeds);
      const ran = performance.now();
      await session.release();
      outputs.set(label, result);
      const entry = samples.get(label) ?? { create: [], run: [], heap: [] };
      entry.create.push(created - started);
      entry.run.push(ran - created);
      entry.heap.push(heap / 2 ** 20);
      samples.set(label, entry);
    }
  }
  const packed = outputs.get(variants[0][0])!;
  return variants.map(([label]) => {
    const entry = samples.get(label)!;
    const result = outputs.get(label)!;
    return {
      label,
      createMs: median(entry.create),
      firstRunMs: median(entry.run),
      heapMiB: median(entry.heap),
      maxDiffFromPacked: Math.max(
        ...Object.keys(packed).map((name) =>
          maxAbsDiff(fromOrt(packed[name]), fromOrt(result[name]))
        ),
      ),
    };
  });
}

async function measureCalls(
  modelPath: string,
  plain: SplitResult,
  transposed: SplitResult,
  videoTokens: number,
  calls: number,
): Promise<CallResult[]> {
  interface Variant {
    label: string;
    split?: SplitResult;
    spinning?: boolean;
    prepack?: PrepackPolicy;
  }
  const variants: Variant[] = [
    { label: "no hook (one resident session, weights packed)" },
    { label: "before: MatMul, unpacked, threads spinning", split: plain, spinning: true },
    { label: "MatMul, unpacked, threads sleeping", split: plain, spinning: false },
    { label: "FusedMatMul on W^T, unpacked, threads spinning", split: transposed, spinning: true },
    { label: "now: FusedMatMul on W^T, unpacked, threads sleeping", split: transposed },
    { label: "FusedMatMul on W^T, packed, threads sleeping", split: transposed, prepack: "always" },
  ];
  const workers: SessionWorker[] = [];
  const runners: ((feeds: Record<string, Tensor>) => Promise<Tensor>)[] = [];
  const stats: (() => { runMs: number; loadMs: number })[] = [];
  for (const variant of variants) {
    if (!variant.split) {
      const worker = new SessionWorker();
      workers.push(worker);
      await worker.create("whole", modelPath, CPU);
      runners.push(async (feeds) => (await worker.run("whole", feeds)).outputs.sample);
      stats.push(() => ({ runMs: NaN, loadMs: NaN }));
      continue;
    }
    const pair = [new SessionWorker(), new SessionWorker()];
    workers.push(...pair);
    const runner = new SequentialRunner(
      { parts: variant.split.parts, modelOutputs: variant.split.plan.modelOutputs },
      pair,
      {
        session: { ...CPU, intraOpSpinning: variant.spinning ?? false },
        prepack: variant.prepack ?? "never",
        name: "transformer",
        prefetch: true,
      },
    );
    runners.push(async (feeds) => (await runner.run(feeds)).sample);
    stats.push(() => {
      const blocks = runner.stats.filter((part) => part.name.includes("block"));
      const sum = (pick: (part: typeof blocks[number]) => number) =>
        blocks.reduce((total, part) => total + pick(part), 0);
      return {
        runMs: sum((part) => part.runMs) / sum((part) => part.runs),
        loadMs: sum((part) => part.loadMs) / sum((part) => part.loads),
      };
    });
  }
  const times = variants.map(() => [] as number[]);
  const last: Tensor[] = [];
  for (let call = 0; call < calls; call++) {
    for (const [index, run] of runners.entries()) {
      const started = performance.now();
      last[index] = await run(transformerFeeds(videoTokens));
      times[index].push(performance.now() - started);
    }
  }
  for (const worker of workers) worker.stop();
  return variants.map((variant, index) => ({
    label: variant.label,
    callMs: times[index],
    blockRunMs: stats[index]().runMs,
    blockLoadMs: stats[index]().loadMs,
    maxDiffFromWhole: maxAbsDiff(last[index], last[0]),
  }));
}

/** Steady per-call time: the median of the calls after the first. */
function steady(callMs: number[]): number {
  return median(callMs.length > 1 ? callMs.slice(1) : callMs);
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      tokens: { type: "string", default: "48,1728" },
      rounds: { type: "string", default: "5" },
      calls: { type: "string", default: "4" },
    },
  });
  ort.env.logLevel = "error";
  const pipeline = await ensureSyntheticPipeline("full");
  const modelPath = join(pipeline, "transformer", "model.onnx");
  const cacheDir = join(OUT_DIR, "split");
  const contentHash = await modelContentHash(modelPath);
  const transposed = await splitModel(modelPath, { cacheDir, contentHash });
  const plain = await splitModel(modelPath, {
    cacheDir,
    contentHash,
    transposeMatMulWeights: false,
  });
  const results: Record<string, { part: PartResult[]; calls: CallResult[] }> = {};
  const out: string[] = [];
  for (const videoTokens of values.tokens!.split(",").map(Number)) {
    console.error(`[part_loading] ${videoTokens} video tokens (load average ${loadavg()})`);
    const part = await measureBlockPart(plain, transposed, videoTokens, Number(values.rounds));
    const calls = await measureCalls(
      modelPath,
      plain,
      transposed,
      videoTokens,
      Number(values.calls),
    );
    results[videoTokens] = { part, calls };
    out.push(
      `### ${videoTokens} video tokens: one block part (medians of ${values.rounds} rounds)`,
      "",
      markdownTable(
        ["part session", "create", "first run", "heap added", "max diff from packed"],
        part.map((row) => [
          row.label,
          `${row.createMs.toFixed(0)} ms`,
          `${row.firstRunMs.toFixed(0)} ms`,
          `${row.heapMiB.toFixed(0)} MiB`,
          row.maxDiffFromPacked.toExponential(1),
        ]),
      ),
      "",
      `### ${videoTokens} video tokens: the whole transformer, ${values.calls} calls each`,
      "",
      markdownTable(
        ["how", "per call (steady)", "/ no hook", "calls", "block run", "block load", "max diff"],
        calls.map((row) => [
          row.label,
          `${steady(row.callMs).toFixed(0)} ms`,
          `${(steady(row.callMs) / steady(calls[0].callMs)).toFixed(2)}x`,
          row.callMs.map((ms) => ms.toFixed(0)).join(", "),
          Number.isNaN(row.blockRunMs) ? "-" : `${row.blockRunMs.toFixed(0)} ms`,
          Number.isNaN(row.blockLoadMs) ? "-" : `${row.blockLoadMs.toFixed(0)} ms`,
          row.maxDiffFromWhole.toExponential(1),
        ]),
      ),
      "",
    );
  }
  await writeResults("part_loading.json", results);
  console.log(out.join("\n"));
  Deno.exit(0);
}
