/**
 * Resident memory of a process and its descendants, read from `/proc` (Linux): the GPU table's
 * host-memory figure for a `deno task cogflow` run (the task runner, the launcher, the CLI with
 * its session workers, the ffmpeg broker and ffmpeg).
 *
 * @module
 */

/** One reading of a process tree. */
export interface TreeReading {
  /** Milliseconds since the epoch. */
  ms: number;
  /** Sum of VmRSS over the tree, bytes. */
  rssBytes: number;
  /** The pids read. */
  pids: number[];
}

/** The ids of `pid`'s descendants (children, their children, ...), from /proc/<pid>/stat. */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    let stat: string;
    try {
      stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ")".
    const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    const list = children.get(parent) ?? [];
    list.push(Number(entry.name));
    children.set(parent, list);
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/** A process's status fields in bytes (VmRSS, VmHWM, RssAnon, RssFile), or null when it is gone. */
export function processMemory(pid: number): Record<string, number> | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/status`);
  } catch {
    return null;
  }
  const fields: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const match = /^(VmRSS|VmHWM|RssAnon|RssFile):\s+(\d+) kB/.exec(line);
    if (match) fields[match[1]] = Number(match[2]) * 1024;
  }
  return fields;
}

/** Polls a process tree's resident memory until stopped. */
export class TreeMemoryPoller {
  /** Every reading so far. */
  readonly readings: TreeReading[] = [];
  /** The largest VmHWM seen of any one process of the tree, bytes. */
  maxProcessPeakBytes = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Starts polling `pid` and its descendants every `intervalMs`. */
  constructor(readonly pid: number, intervalMs = 100) {
    this.poll();
    this.#timer = setInterval(() => this.poll(), intervalMs);
  }

  /** Takes one reading now. */
  poll(): void {
    let pids: number[];
    try {
      pids = [this.pid, ...descendants(this.pid)];
    } catch {
      return; // no /proc
    }
    let rss = 0;
    const alive: number[] = [];
    for (const pid of pids) {
      const memory = processMemory(pid);
      if (!memory) continue;
      alive.push(pid);
      rss += memory.VmRSS ?? 0;
      this.maxProcessPeakBytes = Math.max(this.maxProcessPeakBytes, memory.VmHWM ?? 0);
    }
    if (alive.length > 0) this.readings.push({ ms: Date.now(), rssBytes: rss, pids: alive });
  }

  /** Stops polling. */
  stop(): void {
    clearInterval(this.#timer);
  }

  /** The largest tree total read, bytes, or null without readings. */
  peakBytes(): number | null {
    return this.readings.length === 0 ? null : Math.max(...this.readings.map((r) => r.rssBytes));
  }

  /** Every pid seen. */
  pidsSeen(): number[] {
    return [...new Set(this.readings.flatMap((r) => r.pids))];
  }
}
