/**
 * From a decoded video tensor to 8-bit RGB frames.
 *
 * The input is what the diffusers CogVideoX pipeline returns with `output_type="pt"`: values in
 * [0, 1] (the VAE output already passed through `(x / 2 + 0.5).clamp(0, 1)`), laid out
 * `[F, 3, H, W]` for one video, or `[1, F, 3, H, W]` with the batch axis kept.
 *
 * How diffusers turns such floats into bytes (`src/diffusers/image_processor.py` and
 * `src/diffusers/utils/export_utils.py`):
 * - `VaeImageProcessor.numpy_to_pil` does `(images * 255).round().astype("uint8")`. This is the
 *   path of the pipeline's default `output_type="pil"`, and so of what its documented examples
 *   pass to `export_to_video` (MP4) and `export_to_gif`, and of PIL images saved as PNG.
 *   numpy's `round` is round-half-to-even, computed on float32 products.
 * - `export_to_video` given numpy arrays (`output_type="np"`) instead does
 *   `(frame * 255).astype(np.uint8)`, which truncates.
 *
 * {@link videoTensorToFrames} rounds like `numpy_to_pil` by default, for MP4, GIF and PNG alike,
 * so that our files match the pipeline's default output byte for byte before encoding;
 * `rounding: "truncate"` reproduces the `export_to_video(np_frames)` path.
 *
 * @module
 */

import { formatShape, type Tensor } from "../runtime/tensor.ts";
import { createImage, type RgbImage } from "./image.ts";

/** How a float in [0, 1] becomes a byte. */
export type Rounding = "round" | "truncate";

/** Options of {@link videoTensorToFrames}. */
export interface FramesOptions {
  /**
   * `"round"` (default): `round(x * 255)` with ties to even, as diffusers' `numpy_to_pil`.
   * `"truncate"`: `floor(x * 255)`, as diffusers' `export_to_video` given numpy frames.
   */
  rounding?: Rounding;
}

/**
 * Converts a float video tensor `[F, 3, H, W]` (or `[1, F, 3, H, W]`) with values in [0, 1] into
 * one RGB image per frame. Values outside [0, 1] are clamped; a NaN is an error naming where
 * it is. Accepts float32 and float64.
 */
export function videoTensorToFrames(video: Tensor, options: FramesOptions = {}): RgbImage[] {
  const rounding = options.rounding ?? "round";
  if (rounding !== "round" && rounding !== "truncate") {
    throw new RangeError(`Unknown rounding "${rounding}": expected "round" or "truncate"`);
  }
  if (video.dtype !== "float32" && video.dtype !== "float64") {
    throw new TypeError(`Expected a video tensor of dtype float32 or float64, got ${video.dtype}`);
  }
  let shape = video.shape;
  if (shape.length === 5) {
    if (shape[0] !== 1) {
      throw new RangeError(
        `Expected one video, got a batch of ${shape[0]} ${formatShape(shape)}: select one first`,
      );
    }
    shape = shape.slice(1);
  }
  if (shape.length !== 4 || shape[1] !== 3) {
    throw new RangeError(
      `Expected a video tensor of shape [F, 3, H, W] or [1, F, 3, H, W], got ${
        formatShape(video.shape)
      }`,
    );
  }
  const [frameCount, , height, width] = shape;
  const data = video.data as Float32Array | Float64Array;
  const toByte = rounding === "round" ? roundToByte : truncateToByte;
  const planeSize = height * width;
  const frames: RgbImage[] = [];
  for (let f = 0; f < frameCount; f++) {
    const frame = createImage(width, height, 3);
    const pixels = frame.data;
    for (let c = 0; c < 3; c++) {
      const planeStart = (f * 3 + c) * planeSize;
      for (let i = 0; i < planeSize; i++) {
        const value = data[planeStart + i];
        if (Number.isNaN(value)) throw nanError(f, c, i, width);
        pixels[i * 3 + c] = toByte(value);
      }
    }
    frames.push(frame);
  }
  return frames;
}

/**
 * `round(clamp(x, 0, 1) * 255)` as numpy computes it on float32: the product rounded to
 * float32, then rounded half to even.
 */
export function roundToByte(value: number): number {
  const scaled = Math.fround(clamp01(value) * 255);
  const floor = Math.floor(scaled);
  const fraction = scaled - floor;
  if (fraction > 0.5 || (fraction === 0.5 && floor % 2 === 1)) return floor + 1;
  return floor;
}

/** `clamp(x, 0, 1) * 255` truncated to an integer, as numpy's `.astype(np.uint8)` on float32. */
export function truncateToByte(value: number): number {
  return Math.trunc(Math.fround(clamp01(value) * 255));
}

// diffusers converts to float32 (`.float()`) before scaling, so float64 input is rounded first.
function clamp01(value: number): number {
  return value < 0 ? 0 : value > 1 ? 1 : Math.fround(value);
}

function nanError(frame: number, channel: number, index: number, width: number): Error {
  const row = Math.floor(index / width);
  const column = index % width;
  return new RangeError(
    `Cannot convert the video to 8-bit frames: NaN at frame ${frame}, channel ${channel}, ` +
      `row ${row}, column ${column}`,
  );
}
