/**
 * The process's memory as Linux reports it in `/proc/self/status`: resident memory split into
 * anonymous (heap, model weights copied by ONNX Runtime) and file-backed (mapped files), and the
 * peak resident size so far.
 *
 * @module
 */

import process from "node:process";

/** One reading of the process's memory, in bytes. */
export interface MemoryReading {
  /** Resident set size (VmRSS). */
  rss: number;
  /** Anonymous resident memory (RssAnon). */
  rssAnon: number;
  /** File-backed resident memory (RssFile). */
  rssFile: number;
  /** Peak resident set size since start or the last reset (VmHWM; see `readProcessMemory`). */
  peak: number;
}

const FIELDS: Record<string, keyof MemoryReading> = {
  VmRSS: "rss",
  RssAnon: "rssAnon",
  RssFile: "rssFile",
  VmHWM: "peak",
};

/** Parses the text of `/proc/<pid>/status`. */
export function parseProcStatus(text: string): MemoryReading {
  const reading: MemoryReading = { rss: 0, rssAnon: 0, rssFile: 0, peak: 0 };
  for (const line of text.split("\n")) {
    const match = /^(\w+):\s+(\d+)\s+kB/.exec(line);
    if (match && match[1] in FIELDS) reading[FIELDS[match[1]]] = Number(match[2]) * 1024;
  }
  return reading;
}

let procReadable = true;

/**
 * Reads the process's memory now. Deno lets only `--allow-all` read `/proc`: without it (as under
 * the CLI's scoped permissions) the resident size comes from `Deno.memoryUsage()`, the peak from
 * the kernel's maximum resident size (`getrusage`), and the split into anonymous and file-backed
 * memory is unknown (0). Zeros where neither works.
 */
export function readProcessMemory(): MemoryReading {
  if (procReadable) {
    try {
      return parseProcStatus(Deno.readTextFileSync("/proc/self/status"));
    } catch {
      procReadable = false;
    }
  }
  try {
    const rss = Deno.memoryUsage().rss;
    const peak = (process.resourceUsage?.().maxRSS ?? 0) * 1024;
    return { rss, rssAnon: 0, rssFile: 0, peak: Math.max(peak, rss) };
  } catch {
    return { rss: 0, rssAnon: 0, rssFile: 0, peak: 0 };
  }
}

/**
 * Resets the peak (VmHWM) to the current resident size, so a benchmark can measure the peak of one
 * phase. Returns false where the kernel does not allow it.
 */
export function resetPeakMemory(): boolean {
  try {
    Deno.writeTextFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}
