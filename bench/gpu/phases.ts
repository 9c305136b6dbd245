/**
 * The GPU table's phases of a cogflow run, read from the CLI's `--json` event stream: text
 * encode (the `text_encode` node), denoise (the `sample` node, with one time per step from its
 * progress events) and decode (the `vae_decode` node), and the peaks of sampled memory inside each
 * phase's window.
 *
 * @module
 */

import type { RunEvent } from "../../engine/events.ts";

/** The phases the table reports, and the node type that is each. */
export const PHASE_NODE_TYPES = {
  encode: "text_encode",
  denoise: "sample",
  decode: "vae_decode",
} as const;

/** A phase's name. */
export type PhaseName = keyof typeof PHASE_NODE_TYPES;

/** When a phase ran (milliseconds since the epoch, the events' clock). */
export interface PhaseWindow {
  /** Its node's id. */
  node: string;
  /** node_start time. */
  startMs: number;
  /** node_end time (or the last event's, when the node did not end). */
  endMs: number;
  /** Whether the node ended (node_end) rather than failed or was cut off. */
  ended: boolean;
}

/** What the events say about a run. */
export interface RunPhases {
  /** Each phase's window, where its node started. */
  windows: Partial<Record<PhaseName, PhaseWindow>>;
  /** Milliseconds of each denoising step: the first from the node's start, then between steps. */
  stepMs: number[];
  /** Wall time of every node that ended, by id. */
  nodeMs: Record<string, number>;
  /** run_end's status, if the run ended. */
  status?: "ok" | "failed" | "interrupted";
  /** run_end's duration. */
  runMs?: number;
  /** node_error messages. */
  errors: string[];
}

/** Parses JSON event lines, skipping lines that are not JSON objects. */
export function parseEventLines(text: string): RunEvent[] {
  const events: RunEvent[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      events.push(JSON.parse(line) as RunEvent);
    } catch {
      // A line cut short by a killed run.
    }
  }
  return events;
}

/** Finds each phase's window, the step times and the node times in a run's events. */
export function runPhases(events: readonly RunEvent[]): RunPhases {
  const result: RunPhases = { windows: {}, stepMs: [], nodeMs: {}, errors: [] };
  const phaseOf = new Map<string, PhaseName>();
  const lastTime = events.length > 0 ? events[events.length - 1].time : 0;
  let lastStepMs: number | undefined;
  for (const event of events) {
    if (event.type === "node_start") {
      for (const [phase, nodeType] of Object.entries(PHASE_NODE_TYPES)) {
        if (event.nodeType === nodeType && !result.windows[phase as PhaseName]) {
          phaseOf.set(event.node, phase as PhaseName);
          result.windows[phase as PhaseName] = {
            node: event.node,
            startMs: event.time,
            endMs: lastTime,
            ended: false,
          };
          if (phase === "denoise") lastStepMs = event.time;
        }
      }
    } else if (event.type === "node_progress" && phaseOf.get(event.node) === "denoise") {
      if (lastStepMs !== undefined) result.stepMs.push(event.time - lastStepMs);
      lastStepMs = event.time;
    } else if (event.type === "node_end") {
      result.nodeMs[event.node] = event.durationMs;
      const phase = phaseOf.get(event.node);
      if (phase) Object.assign(result.windows[phase]!, { endMs: event.time, ended: true });
    } else if (event.type === "node_error") {
      result.errors.push(`${event.node}: ${event.message}`);
    } else if (event.type === "run_end") {
      result.status = event.status;
      result.runMs = event.durationMs;
    }
  }
  return result;
}

/** The median of the steps after the first (the first holds session creation), else the first. */
export function medianStepMs(stepMs: readonly number[]): number | null {
  const later = stepMs.length > 1 ? stepMs.slice(1) : [...stepMs];
  if (later.length === 0) return null;
  const sorted = [...later].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** A timed sample: [milliseconds since the epoch, value]. */
export type Sample = readonly [number, number];

/** The largest value sampled in [startMs, endMs], or null when no sample falls there. */
export function peakIn(samples: readonly Sample[], startMs: number, endMs: number): number | null {
  let peak: number | null = null;
  for (const [ms, value] of samples) {
    if (ms >= startMs && ms <= endMs && (peak === null || value > peak)) peak = value;
  }
  return peak;
}
