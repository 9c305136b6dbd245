/**
 * A contact sheet: a video's frames laid out in a grid on one image, left to right and top to
 * bottom, for a quick look at a whole clip.
 *
 * @module
 */

import { type AtomicOutputOptions, writeFileAtomic } from "../runtime/atomic_file.ts";
import { checkSameSize, createImage, type RgbImage } from "./image.ts";
import { encodePng } from "./png.ts";

/** Options of {@link contactSheet}. */
export interface ContactSheetOptions {
  /** Frames per row; by default, the count that makes the sheet closest to square. */
  columns?: number;
  /** Pixels between frames and around the edge. */
  gap?: number;
  /** Colour of the gaps, `[r, g, b]`. */
  background?: readonly [number, number, number];
  /** Shrink each frame by this integer factor (averaging each `n x n` block) to keep sheets small. */
  downscale?: number;
}

/** Defaults of {@link ContactSheetOptions}. */
export const contactSheetDefaults = {
  gap: 4,
  background: [32, 32, 32],
  downscale: 1,
} satisfies ContactSheetOptions;

/**
 * Columns for `count` frames of `width x height` that make the sheet's aspect ratio closest
 * to square, preferring fewer empty cells on ties.
 */
export function autoColumns(count: number, width: number, height: number): number {
  let best = 1;
  let bestScore = Infinity;
  for (let columns = 1; columns <= count; columns++) {
    const rows = Math.ceil(count / columns);
    const score = Math.abs(Math.log((columns * width) / (rows * height)));
    if (score < bestScore - 1e-9) {
      best = columns;
      bestScore = score;
    }
  }
  return best;
}

/** Lays out frames (all of one size, RGB or RGBA; alpha is dropped) in a grid; returns an RGB image. */
export function contactSheet(
  frames: readonly RgbImage[],
  options: ContactSheetOptions = {},
): RgbImage {
  const gap = options.gap ?? contactSheetDefaults.gap;
  const background = options.background ?? contactSheetDefaults.background;
  const downscale = options.downscale ?? contactSheetDefaults.downscale;
  if (!Number.isInteger(gap) || gap < 0) {
    throw new RangeError(`Invalid contact sheet gap ${gap}: expected an integer >= 0`);
  }
  if (!Number.isInteger(downscale) || downscale < 1) {
    throw new RangeError(`Invalid contact sheet downscale ${downscale}: expected an integer >= 1`);
  }
  const first = checkSameSize(frames);
  const cells = downscale === 1 ? frames : frames.map((frame) => shrink(frame, downscale));
  const { width, height } = cells[0];
  const columns = options.columns ?? autoColumns(frames.length, width, height);
  if (!Number.isInteger(columns) || columns < 1) {
    throw new RangeError(`Invalid contact sheet columns ${columns}: expected an integer >= 1`);
  }
  const used = Math.min(columns, frames.length);
  const rows = Math.ceil(frames.length / used);
  const sheet = createImage(used * (width + gap) + gap, rows * (height + gap) + gap, 3);
  for (let i = 0; i < sheet.data.length; i += 3) sheet.data.set(background, i);
  cells.forEach((cell, index) => {
    const left = gap + (index % used) * (width + gap);
    const top = gap + Math.floor(index / used) * (height + gap);
    for (let y = 0; y < height; y++) {
      let out = ((top + y) * sheet.width + left) * 3;
      let source = y * width * first.channels;
      for (let x = 0; x < width; x++, out += 3, source += first.channels) {
        sheet.data[out] = cell.data[source];
        sheet.data[out + 1] = cell.data[source + 1];
        sheet.data[out + 2] = cell.data[source + 2];
      }
    }
  });
  return sheet;
}

/** Writes a contact sheet of `frames` as a PNG file, atomically. */
export async function writeContactSheet(
  path: string,
  frames: readonly RgbImage[],
  options: ContactSheetOptions & AtomicOutputOptions = {},
): Promise<void> {
  await writeFileAtomic(path, encodePng(contactSheet(frames, options)), options);
}

/** Averages each `factor x factor` block (rounding half up); a partial last row or column is dropped. */
function shrink(image: RgbImage, factor: number): RgbImage {
  const width = Math.max(1, Math.floor(image.width / factor));
  const height = Math.max(1, Math.floor(image.height / factor));
  const blockWidth = Math.min(factor, image.width);
  const blockHeight = Math.min(factor, image.height);
  const { channels } = image;
  const out = createImage(width, height, channels);
  const area = blockWidth * blockHeight;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) {
        let sum = 0;
        for (let dy = 0; dy < blockHeight; dy++) {
          let index = ((y * factor + dy) * image.width + x * factor) * channels + c;
          for (let dx = 0; dx < blockWidth; dx++, index += channels) sum += image.data[index];
        }
        out.data[(y * width + x) * channels + c] = Math.floor((sum + area / 2) / area);
      }
    }
  }
  return out;
}
