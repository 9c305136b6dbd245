/**
 * A plugin that adds a model hook, for the tests and as an example: `call_stats` counts and times
 * every call of the models it wraps and writes the totals to a JSON file after each call. Its
 * behaviour is a call wrapper defined with `defineModelHook`, as the built-in hooks define theirs;
 * the node only adds the hook's data to the model handle.
 *
 * @module
 */

import { defineModelHook, defineNode, type ModelHook, modelPort, outputPath } from "../../mod.ts";

/** The data call_stats adds to a model handle. */
export interface CallStatsHook extends ModelHook {
  /** Hook kind. */
  kind: "call_stats";
  /** The JSON file the totals go to. */
  file: string;
}

/** Calls and milliseconds of one model, as written to the file. */
export interface CallTotals {
  /** Calls of the model. */
  calls: number;
  /** Milliseconds in those calls, the wrapped hooks and the model manager included. */
  ms: number;
}

/** Totals per file, then per model name. */
const totals = new Map<string, Record<string, CallTotals>>();

/** Counts and times every call of the wrapped model. */
export const callStatsHook = defineModelHook<CallStatsHook>({
  kind: "call_stats",
  async call({ model, hook, feeds }, next) {
    const started = performance.now();
    try {
      return await next(feeds);
    } finally {
      const byModel = totals.get(hook.file) ?? {};
      const entry = byModel[model.name] ?? { calls: 0, ms: 0 };
      entry.calls++;
      entry.ms += performance.now() - started;
      byModel[model.name] = entry;
      totals.set(hook.file, byModel);
      await Deno.writeTextFile(hook.file, JSON.stringify(byModel, null, 2));
    }
  },
});

/** The call_stats node type. */
export const callStats = defineNode({
  type: "call_stats",
  version: 1,
  description: "Counts and times every call of the models it wraps (wraps models)",
  category: "diagnostics",
  inputs: { model: modelPort().describe("The model to wrap") },
  settings: {
    file: outputPath().describe(
      "JSON file of calls and milliseconds per model, written after each call",
    ),
  },
  outputs: { model: modelPort().describe("The same model, its calls counted") },
  hook: { kind: "call_stats", input: "model", output: "model" },
  run: (ctx, { model }, { file }) => {
    // The totals are only true for a run that makes every call.
    ctx.uncacheable();
    return { model: callStatsHook.wrap(model, { node: ctx.hook?.node ?? ctx.node, file }) };
  },
});
