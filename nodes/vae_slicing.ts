/**
 * vae_slicing: the wrapped VAE decodes one video of a batch at a time (diffusers'
 * `vae.enable_slicing()`).
 *
 * @module
 */

import { defineNode } from "../engine/mod.ts";
import { withHook } from "../runtime/model_handle.ts";
import { modelPort } from "./ports.ts";

/** The vae_slicing node type. */
export const vaeSlicing = defineNode({
  type: "vae_slicing",
  version: 1,
  description: "Decodes one batch element at a time (wraps a VAE)",
  category: "memory",
  inputs: { model: modelPort("vae") },
  settings: {},
  outputs: { model: modelPort("vae") },
  hook: { kind: "vae_slicing", input: "model", output: "model" },
  infer: (_ctx, inputs) => ({ model: inputs.model }),
  run: (ctx, { model }) => ({
    model: withHook(model, { kind: "vae_slicing", node: ctx.hook?.node ?? ctx.node }),
  }),
});
