/**
 * budget_offload: the wrapped models' sessions stay resident while they fit `max_memory` together,
 * the least recently used going first (close to ComfyUI's smart memory). A model that cannot fit
 * even alone is an error suggesting sequential_offload.
 *
 * @module
 */

import { z } from "zod";
import { defineNode } from "../engine/mod.ts";
import { formatBytes, parseByteSize } from "../runtime/byte_size.ts";
import { defineModelHook, type ModelHook } from "../runtime/mod.ts";
import { modelOfType, modelPort } from "./ports.ts";

/** The data budget_offload adds to a model handle. */
export interface BudgetOffloadHook extends ModelHook {
  /** Hook kind. */
  kind: "budget_offload";
  /** The budget in bytes, shared by the models wrapped by the same node. */
  maxMemoryBytes: number;
}

/** Keep sessions while they fit a memory budget, evicting the least recently used. */
export const budgetOffloadHook = defineModelHook<BudgetOffloadHook>({
  kind: "budget_offload",
  session: (hook) => ({
    policy: "budget_offload",
    releaseAfterLastUse: true,
    budget: { group: hook.node, maxBytes: hook.maxMemoryBytes },
  }),
});

/** A size setting: bytes, or text like `6GiB` or `500MB`. */
export const byteSizeSetting = z.union([z.number().int().min(1), z.string()]).transform(
  (value, ctx) => {
    const bytes = parseByteSize(value);
    if (bytes === undefined || bytes < 1) {
      ctx.addIssue({
        code: "custom",
        message: `expected a size like 6GiB or 500MB, got "${value}"`,
      });
      return z.NEVER;
    }
    return bytes;
  },
);

/** The budget_offload node type. */
export const budgetOffload = defineNode({
  type: "budget_offload",
  version: 1,
  description:
    "Keeps model sessions resident within a memory budget, least recently used out first (wraps models)",
  category: "memory",
  inputs: {
    model: modelPort().describe("A model to wrap; the models one node wraps share its budget"),
  },
  settings: {
    max_memory: byteSizeSetting.describe(
      "Budget for the resident sessions, e.g. 6GiB (bytes; suffixes KB, MB, GB, KiB, MiB, GiB)",
    ),
  },
  outputs: {
    model: modelPort().describe(
      "The same model, its session kept while the sessions fit max_memory, least recently used closed first",
    ),
  },
  hook: { kind: "offload", input: "model", output: "model" },
  infer(ctx, inputs, { max_memory }) {
    const model = modelOfType(inputs.model);
    if (model && model.bytes > max_memory) {
      ctx.error(
        `Model "${model.name}" needs about ${formatBytes(model.bytes)}, more than max_memory ${
          formatBytes(max_memory)
        }: raise max_memory, or run it in parts with sequential_offload`,
        { setting: "max_memory" },
      );
    }
    return { model: inputs.model };
  },
  run: (ctx, { model }, { max_memory }) => ({
    model: budgetOffloadHook.wrap(model, {
      node: ctx.hook?.node ?? ctx.node,
      maxMemoryBytes: max_memory,
    }),
  }),
});
