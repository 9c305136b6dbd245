/**
 * Memory hooks on CogVideoX-shaped synthetic models: peak resident memory (anonymous and
 * file-backed) and wall time of whole runs of `workflows/tiny.yaml` with each hook, sequential
 * offload's overhead over sequence lengths, tiled VAE decoding, and session create/release cycles.
 * Every configuration runs in a fresh, warmed-up process (`measure_child.ts`).
 *
 * ```sh
 * deno task bench --only memory            # bench preset (1.8 GB of weights), ~6 minutes
 * deno run -A bench/memory_bench.ts --quick # small models, about 30 seconds
 * deno run -A bench/memory_bench.ts --only hooks --only tiling
 * deno run -A bench/memory_bench.ts --only sweep --sweep-tokens 48,768 --tag try
 * deno run -A bench/memory_bench.ts --only sweep --before bench/out/memory.before-prepack.json
 * deno run -A bench/memory_bench.ts --redraw-from bench/out/memory.json   # charts only
 * ```
 *
 * Sections: `hooks`, `sweep`, `tiling`, `cycles`. `--before` takes an earlier results file: the
 * sweep's table and charts then show its numbers beside the new ones. Prints markdown; writes
 * `bench/out/memory.json` and, in the full mode, the charts `bench/memory_tradeoff.svg`, `bench/sequential_overhead.svg`
 * and `bench/sequential_block_times.svg` (quick mode: under bench/out/).
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_BLOCK_PATTERN, splitModel } from "../runtime/onnx_split.ts";
import {
  ensureSyntheticPipeline,
  formatMiB,
  formatRatio,
  formatSeconds,
  loadavg,
  markdownTable,
  OUT_DIR,
  pipelineOptions,
  type PipelineSize,
  PROJECT_DIR,
  readThrough,
  runChild,
  verdict,
  writeResults,
} from "./bench_util.ts";
import { lineChartSvg, scatterChartSvg } from "./charts.ts";
import type {
  CyclesResult,
  ModelResult,
  VaeResult,
  WorkflowJob,
  WorkflowResult,
} from "./measure_child.ts";
import type { PartStats } from "../runtime/sequential_runner.ts";
import { latentSizeForVideoTokens, sequenceLength } from "../tests/synthetic_models.ts";

/** The sections, in the order they run. */
export const SECTIONS = ["hooks", "sweep", "tiling", "cycles"] as const;

/** A section name. */
export type Section = typeof SECTIONS[number];

/** Options of {@link runMemoryBench}. */
export interface MemoryBenchOptions {
  /** Small models and sizes (a smoke run). */
  quick: boolean;
  /** Run only these sections (default: all). */
  only?: readonly Section[];
  /** Video token counts of the sweep (default: 48 to 4,107; quick: 48 to 768). */
  sweepTokens?: readonly number[];
  /** Names a side run: results and charts go to bench/out/ with this in their names. */
  tag?: string;
  /** Earlier results to compare the sweep with (a `memory.json`). */
  before?: MemoryBenchResults;
}

/** A sweep point: the sample node with no hook and with sequential offload. */
type SweepPoint = { videoTokens: number; none: WorkflowResult; sequential: WorkflowResult };

/** One hook configuration of the tiny workflow. */
interface HookConfig {
  label: string;
  params: Record<string, unknown>;
  env?: Record<string, string>;
}

/** What the benchmark measured, for bench/out/memory.json. */
export interface MemoryBenchResults {
  /** Which pipeline. */
  size: PipelineSize;
  /** The pipeline folder. */
  pipeline: string;
  /** Model file sizes (weights included). */
  modelBytes: Record<string, number>;
  /** Whole runs per hook (the fastest of each), every run, and the transformer alone. */
  hooks?: { runs: WorkflowResult[]; allRuns: WorkflowResult[]; transformerAlone: ModelResult };
  /** Sequence-length sweep: the sample node with no hook and with sequential offload. */
  sweep?: { videoTokens: number; none: WorkflowResult; sequential: WorkflowResult }[];
  /** VAE decodes. */
  tiling?: VaeResult[];
  /** Create/release cycles. */
  cycles?: CyclesResult[];
  /** The markdown printed. */
  markdown: string;
}

const STEPS = 2;

/**
 * glibc keeps freed heap memory of worker threads (the repacked weights of a released session);
 * with this in the environment of the process it gives it back. Only a launcher can set it.
 */
const GLIBC_TRIM = { MALLOC_TRIM_THRESHOLD_: "0" };

/** Sequential offload with the VAE decoding tiles of 32 x 32 pixels (a quarter of the frame). */
const SEQUENTIAL_TILED = {
  offload: "sequential",
  blocks_per_group: 1,
  vae_tiling: true,
  tile_sample_min_height: 32,
  tile_sample_min_width: 32,
  tile_overlap_factor_height: 0.25,
  tile_overlap_factor_width: 0.25,
};

const CYCLE_VARIANTS: {
  label: string;
  via: "manager" | "worker";
  prepackWeights?: boolean;
  env?: Record<string, string>;
}[] = [
  { label: "model manager, model_offload (retain, run, release)", via: "manager" },
  {
    label: "model manager, model_offload, with MALLOC_TRIM_THRESHOLD_=0",
    via: "manager",
    env: GLIBC_TRIM,
  },
  {
    label: "session worker, weights not repacked (as the parts of sequential offload)",
    via: "worker",
    prepackWeights: false,
  },
];

/** Runs the chosen sections; returns the results (also written to bench/out/). */
export async function runMemoryBench(options: MemoryBenchOptions): Promise<MemoryBenchResults> {
  const size: PipelineSize = options.quick ? "quick" : "full";
  const sections = new Set<Section>(options.only?.length ? options.only : SECTIONS);
  const pipeline = await ensureSyntheticPipeline(size);
  const splitCacheDir = join(OUT_DIR, "split");
  // Split once, before anything is measured: the transformer as both group sizes run it, the VAE
  // decoder one up block per part (tiny.yaml's offload=sequential).
  const splits = [
    ...[1, 2].map((blocksPerGroup) => ({ model: "transformer", blocksPerGroup })),
    { model: "vae_decoder", blocksPerGroup: 1 },
  ];
  for (const { model, blocksPerGroup } of splits) {
    const split = await splitModel(join(pipeline, model, "model.onnx"), {
      cacheDir: splitCacheDir,
      blocksPerGroup,
      blockPattern: DEFAULT_BLOCK_PATTERN,
    });
    await readThrough(split.dir);
  }
  const modelBytes: Record<string, number> = {};
  for (const part of ["text_encoder", "transformer", "vae_decoder"]) {
    let bytes = 0;
    for await (const entry of Deno.readDir(join(pipeline, part))) {
      if (entry.name.startsWith("model.onnx")) {
        bytes += (await Deno.stat(join(pipeline, part, entry.name))).size;
      }
    }
    modelBytes[part] = bytes;
  }
  const results: MemoryBenchResults = { size, pipeline, modelBytes, markdown: "" };
  const chartDir = options.quick || options.tag ? OUT_DIR : join(PROJECT_DIR, "bench");
  const suffix = `${options.quick ? ".quick" : ""}${options.tag ? `.${options.tag}` : ""}`;
  const out: string[] = [
    `Pipeline: ${size === "full" ? "bench preset" : "quick"} synthetic models in ${pipeline}: ${
      Object.entries(modelBytes).map(([name, bytes]) => `${name} ${formatMiB(bytes)}`).join(", ")
    }.`,
    "",
  ];
  const log = (text: string) => console.error(`[memory] ${text} (load average ${loadavg()})`);

  if (sections.has("hooks")) {
    const hooks = await measureHooks(
      pipeline,
      splitCacheDir,
      modelBytes,
      options.quick ? 1 : 2,
      log,
    );
    results.hooks = hooks;
    out.push(...hooksReport(hooks.runs, hooks.allRuns, hooks.transformerAlone, modelBytes));
    await writeTradeoffChart(hooks.runs, chartDir, suffix, size);
  }

  if (sections.has("sweep")) {
    const tokens = options.sweepTokens?.length
      ? options.sweepTokens
      : options.quick
      ? [48, 192, 768]
      : [48, 192, 432, 768, 1728, 4107];
    const sweep = [];
    for (const videoTokens of tokens) {
      sweep.push(await measureSweepPoint(pipeline, splitCacheDir, videoTokens, log));
    }
    results.sweep = sweep;
    out.push(...sweepReport(sweep, size, options.before?.sweep));
    await writeSweepCharts(sweep, chartDir, suffix, size, options.before?.sweep);
  }

  if (sections.has("tiling")) {
    results.tiling = await measureTiling(pipeline, options.quick, log);
    out.push(...tilingReport(results.tiling));
  }

  if (sections.has("cycles")) {
    const model = join(pipeline, "text_encoder", "model.onnx");
    results.cycles = [];
    for (const variant of CYCLE_VARIANTS) {
      log(`cycles: ${variant.label}`);
      const result = await runChild<CyclesResult>({
        kind: "cycles",
        label: variant.label,
        model,
        cycles: 50,
        tokens: 16,
        via: variant.via,
        prepackWeights: variant.prepackWeights,
      }, variant.env);
      results.cycles.push(result);
    }
    out.push(...cyclesReport(results.cycles));
  }

  results.markdown = out.join("\n");
  await writeResults(`memory${suffix}.json`, results);
  return results;
}

async function measureHooks(
  pipeline: string,
  splitCacheDir: string,
  modelBytes: Record<string, number>,
  rounds: number,
  log: (text: string) => void,
): Promise<{ runs: WorkflowResult[]; allRuns: WorkflowResult[]; transformerAlone: ModelResult }> {
  const largest = Math.max(...Object.values(modelBytes));
  const sum = Object.values(modelBytes).reduce((a, b) => a + b, 0);
  // Between the largest model and all of them: the transformer cannot stay with the text encoder.
  const budget = Math.round((largest + (sum - largest) / 2) / 2 ** 20);
  const configs: HookConfig[] = [
    { label: "none", params: { offload: "none" } },
    { label: "model_offload", params: { offload: "model" } },
    { label: "sequential bpg=1", params: { offload: "sequential", blocks_per_group: 1 } },
    { label: "sequential bpg=2", params: { offload: "sequential", blocks_per_group: 2 } },
    { label: `budget ${budget} MiB`, params: { offload: "budget", max_memory: `${budget}MiB` } },
    { label: "model_offload, trim", params: { offload: "model" }, env: GLIBC_TRIM },
    {
      label: "sequential bpg=1, trim",
      params: { offload: "sequential", blocks_per_group: 1 },
      env: GLIBC_TRIM,
    },
    {
      label: "sequential bpg=2, trim",
      params: { offload: "sequential", blocks_per_group: 2 },
      env: GLIBC_TRIM,
    },
    // Sequential offload runs the VAE in parts, but its activations grow with the picture: tiles
    // bound them (diffusers' low-memory recipe adds VAE tiling).
    { label: "sequential bpg=1 + VAE tiles", params: SEQUENTIAL_TILED },
    { label: "sequential bpg=1 + VAE tiles, trim", params: SEQUENTIAL_TILED, env: GLIBC_TRIM },
  ];
  // Rounds go through every configuration in turn, so that a busy spell of the machine does not
  // fall on one configuration only; each configuration keeps its fastest run.
  const allRuns: WorkflowResult[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const config of configs) {
      log(`hooks: ${config.label} (round ${round} of ${rounds})`);
      const run = await runChild<WorkflowResult>(
        {
          kind: "workflow",
          label: `hooks-${config.label}`,
          params: {
            model: pipeline,
            steps: STEPS,
            max_sequence_length: 226,
            output: join(OUT_DIR, "tmp", `hooks-${config.label.replace(/\W+/g, "_")}.mp4`),
            if_exists: "overwrite",
            ...config.params,
          },
          splitCacheDir,
        } satisfies WorkflowJob,
        config.env,
      );
      run.label = config.label;
      allRuns.push(run);
    }
  }
  const runs = configs.map((config) =>
    allRuns.filter((run) => run.label === config.label).reduce((best, run) =>
      run.wallMs < best.wallMs ? run : best
    )
  );
  // The transformer alone, as the sample node runs it (CFG batch of 2, 64 x 64 pixels, 9 frames).
  const t = pipelineOptions(pipeline.endsWith("quick") ? "quick" : "full").transformer;
  log("hooks: transformer alone");
  const transformerAlone = await runChild<ModelResult>({
    kind: "model",
    label: "transformer-alone",
    model: join(pipeline, "transformer", "model.onnx"),
    feeds: {
      hidden_states: { dtype: "float32", shape: [2, 3, t.inChannels, 8, 8] },
      encoder_hidden_states: { dtype: "float32", shape: [2, t.textSeqLength, t.textEmbedDim] },
      timestep: { dtype: "int64", shape: [2] },
    },
    runs: STEPS,
  });
  return { runs, allRuns, transformerAlone };
}

function peakRange(runs: WorkflowResult[]): string {
  return runs.map((run) => Math.round(run.memory.peak / 2 ** 20)).join(", ");
}

function aboveBaseline(memory: WorkflowResult["memory"]): number {
  return memory.peak - memory.baseline.rss;
}

function hooksReport(
  runs: WorkflowResult[],
  allRuns: WorkflowResult[],
  alone: ModelResult,
  modelBytes: Record<string, number>,
): string[] {
  const none = runs[0];
  const rows = runs.map((run) => {
    // Every model run in parts: the transformer, and the VAE with offload=sequential.
    const waits = run.models.filter((model) => model.waitMs !== undefined);
    return [
      run.label,
      formatRatio(run.memory.peak / none.memory.peak),
      formatRatio(aboveBaseline(run.memory) / aboveBaseline(none.memory)),
      formatRatio(run.wallMs / none.wallMs),
      formatMiB(run.memory.peak),
      peakRange(allRuns.filter((other) => other.label === run.label)),
      formatMiB(aboveBaseline(run.memory)),
      `${formatMiB(run.memory.atPeak.rssAnon)} / ${formatMiB(run.memory.atPeak.rssFile)}`,
      `${formatMiB(run.memory.maxAnon)} / ${formatMiB(run.memory.maxFile)}`,
      formatMiB(run.memory.after.rss - run.memory.baseline.rss),
      formatSeconds(run.wallMs),
      formatSeconds(run.nodeMs.sample ?? 0),
      String(run.models.reduce((sum, model) => sum + model.loads, 0)),
      waits.length > 0 ? formatSeconds(waits.reduce((sum, model) => sum + model.waitMs!, 0)) : "-",
    ];
  });
  const aloneAbove = alone.memory.peak - alone.memory.baseline.rss;
  const activations = aloneAbove - modelBytes.transformer;
  const modelOffload = runs.find((run) => run.label === "model_offload")!;
  const sequential = runs.filter((run) => run.label.startsWith("sequential"));
  const modelRatio = aboveBaseline(modelOffload.memory) / aloneAbove;
  const lines = [
    `### Memory hooks: whole runs of tiny.yaml (${STEPS} steps, CFG batch 2, 64 x 64 pixels, 9 frames = 48 video tokens + 226 text tokens)`,
    "",
    "Each row is a fresh process, warmed up on the fixture models, peak reset before the run; " +
    `the configurations ran in ${
      allRuns.length / runs.length
    } interleaved round(s) and each row is its configuration's fastest run. ` +
    '"Above baseline" subtracts the resident memory of the warmed-up process before the run ' +
    "(Deno, V8, ONNX Runtime's library, the warm-up's leftovers). " +
    '"trim": the process ran with MALLOC_TRIM_THRESHOLD_=0 in its environment (glibc then ' +
    "returns freed heap memory; only a launcher can set it).",
    "",
    markdownTable([
      "configuration",
      "peak / no-hook",
      "above baseline / no-hook",
      "wall / no-hook",
      "peak (VmHWM)",
      "peaks of all rounds",
      "peak above baseline",
      "anon / file at peak",
      "max anon / max file",
      "left after run",
      "wall",
      "sample node",
      "sessions created",
      "part loads not hidden",
    ], rows),
    "",
    `Transformer alone (resident, ${STEPS} runs, batch 2): peak ${formatMiB(alone.memory.peak)}, ${
      formatMiB(aloneAbove)
    } above baseline = weights ${formatMiB(modelBytes.transformer)} (file size) + activations ${
      formatMiB(activations)
    }.`,
    "",
    "| target | measured | limit | verdict | absolute |",
    "| --- | ---: | ---: | --- | --- |",
    `| model_offload peak <= 1.15 x (largest model + activations) | ${
      formatRatio(modelRatio)
    } | 1.15x | ${verdict(modelRatio <= 1.15)} | ${
      formatMiB(aboveBaseline(modelOffload.memory))
    } above baseline vs transformer alone ${formatMiB(aloneAbove)} above baseline (totals ${
      formatMiB(modelOffload.memory.peak)
    } vs ${formatMiB(alone.memory.peak)}) |`,
  ];
  for (const run of sequential) {
    const ratio = run.memory.peak / none.memory.peak;
    lines.push(
      `| ${run.label} peak <= 0.25 x no-hook peak | ${formatRatio(ratio)} (above baseline: ${
        formatRatio(aboveBaseline(run.memory) / aboveBaseline(none.memory))
      }) | 0.25x | ${verdict(ratio <= 0.25)} | ${formatMiB(run.memory.peak)} vs ${
        formatMiB(none.memory.peak)
      } (above baseline ${formatMiB(aboveBaseline(run.memory))} vs ${
        formatMiB(aboveBaseline(none.memory))
      }) |`,
    );
  }
  lines.push("");
  return lines;
}

async function measureSweepPoint(
  pipeline: string,
  splitCacheDir: string,
  videoTokens: number,
  log: (text: string) => void,
): Promise<{ videoTokens: number; none: WorkflowResult; sequential: WorkflowResult }> {
  const latent = latentSizeForVideoTokens(videoTokens);
  const run = (label: string, params: Record<string, unknown>) => {
    log(`sweep: ${videoTokens} video tokens, ${label}`);
    return runChild<WorkflowResult>(
      {
        kind: "workflow",
        label: `sweep-${videoTokens}-${label}`,
        params: {
          model: pipeline,
          steps: STEPS,
          guidance_scale: 1,
          max_sequence_length: 226,
          height: latent.height * 8,
          width: latent.width * 8,
          num_frames: 9,
          ...params,
        },
        only: ["sample"],
        splitCacheDir,
      } satisfies WorkflowJob,
    );
  };
  const none = await run("none", { offload: "none" });
  const sequential = await run("sequential", { offload: "sequential", blocks_per_group: 1 });
  return { videoTokens, none, sequential };
}

/** Mean load and mean run per call of the block parts (not the prologue or epilogue). */
function blockTimes(run: WorkflowResult): { loadMs: number; runMs: number; waitMs: number } {
  const transformer = run.models.find((model) => model.name === "transformer");
  const blocks: PartStats[] = (transformer?.partStats ?? []).filter((part) =>
    part.name.includes("block")
  );
  const loads = blocks.reduce((sum, part) => sum + part.loads, 0);
  const runs = blocks.reduce((sum, part) => sum + part.runs, 0);
  return {
    loadMs: blocks.reduce((sum, part) => sum + part.loadMs, 0) / Math.max(1, loads),
    runMs: blocks.reduce((sum, part) => sum + part.runMs, 0) / Math.max(1, runs),
    waitMs: transformer?.waitMs ?? 0,
  };
}

/** Transformer blocks of a sweep point's model (block parts times blocks per part). */
function blockCount(point: { sequential: WorkflowResult }): number {
  const parts = point.sequential.models.find((model) => model.name === "transformer")?.partStats;
  return Math.max(1, (parts ?? []).filter((part) => part.name.includes("block")).length);
}

/** A block's share of a no-hook step: the last step over the blocks. */
function blockShareMs(point: SweepPoint): number {
  return lastStepMs(point.none) / blockCount(point);
}

/** Sequential offload's last step over no hook's. */
function stepRatio(point: SweepPoint): number {
  return lastStepMs(point.sequential) / lastStepMs(point.none);
}

/** The last step's wall time (the first includes loading the model). */
function lastStepMs(run: WorkflowResult): number {
  const ends = run.sampleStepEndMs;
  return ends.length >= 2 ? ends[ends.length - 1] - ends[ends.length - 2] : ends[0] ?? NaN;
}

/** The first sweep point from which every block's compute takes at least as long as its load. */
function crossover(
  sweep: { videoTokens: number; sequential: WorkflowResult }[],
): number | undefined {
  let found: number | undefined;
  for (const point of [...sweep].reverse()) {
    const times = blockTimes(point.sequential);
    if (times.runMs >= times.loadMs) found = point.videoTokens;
    else break;
  }
  return found;
}

function sweepReport(
  sweep: SweepPoint[],
  size: PipelineSize,
  before?: SweepPoint[],
): string[] {
  const t = pipelineOptions(size).transformer;
  const from = crossover(sweep);
  const earlier = (videoTokens: number, ratio: (point: SweepPoint) => number) => {
    const point = before?.find((p) => p.videoTokens === videoTokens);
    return point ? formatRatio(ratio(point)) : "-";
  };
  const rows = sweep.map((point) => {
    const { videoTokens, none, sequential } = point;
    const latent = latentSizeForVideoTokens(videoTokens);
    const blocks = blockTimes(sequential);
    return [
      String(videoTokens),
      String(sequenceLength(t, latent)),
      `${latent.frames}x${latent.height}x${latent.width}`,
      formatRatio(sequential.nodeMs.sample / none.nodeMs.sample),
      formatRatio(stepRatio(point)),
      ...(before ? [earlier(videoTokens, stepRatio)] : []),
      formatRatio(blocks.runMs / blockShareMs(point)),
      ...(before
        ? [earlier(videoTokens, (p) => blockTimes(p.sequential).runMs / blockShareMs(p))]
        : []),
      formatSeconds(none.nodeMs.sample),
      formatSeconds(sequential.nodeMs.sample),
      `${blocks.runMs.toFixed(0)} ms`,
      `${blocks.loadMs.toFixed(0)} ms`,
      formatRatio(blocks.runMs / blocks.loadMs),
      formatSeconds(blocks.waitMs),
      formatRatio(sequential.memory.peak / none.memory.peak),
      formatMiB(none.memory.peak),
      formatMiB(sequential.memory.peak),
    ];
  });
  const held = sweep.filter((point) => from !== undefined && point.videoTokens >= from);
  const worst = Math.max(
    ...held.map((point) => point.sequential.nodeMs.sample / point.none.nodeMs.sample),
  );
  const worstStep = Math.max(
    ...held.map((point) => lastStepMs(point.sequential) / lastStepMs(point.none)),
  );
  const meets = held.filter((point) =>
    lastStepMs(point.sequential) / lastStepMs(point.none) <= 1.5
  );
  const holdsFrom = held.find((point) =>
    held.every((later) =>
      later.videoTokens < point.videoTokens ||
      lastStepMs(later.sequential) / lastStepMs(later.none) <= 1.5
    )
  )?.videoTokens;
  return [
    `### Sequential offload against no hook over sequence length (sample node only, ${STEPS} steps, no CFG: batch 1)`,
    "",
    "Wall times are the sample node's (the no-hook one includes creating the whole transformer's " +
    "session once; sequential offload creates every part at every step). Block times are means " +
    "over the block parts: run per call, load per session; waits are loads not hidden by prefetch.",
    "",
    markdownTable([
      "video tokens",
      "sequence",
      "latent f x h x w",
      "sequential / none (sample node)",
      "last step ratio",
      ...(before ? ["last step ratio before"] : []),
      "block run / no-hook share",
      ...(before ? ["the same before"] : []),
      "none",
      "sequential",
      "block run",
      "block load",
      "run / load",
      "waits",
      "peak seq / none",
      "peak none",
      "peak sequential",
    ], rows),
    "",
    from === undefined
      ? "A block's compute never reached its load time in this sweep."
      : `A block's compute takes at least as long as its load from ${from} video tokens (the crossover, ${
        from === sweep[0].videoTokens ? "already at the smallest size measured" : "in this sweep"
      }).`,
    "",
    "| target | measured | limit | verdict | absolute |",
    "| --- | ---: | ---: | --- | --- |",
    `| sequential wall <= 1.5 x no hook where block compute >= block load (${
      from ?? "-"
    }+ video tokens): sample node, ${STEPS} steps | worst ${formatRatio(worst)} | 1.5x | ${
      verdict(worst <= 1.5)
    } | ${
      held.map((point) =>
        `${point.videoTokens}: ${formatSeconds(point.sequential.nodeMs.sample)} vs ${
          formatSeconds(point.none.nodeMs.sample)
        }`
      ).join("; ")
    } |`,
    `| the same, per step once loaded (last step: what a long run converges to) | worst ${
      formatRatio(worstStep)
    } | 1.5x | ${verdict(worstStep <= 1.5)}${
      holdsFrom === undefined ? "" : `; holds from ${holdsFrom} video tokens`
    } (${meets.length} of ${held.length} sizes) | ${
      held.map((point) =>
        `${point.videoTokens}: ${formatSeconds(lastStepMs(point.sequential))} vs ${
          formatSeconds(lastStepMs(point.none))
        }`
      ).join("; ")
    } |`,
    "",
  ];
}

async function writeTradeoffChart(
  runs: WorkflowResult[],
  dir: string,
  suffix: string,
  size: PipelineSize,
): Promise<void> {
  const chart = scatterChartSvg({
    title: "Memory hooks: peak resident memory against wall time",
    subtitle: `tiny.yaml on the ${size} synthetic pipeline, ${STEPS} steps with CFG, ` +
      "each point a fresh process (VmHWM; wall time: fastest of the rounds)",
    xLabel: "wall time of the whole run",
    yLabel: "peak resident memory",
    points: runs.map((run) => ({
      label: run.label,
      x: run.wallMs / 1000,
      y: run.memory.peak / 2 ** 20,
    })),
    formatX: (x) => `${x.toFixed(1)} s`,
    formatY: (y) => `${y.toFixed(0)} MiB`,
  });
  await writeChart(join(dir, `memory_tradeoff${suffix}.svg`), chart);
}

/** Writes a chart, formatted as `deno fmt` wants it (the committed ones are checked). */
async function writeChart(path: string, svg: string): Promise<void> {
  await Deno.writeTextFile(path, svg);
  await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", path], stdout: "null" })
    .output();
}

/** Draws the charts again from a results file (`bench/out/memory.json`) into `dir`. */
export async function redrawCharts(
  file: string,
  dir: string,
  before?: MemoryBenchResults,
): Promise<void> {
  const results = JSON.parse(await Deno.readTextFile(file)) as MemoryBenchResults;
  if (results.hooks) await writeTradeoffChart(results.hooks.runs, dir, "", results.size);
  if (results.sweep) {
    await writeSweepCharts(results.sweep, dir, "", results.size, before?.sweep);
  }
}

async function writeSweepCharts(
  sweep: SweepPoint[],
  dir: string,
  suffix: string,
  size: PipelineSize,
  before?: SweepPoint[],
): Promise<void> {
  const from = crossover(sweep);
  const beforeSteps = before
    ? [{
      name: "last step, before",
      dashed: true,
      points: before.map((p) => ({ x: p.videoTokens, y: stepRatio(p) })),
    }]
    : [];
  const beforeRuns = before
    ? [{
      name: "block run, before",
      dashed: true,
      points: before.map((p) => ({ x: p.videoTokens, y: blockTimes(p.sequential).runMs })),
    }]
    : [];
  await writeChart(
    join(dir, `sequential_overhead${suffix}.svg`),
    lineChartSvg({
      title: "Sequential offload: wall time over no hook, by sequence length",
      subtitle: `${size} synthetic transformer, sample node, ${STEPS} steps, batch 1, ` +
        "blocks_per_group 1, prefetch on",
      xLabel: "video tokens (plus 226 text tokens), log scale",
      yLabel: "sequential / no hook",
      logX: true,
      series: [
        {
          name: "sample node wall time",
          points: sweep.map((p) => ({
            x: p.videoTokens,
            y: p.sequential.nodeMs.sample / p.none.nodeMs.sample,
          })),
        },
        {
          name: "last step only",
          points: sweep.map((p) => ({ x: p.videoTokens, y: stepRatio(p) })),
        },
        ...beforeSteps,
      ],
      guides: [{ y: 1.5, label: "target 1.5x" }, { y: 1, label: "no overhead", color: "#999" }],
      marker: from === undefined ? undefined : { x: from, label: "block compute >= load" },
      formatX: (x) => String(x),
      formatY: (y) => `${y.toFixed(2)}x`,
    }),
  );
  await writeChart(
    join(dir, `sequential_block_times${suffix}.svg`),
    lineChartSvg({
      title: "Sequential offload: a block's load against its compute",
      subtitle: `${size} synthetic transformer, means over block parts (blocks_per_group 1); ` +
        "no-hook share: a step / blocks",
      xLabel: "video tokens (plus 226 text tokens), log scale",
      yLabel: "milliseconds",
      logX: true,
      series: [
        {
          name: "block run",
          points: sweep.map((p) => ({ x: p.videoTokens, y: blockTimes(p.sequential).runMs })),
        },
        ...beforeRuns,
        {
          name: "block load",
          points: sweep.map((p) => ({ x: p.videoTokens, y: blockTimes(p.sequential).loadMs })),
        },
        {
          name: "no-hook share",
          dashed: true,
          points: sweep.map((p) => ({ x: p.videoTokens, y: lastStepMs(p.none) / blockCount(p) })),
        },
      ],
      formatX: (x) => String(x),
      formatY: (y) => `${y.toFixed(0)} ms`,
    }),
  );
}

async function measureTiling(
  pipeline: string,
  quick: boolean,
  log: (text: string) => void,
): Promise<VaeResult[]> {
  // 1x: one tile, decoded whole; 4x: twice the height and width, in tiles of the 1x size.
  const latent = quick ? 4 : 6;
  const overlap = quick ? 1 / 4 : 1 / 6;
  const jobs = [
    { label: `vae 1x untiled (${latent * 8} px)`, side: latent },
    {
      label: `vae 4x tiled (${latent * 16} px, tiles of ${latent * 8} px)`,
      side: latent * 2,
      tile: { pixels: latent * 8, overlap },
    },
    { label: `vae 4x untiled (${latent * 16} px)`, side: latent * 2 },
  ];
  const results: VaeResult[] = [];
  for (const job of jobs) {
    log(job.label);
    results.push(
      await runChild<VaeResult>({
        kind: "vae",
        label: job.label,
        pipeline,
        latentHeight: job.side,
        latentWidth: job.side,
        tile: job.tile,
      }),
    );
  }
  return results;
}

function tilingReport(results: VaeResult[]): string[] {
  const [one, tiled, untiled] = results;
  const above = (result: VaeResult) => result.memory.peak - result.memory.baseline.rss;
  const ratio = tiled.memory.peak / one.memory.peak;
  return [
    "### VAE tiling: the synthetic VAE decoder directly (9 frames)",
    "",
    markdownTable(
      [
        "decode",
        "peak / 1x untiled",
        "above baseline / 1x",
        "peak (VmHWM)",
        "above baseline",
        "anon / file at peak",
        "decoder calls",
        "wall",
      ],
      results.map((result) => [
        result.label,
        formatRatio(result.memory.peak / one.memory.peak),
        formatRatio(above(result) / above(one)),
        formatMiB(result.memory.peak),
        formatMiB(above(result)),
        `${formatMiB(result.memory.atPeak.rssAnon)} / ${formatMiB(result.memory.atPeak.rssFile)}`,
        String(result.calls),
        formatSeconds(result.wallMs),
      ]),
    ),
    "",
    "| target | measured | limit | verdict | absolute |",
    "| --- | ---: | ---: | --- | --- |",
    `| 4x area tiled <= 1.3 x 1x untiled | ${formatRatio(ratio)} (above baseline ${
      formatRatio(above(tiled) / above(one))
    }) | 1.3x | ${verdict(ratio <= 1.3)} | ${formatMiB(tiled.memory.peak)} vs ${
      formatMiB(one.memory.peak)
    }; 4x untiled: ${formatMiB(untiled.memory.peak)} |`,
    "",
  ];
}

function cyclesReport(results: CyclesResult[]): string[] {
  const rows = results.map((result) => {
    const first = result.afterCycle[0];
    const last = result.afterCycle[result.afterCycle.length - 1];
    const growth = (last.rss - first.rss) / first.rss;
    const during = result.duringCycle;
    return [
      result.label,
      `${(growth * 100).toFixed(1)}%`,
      verdict(growth < 0.05),
      formatMiB(first.rss),
      formatMiB(last.rss),
      `${formatMiB(first.rssAnon)} -> ${formatMiB(last.rssAnon)}`,
      `${formatMiB(first.rssFile)} -> ${formatMiB(last.rssFile)}`,
      `${formatMiB(during[0].rss)} -> ${formatMiB(during[during.length - 1].rss)}`,
      formatMiB(result.memory.baseline.rss),
      `${(result.cycleMs.reduce((a, b) => a + b, 0) / result.cycleMs.length).toFixed(0)} ms`,
    ];
  });
  return [
    `### Session create/release cycles: the text encoder, ${
      results[0]?.afterCycle.length ?? 0
    } cycles in one warmed-up process`,
    "",
    markdownTable([
      "how",
      "growth after 1 -> 50 (target < 5%)",
      "verdict",
      "after cycle 1",
      "after cycle 50",
      "anon",
      "file",
      "while resident, 1 -> 50",
      "baseline",
      "per cycle",
    ], rows),
    "",
  ];
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean" },
      only: { type: "string", multiple: true },
      "sweep-tokens": { type: "string" },
      tag: { type: "string" },
      "redraw-from": { type: "string" },
      before: { type: "string" },
    },
  });
  const before = values.before
    ? JSON.parse(await Deno.readTextFile(values.before)) as MemoryBenchResults
    : undefined;
  if (values["redraw-from"]) {
    await redrawCharts(values["redraw-from"], join(PROJECT_DIR, "bench"), before);
    Deno.exit(0);
  }
  const only = (values.only ?? []).filter((name): name is Section =>
    (SECTIONS as readonly string[]).includes(name)
  );
  const results = await runMemoryBench({
    quick: values.quick ?? false,
    only,
    sweepTokens: values["sweep-tokens"]?.split(",").map(Number),
    tag: values.tag,
    before,
  });
  console.log(results.markdown);
}
