/**
 * Samples the process's memory on a timer (the main thread is free while models run in workers),
 * so that a run can report each node's peak and draw a memory timeline.
 *
 * @module
 */

import { type MemoryReading, readProcessMemory } from "./process_memory.ts";

/** One sample of the timeline. */
export interface MemorySample extends MemoryReading {
  /** Milliseconds since the monitor started. */
  t: number;
  /** Sessions resident at that moment. */
  sessions: string[];
}

/** A span of the timeline during which a node ran. */
export interface NodeSpan {
  /** Node id. */
  node: string;
  /** Start, in milliseconds since the monitor started. */
  start: number;
  /** End, likewise. */
  end: number;
  /** Highest resident memory sampled during the span, in bytes. */
  peak: number;
}

/** Samples memory every `intervalMs` until stopped. */
export class MemoryMonitor {
  #samples: MemorySample[] = [];
  #spans: NodeSpan[] = [];
  #open = new Map<string, { start: number; peak: number }>();
  #timer?: ReturnType<typeof setInterval>;
  #origin = performance.now();
  #sessions: () => string[];

  /** Starts sampling; `sessions` names the resident sessions at each sample. */
  constructor(options: { intervalMs?: number; sessions?: () => string[] } = {}) {
    this.#sessions = options.sessions ?? (() => []);
    this.sample();
    this.#timer = setInterval(() => this.sample(), options.intervalMs ?? 20);
    Deno.unrefTimer(this.#timer);
  }

  /** Takes a sample now and returns it. */
  sample(): MemorySample {
    const reading = readProcessMemory();
    const sample = { ...reading, t: performance.now() - this.#origin, sessions: this.#sessions() };
    this.#samples.push(sample);
    for (const open of this.#open.values()) open.peak = Math.max(open.peak, reading.rss);
    return sample;
  }

  /** Marks the start of a node. */
  nodeStarted(node: string): void {
    const now = this.sample();
    this.#open.set(node, { start: now.t, peak: now.rss });
  }

  /** Marks the end of a node; returns its span. */
  nodeEnded(node: string): NodeSpan {
    const now = this.sample();
    const open = this.#open.get(node) ?? { start: now.t, peak: now.rss };
    this.#open.delete(node);
    const span = { node, start: open.start, end: now.t, peak: Math.max(open.peak, now.rss) };
    this.#spans.push(span);
    return span;
  }

  /** Every sample so far. */
  get samples(): readonly MemorySample[] {
    return this.#samples;
  }

  /** Every finished node span so far. */
  get spans(): readonly NodeSpan[] {
    return this.#spans;
  }

  /** Stops sampling (after one last sample). */
  stop(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.sample();
  }
}
