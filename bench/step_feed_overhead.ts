/**
 * What one denoising step's feeds cost on their way through a session worker
 * (runtime/session_client.ts), apart from the model: a graph that only adds 0 to the latents
 * (and reads the other inputs' first element) runs directly in this thread and through a
 * `SessionWorker` (and with the text and the table passed as `unchanged`, as the sample node
 * does), with the feeds of a CogVideoX-2b step at 480x720x49 with guidance: latents
 * `[2, 13, 16, 60, 90]`, text `[2, 226, 4096]`, timesteps, and the `[17550, 1920]` positional
 * table, all float32 but the timesteps.
 *
 * ```sh
 * deno run -A bench/step_feed_overhead.ts [--provider cpu] [--runs 5] [--without-positional]
 * ```
 *
 * Prints one markdown row per path (median milliseconds of a run) and `RESULT {...}`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { median } from "./bench_util.ts";
import * as ort from "onnxruntime-node";
import { GraphBuilder } from "../builders/onnx_graph.ts";
import { SessionWorker } from "../runtime/session_client.ts";
import { createTensor, type Tensor } from "../runtime/tensor.ts";

/** The step's inputs to `sample = hidden_states + 0 * (first elements of the others)`. */
export function feedThroughGraph(): Uint8Array {
  const b = new GraphBuilder({ name: "step_feed", computeDType: "float32" });
  const hidden = b.input("hidden_states", "float32", ["b", "f", 16, "h", "w"]);
  const text = b.input("encoder_hidden_states", "float32", ["b", "t", 4096]);
  const timestep = b.input("timestep", "int64", ["b"]);
  const positional = b.input("pos_embedding", "float32", ["n", 1920]);
  const first = (x: string, rank: number) =>
    b.op("ReduceMax", [
      b.op("Slice", [x, b.int64s(new Array(rank).fill(0)), b.int64s(new Array(rank).fill(1))]),
    ], { keepdims: 0 });
  const zero = b.op("Mul", [
    b.op("Add", [
      b.op("Add", [first(text, 3), first(positional, 2)]),
      b.op("Cast", [first(timestep, 1)], { to: 1 }),
    ]),
    b.scalar(0),
  ]);
  b.output(b.op("Add", [hidden, zero]), "sample", "float32", ["b", "f", 16, "h", "w"]);
  return b.toBytes();
}

function filled(shape: number[]): Tensor<"float32"> {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i += 97) data[i] = (i % 13) / 13;
  return createTensor("float32", shape, data);
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      provider: { type: "string", default: "cpu" },
      runs: { type: "string", default: "5" },
      "without-positional": { type: "boolean", default: false },
    },
  });
  const runs = Number(values.runs);
  const feeds: Record<string, Tensor> = {
    hidden_states: filled([2, 13, 16, 60, 90]),
    encoder_hidden_states: filled([2, 226, 4096]),
    timestep: createTensor("int64", [2], BigInt64Array.from([999n, 999n])),
    pos_embedding: values["without-positional"] ? filled([1, 1920]) : filled([17550, 1920]),
  };
  const bytes = feedThroughGraph();
  const options = { executionProviders: [values.provider], logSeverityLevel: 3 as const };

  const direct = await ort.InferenceSession.create(bytes, options);
  const ortFeeds = Object.fromEntries(
    Object.entries(feeds).map(([name, t]) => [name, new ort.Tensor(t.dtype, t.data, [...t.shape])]),
  );
  const directMs: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const started = performance.now();
    await direct.run(ortFeeds);
    if (i > 0) directMs.push(performance.now() - started);
  }
  await direct.release();

  const worker = new SessionWorker();
  await worker.create("step", bytes, {
    executionProviders: [values.provider],
    fallbackToCpu: false,
    intraOpThreads: 0,
    interOpThreads: 0,
    graphOptimizationLevel: "all",
  });
  const workerMs: number[] = [];
  const insideMs: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const started = performance.now();
    const { runMs } = await worker.run("step", feeds);
    if (i > 0) {
      workerMs.push(performance.now() - started);
      insideMs.push(runMs);
    }
  }
  const unchanged = new Set(["encoder_hidden_states", "pos_embedding"]);
  const keptMs: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const started = performance.now();
    await worker.run("step", feeds, { unchanged });
    if (i > 0) keptMs.push(performance.now() - started);
  }
  worker.stop();
  const megabytes = Object.values(feeds).reduce((sum, t) => sum + t.data.byteLength, 0) / 1e6;
  console.log("| path | MB in | run ms (median) | of which inside the worker's run() |");
  console.log("| --- | ---: | ---: | ---: |");
  console.log(`| this thread | ${megabytes.toFixed(0)} | ${median(directMs).toFixed(1)} | |`);
  console.log(
    `| session worker | ${megabytes.toFixed(0)} | ${median(workerMs).toFixed(1)} | ${
      median(insideMs).toFixed(1)
    } |`,
  );
  console.log(
    `| session worker, text and positional table unchanged (kept) | ${megabytes.toFixed(0)} | ${
      median(keptMs).toFixed(1)
    } | |`,
  );
  console.log(`RESULT ${
    JSON.stringify({
      provider: values.provider,
      megabytes,
      directMs: median(directMs),
      workerMs: median(workerMs),
      workerInsideMs: median(insideMs),
      keptMs: median(keptMs),
    })
  }`);
}
