/**
 * The pipeline's own cost around ONNX Runtime:
 *
 * 1. Sampling loop overhead: the sample node's wall time against the time the transformer spends
 *    in `session.run()` (measured inside its worker). The difference is the denoising loop's own
 *    work (CFG batch, guidance, scheduler step) plus each call's round trip to the worker
 *    (copying the feeds over, creating ONNX tensors, sending the outputs back), and, on the
 *    first step, starting a worker and creating the session.
 * 2. The tiny workflow end to end: in-process (`runWorkflow`, warm), and as whole CLI processes
 *    (`deno task demo`, and `mod.ts` without the permission launcher).
 *
 * ```sh
 * deno task bench --only pipeline
 * deno run -A bench/pipeline_bench.ts --quick
 * ```
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { loadWorkflow, runWorkflow } from "../api/mod.ts";
import type { Workflow } from "../engine/mod.ts";
import type { ModelManager, ModelRunOptions } from "../runtime/model_manager.ts";
import type { ModelHandle } from "../runtime/model_handle.ts";
import { OnnxModelManager } from "../runtime/onnx_model_manager.ts";
import { byteSize, type Tensor } from "../runtime/tensor.ts";
import {
  ensureSyntheticPipeline,
  FIXTURE_2B,
  formatPercent,
  formatSeconds,
  loadavg,
  markdownTable,
  median,
  OUT_DIR,
  PROJECT_DIR,
  TINY_WORKFLOW,
  writeResults,
} from "./bench_util.ts";
import { latentSizeForVideoTokens } from "../tests/synthetic_models.ts";

/** One call of a model, timed from the caller's side and inside the worker. */
interface TimedCall {
  /** Model name. */
  model: string;
  /** `performance.now()` at the call. */
  start: number;
  /** `performance.now()` when the outputs arrived. */
  end: number;
  /** Milliseconds in `session.run()` (the worker's measure). */
  runMs: number;
  /** Milliseconds creating the session during this call. */
  loadMs: number;
  /** Bytes of the feeds (copied to the worker). */
  feedBytes: number;
}

/** A model manager that times every call of the one it wraps. */
class TimedManager implements ModelManager {
  readonly calls: TimedCall[] = [];
  readonly inner = new OnnxModelManager({ splitCacheDir: join(OUT_DIR, "split") });

  async run(
    model: unknown,
    feeds: Record<string, Tensor>,
    options?: ModelRunOptions,
  ): Promise<Record<string, Tensor>> {
    const name = (model as ModelHandle).name;
    const before = this.#totals(name);
    const start = performance.now();
    const outputs = await this.inner.run(model, feeds, options);
    const end = performance.now();
    const after = this.#totals(name);
    this.calls.push({
      model: name,
      start,
      end,
      runMs: after.runMs - before.runMs,
      loadMs: after.loadMs - before.loadMs,
      feedBytes: Object.values(feeds).reduce((sum, tensor) => sum + byteSize(tensor), 0),
    });
    return outputs;
  }

  retain(value: unknown): Promise<void> {
    return this.inner.retain(value);
  }

  release(value: unknown): Promise<void> {
    return this.inner.release(value);
  }

  residentSessions(): string[] {
    return this.inner.residentSessions();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  #totals(name: string) {
    const stats = this.inner.stats().find((model) => model.name === name);
    return { runMs: stats?.runMs ?? 0, loadMs: stats?.loadMs ?? 0 };
  }
}

/** The sample node of one run, taken apart. */
export interface LoopBreakdown {
  /** Steps. */
  steps: number;
  /** The sample node's wall time. */
  sampleMs: number;
  /** Transformer session creation (first step). */
  loadMs: number;
  /** Transformer time in `session.run()`, all steps. */
  runMs: number;
  /** First call's wall time minus its load and run: worker start and first round trip. */
  firstCallExtraMs: number;
  /** Steps 2..N: wall time from the end of the first call to the end of the node. */
  steadyMs: number;
  /** Steps 2..N: time in `session.run()`. */
  steadyRunMs: number;
  /** Steps 2..N: call wall time minus `session.run()`: the round trips. */
  steadyRoundTripMs: number;
  /** Steps 2..N: time outside the calls: the loop's own work. */
  steadyLoopMs: number;
  /** Bytes of feeds per call. */
  feedBytes: number;
}

/** Runs the sample node of a workflow with timed calls and takes it apart. */
async function measureLoop(workflow: Workflow): Promise<LoopBreakdown> {
  const manager = new TimedManager();
  let sampleStart = 0;
  let sampleEnd = 0;
  await runWorkflow(workflow, {
    only: ["sample"],
    models: manager,
    onEvent: (event) => {
      if (event.type === "node_start" && event.node === "sample") sampleStart = performance.now();
      if (event.type === "node_end" && event.node === "sample") sampleEnd = performance.now();
    },
  });
  const calls = manager.calls.filter((call) => call.model === "transformer");
  const [first, ...rest] = calls;
  const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
  const steadyMs = sampleEnd - first.end;
  const restWall = sum(rest.map((call) => call.end - call.start));
  const restRun = sum(rest.map((call) => call.runMs));
  return {
    steps: calls.length,
    sampleMs: sampleEnd - sampleStart,
    loadMs: sum(calls.map((call) => call.loadMs)),
    runMs: sum(calls.map((call) => call.runMs)),
    firstCallExtraMs: first.end - first.start - first.loadMs - first.runMs,
    steadyMs,
    steadyRunMs: restRun,
    steadyRoundTripMs: restWall - restRun,
    steadyLoopMs: steadyMs - restWall,
    feedBytes: first.feedBytes,
  };
}

/** One model's loop measurements. */
export interface LoopResult {
  /** What ran. */
  label: string;
  /** Each measured run. */
  runs: LoopBreakdown[];
}

/** One way of running the tiny workflow end to end. */
export interface EndToEndResult {
  /** What ran. */
  label: string;
  /** Milliseconds per run. */
  ms: number[];
}

/** Everything the pipeline benchmark measured. */
export interface PipelineBenchResults {
  /** Sampling loop overhead per model. */
  loop: LoopResult[];
  /** The tiny workflow end to end. */
  endToEnd: EndToEndResult[];
  /** The markdown printed. */
  markdown: string;
}

/** Runs the benchmark; returns the results (also written to bench/out/pipeline.json). */
export async function runPipelineBench(options: { quick: boolean }): Promise<PipelineBenchResults> {
  const log = (text: string) => console.error(`[pipeline] ${text} (load average ${loadavg()})`);
  const synthetic = await ensureSyntheticPipeline(options.quick ? "quick" : "full");
  const output = join(OUT_DIR, "tmp", "pipeline");
  const cases: { label: string; params: Record<string, unknown>; repeat: number }[] = [
    {
      label: "fixture 2b (tiny.yaml defaults: 4 steps, CFG, 3x8x8 latent)",
      params: { model: FIXTURE_2B },
      repeat: options.quick ? 5 : 20,
    },
    {
      label: `synthetic ${options.quick ? "quick" : "bench"} (3 steps, CFG, 48 video tokens)`,
      params: { model: synthetic, steps: 3, max_sequence_length: 226 },
      repeat: options.quick ? 2 : 3,
    },
  ];
  if (!options.quick) {
    const latent = latentSizeForVideoTokens(768);
    cases.push({
      label: "synthetic bench (2 steps, CFG, 768 video tokens)",
      params: {
        model: synthetic,
        steps: 2,
        max_sequence_length: 226,
        height: latent.height * 8,
        width: latent.width * 8,
      },
      repeat: 1,
    });
  }
  const loop: LoopResult[] = [];
  for (const { label, params, repeat } of cases) {
    log(`loop: ${label}`);
    const workflow = await loadWorkflow(TINY_WORKFLOW, {
      params: { ...params, output, if_exists: "overwrite" },
    });
    await measureLoop(workflow); // Warm-up.
    const runs: LoopBreakdown[] = [];
    for (let i = 0; i < repeat; i++) runs.push(await measureLoop(workflow));
    loop.push({ label, runs });
  }

  const endToEnd: EndToEndResult[] = [];
  const repeat = options.quick ? 3 : 7;
  log("end to end: in-process");
  const tiny = await loadWorkflow(TINY_WORKFLOW, {
    params: { model: FIXTURE_2B, output: join(output, "tiny.mp4"), if_exists: "overwrite" },
  });
  await runWorkflow(tiny);
  endToEnd.push({
    label: "in-process `runWorkflow` (warm process, new model manager per run)",
    ms: await timeRepeated(repeat, () => runWorkflow(tiny)),
  });
  const cliArgs = [
    "run",
    "workflows/tiny.yaml",
    "--set",
    `output=${join(output, "cli.mp4")}`,
    "--set",
    "if_exists=overwrite",
    "--quiet",
  ];
  log("end to end: deno task demo");
  endToEnd.push({
    label: "CLI process: `deno task demo` (launcher + scoped child process)",
    ms: await timeRepeated(
      repeat,
      () =>
        command(["run", "--allow-read", "--allow-env", "--allow-run", "cli/launch.ts", ...cliArgs]),
    ),
  });
  log("end to end: mod.ts");
  endToEnd.push({
    label: "CLI process: `deno run -A mod.ts` (no launcher)",
    ms: await timeRepeated(repeat, () => command(["run", "-A", "mod.ts", ...cliArgs])),
  });
  const markdown = report(loop, endToEnd);
  await writeResults(`pipeline${options.quick ? ".quick" : ""}.json`, { loop, endToEnd, markdown });
  return { loop, endToEnd, markdown };
}

async function timeRepeated(repeat: number, task: () => Promise<unknown>): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const started = performance.now();
    await task();
    ms.push(performance.now() - started);
  }
  return ms;
}

async function command(args: string[]): Promise<void> {
  const output = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: PROJECT_DIR,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) {
    throw new Error(
      `deno ${args.join(" ")} failed: ${new TextDecoder().decode(output.stderr)}`,
    );
  }
}

function report(loop: LoopResult[], endToEnd: EndToEndResult[]): string {
  const med = (runs: LoopBreakdown[], pick: (run: LoopBreakdown) => number) =>
    median(runs.map(pick));
  const ms = (value: number) => `${value < 10 ? value.toFixed(2) : value.toFixed(0)} ms`;
  const rows = loop.map(({ label, runs }) => {
    const steadyOverhead = med(runs, (run) => 1 - run.steadyRunMs / run.steadyMs);
    const wholeOverhead = med(runs, (run) => 1 - run.runMs / (run.sampleMs - run.loadMs));
    return [
      label,
      formatPercent(steadyOverhead),
      formatPercent(wholeOverhead),
      ms(med(runs, (run) => run.steadyRunMs / (run.steps - 1))),
      ms(med(runs, (run) => run.steadyRoundTripMs / (run.steps - 1))),
      ms(med(runs, (run) => run.steadyLoopMs / (run.steps - 1))),
      ms(med(runs, (run) => run.sampleMs)),
      ms(med(runs, (run) => run.loadMs)),
      ms(med(runs, (run) => run.firstCallExtraMs)),
      `${(runs[0].feedBytes / 2 ** 20).toFixed(2)} MiB`,
      String(runs.length),
    ];
  });
  const e2eRows = endToEnd.map(({ label, ms: times }) => [
    label,
    formatSeconds(median(times)),
    formatSeconds(Math.min(...times)),
    formatSeconds(Math.max(...times)),
    String(times.length),
  ]);
  return [
    "### Sampling loop overhead: the sample node against the transformer's `session.run()`",
    "",
    "Steady steps are steps 2..N (from the end of the first transformer call to the end of the " +
    'node). "Outside run()" is 1 - (time in session.run(), measured in the worker) / (wall ' +
    "time); it counts the round trip to the worker (feeds copied over, ONNX tensors made, outputs " +
    "sent back) and the loop's own work (CFG batch, guidance, scheduler step). The whole-node " +
    "figure also counts the first call's worker start, but not session creation. Medians over runs.",
    "",
    markdownTable([
      "model",
      "outside run(), steady steps (target < 2%)",
      "outside run(), whole node",
      "run() per step",
      "round trip per step",
      "loop work per step",
      "sample node",
      "session creation",
      "first call extra (worker start)",
      "feeds per call",
      "runs",
    ], rows),
    "",
    "### The tiny workflow end to end (fixture 2b, 4 steps, decode, MP4 and contact sheet)",
    "",
    markdownTable(["how", "median", "min", "max", "runs"], e2eRows),
    "",
  ].join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { quick: { type: "boolean" } } });
  const results = await runPipelineBench({ quick: values.quick ?? false });
  console.log(results.markdown);
  Deno.exit(0);
}
