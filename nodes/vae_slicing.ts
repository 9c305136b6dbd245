/**
 * vae_slicing: the wrapped VAE decodes one video of a batch at a time (diffusers'
 * `vae.enable_slicing()`).
 *
 * @module
 */

import { defineNode } from "../engine/mod.ts";
import { withHook } from "../runtime/model_handle.ts";
import { modelOfType, modelPort, modelType } from "./ports.ts";

/** The vae_slicing node type. */
export const vaeSlicing = defineNode({
  type: "vae_slicing",
  version: 1,
  description: "Decodes one batch element at a time (wraps a VAE)",
  category: "memory",
  inputs: { model: modelPort("vae").describe("The VAE to wrap") },
  settings: {},
  outputs: {
    model: modelPort("vae").describe("The same VAE, decoding one video of a batch at a time"),
  },
  hook: { kind: "vae_slicing", input: "model", output: "model" },
  // The hook on the static type lets vae_decode's memory estimate count one video at validation.
  infer: (ctx, inputs) => {
    const model = modelOfType(inputs.model);
    return {
      model: model
        ? modelType(withHook(model, { kind: "vae_slicing", node: ctx.node }))
        : inputs.model,
    };
  },
  run: (ctx, { model }) => ({
    model: withHook(model, { kind: "vae_slicing", node: ctx.hook?.node ?? ctx.node }),
  }),
});
