/**
 * Spatially tiled VAE decoding as diffusers' `AutoencoderKLCogVideoX.tiled_decode`: the latent
 * is cut into overlapping tiles, each tile is decoded on its own, and neighbouring tiles are
 * blended linearly (`blend_v`, `blend_h`) before being cropped and put side by side.
 *
 * The tile geometry follows diffusers' integers exactly:
 *
 * ```
 * tile_latent_min = int(tile_sample_min / spatial_scale)
 * overlap         = int(tile_latent_min * (1 - overlap_factor))   // latent stride between tiles
 * blend_extent    = int(tile_sample_min * overlap_factor)          // pixels blended
 * row_limit       = tile_sample_min - blend_extent                 // pixels kept per tile
 * ```
 *
 * Consistency. Tile `i` starts at latent `i * overlap`, that is at pixel
 * `spatial_scale * overlap`, but diffusers keeps `row_limit` pixels of it. The two agree exactly
 * when `row_limit == spatial_scale * overlap`. In exact arithmetic (0 <= factor < 1) this holds
 * if and only if `tile_sample_min` is a multiple of `spatial_scale` and
 * `tile_latent_min * overlap_factor` is an integer; it then also gives
 * `blend_extent == spatial_scale * (tile_latent_min - overlap)`, so the last `blend_extent` rows
 * of a tile lie exactly under the first rows of the next one. Examples: 240 px with 1/6 and
 * 360 px with 1/5 (diffusers' defaults for 480 x 720) and 32 px with 1/4 are consistent;
 * 48 px with 1/5, 360 px with 1/6 or 256 px with 1/6 are not. Where it does not hold,
 * diffusers returns a video larger than `spatial_scale * latent` (row_limit is never smaller
 * than the stride) and blends rows that belong to different places of the picture.
 *
 * cogflow blends a tile with the rows of its neighbour that lie at the same place: the tile
 * below starts `stride = spatial_scale * overlap` pixels into the tile above, so its row `y`
 * is blended with row `stride + y` of the tile above, over
 * `min(blend_extent, rows the tiles share, rows of the lower tile)` rows; and every tile is
 * cropped to `stride` pixels (the last one to what is left). When the configuration is
 * consistent, this is diffusers' computation to the bit (diffusers' `a[-extent + y]` is then
 * the same row as `a[stride + y]`, and its `min(a.rows, b.rows, blend_extent)` the same
 * extent); otherwise the output still has the requested size and no misaligned blends.
 *
 * @module
 */

import { createTensor, formatShape, type Tensor } from "../runtime/tensor.ts";

/** Tile size and overlap, as given to diffusers' `vae.enable_tiling(...)`. */
export interface TilingOptions {
  /** Tile height in pixels (`tile_sample_min_height`; diffusers' default is `sample_height / 2`). */
  tileSampleMinHeight: number;
  /** Tile width in pixels (`tile_sample_min_width`; diffusers' default is `sample_width / 2`). */
  tileSampleMinWidth: number;
  /** Fraction of a tile's height shared with the next tile (diffusers' default is 1/6). */
  tileOverlapFactorHeight: number;
  /** Fraction of a tile's width shared with the next tile (diffusers' default is 1/5). */
  tileOverlapFactorWidth: number;
  /** Pixels per latent along height and width (8 for CogVideoX). */
  spatialScale?: number;
}

/** Options of {@link tiledDecode}. */
export interface TiledDecodeOptions extends TilingOptions {
  /** Checked before each tile is decoded. */
  signal?: AbortSignal;
  /** Called after each decoded tile with the number of tiles done and the total. */
  onProgress?: (done: number, total: number) => void;
}

/** The integers of a tiled decode, named as in diffusers (and in the fixtures' `case.json`). */
export interface TilePlan {
  /** Whether the latent is larger than one tile, so that it is decoded in tiles. */
  tiled: boolean;
  /** Tile height in latents. */
  tileLatentMinHeight: number;
  /** Tile width in latents. */
  tileLatentMinWidth: number;
  /** Latent rows between the starts of two tiles. */
  overlapHeight: number;
  /** Latent columns between the starts of two tiles. */
  overlapWidth: number;
  /** Pixel rows blended between a tile and the one above (diffusers' value). */
  blendExtentHeight: number;
  /** Pixel columns blended between a tile and the one to its left (diffusers' value). */
  blendExtentWidth: number;
  /** Pixel rows diffusers keeps of each tile. */
  rowLimitHeight: number;
  /** Pixel columns diffusers keeps of each tile. */
  rowLimitWidth: number;
  /** Latent row where each row of tiles starts. */
  tileRowsLatentStart: number[];
  /** Latent column where each column of tiles starts. */
  tileColsLatentStart: number[];
  /** `rowLimitHeight == spatialScale * overlapHeight`: the output is diffusers' to the bit. */
  consistentHeight: boolean;
  /** `rowLimitWidth == spatialScale * overlapWidth`: the output is diffusers' to the bit. */
  consistentWidth: boolean;
}

/** Decodes one latent tile `[B, C, F, h, w]` into pixels `[B, 3, frames, scale * h, scale * w]`. */
export type TileDecoder = (tile: Tensor<"float32">) => Promise<Tensor<"float32">>;

/** Computes diffusers' tiling integers for a latent of `latentHeight` x `latentWidth`. */
export function planTiles(
  latentHeight: number,
  latentWidth: number,
  options: TilingOptions,
): TilePlan {
  const spatialScale = options.spatialScale ?? 8;
  if (!Number.isInteger(spatialScale) || spatialScale < 1) {
    throw new RangeError(`Invalid spatial scale "${spatialScale}": expected an integer >= 1`);
  }
  for (const [name, size] of [["height", latentHeight], ["width", latentWidth]] as const) {
    if (!Number.isInteger(size) || size < 1) {
      throw new RangeError(`Invalid latent ${name} "${size}": expected an integer >= 1`);
    }
  }
  const height = planAxis(
    "height",
    latentHeight,
    options.tileSampleMinHeight,
    options.tileOverlapFactorHeight,
    spatialScale,
  );
  const width = planAxis(
    "width",
    latentWidth,
    options.tileSampleMinWidth,
    options.tileOverlapFactorWidth,
    spatialScale,
  );
  return {
    tiled: latentHeight > height.tileLatentMin || latentWidth > width.tileLatentMin,
    tileLatentMinHeight: height.tileLatentMin,
    tileLatentMinWidth: width.tileLatentMin,
    overlapHeight: height.overlap,
    overlapWidth: width.overlap,
    blendExtentHeight: height.blendExtent,
    blendExtentWidth: width.blendExtent,
    rowLimitHeight: height.rowLimit,
    rowLimitWidth: width.rowLimit,
    tileRowsLatentStart: height.starts,
    tileColsLatentStart: width.starts,
    consistentHeight: height.rowLimit === spatialScale * height.overlap,
    consistentWidth: width.rowLimit === spatialScale * width.overlap,
  };
}

function planAxis(
  name: string,
  latentSize: number,
  tileSampleMin: number,
  overlapFactor: number,
  spatialScale: number,
) {
  if (!Number.isInteger(tileSampleMin) || tileSampleMin < spatialScale) {
    throw new RangeError(
      `Invalid tile ${name} "${tileSampleMin}": expected an integer number of pixels >= ${spatialScale}`,
    );
  }
  if (!(overlapFactor >= 0 && overlapFactor < 1)) {
    throw new RangeError(
      `Invalid tile overlap factor for ${name} "${overlapFactor}": expected 0 <= factor < 1`,
    );
  }
  // Python's int() of a positive float is Math.trunc; the float products are the same doubles.
  const tileLatentMin = Math.trunc(tileSampleMin / spatialScale);
  const overlap = Math.trunc(tileLatentMin * (1 - overlapFactor));
  if (overlap < 1) {
    throw new RangeError(
      `Tile overlap factor for ${name} "${overlapFactor}" leaves no stride: ` +
        `int(${tileLatentMin} * (1 - ${overlapFactor})) is 0 latents`,
    );
  }
  const blendExtent = Math.trunc(tileSampleMin * overlapFactor);
  const rowLimit = tileSampleMin - blendExtent;
  const starts: number[] = [];
  for (let start = 0; start < latentSize; start += overlap) starts.push(start);
  return { tileLatentMin, overlap, blendExtent, rowLimit, starts };
}

/** A decoded tile: `planes` (= batch x channels x frames) planes of `height` x `width`. */
interface DecodedTile {
  data: Float32Array;
  height: number;
  width: number;
}

/**
 * Decodes latents `[B, C, F, h, w]` (as the VAE decoder takes them) into pixels
 * `[B, channels, frames, scale * h, scale * w]`, in tiles when the latent is larger than one
 * tile (else with one `decodeTile` call on the whole latent). Channels and frames are those
 * the decoder returns. Tiles are decoded one at a time, row by row; only the previous row of
 * tiles is kept, and the tensors `decodeTile` returns are blended in place.
 */
export async function tiledDecode(
  latents: Tensor<"float32">,
  decodeTile: TileDecoder,
  options: TiledDecodeOptions,
): Promise<Tensor<"float32">> {
  if (latents.dtype !== "float32" || latents.shape.length !== 5) {
    throw new TypeError(
      `Cannot decode latents of dtype ${latents.dtype} and shape ${formatShape(latents.shape)}: ` +
        `expected float32 [batch, channels, frames, height, width]`,
    );
  }
  const [batchSize, , , height, width] = latents.shape;
  const spatialScale = options.spatialScale ?? 8;
  const plan = planTiles(height, width, options);
  const { signal, onProgress } = options;

  if (!plan.tiled) {
    signal?.throwIfAborted();
    const sample = await decodeTile(latents);
    checkDecodedShape(sample, batchSize, height, width, spatialScale);
    onProgress?.(1, 1);
    return sample;
  }

  const rowStarts = plan.tileRowsLatentStart;
  const colStarts = plan.tileColsLatentStart;
  const total = rowStarts.length * colStarts.length;
  const strideHeight = spatialScale * plan.overlapHeight;
  const strideWidth = spatialScale * plan.overlapWidth;
  const sampleHeight = spatialScale * height;
  const sampleWidth = spatialScale * width;

  let output: Tensor<"float32"> | undefined;
  let outChannels = 0;
  let outFrames = 0;
  let planes = 0;
  let rowAbove: DecodedTile[] = [];
  for (let i = 0; i < rowStarts.length; i++) {
    const row: DecodedTile[] = [];
    for (let j = 0; j < colStarts.length; j++) {
      signal?.throwIfAborted();
      const tileHeight = Math.min(plan.tileLatentMinHeight, height - rowStarts[i]);
      const tileWidth = Math.min(plan.tileLatentMinWidth, width - colStarts[j]);
      const sample = await decodeTile(
        sliceTile(latents, rowStarts[i], colStarts[j], tileHeight, tileWidth),
      );
      checkDecodedShape(sample, batchSize, tileHeight, tileWidth, spatialScale);
      if (output === undefined) {
        [, outChannels, outFrames] = sample.shape;
        planes = batchSize * outChannels * outFrames;
        output = createTensor("float32", [
          batchSize,
          outChannels,
          outFrames,
          sampleHeight,
          sampleWidth,
        ]);
      } else if (sample.shape[1] !== outChannels || sample.shape[2] !== outFrames) {
        throw new RangeError(
          `Tile decoder returned shape ${formatShape(sample.shape)} for tile (${i}, ${j}): ` +
            `expected ${outChannels} channels and ${outFrames} frames as the first tile`,
        );
      }
      const tile: DecodedTile = {
        data: sample.data,
        height: spatialScale * tileHeight,
        width: spatialScale * tileWidth,
      };
      // In place and in this order, as diffusers: the tile above and the tile to the left are
      // already blended themselves.
      if (i > 0) blendV(rowAbove[j], tile, planes, strideHeight, plan.blendExtentHeight);
      if (j > 0) blendH(row[j - 1], tile, planes, strideWidth, plan.blendExtentWidth);
      copyCrop(
        tile,
        output.data,
        planes,
        spatialScale * rowStarts[i],
        spatialScale * colStarts[j],
        Math.min(strideHeight, tile.height),
        Math.min(strideWidth, tile.width),
        sampleHeight,
        sampleWidth,
      );
      row.push(tile);
      onProgress?.(i * colStarts.length + j + 1, total);
    }
    rowAbove = row;
  }
  return output!;
}

function checkDecodedShape(
  sample: Tensor,
  batchSize: number,
  latentHeight: number,
  latentWidth: number,
  spatialScale: number,
): asserts sample is Tensor<"float32"> {
  const [batch, , , sampleHeight, sampleWidth] = sample.shape;
  if (
    sample.dtype !== "float32" || sample.shape.length !== 5 || batch !== batchSize ||
    sampleHeight !== spatialScale * latentHeight || sampleWidth !== spatialScale * latentWidth
  ) {
    throw new RangeError(
      `Tile decoder returned ${sample.dtype} ${
        formatShape(sample.shape)
      } for a ${latentHeight} x ${latentWidth} ` +
        `latent: expected float32 [${batchSize}, channels, frames, ${
          spatialScale * latentHeight
        }, ` +
        `${spatialScale * latentWidth}]`,
    );
  }
}

/** Copies `latents[:, :, :, top : top + tileHeight, left : left + tileWidth]`. */
function sliceTile(
  latents: Tensor<"float32">,
  top: number,
  left: number,
  tileHeight: number,
  tileWidth: number,
): Tensor<"float32"> {
  const [batchSize, channels, frames, height, width] = latents.shape;
  const planes = batchSize * channels * frames;
  const data = new Float32Array(planes * tileHeight * tileWidth);
  for (let p = 0; p < planes; p++) {
    for (let y = 0; y < tileHeight; y++) {
      const from = (p * height + top + y) * width + left;
      data.set(latents.data.subarray(from, from + tileWidth), (p * tileHeight + y) * tileWidth);
    }
  }
  return createTensor("float32", [batchSize, channels, frames, tileHeight, tileWidth], data);
}

// Linear weights `1 - y / extent` and `y / extent` as diffusers computes them: Python floats
// that torch rounds to float32 before multiplying float32 tensors.
function blendWeights(extent: number): [Float32Array, Float32Array] {
  const weightAbove = new Float32Array(extent);
  const weightBelow = new Float32Array(extent);
  for (let y = 0; y < extent; y++) {
    weightAbove[y] = 1 - y / extent;
    weightBelow[y] = y / extent;
  }
  return [weightAbove, weightBelow];
}

/** Blends the first rows of `below` with the rows of `above` at the same place, in place. */
function blendV(
  above: DecodedTile,
  below: DecodedTile,
  planes: number,
  stride: number,
  blendExtent: number,
) {
  const extent = Math.min(blendExtent, above.height - stride, below.height);
  if (extent <= 0) return;
  const [weightAbove, weightBelow] = blendWeights(extent);
  const width = below.width;
  const a = above.data;
  const b = below.data;
  for (let p = 0; p < planes; p++) {
    for (let y = 0; y < extent; y++) {
      const rowA = (p * above.height + stride + y) * width;
      const rowB = (p * below.height + y) * width;
      const wa = weightAbove[y];
      const wb = weightBelow[y];
      for (let x = 0; x < width; x++) {
        b[rowB + x] = Math.fround(a[rowA + x] * wa) + Math.fround(b[rowB + x] * wb);
      }
    }
  }
}

/** Blends the first columns of `right` with the columns of `left` at the same place, in place. */
function blendH(
  left: DecodedTile,
  right: DecodedTile,
  planes: number,
  stride: number,
  blendExtent: number,
) {
  const extent = Math.min(blendExtent, left.width - stride, right.width);
  if (extent <= 0) return;
  const [weightLeft, weightRight] = blendWeights(extent);
  const a = left.data;
  const b = right.data;
  for (let p = 0; p < planes; p++) {
    for (let y = 0; y < right.height; y++) {
      const rowA = (p * left.height + y) * left.width + stride;
      const rowB = (p * right.height + y) * right.width;
      for (let x = 0; x < extent; x++) {
        b[rowB + x] = Math.fround(a[rowA + x] * weightLeft[x]) +
          Math.fround(b[rowB + x] * weightRight[x]);
      }
    }
  }
}

/** Writes the top-left `cropHeight` x `cropWidth` pixels of a tile at (`top`, `left`). */
function copyCrop(
  tile: DecodedTile,
  output: Float32Array,
  planes: number,
  top: number,
  left: number,
  cropHeight: number,
  cropWidth: number,
  sampleHeight: number,
  sampleWidth: number,
) {
  for (let p = 0; p < planes; p++) {
    for (let y = 0; y < cropHeight; y++) {
      const from = (p * tile.height + y) * tile.width;
      output.set(
        tile.data.subarray(from, from + cropWidth),
        (p * sampleHeight + top + y) * sampleWidth + left,
      );
    }
  }
}
