/**
 * vae_slicing: the wrapped VAE decodes one video of a batch at a time (diffusers'
 * `vae.enable_slicing()`): its decode strategy hands each batch element to the next step alone
 * and puts the results back together (for a built VAE, one session run of its whole-video graph
 * per video: nodes/vae_decode.ts).
 *
 * @module
 */

import { defineNode } from "../engine/mod.ts";
import { concatBatch, defineModelHook, type ModelHook, sliceBatch } from "../runtime/mod.ts";
import { modelOfType, modelPort, modelType } from "./ports.ts";

/** The data vae_slicing adds to a model handle. */
export interface VaeSlicingHook extends ModelHook {
  /** Hook kind. */
  kind: "vae_slicing";
}

/** Decode one batch element at a time. */
export const vaeSlicingHook = defineModelHook<VaeSlicingHook>({
  kind: "vae_slicing",
  async decode(latents, next, call) {
    const batch = latents.shape[0];
    if (batch <= 1) return await next(latents);
    call.pieces(batch);
    const decoded = [];
    for (let b = 0; b < batch; b++) {
      call.signal.throwIfAborted();
      decoded.push(await next(sliceBatch(latents, b, b + 1)));
    }
    return concatBatch(decoded);
  },
  estimateDecoding: (shapes) => ({ ...shapes, slicing: true }),
});

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
      model: model ? modelType(vaeSlicingHook.wrap(model, { node: ctx.node })) : inputs.model,
    };
  },
  run: (ctx, { model }) => ({
    model: vaeSlicingHook.wrap(model, { node: ctx.hook?.node ?? ctx.node }),
  }),
});
