/**
 * One measurement in a fresh process, so that what an earlier configuration left in the heap
 * cannot count against the next: import everything, run the tiny workflow on the fixture models
 * once (warm-up: code compiled, ONNX Runtime loaded), reset the peak resident size, measure one
 * job, and print one JSON line.
 *
 * ```sh
 * deno run <permissions> bench/measure_child.ts '{"kind":"workflow","label":"none",...}'
 * ```
 *
 * Memory: the exact peak is the kernel's VmHWM; anonymous and file-backed memory are sampled every
 * 20 ms (`MemoryMonitor`), so their maxima can miss a short spike.
 *
 * @module
 */

import { join } from "node:path";
import { loadWorkflow, runWorkflow } from "../api/mod.ts";
import { memoryChartSvg } from "../media/memory_chart.ts";
import { tiledDecode } from "../diffusion/tiled_decode.ts";
import { MemoryMonitor } from "../runtime/memory_monitor.ts";
import { describeModel } from "../runtime/model_files.ts";
import { readPipelineFolder } from "../runtime/pipeline_folder.ts";
import { modelOffloadHook } from "../nodes/model_offload.ts";
import { type ModelStats, OnnxModelManager } from "../runtime/onnx_model_manager.ts";
import {
  type MemoryReading,
  readProcessMemory,
  resetPeakMemory,
} from "../runtime/process_memory.ts";
import { SessionWorker } from "../runtime/session_client.ts";
import { createTensor, type Tensor } from "../runtime/tensor.ts";
import { FIXTURE_2B, loadavg, OUT_DIR, TINY_WORKFLOW } from "./bench_util.ts";

export type { MemoryReading } from "../runtime/process_memory.ts";
export type { ModelStats } from "../runtime/onnx_model_manager.ts";
export type { PartStats } from "../runtime/sequential_runner.ts";

/** Runs tiny.yaml with params (a whole run, or `only` some nodes). */
export interface WorkflowJob {
  /** Job kind. */
  kind: "workflow";
  /** Names the configuration (and its timeline file). */
  label: string;
  /** Params of tiny.yaml. */
  params: Record<string, unknown>;
  /** Run only these nodes and what they need. */
  only?: string[];
  /** Where split models are cached. */
  splitCacheDir: string;
}

/** Decodes random latents with a pipeline's VAE decoder, whole or in tiles. */
export interface VaeJob {
  /** Job kind. */
  kind: "vae";
  /** Names the configuration. */
  label: string;
  /** Pipeline folder. */
  pipeline: string;
  /** Latent height. */
  latentHeight: number;
  /** Latent width. */
  latentWidth: number;
  /** Decode in tiles of this many pixels (square), blending `overlap` of a tile; else whole. */
  tile?: { pixels: number; overlap: number };
}

/** Creates, runs and releases one session again and again. */
export interface CyclesJob {
  /** Job kind. */
  kind: "cycles";
  /** Names the configuration. */
  label: string;
  /** A text encoder model (input ids in, embeddings out). */
  model: string;
  /** Cycles. */
  cycles: number;
  /** Tokens of the input ids (when the model's sequence length is not fixed). */
  tokens: number;
  /**
   * "manager": the model manager with a model_offload hook (retain, run, release), as a workflow
   * run does; "worker": a session worker (create, run, release).
   */
  via: "manager" | "worker";
  /** For "worker": repack weights at creation (the default session option) or not. */
  prepackWeights?: boolean;
}

/** Runs one model alone (resident, as with no hook) on random floats and constant ids. */
export interface ModelJob {
  /** Job kind. */
  kind: "model";
  /** Names the configuration. */
  label: string;
  /** Model path. */
  model: string;
  /** Feeds by input name. */
  feeds: Record<string, { dtype: "float32" | "int64"; shape: number[] }>;
  /** Calls. */
  runs: number;
}

/** A job. */
export type Job = WorkflowJob | VaeJob | CyclesJob | ModelJob;

/** Memory of the measured phase. */
export interface MemoryResult {
  /** After warm-up, when the peak was reset. */
  baseline: MemoryReading;
  /** VmHWM at the end: the exact peak of the measured phase. */
  peak: number;
  /** Highest sampled anonymous memory. */
  maxAnon: number;
  /** Highest sampled file-backed memory. */
  maxFile: number;
  /** Anonymous and file-backed memory of the sample with the highest total. */
  atPeak: { rssAnon: number; rssFile: number };
  /** When the job was done (sessions released). */
  after: MemoryReading;
  /** Whether the kernel let the peak be reset (else `peak` includes the warm-up). */
  peakReset: boolean;
}

/** What a workflow job returns. */
export interface WorkflowResult {
  /** Label. */
  label: string;
  /** Wall time of `runWorkflow` in milliseconds. */
  wallMs: number;
  /** Each node's wall time. */
  nodeMs: Record<string, number>;
  /** Milliseconds from the start of the sample node to each of its steps' ends. */
  sampleStepEndMs: number[];
  /** The manager's statistics per model. */
  models: ModelStats[];
  /** Memory. */
  memory: MemoryResult;
  /** `/proc/loadavg` before and after. */
  loadavg: [string, string];
}

/** What a VAE job returns. */
export interface VaeResult {
  /** Label. */
  label: string;
  /** Wall time of the decode in milliseconds (session creation included). */
  wallMs: number;
  /** Decoder calls. */
  calls: number;
  /** Output shape. */
  shape: number[];
  /** Memory. */
  memory: MemoryResult;
  /** `/proc/loadavg` before and after. */
  loadavg: [string, string];
}

/** What a cycles job returns. */
export interface CyclesResult {
  /** Label. */
  label: string;
  /** Memory after each cycle's release. */
  afterCycle: MemoryReading[];
  /** Memory while each cycle's session was resident (after its run). */
  duringCycle: MemoryReading[];
  /** Milliseconds per cycle. */
  cycleMs: number[];
  /** Memory. */
  memory: MemoryResult;
  /** `/proc/loadavg` before and after. */
  loadavg: [string, string];
}

/** Runs the tiny workflow on the fixture models once. */
async function warmUp(): Promise<void> {
  const workflow = await loadWorkflow(TINY_WORKFLOW, {
    params: {
      model: FIXTURE_2B,
      output: join(OUT_DIR, "tmp", `warmup-${Deno.pid}`),
      if_exists: "overwrite",
    },
  });
  await runWorkflow(workflow, { splitCacheDir: join(OUT_DIR, "split") });
  await Deno.remove(join(OUT_DIR, "tmp", `warmup-${Deno.pid}`), { recursive: true }).catch(
    () => {},
  );
}

/** Measures `task` from a reset peak, sampling memory; returns its result and the memory. */
async function measured<T>(
  task: (monitor: MemoryMonitor) => Promise<T>,
  sessions: () => string[] = () => [],
): Promise<{ value: T; memory: MemoryResult; monitor: MemoryMonitor }> {
  const peakReset = resetPeakMemory();
  const baseline = readProcessMemory();
  const monitor = new MemoryMonitor({ intervalMs: 20, sessions });
  let value: T;
  try {
    value = await task(monitor);
  } finally {
    monitor.stop();
  }
  const after = readProcessMemory();
  const samples = monitor.samples;
  const top = samples.reduce((best, sample) => sample.rss > best.rss ? sample : best, samples[0]);
  return {
    value,
    monitor,
    memory: {
      baseline,
      peak: after.peak,
      maxAnon: Math.max(...samples.map((sample) => sample.rssAnon)),
      maxFile: Math.max(...samples.map((sample) => sample.rssFile)),
      atPeak: { rssAnon: top.rssAnon, rssFile: top.rssFile },
      after,
      peakReset,
    },
  };
}

async function runWorkflowJob(job: WorkflowJob): Promise<WorkflowResult> {
  const before = loadavg();
  const workflow = await loadWorkflow(TINY_WORKFLOW, { params: job.params });
  const nodeMs: Record<string, number> = {};
  const sampleStepEndMs: number[] = [];
  let sampleStart = 0;
  let wallMs = 0;
  // The run's model manager, made here so that the timeline can name the resident sessions.
  const manager = new OnnxModelManager({ splitCacheDir: job.splitCacheDir });
  const { memory, monitor } = await measured(async (monitor) => {
    const started = performance.now();
    const result = await runWorkflow(workflow, {
      only: job.only,
      models: manager,
      onEvent: (event) => {
        if (event.type === "node_start") monitor.nodeStarted(event.node);
        if (event.type === "node_start" && event.node === "sample") sampleStart = event.time;
        if (event.type === "node_progress" && event.node === "sample") {
          sampleStepEndMs.push(event.time - sampleStart);
        }
        if (event.type === "node_end") {
          monitor.nodeEnded(event.node);
          nodeMs[event.node] = event.durationMs;
        }
      },
    });
    wallMs = performance.now() - started;
    return result;
  }, () => manager.residentSessions());
  await writeTimeline(job.label, monitor);
  return {
    label: job.label,
    wallMs,
    nodeMs,
    sampleStepEndMs,
    models: manager.stats(),
    memory,
    loadavg: [before, loadavg()],
  };
}

async function runVaeJob(job: VaeJob): Promise<VaeResult> {
  const before = loadavg();
  const folder = await readPipelineFolder(job.pipeline);
  if (folder.vae.format !== "onnx") throw new Error("The VAE benchmark needs an ONNX decoder");
  const model = await describeModel(folder.vae.path, {
    name: "vae",
    role: "vae",
    config: folder.vaeConfig,
  });
  const channels = Number(folder.vaeConfig?.latent_channels ?? 16);
  const shape = [1, channels, 3, job.latentHeight, job.latentWidth];
  const latents = randomTensor(shape, 1);
  const inputName = model.signature.inputs[0].name;
  const outputName = model.signature.outputs[0].name;
  const manager = new OnnxModelManager();
  let calls = 0;
  const decode = async (tile: Tensor<"float32">) => {
    calls++;
    const outputs = await manager.run(model, { [inputName]: tile });
    return outputs[outputName] as Tensor<"float32">;
  };
  let wallMs = 0;
  const { value, memory, monitor } = await measured(async () => {
    const started = performance.now();
    try {
      return job.tile
        ? await tiledDecode(latents, decode, {
          tileSampleMinHeight: job.tile.pixels,
          tileSampleMinWidth: job.tile.pixels,
          tileOverlapFactorHeight: job.tile.overlap,
          tileOverlapFactorWidth: job.tile.overlap,
          spatialScale: 8,
        })
        : await decode(latents);
    } finally {
      await manager.close();
      wallMs = performance.now() - started;
    }
  }, () => manager.residentSessions());
  await writeTimeline(job.label, monitor);
  return {
    label: job.label,
    wallMs,
    calls,
    shape: [...value.shape],
    memory,
    loadavg: [before, loadavg()],
  };
}

async function runCyclesJob(job: CyclesJob): Promise<CyclesResult> {
  const before = loadavg();
  const plain = await describeModel(job.model, { name: "text_encoder", role: "text_encoder" });
  const input = plain.signature.inputs[0];
  const declared = input.shape?.[1];
  const length = typeof declared === "number" ? declared : job.tokens;
  const ids = createTensor(
    "int64",
    [1, length],
    BigInt64Array.from({ length }, (_, i) => BigInt((i * 7) % 1000)),
  );
  const afterCycle: MemoryReading[] = [];
  const duringCycle: MemoryReading[] = [];
  const cycleMs: number[] = [];
  const { memory } = await measured(async () => {
    if (job.via === "manager") {
      const model = modelOffloadHook.wrap(plain, { node: "bench", keepInRam: false });
      const manager = new OnnxModelManager();
      for (let cycle = 0; cycle < job.cycles; cycle++) {
        const started = performance.now();
        await manager.retain(model);
        await manager.run(model, { [input.name]: ids });
        duringCycle.push(readProcessMemory());
        await manager.release(model);
        cycleMs.push(performance.now() - started);
        afterCycle.push(readProcessMemory());
      }
      await manager.close();
    } else {
      const worker = new SessionWorker();
      const options = {
        executionProviders: ["cpu"],
        fallbackToCpu: false,
        intraOpThreads: 0,
        interOpThreads: 0,
        graphOptimizationLevel: "all" as const,
        prepackWeights: job.prepackWeights ?? true,
      };
      for (let cycle = 0; cycle < job.cycles; cycle++) {
        const started = performance.now();
        await worker.create("cycle", job.model, options);
        await worker.run("cycle", { [input.name]: ids });
        duringCycle.push(readProcessMemory());
        await worker.release("cycle");
        cycleMs.push(performance.now() - started);
        afterCycle.push(readProcessMemory());
      }
      worker.stop();
    }
  });
  return {
    label: job.label,
    afterCycle,
    duringCycle,
    cycleMs,
    memory,
    loadavg: [before, loadavg()],
  };
}

/** What a model job returns. */
export interface ModelResult {
  /** Label. */
  label: string;
  /** Wall time of creating the session and the runs, in milliseconds. */
  wallMs: number;
  /** The manager's statistics. */
  models: ModelStats[];
  /** Memory. */
  memory: MemoryResult;
  /** `/proc/loadavg` before and after. */
  loadavg: [string, string];
}

async function runModelJob(job: ModelJob): Promise<ModelResult> {
  const before = loadavg();
  const model = await describeModel(job.model, { name: "model" });
  const feeds: Record<string, Tensor> = {};
  for (const [name, { dtype, shape }] of Object.entries(job.feeds)) {
    const count = shape.reduce((a, b) => a * b, 1);
    feeds[name] = dtype === "int64"
      ? createTensor("int64", shape, new BigInt64Array(count).fill(500n))
      : randomTensor(shape, 7);
  }
  const manager = new OnnxModelManager();
  let wallMs = 0;
  const { memory, monitor } = await measured(async () => {
    const started = performance.now();
    try {
      for (let i = 0; i < job.runs; i++) await manager.run(model, feeds);
    } finally {
      await manager.close();
      wallMs = performance.now() - started;
    }
  }, () => manager.residentSessions());
  await writeTimeline(job.label, monitor);
  return {
    label: job.label,
    wallMs,
    models: manager.stats(),
    memory,
    loadavg: [before, loadavg()],
  };
}

/** Uniform values in [-1, 1) from a fixed xorshift stream. */
function randomTensor(shape: number[], seed: number): Tensor<"float32"> {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < data.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    data[i] = (x >>> 0) / 2147483648 - 1;
  }
  return createTensor("float32", shape, data);
}

async function writeTimeline(label: string, monitor: MemoryMonitor): Promise<void> {
  const dir = join(OUT_DIR, "timelines");
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    join(dir, `${label.replace(/[^\w.-]+/g, "_")}.svg`),
    memoryChartSvg({ title: label, samples: monitor.samples, spans: monitor.spans }),
  );
}

/** Runs one job (after the warm-up) and returns its result. */
export async function runJob(job: Job): Promise<unknown> {
  await warmUp();
  switch (job.kind) {
    case "workflow":
      return await runWorkflowJob(job);
    case "vae":
      return await runVaeJob(job);
    case "cycles":
      return await runCyclesJob(job);
    case "model":
      return await runModelJob(job);
  }
}

if (import.meta.main) {
  const result = await runJob(JSON.parse(Deno.args[0]) as Job);
  console.log(JSON.stringify(result));
  // Workers of the warm-up may still be winding down; the result is out.
  Deno.exit(0);
}
