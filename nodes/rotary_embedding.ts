/**
 * rotary_embedding: the 3D rotary position tables of CogVideoX-5b-style transformers, computed as
 * the pipeline's `_prepare_rotary_positional_embeddings` (with the resize-crop region). For a
 * transformer without rotary embeddings (CogVideoX-2b style) it outputs nothing, so one workflow
 * serves both.
 *
 * @module
 */

import { defineNode, tensorPort, UserError } from "../engine/mod.ts";
import {
  prepareRotaryPositionalEmbeddings,
  type RotaryTransformerConfig,
} from "../diffusion/mod.ts";
import type { ModelHandle } from "../runtime/mod.ts";
import { latentsPort, modelPort } from "./ports.ts";
import { spatialCompressionOf } from "./video_geometry.ts";

/** The rotary_embedding node type. */
export const rotaryEmbedding = defineNode({
  type: "rotary_embedding",
  version: 1,
  description:
    "Rotary position tables (cos, sin) for transformers with use_rotary_positional_embeddings",
  category: "sampling",
  inputs: {
    transformer: modelPort("transformer").describe(
      "The transformer: its config gives the head size, patch size and sample size",
    ),
    vae: modelPort("vae").describe("The VAE: its spatial compression turns latents into pixels"),
    latents: latentsPort().describe(
      "Latents [batch, frames, channels, height, width]: their frames and size set the grid",
    ),
  },
  settings: {},
  outputs: {
    cos: tensorPort({ dtype: "float32", rank: 2 }).describe(
      "Cosine table [video tokens, head size]; absent for transformers without rotary embeddings",
    ).optional(),
    sin: tensorPort({ dtype: "float32", rank: 2 }).describe(
      "Sine table [video tokens, head size]; absent for transformers without rotary embeddings",
    ).optional(),
  },
  run(_ctx, { transformer, vae, latents }) {
    if (!usesRotaryEmbeddings(transformer)) return { cos: undefined, sin: undefined };
    const [, frames, , height, width] = latents.shape;
    const scale = spatialCompressionOf(vae);
    const tables = prepareRotaryPositionalEmbeddings(
      { height: height * scale, width: width * scale, latentFrames: frames },
      rotaryConfigOf(transformer),
      { vaeScaleFactorSpatial: scale },
    );
    return { cos: tables.cos, sin: tables.sin };
  },
});

/** True when the transformer takes rotary tables (`use_rotary_positional_embeddings`). */
export function usesRotaryEmbeddings(model: ModelHandle): boolean {
  return model.config.use_rotary_positional_embeddings === true ||
    model.signature.inputs.some((input) => input.name === "image_rotary_emb_cos");
}

function rotaryConfigOf(model: ModelHandle): RotaryTransformerConfig {
  const config = model.config;
  const number = (key: string) => {
    const value = config[key];
    if (typeof value !== "number") {
      throw new UserError(`Model "${model.name}" config has no numeric "${key}"`);
    }
    return value;
  };
  return {
    attention_head_dim: number("attention_head_dim"),
    patch_size: number("patch_size"),
    patch_size_t: config.patch_size_t as number | null | undefined,
    sample_height: number("sample_height"),
    sample_width: number("sample_width"),
  };
}
