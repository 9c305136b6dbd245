/**
 * The GPU table's device-memory sampler (`gpu_sampler.py`, NVML) as a child process of a driver:
 * started before the measured process, stopped after it, its samples read back. Where there is no
 * NVML (or no python3) the source is null and every figure from it is null.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Sample } from "./phases.ts";

const SAMPLER = join(dirname(fileURLToPath(import.meta.url)), "gpu_sampler.py");

/** Samples read back from the sampler's file. */
export interface GpuSamples {
  /** "nvml", "nvidia-smi", or null when none was available. */
  source: string | null;
  /** Why there is no source, when there is none. */
  unavailable?: string;
  /** [epoch ms, used bytes] samples. */
  samples: Sample[];
}

/** A running sampler. */
export interface GpuSampler {
  /** When it had started (epoch ms): samples before this are the idle device. */
  startedMs: number;
  /** Stops the sampler and reads its samples. */
  stop(): Promise<GpuSamples>;
}

/** Reads a sampler file (`# source ...`, `# unavailable: ...`, `ms,bytes` lines). */
export function parseSamples(text: string): GpuSamples {
  const result: GpuSamples = { source: null, samples: [] };
  for (const line of text.split("\n")) {
    if (line.startsWith("# source ")) result.source = line.slice("# source ".length).trim();
    else if (line.startsWith("# unavailable: ")) {
      result.unavailable = line.slice("# unavailable: ".length).trim();
    } else if (/^\d+(\.\d+)?,\d+$/.test(line.trim())) {
      const [ms, used] = line.trim().split(",").map(Number);
      result.samples.push([ms, used]);
    }
  }
  if (result.samples.length === 0) result.source = null;
  return result;
}

/** Starts gpu_sampler.py writing to `path`, and waits `settleMs` for its first samples. */
export async function startGpuSampler(
  path: string,
  options: { intervalMs?: number; settleMs?: number } = {},
): Promise<GpuSampler> {
  let child: Deno.ChildProcess | undefined;
  try {
    child = new Deno.Command("python3", {
      args: [SAMPLER, "--out", path, "--interval-ms", String(options.intervalMs ?? 20)],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
  } catch (error) {
    const why = `python3 did not start: ${(error as Error).message}`;
    return {
      startedMs: Date.now(),
      stop: () => Promise.resolve({ source: null, unavailable: why, samples: [] }),
    };
  }
  await new Promise((resolve) => setTimeout(resolve, options.settleMs ?? 400));
  const startedMs = Date.now();
  return {
    startedMs,
    async stop() {
      try {
        child!.kill("SIGTERM");
      } catch {
        // already ended (no NVML)
      }
      await child!.status;
      let text = "";
      try {
        text = await Deno.readTextFile(path);
        await Deno.remove(path);
      } catch {
        // no file: no samples
      }
      return parseSamples(text);
    },
  };
}

/** The idle device: the smallest sample before `beforeMs`, else the first sample; null without samples. */
export function idleBytes(samples: readonly Sample[], beforeMs: number): number | null {
  const before = samples.filter(([ms]) => ms < beforeMs).map(([, used]) => used);
  if (before.length > 0) return Math.min(...before);
  return samples.length > 0 ? samples[0][1] : null;
}
