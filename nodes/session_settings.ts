/**
 * Settings shared by the nodes that load models: execution providers, fallback, threads and graph
 * optimization.
 *
 * @module
 */

import { z } from "zod";
import { EXECUTION_PROVIDERS, type SessionSettings } from "../runtime/model_handle.ts";

/** The session settings as node settings (snake case, with defaults). */
export const sessionSettingsShape = {
  providers: z.array(z.enum(EXECUTION_PROVIDERS)).min(1).default(["cpu"]).describe(
    "ONNX Runtime execution providers in order of preference, e.g. [cuda, cpu] (default [cpu])",
  ),
  on_unavailable_provider: z.enum(["error", "fallback"]).default("error").describe(
    "When the first provider cannot be used: error fails, fallback runs on the CPU with a warning (default error)",
  ),
  intra_op_threads: z.number().int().min(0).default(0).describe(
    "Threads within one operator (default 0: ONNX Runtime chooses, one per core)",
  ),
  inter_op_threads: z.number().int().min(0).default(0).describe(
    "Threads across independent operators (default 0: ONNX Runtime chooses)",
  ),
  graph_optimization_level: z.enum(["disabled", "basic", "extended", "all"]).default("all")
    .describe("ONNX Runtime graph optimizations applied when a session is created (default all)"),
};

/** Session settings from parsed node settings. */
export function sessionSettingsOf(settings: {
  providers: SessionSettings["executionProviders"];
  on_unavailable_provider: SessionSettings["onUnavailableProvider"];
  intra_op_threads: number;
  inter_op_threads: number;
  graph_optimization_level: SessionSettings["graphOptimizationLevel"];
}): SessionSettings {
  return {
    executionProviders: settings.providers,
    onUnavailableProvider: settings.on_unavailable_provider,
    intraOpThreads: settings.intra_op_threads,
    interOpThreads: settings.inter_op_threads,
    graphOptimizationLevel: settings.graph_optimization_level,
  };
}
