/**
 * What a job publishes as BullMQ progress: the run's own events (as `cogflow run --json` writes
 * them), plus the job's start on a worker and its end with the run's exit code.
 *
 * @module
 */

import type { RunEvent } from "../engine/mod.ts";

/** A worker took the job. */
export interface JobStartEvent {
  /** Event type. */
  type: "job_start";
  /** The worker's name (host and process id unless `--name` gave one). */
  worker: string;
  /** 1 for the first try. */
  attempt: number;
  /** Milliseconds since the epoch. */
  time: number;
}

/** The run ended without writing its outputs. */
export interface JobEndEvent {
  /** Event type. */
  type: "job_end";
  /** The run's exit code: 1 failed while running, 2 invalid, 130 cancelled. */
  exitCode: number;
  /** What the run printed on stderr. */
  message: string;
  /** Milliseconds since the epoch. */
  time: number;
}

/** One progress message of a job. */
export type JobEvent = RunEvent | JobStartEvent | JobEndEvent;

/** What a completed job returns. */
export interface JobResult {
  /** Always 0: other exit codes fail the job. */
  exitCode: number;
  /** Files written, as paths on the worker (in the shared output folder). */
  files: string[];
  /** The worker that ran it. */
  worker: string;
  /** Run time on the worker, in milliseconds. */
  durationMs: number;
}

/** BullMQ's option `attempts` of a job: how many times a worker fault is tried. */
export const DEFAULT_ATTEMPTS = 3;

/** The first retry's delay after a worker fault (then doubling). */
export const RETRY_DELAY_MS = 5000;
