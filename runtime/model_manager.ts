/**
 * The model manager: the one place that owns ONNX Runtime sessions.
 *
 * @module
 */

import type { Tensor } from "./tensor.ts";

/** Options of one model call. */
export interface ModelRunOptions {
  /** Cancels the call (between parts, for split models). */
  signal?: AbortSignal;
  /**
   * Feeds the caller passes again, unchanged, in later calls (a sampling loop's text embeddings
   * and positional tables): a resident session's worker keeps them, so that the same array is
   * not sent again. The caller must not change those arrays.
   */
  unchanged?: ReadonlySet<string>;
}

/** Runs models for nodes; sessions are created, kept and released by policy. */
export interface ModelManager {
  /** Runs `model` on `feeds` and returns its outputs by name. */
  run(
    model: unknown,
    feeds: Record<string, Tensor>,
    options?: ModelRunOptions,
  ): Promise<Record<string, Tensor>>;
  /** Told by the executor that a node produced `value` (a model handle, say). */
  retain?(value: unknown): Promise<void>;
  /** Told by the executor that the run no longer needs `value` (a model handle, say). */
  release?(value: unknown): Promise<void>;
  /** Names of the sessions resident now, for memory reports. */
  residentSessions?(): string[];
  /** Releases everything; called once when the run ends, however it ended. */
  close?(): Promise<void>;
}

/** A manager for runs that use no models: any model call is an error. */
export const NO_MODELS: ModelManager = {
  run() {
    return Promise.reject(new Error("No model manager was given to this run"));
  },
};
