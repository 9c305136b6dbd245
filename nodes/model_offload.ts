/**
 * model_offload: a wrapped model's session exists only from just before its first use to just
 * after its last use in the plan (diffusers' `enable_model_cpu_offload()`, made exact by the
 * executor, which knows each model's last reader). With `keep_in_ram`, the model's bytes stay in
 * host memory and sessions are created from them: on a GPU provider this is diffusers' CPU
 * offload, weights in host RAM and on the device only while used.
 *
 * @module
 */

import { z } from "zod";
import { defineNode } from "../engine/mod.ts";
import { defineModelHook, type ModelHook } from "../runtime/mod.ts";
import { modelPort } from "./ports.ts";

/** The data model_offload adds to a model handle. */
export interface ModelOffloadHook extends ModelHook {
  /** Hook kind. */
  kind: "model_offload";
  /** Keep the model's bytes in host memory so re-creating the session reads no file. */
  keepInRam: boolean;
}

/** Keep the session only from just before its first use to just after its last use. */
export const modelOffloadHook = defineModelHook<ModelOffloadHook>({
  kind: "model_offload",
  session: (hook) => ({
    policy: "model_offload",
    releaseAfterLastUse: true,
    keepInRam: hook.keepInRam,
  }),
});

/** The model_offload node type. */
export const modelOffload = defineNode({
  type: "model_offload",
  version: 1,
  description: "Keeps a model's session only while nodes use it (wraps models)",
  category: "memory",
  inputs: { model: modelPort().describe("The model to wrap") },
  settings: {
    keep_in_ram: z.boolean().default(false).describe(
      "Keep the model's bytes in host memory so a new session reads no file; on a GPU, CPU offload (default false)",
    ),
  },
  outputs: {
    model: modelPort().describe(
      "The same model, its session made just before its first use and closed after its last",
    ),
  },
  hook: { kind: "offload", input: "model", output: "model" },
  infer: (_ctx, inputs) => ({ model: inputs.model }),
  run: (ctx, { model }, { keep_in_ram }) => ({
    model: modelOffloadHook.wrap(model, {
      node: ctx.hook?.node ?? ctx.node,
      keepInRam: keep_in_ram,
    }),
  }),
});
