/**
 * 8-bit images as the media layer passes them around: interleaved RGB or RGBA bytes, row-major,
 * top row first (the layout of ffmpeg's `rgb24`/`rgba` and of PNG scanlines).
 *
 * @module
 */

/** An 8-bit RGB or RGBA image. */
export interface RgbImage {
  /** Width in pixels. */
  readonly width: number;
  /** Height in pixels. */
  readonly height: number;
  /** 3 for RGB, 4 for RGBA. */
  readonly channels: 3 | 4;
  /** `height * width * channels` bytes: rows top to bottom, pixels left to right, channels interleaved. */
  readonly data: Uint8Array;
}

/**
 * Makes an image, checking its size and that the data matches it.
 * Without `data`, the image is black (and fully transparent when RGBA).
 */
export function createImage(
  width: number,
  height: number,
  channels: 3 | 4 = 3,
  data?: Uint8Array,
): RgbImage {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`Invalid image size ${width}x${height}: expected positive integers`);
  }
  if (channels !== 3 && channels !== 4) {
    throw new RangeError(`Invalid image channel count ${channels}: expected 3 or 4`);
  }
  const length = width * height * channels;
  const pixels = data ?? new Uint8Array(length);
  if (pixels.length !== length) {
    throw new RangeError(
      `Image data has ${pixels.length} bytes but ${width}x${height}x${channels} needs ${length}`,
    );
  }
  return { width, height, channels, data: pixels };
}

/** Checks that frames are non-empty and share one size and channel count; returns the first. */
export function checkSameSize(frames: readonly RgbImage[], what = "frames"): RgbImage {
  if (frames.length === 0) throw new RangeError(`Expected at least one of ${what}, got none`);
  const first = frames[0];
  frames.forEach((frame, index) => {
    if (
      frame.width !== first.width || frame.height !== first.height ||
      frame.channels !== first.channels
    ) {
      throw new RangeError(
        `All ${what} must have one size: frame 0 is ${describe(first)}, ` +
          `frame ${index} is ${describe(frame)}`,
      );
    }
  });
  return first;
}

function describe(image: RgbImage): string {
  return `${image.width}x${image.height} ${image.channels === 3 ? "RGB" : "RGBA"}`;
}
