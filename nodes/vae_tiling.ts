/**
 * vae_tiling: the wrapped VAE decodes spatial tiles and blends them as diffusers'
 * `AutoencoderKLCogVideoX.tiled_decode` does (`vae.enable_tiling()`), always returning the
 * requested size (see `diffusion/tiled_decode.ts` for where diffusers' arithmetic is inconsistent).
 * Its decode strategy cuts each decode call into tiles for the next step: for a built VAE, each
 * tile is one session run of its whole-video graph, all temporal chunks inside (nodes/vae_decode.ts).
 *
 * @module
 */

import { z } from "zod";
import { defineNode } from "../engine/mod.ts";
import { tiledDecode, type TilingOptions } from "../diffusion/mod.ts";
import { defineModelHook, type ModelHook } from "../runtime/mod.ts";
import { modelOfType, modelPort, modelType } from "./ports.ts";
import { spatialCompressionOf } from "./video_geometry.ts";

/** The data vae_tiling adds to a model handle: the tile size and overlap. */
export interface VaeTilingHook extends ModelHook, Omit<TilingOptions, "spatialScale"> {
  /** Hook kind. */
  kind: "vae_tiling";
}

/** Decode in spatial tiles, blended as diffusers' `tiled_decode`. */
export const vaeTilingHook = defineModelHook<VaeTilingHook>({
  kind: "vae_tiling",
  decode: (latents, next, { model, hook, signal, pieces }) =>
    tiledDecode(latents, next, {
      ...hook,
      spatialScale: spatialCompressionOf(model),
      signal,
      onProgress: (_done, tiles) => pieces(tiles),
    }),
  estimateDecoding: (shapes, hook) => ({
    ...shapes,
    tile: { height: hook.tileSampleMinHeight, width: hook.tileSampleMinWidth },
  }),
});

/** A fraction: a number, or text like `1/6` (exactly the double Python's `1/6` gives). */
export const fractionSetting = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const fraction = typeof value === "number" ? value : parseFraction(value);
  if (fraction === undefined || !(fraction > 0 && fraction < 1)) {
    ctx.addIssue({
      code: "custom",
      message: `expected a fraction between 0 and 1 such as 0.25 or "1/6", got ${
        JSON.stringify(value)
      }`,
    });
    return z.NEVER;
  }
  return fraction;
});

function parseFraction(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*(\d+(?:\.\d+)?))?\s*$/.exec(text);
  if (!match) return undefined;
  return match[2] === undefined ? Number(match[1]) : Number(match[1]) / Number(match[2]);
}

/** The vae_tiling node type. */
export const vaeTiling = defineNode({
  type: "vae_tiling",
  version: 1,
  description: "Decodes in overlapping spatial tiles blended like diffusers (wraps a VAE)",
  category: "memory",
  inputs: { model: modelPort("vae").describe("The VAE to wrap") },
  settings: {
    tile_sample_min_height: z.number().int().min(8).default(240).describe(
      "Tile height in pixels (default 240, as diffusers for CogVideoX)",
    ),
    tile_sample_min_width: z.number().int().min(8).default(360).describe(
      "Tile width in pixels (default 360, as diffusers for CogVideoX)",
    ),
    tile_overlap_factor_height: fractionSetting.default(1 / 6).describe(
      "Fraction of a tile's height shared with the next, a number or text like 1/6 (default 1/6)",
    ),
    tile_overlap_factor_width: fractionSetting.default(1 / 5).describe(
      "Fraction of a tile's width shared with the next, a number or text like 1/5 (default 1/5)",
    ),
  },
  outputs: {
    model: modelPort("vae").describe(
      "The same VAE, decoding overlapping spatial tiles blended like diffusers",
    ),
  },
  hook: { kind: "vae_tiling", input: "model", output: "model" },
  infer(ctx, inputs, settings) {
    // Tiles too small for their overlap would only fail after denoising, in vae_decode.
    const model = modelOfType(inputs.model);
    const spatialScale = model ? spatialCompressionOf(model) : 8;
    const axes = [
      ["height", settings.tile_sample_min_height, settings.tile_overlap_factor_height],
      ["width", settings.tile_sample_min_width, settings.tile_overlap_factor_width],
    ] as const;
    for (const [axis, tile, factor] of axes) {
      const tileLatentMin = Math.trunc(tile / spatialScale);
      if (Math.trunc(tileLatentMin * (1 - factor)) < 1) {
        ctx.error(
          `Tiles of ${tile} pixels with overlap factor ${factor} leave no stride between tiles: ` +
            `int(${tileLatentMin} * (1 - ${factor})) is 0 latents (${spatialScale} pixels each): ` +
            `use larger tiles or a smaller overlap`,
          { setting: `tile_sample_min_${axis}` },
        );
      }
    }
    // The hook on the static type lets vae_decode's memory estimate count tiles at validation.
    return {
      model: model
        ? modelType(vaeTilingHook.wrap(model, { node: ctx.node, ...tilingOf(settings) }))
        : inputs.model,
    };
  },
  run: (ctx, { model }, settings) => ({
    model: vaeTilingHook.wrap(model, { node: ctx.hook?.node ?? ctx.node, ...tilingOf(settings) }),
  }),
});

/** The tiling of vae_tiling's settings. */
function tilingOf(settings: {
  tile_sample_min_height: number;
  tile_sample_min_width: number;
  tile_overlap_factor_height: number;
  tile_overlap_factor_width: number;
}): Omit<TilingOptions, "spatialScale"> {
  return {
    tileSampleMinHeight: settings.tile_sample_min_height,
    tileSampleMinWidth: settings.tile_sample_min_width,
    tileOverlapFactorHeight: settings.tile_overlap_factor_height,
    tileOverlapFactorWidth: settings.tile_overlap_factor_width,
  };
}
