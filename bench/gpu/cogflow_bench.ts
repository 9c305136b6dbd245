/**
 * cogflow in one memory configuration, one process: the GPU table's cogflow side. Runs the CLI
 * the way a user does (`deno task cogflow run <workflow> --set ... --json`), reads its event stream
 * and appends one JSON line to `--out` (also printed as `RESULT {...}`): seconds of text encode
 * (the text_encode node), of each denoising step (the sample node's progress events; median after
 * the first, which holds session creation) and of the VAE decode (the vae_decode node); per phase
 * the device's used memory sampled through NVML (gpu_sampler.py, minus the idle device before the
 * run) and the process tree's resident memory (/proc, every 100 ms).
 *
 * ```sh
 * deno run -A bench/gpu/cogflow_bench.ts --model /tmp/gpu-table/pipes/2b --config all_gpu \
 *   --steps 3 --out /tmp/gpu-table/gpu_table.jsonl
 * deno run -A bench/gpu/cogflow_bench.ts --model tests/fixtures/tiny-cogvideox-hf/2b \
 *   --provider cpu --dtype float32 --height 64 --width 64 --frames 9 --max-sequence-length 16 \
 *   --steps 2 --config model_offload_tiling --out /tmp/tiny.jsonl   # the local check
 * ```
 *
 * @module
 */

import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { RunEvent } from "../../engine/events.ts";
import { type GpuSamples, idleBytes, startGpuSampler } from "./gpu_samples.ts";
import { medianStepMs, parseEventLines, peakIn, type PhaseName, runPhases } from "./phases.ts";
import { descendants, TreeMemoryPoller } from "./process_tree.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "..", "..");

/** A cogflow configuration of the table: a workflow of bench/gpu/workflows and its params. */
export interface CogflowConfig {
  /** File under bench/gpu/workflows/. */
  workflow: string;
  /** Params set with --set. */
  set: Record<string, string>;
  /** What it is, in diffusers' terms. */
  description: string;
}

/** The configurations, named like diffusers_bench.py's where they do the same thing. */
export const COGFLOW_CONFIGS: Readonly<Record<string, CogflowConfig>> = {
  all_gpu: { workflow: "all-gpu.yaml", set: {}, description: "no hook, all resident" },
  model_offload: {
    workflow: "model-offload.yaml",
    set: {},
    description: "model_offload on the three models",
  },
  model_offload_tiling: {
    workflow: "model-offload.yaml",
    set: { vae_tiling: "true" },
    description: "model_offload on the three models, vae_slicing, vae_tiling",
  },
  sequential_tiling: {
    workflow: "low-memory.yaml",
    set: { blocks_per_group: "1", prefetch: "false" },
    description: "sequential_offload (1 block per part, no prefetch) on the three, slicing, tiling",
  },
  group_offload_tiling: {
    workflow: "low-memory.yaml",
    set: { blocks_per_group: "1", prefetch: "true" },
    description:
      "sequential_offload (1 block per part, next part prefetched) on the three, slicing, tiling",
  },
  low_memory: {
    workflow: "low-memory.yaml",
    set: {},
    description: "workflows/cogvideox-2b-low-memory.yaml as shipped (2 blocks per part, prefetch)",
  },
  low_memory_model: {
    workflow: "low-memory.yaml",
    set: { text_encoder_offload: "model", transformer_offload: "model" },
    description: "the low-memory workflow with model_offload for all three, slicing, tiling",
  },
  budget_tiling: {
    workflow: "budget.yaml",
    set: { max_memory: "24GiB" },
    description: "budget_offload (24 GiB) on the three, slicing, tiling",
  },
};

const PROMPT = "a panda playing a guitar by a lake at sunrise, cinematic, detailed";

/** Reads num_layers / num_attention_heads of a pipeline folder's configs (null where absent). */
export function modelLayers(folder: string): Record<string, number | null> {
  const read = (name: string): Record<string, unknown> => {
    try {
      return JSON.parse(Deno.readTextFileSync(join(folder, name, "config.json")));
    } catch {
      return {};
    }
  };
  const transformer = read("transformer");
  const textEncoder = read("text_encoder");
  const number = (value: unknown) => (typeof value === "number" ? value : null);
  return {
    layers: number(transformer.num_layers),
    heads: number(transformer.num_attention_heads),
    t5_layers: number(textEncoder.num_layers),
  };
}

/** Bytes of the .safetensors (and .onnx) files under `folder`. */
export function weightsBytes(folder: string): number {
  let total = 0;
  for (const entry of Deno.readDirSync(folder)) {
    const path = join(folder, entry.name);
    if (entry.isDirectory) total += weightsBytes(path);
    else if (/\.(safetensors|onnx|onnx_data)$/.test(entry.name)) total += Deno.statSync(path).size;
  }
  return total;
}

function kill(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** Ends a process and every descendant, by id, children first. */
function killTree(pid: number): void {
  let pids: number[] = [];
  try {
    pids = descendants(pid);
  } catch {
    // no /proc
  }
  for (const child of pids.reverse()) kill(child, "SIGKILL");
  kill(pid, "SIGKILL");
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      model: { type: "string" },
      label: { type: "string" },
      config: { type: "string" },
      steps: { type: "string", default: "3" },
      out: { type: "string" },
      provider: { type: "string", default: "cuda" },
      dtype: { type: "string", default: "float16" },
      height: { type: "string", default: "480" },
      width: { type: "string", default: "720" },
      frames: { type: "string", default: "49" },
      guidance: { type: "string", default: "6" },
      seed: { type: "string", default: "42" },
      prompt: { type: "string", default: PROMPT },
      "max-sequence-length": { type: "string" },
      set: { type: "string", multiple: true, default: [] },
      "time-limit": { type: "string", default: "540" },
      "interval-ms": { type: "string", default: "20" },
      "no-nvml": { type: "boolean" },
    },
  });
  const config = values.config ? COGFLOW_CONFIGS[values.config] : undefined;
  if (!values.model || !values.out || !config) {
    console.error(
      `Usage: cogflow_bench.ts --model DIR --config ${
        Object.keys(COGFLOW_CONFIGS).join("|")
      } --out FILE [--steps 3] [--provider cuda] [--dtype float16] [--set k=v]...`,
    );
    return 2;
  }
  const model = resolve(values.model);
  const workflow = join(HERE, "workflows", config.workflow);
  const outputDir = await Deno.makeTempDir({ prefix: "cogflow-gpu-bench-" });
  const sets: Record<string, string> = {
    model,
    prompt: values.prompt!,
    provider: values.provider!,
    dtype: values.dtype!,
    steps: values.steps!,
    guidance_scale: values.guidance!,
    height: values.height!,
    width: values.width!,
    num_frames: values.frames!,
    seed: values.seed!,
    output: join(outputDir, "video.mp4"),
    if_exists: "overwrite",
    ...(values["max-sequence-length"]
      ? { max_sequence_length: values["max-sequence-length"] }
      : {}),
    ...config.set,
  };
  for (const pair of values.set!) {
    const at = pair.indexOf("=");
    if (at > 0) sets[pair.slice(0, at)] = pair.slice(at + 1);
  }
  const result: Record<string, unknown> = {
    side: "cogflow",
    config: values.config,
    description: config.description,
    status: "failed",
    model: values.label ?? model.split("/").filter(Boolean).pop(),
    model_dir: model,
    ...modelLayers(model),
    weights_bytes: weightsBytes(model),
    workflow: `bench/gpu/workflows/${config.workflow}`,
    sets: Object.fromEntries(
      Object.entries(sets).filter(([key]) => !["model", "output", "prompt"].includes(key)),
    ),
    steps: Number(values.steps),
    height: Number(values.height),
    width: Number(values.width),
    frames: Number(values.frames),
    guidance: Number(values.guidance),
    dtype: values.dtype,
    provider: values.provider,
    started: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    versions: { deno: Deno.version.deno },
  };

  const sampler = values["no-nvml"]
    ? {
      startedMs: Date.now(),
      stop: () => Promise.resolve<GpuSamples>({ source: null, samples: [] }),
    }
    : await startGpuSampler(`${values.out}.nvml-${Deno.pid}.csv`, {
      intervalMs: Number(values["interval-ms"]),
    });
  const args = ["task", "cogflow", "run", workflow];
  for (const [key, value] of Object.entries(sets)) args.push("--set", `${key}=${value}`);
  args.push("--json");
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const poller = new TreeMemoryPoller(child.pid, 100);
  let timedOut = false;
  const limitMs = Number(values["time-limit"]) * 1000;
  const timer = setTimeout(() => {
    timedOut = true;
    console.error(
      `cogflow_bench: over the time limit of ${values["time-limit"]} s, ending the run`,
    );
    killTree(child.pid);
  }, limitMs);

  const events: RunEvent[] = [];
  const readEvents = (async () => {
    let buffered = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const event of parseEventLines(lines.join("\n"))) {
        events.push(event);
        if (event.type === "node_end" || event.type === "node_progress") {
          const detail = event.type === "node_end"
            ? `${(event.durationMs / 1000).toFixed(2)} s`
            : `step ${event.step}/${event.total}`;
          console.log(`[cogflow_bench] ${event.node}: ${detail}`);
        }
      }
    }
    events.push(...parseEventLines(buffered));
  })();
  let stderrText = "";
  const readStderr = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      stderrText += chunk;
      Deno.stderr.writeSync(new TextEncoder().encode(chunk));
      if (stderrText.length > 200_000) stderrText = stderrText.slice(-100_000);
    }
  })();
  const status = await child.status;
  clearTimeout(timer);
  await Promise.all([readEvents, readStderr]);
  poller.poll();
  poller.stop();
  const gpu = await sampler.stop();
  await Deno.remove(outputDir, { recursive: true }).catch(() => {});

  const phases = runPhases(events);
  const idle = idleBytes(gpu.samples, sampler.startedMs);
  const stepMs = medianStepMs(phases.stepMs);
  const hostSamples = poller.readings.map((r) => [r.ms, r.rssBytes] as const);
  const phaseResults: Record<string, Record<string, unknown>> = {};
  for (const [name, window] of Object.entries(phases.windows)) {
    const nvml = peakIn(gpu.samples, window.startMs, window.endMs);
    phaseResults[name] = {
      node: window.node,
      start_ms: window.startMs,
      end_ms: window.endMs,
      seconds: (window.endMs - window.startMs) / 1000,
      ended: window.ended,
      nvml_bytes: nvml === null || idle === null ? null : nvml - idle,
      host_bytes: peakIn(hostSamples, window.startMs, window.endMs),
    };
  }
  const seconds = (name: PhaseName) => {
    const phase = phaseResults[name];
    return phase && phase.ended ? phase.seconds : null;
  };
  const runPeak = gpu.samples.length > 0 ? Math.max(...gpu.samples.map(([, used]) => used)) : null;
  Object.assign(result, {
    status: timedOut ? "timeout" : status.code === 0 && phases.status === "ok" ? "ok" : "failed",
    exit_code: status.code,
    error: timedOut
      ? `Over the time limit of ${values["time-limit"]} s`
      : phases.errors.length > 0
      ? phases.errors.join("; ").slice(0, 2000)
      : status.code === 0
      ? undefined
      : stderrText.trim().split("\n").slice(-8).join("\n").slice(-2000),
    encode_s: seconds("encode"),
    decode_s: seconds("decode"),
    denoise_s: seconds("denoise"),
    step_s: stepMs === null ? null : stepMs / 1000,
    first_step_s: phases.stepMs.length > 0 ? phases.stepMs[0] / 1000 : null,
    step_times_s: phases.stepMs.map((ms) => ms / 1000),
    run_s: phases.runMs === undefined ? null : phases.runMs / 1000,
    total_s: (performance.now() - started) / 1000,
    nodes_ms: phases.nodeMs,
    phases: phaseResults,
    nvml_source: gpu.source,
    nvml_unavailable: gpu.unavailable,
    nvml_idle_bytes: idle,
    nvml_run_peak_bytes: runPeak === null || idle === null ? null : runPeak - idle,
    host_peak_bytes: poller.peakBytes(),
    host_peak_process_bytes: poller.maxProcessPeakBytes || null,
    host_processes: poller.pidsSeen().length,
  });
  const line = JSON.stringify(result);
  await Deno.writeTextFile(values.out, `${line}\n`, { append: true });
  console.log(`RESULT ${line}`);
  return result.status === "ok" ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
