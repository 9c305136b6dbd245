/**
 * 3D rotary positional embeddings of the CogVideoX 1.0 "5b" transformer, computed
 * outside the model as `CogVideoXPipeline._prepare_rotary_positional_embeddings` does
 * (diffusers' `get_resize_crop_region_for_grid` and `get_3d_rotary_pos_embed` with
 * `grid_type="linspace"`, `use_real=True`).
 *
 * diffusers computes these in float32; every operation here is rounded to float32 the
 * same way (`Math.fround` after each step), so the tables match torch's to within the
 * last-ulp differences of float32 `pow`, `cos` and `sin`.
 *
 * @module
 */

import { createTensor, type Tensor } from "../runtime/tensor.ts";
import { roundHalfEven, torchLinspace } from "./noise_schedule.ts";

/** The cos and sin tables the transformer takes, `[videoTokens, headDim]` each. */
export interface RotaryTables {
  /** `image_rotary_emb_cos`. */
  cos: Tensor<"float32">;
  /** `image_rotary_emb_sin`. */
  sin: Tensor<"float32">;
}

/** A crop region of a grid: `[top, left]` and `[bottom, right]` (exclusive). */
export type CropRegion = readonly [
  start: readonly [number, number],
  stop: readonly [number, number],
];

/**
 * `get_resize_crop_region_for_grid((height, width), targetWidth, targetHeight)`: the
 * region that a `height x width` grid covers once resized to fit a `targetHeight x
 * targetWidth` grid and centered. Rounding is Python's (half to even).
 */
export function resizeCropRegionForGrid(
  grid: readonly [height: number, width: number],
  targetWidth: number,
  targetHeight: number,
): CropRegion {
  const [h, w] = grid;
  let resizeHeight: number;
  let resizeWidth: number;
  if (h / w > targetHeight / targetWidth) {
    resizeHeight = targetHeight;
    resizeWidth = roundHalfEven(targetHeight / h * w);
  } else {
    resizeWidth = targetWidth;
    resizeHeight = roundHalfEven(targetWidth / w * h);
  }
  const cropTop = roundHalfEven((targetHeight - resizeHeight) / 2.0);
  const cropLeft = roundHalfEven((targetWidth - resizeWidth) / 2.0);
  return [[cropTop, cropLeft], [cropTop + resizeHeight, cropLeft + resizeWidth]];
}

/**
 * `get_1d_rotary_pos_embed(dim, positions, theta, use_real=True)`: for each position
 * `p` and frequency `f_k = 1 / theta ** (2k / dim)`, `cos(p * f_k)` and `sin(p * f_k)`,
 * each repeated twice (`repeat_interleave(2)`). Returns `[positions, dim]` row-major.
 */
export function rotaryPosEmbed1d(
  dim: number,
  positions: readonly number[],
  theta = 10000,
): { cos: Float32Array; sin: Float32Array } {
  if (dim % 2 !== 0) throw new RangeError(`Invalid rotary dimension ${dim}: must be even`);
  const f = Math.fround;
  const freqs: number[] = [];
  for (let k = 0; k < dim; k += 2) freqs.push(f(1.0 / f(Math.pow(theta, f(k / dim)))));
  const cos = new Float32Array(positions.length * dim);
  const sin = new Float32Array(positions.length * dim);
  for (let s = 0; s < positions.length; s++) {
    for (let j = 0; j < freqs.length; j++) {
      const angle = f(positions[s] * freqs[j]);
      const at = s * dim + 2 * j;
      cos[at] = cos[at + 1] = Math.cos(angle);
      sin[at] = sin[at + 1] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/** Arguments of {@link get3dRotaryPosEmbed}. */
export interface Rotary3dOptions {
  /** Head dimension; split into `dim // 4` (time), `dim // 8 * 3` (height), `dim // 8 * 3` (width). */
  embedDim: number;
  /** Region of the base grid the token grid covers (from {@link resizeCropRegionForGrid}). */
  cropsCoords: CropRegion;
  /** Token grid size `[height, width]` (latent size over the patch size). */
  gridSize: readonly [number, number];
  /** Number of latent frames. */
  temporalSize: number;
  /** Frequency base. */
  theta?: number;
}

/**
 * `get_3d_rotary_pos_embed` with `grid_type="linspace"`: positions are
 * `linspace(start, stop * (n - 1) / n, n)` over the crop region for height and width
 * and `0 .. T - 1` for time; each token's row is `[time | height | width]` parts.
 * Tokens are ordered frame, row, column.
 */
export function get3dRotaryPosEmbed(options: Rotary3dOptions): RotaryTables {
  const { embedDim, cropsCoords, gridSize, temporalSize, theta = 10000 } = options;
  const [start, stop] = cropsCoords;
  const [gridHeight, gridWidth] = gridSize;
  const dimT = Math.floor(embedDim / 4);
  const dimH = Math.floor(embedDim / 8) * 3;
  const dimW = Math.floor(embedDim / 8) * 3;
  if (dimT % 2 !== 0 || dimH % 2 !== 0 || dimT + dimH + dimW !== embedDim) {
    throw new RangeError(
      `Invalid rotary head dimension ${embedDim}: must be a multiple of 16 (time, height and width parts must be even)`,
    );
  }
  const gridH = torchLinspace(
    start[0],
    stop[0] * (gridHeight - 1) / gridHeight,
    gridHeight,
    Math.fround,
  );
  const gridW = torchLinspace(
    start[1],
    stop[1] * (gridWidth - 1) / gridWidth,
    gridWidth,
    Math.fround,
  );
  const gridT = torchLinspace(
    0,
    temporalSize * (temporalSize - 1) / temporalSize,
    temporalSize,
    Math.fround,
  );

  const freqsT = rotaryPosEmbed1d(dimT, gridT, theta);
  const freqsH = rotaryPosEmbed1d(dimH, gridH, theta);
  const freqsW = rotaryPosEmbed1d(dimW, gridW, theta);

  const tokens = temporalSize * gridHeight * gridWidth;
  const cos = new Float32Array(tokens * embedDim);
  const sin = new Float32Array(tokens * embedDim);
  let row = 0;
  for (let t = 0; t < temporalSize; t++) {
    for (let h = 0; h < gridHeight; h++) {
      for (let w = 0; w < gridWidth; w++) {
        const at = row * embedDim;
        cos.set(freqsT.cos.subarray(t * dimT, (t + 1) * dimT), at);
        cos.set(freqsH.cos.subarray(h * dimH, (h + 1) * dimH), at + dimT);
        cos.set(freqsW.cos.subarray(w * dimW, (w + 1) * dimW), at + dimT + dimH);
        sin.set(freqsT.sin.subarray(t * dimT, (t + 1) * dimT), at);
        sin.set(freqsH.sin.subarray(h * dimH, (h + 1) * dimH), at + dimT);
        sin.set(freqsW.sin.subarray(w * dimW, (w + 1) * dimW), at + dimT + dimH);
        row++;
      }
    }
  }
  return {
    cos: createTensor("float32", [tokens, embedDim], cos),
    sin: createTensor("float32", [tokens, embedDim], sin),
  };
}

/** The transformer config keys the rotary tables depend on (`transformer/config.json`). */
export interface RotaryTransformerConfig {
  /** Head dimension of attention (16 in the fixture, 64 in CogVideoX-5b). */
  attention_head_dim: number;
  /** Spatial patch size. */
  patch_size: number;
  /** Temporal patch size; set only for CogVideoX 1.5, which is not supported here. */
  patch_size_t?: number | null;
  /** Latent height the model was trained at (base grid height times the patch size). */
  sample_height: number;
  /** Latent width the model was trained at. */
  sample_width: number;
}

/** Size of the video the tables are for. */
export interface RotaryVideoSize {
  /** Height in pixels. */
  height: number;
  /** Width in pixels. */
  width: number;
  /** Number of latent frames (`(frames - 1) // 4 + 1`). */
  latentFrames: number;
}

/** Options of {@link prepareRotaryPositionalEmbeddings}. */
export interface PrepareRotaryOptions {
  /** Pixels per latent (`2 ** (len(vae.block_out_channels) - 1)`). */
  vaeScaleFactorSpatial?: number;
}

/**
 * `CogVideoXPipeline._prepare_rotary_positional_embeddings(height, width, latent_frames)`
 * for a CogVideoX 1.0 transformer: the token grid is the latent size over the patch
 * size, placed on the base grid `sample_height / p x sample_width / p`.
 */
export function prepareRotaryPositionalEmbeddings(
  size: RotaryVideoSize,
  transformer: RotaryTransformerConfig,
  options: PrepareRotaryOptions = {},
): RotaryTables {
  const vaeScaleFactorSpatial = options.vaeScaleFactorSpatial ?? 8;
  const p = transformer.patch_size;
  if (transformer.patch_size_t !== undefined && transformer.patch_size_t !== null) {
    throw new Error(
      `Unsupported transformer: patch_size_t ${transformer.patch_size_t} (CogVideoX 1.5) needs "slice" rotary grids`,
    );
  }
  const gridHeight = Math.floor(size.height / (vaeScaleFactorSpatial * p));
  const gridWidth = Math.floor(size.width / (vaeScaleFactorSpatial * p));
  if (
    gridHeight < 1 || gridWidth < 1 || !Number.isInteger(size.latentFrames) || size.latentFrames < 1
  ) {
    throw new RangeError(
      `Invalid video size ${size.width}x${size.height}, ${size.latentFrames} latent frames: no tokens`,
    );
  }
  const baseSizeWidth = Math.floor(transformer.sample_width / p);
  const baseSizeHeight = Math.floor(transformer.sample_height / p);
  const cropsCoords = resizeCropRegionForGrid(
    [gridHeight, gridWidth],
    baseSizeWidth,
    baseSizeHeight,
  );
  return get3dRotaryPosEmbed({
    embedDim: transformer.attention_head_dim,
    cropsCoords,
    gridSize: [gridHeight, gridWidth],
    temporalSize: size.latentFrames,
  });
}
