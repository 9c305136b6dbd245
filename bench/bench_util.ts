/**
 * What the benchmarks share: where things go, the machine's description, the synthetic pipelines,
 * fresh measuring processes (see `measure_child.ts`), markdown tables and number formatting.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  presets,
  type SyntheticPipelineOptions,
  writeSyntheticPipeline,
} from "../tests/synthetic_models.ts";

/** The project folder (with deno.json). */
export const PROJECT_DIR: string = dirname(dirname(fileURLToPath(import.meta.url)));

/** Machine-readable results, generated models and scratch files (gitignored). */
export const OUT_DIR: string = join(PROJECT_DIR, "bench", "out");

/** The tiny fixture pipeline. */
export const FIXTURE_2B: string = join(PROJECT_DIR, "tests", "fixtures", "tiny-cogvideox", "2b");

/** The library workflow every benchmark runs. */
export const TINY_WORKFLOW: string = join(PROJECT_DIR, "workflows", "tiny.yaml");

/** The machine a result was measured on. */
export interface MachineInfo {
  /** Logical CPUs. */
  nproc: number;
  /** Total memory in bytes. */
  memoryBytes: number;
  /** `model name` of /proc/cpuinfo. */
  cpu: string;
  /** When, as `date` prints it. */
  date: string;
  /** Deno, V8 and TypeScript versions. */
  deno: string;
  /** `/proc/loadavg` when the benchmark started: other processes compete for the CPUs. */
  loadavg: string;
}

/** Describes this machine (without reading /proc, which Deno lets only --allow-all read). */
export async function machineInfo(): Promise<MachineInfo> {
  const cpu = (await commandOutput("grep", ["-m1", "model name", "/proc/cpuinfo"]))
    .replace(/^model name\s*:\s*/, "") || "unknown";
  return {
    nproc: navigator.hardwareConcurrency,
    memoryBytes: Deno.systemMemoryInfo().total,
    cpu,
    date: await commandOutput("date", []) || new Date().toString(),
    deno: `deno ${Deno.version.deno}, v8 ${Deno.version.v8}`,
    loadavg: loadavg(),
  };
}

async function commandOutput(command: string, args: string[]): Promise<string> {
  try {
    const output = await new Deno.Command(command, { args, stdout: "piped" }).output();
    return new TextDecoder().decode(output.stdout).trim();
  } catch {
    return "";
  }
}

/** The 1, 5 and 15 minute load averages: other processes competing for the CPUs. */
export function loadavg(): string {
  return Deno.loadavg().map((value) => value.toFixed(2)).join(" ");
}

/** The machine as one markdown line. */
export function formatMachine(machine: MachineInfo): string {
  return `${machine.cpu}, ${machine.nproc} CPUs, ${
    formatGiB(machine.memoryBytes)
  } memory; ${machine.deno}; load average at start ${machine.loadavg}; ${machine.date}`;
}

/**
 * Permission flags of a measuring child. Deno 2 lets a program read `/proc/self/status` (resident
 * memory, anonymous and file-backed, and the peak) and write `/proc/self/clear_refs` (reset the
 * peak) only with every permission, so a child that measures memory needs `--allow-all`.
 */
export function childPermissions(): string[] {
  return ["--allow-all"];
}

/**
 * Runs `bench/measure_child.ts` with one job in a fresh process (with `env` added to the
 * environment); returns its JSON result line.
 */
export async function runChild<T>(job: unknown, env: Record<string, string> = {}): Promise<T> {
  const child = new Deno.Command(Deno.execPath(), {
    env,
    args: [
      "run",
      `--config=${join(PROJECT_DIR, "deno.json")}`,
      ...childPermissions(),
      join(PROJECT_DIR, "bench", "measure_child.ts"),
      JSON.stringify(job),
    ],
    cwd: PROJECT_DIR,
    stdout: "piped",
    stderr: "inherit",
  });
  const output = await child.output();
  const lines = new TextDecoder().decode(output.stdout).trim().split("\n");
  const last = lines[lines.length - 1];
  if (!output.success || !last?.startsWith("{")) {
    throw new Error(
      `Measuring child failed (exit ${output.code}) for job ${JSON.stringify(job)}: ${
        lines.join("\n")
      }`,
    );
  }
  return JSON.parse(last) as T;
}

/** A markdown table. */
export function markdownTable(headers: string[], rows: (string | number)[][]): string {
  const align = headers.map((_, column) =>
    rows.length > 0 && rows.every((row) => /^[-+\d.,×x%~ ]+[a-zA-Z%µ]*$/.test(String(row[column])))
      ? "---:"
      : "---"
  );
  return [
    `| ${headers.join(" | ")} |`,
    `| ${align.join(" | ")} |`,
    ...rows.map((row) => `| ${row.join(" | ")} |`),
  ].join("\n");
}

/** Bytes as MiB with no decimals. */
export function formatMiB(bytes: number): string {
  return `${Math.round(bytes / 2 ** 20)} MiB`;
}

/** Bytes as GiB with one decimal. */
export function formatGiB(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}

/** Milliseconds as seconds with two decimals. */
export function formatSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

/** A ratio as `0.42x`. */
export function formatRatio(ratio: number): string {
  return `${ratio.toFixed(2)}x`;
}

/** A fraction as a percentage with two decimals. */
export function formatPercent(fraction: number): string {
  return `${(fraction * 100).toFixed(2)}%`;
}

/** The median of some numbers. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Writes `value` as JSON to `bench/out/<name>`. */
export async function writeResults(name: string, value: unknown): Promise<string> {
  const path = join(OUT_DIR, name);
  await Deno.mkdir(dirname(path), { recursive: true });
  await Deno.writeTextFile(path, `${JSON.stringify(value, null, 2)}\n`);
  return path;
}

/** Met or missed, for tables. */
export function verdict(met: boolean): string {
  return met ? "met" : "MISSED";
}

/** Sizes of the synthetic pipelines: "full" is the bench preset, "quick" a small one for smoke runs. */
export type PipelineSize = "quick" | "full";

/**
 * The quick pipeline: the bench preset's shapes (226 text tokens, 16 latent channels) with a
 * transformer of 4 blocks of 12.6 M parameters, a 2-layer text encoder and a narrow VAE decoder.
 */
export const QUICK_PIPELINE: SyntheticPipelineOptions = {
  ...presets.bench,
  textEncoder: { vocabSize: 4096, dModel: 256, dFf: 512, numHeads: 4, numLayers: 2 },
  transformer: {
    ...presets.bench.transformer,
    hiddenSize: 512,
    numAttentionHeads: 8,
    numLayers: 4,
    textEmbedDim: 256,
  },
  vaeDecoder: { ...presets.bench.vaeDecoder, blockOutChannels: [32, 64, 64, 64] },
};

/** Options of a pipeline size. */
export function pipelineOptions(size: PipelineSize): SyntheticPipelineOptions {
  return size === "quick" ? QUICK_PIPELINE : presets.bench;
}

/**
 * The synthetic pipeline folder of a size under bench/out, written on first use (and again when
 * its `synthetic.json` differs from the options), then read once so that it is in the page cache.
 */
export async function ensureSyntheticPipeline(size: PipelineSize): Promise<string> {
  const dir = join(OUT_DIR, `synthetic-${size}`);
  const options = pipelineOptions(size);
  const written = await Deno.readTextFile(join(dir, "synthetic.json")).catch(() => "");
  if (written === "" || JSON.stringify(JSON.parse(written)) !== JSON.stringify(options)) {
    console.error(`Writing the ${size} synthetic pipeline to ${dir}`);
    await writeSyntheticPipeline(dir, options);
  }
  for (const part of ["text_encoder", "transformer", "vae_decoder"]) {
    await readThrough(join(dir, part));
  }
  return dir;
}

/** Reads every file of a folder once (to have it in the page cache before timing loads). */
export async function readThrough(dir: string): Promise<void> {
  const buffer = new Uint8Array(1 << 22);
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile) continue;
    using file = await Deno.open(join(dir, entry.name));
    while (await file.read(buffer) !== null) {
      // Reading is the point.
    }
  }
}
