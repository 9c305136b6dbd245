/**
 * The 3D sin-cos positional embedding of CogVideoX 1.0 "2b"-style transformers
 * (`use_rotary_positional_embeddings: false`), computed outside the model as diffusers'
 * `CogVideoXPatchEmbed._get_positional_embeddings` does with `get_3d_sincos_pos_embed(...,
 * output_type="pt")`.
 *
 * Precision follows diffusers at the fixtures' commit: the position grids are float32
 * (`torch.arange(n, dtype=float32) / scale`), the frequencies, products, sines and cosines are
 * float64 (`get_1d_sincos_pos_embed_from_grid` defaults to float64 on CPU and CUDA), and the
 * table is rounded to float32 once, when `pos_embedding.to(dtype=embeds.dtype)` adds it.
 *
 * @module
 */

import { createTensor, type Tensor } from "../runtime/tensor.ts";

/** The transformer config keys the embedding depends on (`transformer/config.json`). */
export interface SincosTransformerConfig {
  /** Attention heads; `heads * attention_head_dim` is the embedding width. */
  num_attention_heads: number;
  /** Channels per head. */
  attention_head_dim: number;
  /** Spatial patch size. */
  patch_size: number;
  /** Latent frames per pixel frame (default 4). */
  temporal_compression_ratio?: number;
  /** Divides the spatial positions (default 1.875). */
  spatial_interpolation_scale?: number;
  /** Divides the temporal positions (default 1.0). */
  temporal_interpolation_scale?: number;
}

/**
 * `get_1d_sincos_pos_embed_from_grid(embedDim, pos)`: for each position `p` and frequency
 * `omega_k = 1 / 10000 ** (k / (embedDim / 2))`, `[sin(p * omega), cos(p * omega)]`, in float64.
 * Returns `[positions, embedDim]` row-major.
 */
export function sincosPosEmbed1d(embedDim: number, positions: ArrayLike<number>): Float64Array {
  if (embedDim % 2 !== 0) {
    throw new RangeError(`Invalid sin-cos embedding width ${embedDim}: must be even`);
  }
  const half = embedDim / 2;
  const omega = new Float64Array(half);
  for (let k = 0; k < half; k++) omega[k] = 1.0 / 10000 ** (k / (embedDim / 2.0));
  const out = new Float64Array(positions.length * embedDim);
  for (let m = 0; m < positions.length; m++) {
    for (let k = 0; k < half; k++) {
      const angle = positions[m] * omega[k];
      out[m * embedDim + k] = Math.sin(angle);
      out[m * embedDim + half + k] = Math.cos(angle);
    }
  }
  return out;
}

/**
 * `get_3d_sincos_pos_embed(embedDim, (width, height), frames, spatialScale, temporalScale)`:
 * `[frames, height * width, embedDim]` row-major in float64, rows ordered frame, row, column.
 * Each row is `[temporal (embedDim / 4), spatial from the column (3 embedDim / 8), spatial from
 * the row (3 embedDim / 8)]`, the order diffusers' meshgrid gives.
 */
export function get3dSincosPosEmbed(
  embedDim: number,
  spatialSize: readonly [width: number, height: number],
  temporalSize: number,
  spatialInterpolationScale = 1.0,
  temporalInterpolationScale = 1.0,
): Float64Array {
  if (embedDim % 16 !== 0) {
    throw new RangeError(
      `Invalid sin-cos embedding width ${embedDim}: must be divisible by 16 (4 for time, 3/4 for space in two even halves)`,
    );
  }
  const [width, height] = spatialSize;
  const f = Math.fround;
  const spatialDim = (3 * embedDim) / 4;
  const temporalDim = embedDim / 4;
  const columns = Float32Array.from(
    { length: width },
    (_, x) => f(x / f(spatialInterpolationScale)),
  );
  const rowsOf = Float32Array.from(
    { length: height },
    (_, y) => f(y / f(spatialInterpolationScale)),
  );
  const times = Float32Array.from(
    { length: temporalSize },
    (_, t) => f(t / f(temporalInterpolationScale)),
  );
  const byColumn = sincosPosEmbed1d(spatialDim / 2, columns);
  const byRow = sincosPosEmbed1d(spatialDim / 2, rowsOf);
  const byTime = sincosPosEmbed1d(temporalDim, times);
  const half = spatialDim / 2;
  const patches = height * width;
  const out = new Float64Array(temporalSize * patches * embedDim);
  for (let t = 0; t < temporalSize; t++) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const at = (t * patches + y * width + x) * embedDim;
        out.set(byTime.subarray(t * temporalDim, (t + 1) * temporalDim), at);
        out.set(byColumn.subarray(x * half, (x + 1) * half), at + temporalDim);
        out.set(byRow.subarray(y * half, (y + 1) * half), at + temporalDim + half);
      }
    }
  }
  return out;
}

/**
 * The `pos_embedding` input of a sin-cos transformer graph for latents `[batch, frames,
 * channels, height, width]`: the video rows of `CogVideoXPatchEmbed._get_positional_embeddings(
 * height, width, (frames - 1) * temporal_compression_ratio + 1)` (its text rows are zeros, which
 * the graph does not add), as float32 `[frames * (height / p) * (width / p), heads * head_dim]`.
 */
export function cogVideoXPositionalEmbedding(
  config: SincosTransformerConfig,
  latentShape: readonly number[],
): Tensor<"float32"> {
  const [, frames, , height, width] = latentShape;
  const embedDim = config.num_attention_heads * config.attention_head_dim;
  const compression = config.temporal_compression_ratio ?? 4;
  const p = config.patch_size;
  const pixelFrames = (frames - 1) * compression + 1;
  const postTimeCompressionFrames = Math.floor((pixelFrames - 1) / compression) + 1;
  const patchHeight = Math.floor(height / p);
  const patchWidth = Math.floor(width / p);
  const table = get3dSincosPosEmbed(
    embedDim,
    [patchWidth, patchHeight],
    postTimeCompressionFrames,
    config.spatial_interpolation_scale ?? 1.875,
    config.temporal_interpolation_scale ?? 1.0,
  );
  return createTensor(
    "float32",
    [postTimeCompressionFrames * patchHeight * patchWidth, embedDim],
    Float32Array.from(table),
  );
}
