/**
 * PNG encoding of 8-bit RGB/RGBA images, and a small decoder for non-interlaced 8-bit PNGs
 * (grey, grey+alpha, RGB, RGBA), enough to read back what {@link encodePng} and ffmpeg write.
 *
 * Each row gets the filter that minimises the sum of absolute filtered bytes, the heuristic
 * libpng recommends; the scanlines are then deflated with zlib.
 *
 * @module
 */

import { deflateSync, inflateSync } from "node:zlib";
import { createImage, type RgbImage } from "./image.ts";

/** Options of {@link encodePng}. */
export interface PngOptions {
  /** zlib compression level, 0 (none) to 9 (smallest). */
  compressionLevel?: number;
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const COLOR_TYPE_BY_CHANNELS = { 3: 2, 4: 6 } as const;
const CHANNELS_BY_COLOR_TYPE: Readonly<Record<number, number>> = { 0: 1, 2: 3, 4: 2, 6: 4 };

const CRC_TABLE = makeCrcTable();

/** CRC-32 (ISO-HDLC, as in PNG and zlib) of `bytes`, continuing from `crc` when given. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** Encodes an 8-bit RGB or RGBA image as PNG. */
export function encodePng(image: RgbImage, options: PngOptions = {}): Uint8Array {
  const { width, height, channels, data } = createImage(
    image.width,
    image.height,
    image.channels,
    image.data,
  );
  const stride = width * channels;
  const scanlines = new Uint8Array(height * (stride + 1));
  const candidates = Array.from({ length: 5 }, () => new Uint8Array(stride));
  for (let y = 0; y < height; y++) {
    const row = data.subarray(y * stride, (y + 1) * stride);
    const above = y > 0 ? data.subarray((y - 1) * stride, y * stride) : null;
    let best = 0;
    let bestScore = Infinity;
    for (let filter = 0; filter < 5; filter++) {
      const score = filterRow(filter, row, above, channels, candidates[filter]);
      if (score < bestScore) {
        best = filter;
        bestScore = score;
      }
    }
    scanlines[y * (stride + 1)] = best;
    scanlines.set(candidates[best], y * (stride + 1) + 1);
  }
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header[8] = 8; // bit depth
  header[9] = COLOR_TYPE_BY_CHANNELS[channels];
  // Bytes 10 to 12: compression, filter method and interlace, all 0.
  const compressed = deflateSync(scanlines, { level: options.compressionLevel ?? 6 });
  return concat([
    new Uint8Array(SIGNATURE),
    chunk("IHDR", header),
    chunk("IDAT", new Uint8Array(compressed.buffer, compressed.byteOffset, compressed.byteLength)),
    chunk("IEND", new Uint8Array(0)),
  ]);
}

/**
 * Decodes a non-interlaced 8-bit PNG. Grey images become RGB and grey+alpha becomes RGBA;
 * palette, 16-bit and interlaced images are rejected. Chunk CRCs are checked.
 */
export function decodePng(bytes: Uint8Array, source = "PNG data"): RgbImage {
  if (bytes.length < 8 || SIGNATURE.some((byte, i) => bytes[i] !== byte)) {
    throw new Error(`Invalid PNG ${source}: missing the PNG signature`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const idat: Uint8Array[] = [];
  let header: Uint8Array | undefined;
  let offset = 8;
  while (offset + 12 <= bytes.length) {
    const length = view.getUint32(offset);
    const type = String.fromCharCode(...bytes.subarray(offset + 4, offset + 8));
    const end = offset + 12 + length;
    if (end > bytes.length) throw new Error(`Invalid PNG ${source}: chunk "${type}" is truncated`);
    const body = bytes.subarray(offset + 8, offset + 8 + length);
    if (crc32(bytes.subarray(offset + 4, offset + 8 + length)) !== view.getUint32(end - 4)) {
      throw new Error(`Invalid PNG ${source}: bad CRC in chunk "${type}"`);
    }
    if (type === "IHDR") header = body;
    else if (type === "IDAT") idat.push(body);
    else if (type === "IEND") break;
    offset = end;
  }
  if (!header || header.length !== 13) throw new Error(`Invalid PNG ${source}: missing IHDR`);
  const headerView = new DataView(header.buffer, header.byteOffset, 13);
  const width = headerView.getUint32(0);
  const height = headerView.getUint32(4);
  const [bitDepth, colorType, , , interlace] = header.subarray(8);
  const sourceChannels = CHANNELS_BY_COLOR_TYPE[colorType];
  if (bitDepth !== 8 || !sourceChannels || interlace !== 0) {
    throw new Error(
      `Unsupported PNG ${source}: bit depth ${bitDepth}, color type ${colorType}, ` +
        `interlace ${interlace} (expected 8-bit grey, RGB or RGBA, not interlaced)`,
    );
  }
  const stride = width * sourceChannels;
  const scanlines = inflateSync(concat(idat));
  if (scanlines.length < height * (stride + 1)) {
    throw new Error(`Invalid PNG ${source}: image data is shorter than ${width}x${height}`);
  }
  const pixels = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = scanlines[y * (stride + 1)];
    const row = pixels.subarray(y * stride, (y + 1) * stride);
    row.set(scanlines.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)));
    const above = y > 0 ? pixels.subarray((y - 1) * stride, y * stride) : null;
    unfilterRow(filter, row, above, sourceChannels, source);
  }
  return toRgb(width, height, sourceChannels, pixels);
}

/** Writes `row` filtered with `filter` into `out`; returns the sum of absolute values (as signed bytes). */
function filterRow(
  filter: number,
  row: Uint8Array,
  above: Uint8Array | null,
  bpp: number,
  out: Uint8Array,
): number {
  let score = 0;
  for (let i = 0; i < row.length; i++) {
    const a = i >= bpp ? row[i - bpp] : 0;
    const b = above ? above[i] : 0;
    const c = above && i >= bpp ? above[i - bpp] : 0;
    const value = (row[i] - predict(filter, a, b, c)) & 0xff;
    out[i] = value;
    score += value < 128 ? value : 256 - value;
  }
  return score;
}

/** Reverses a row's filter in place. */
function unfilterRow(
  filter: number,
  row: Uint8Array,
  above: Uint8Array | null,
  bpp: number,
  source: string,
): void {
  if (filter > 4) throw new Error(`Invalid PNG ${source}: unknown filter type ${filter}`);
  for (let i = 0; i < row.length; i++) {
    const a = i >= bpp ? row[i - bpp] : 0;
    const b = above ? above[i] : 0;
    const c = above && i >= bpp ? above[i - bpp] : 0;
    row[i] = (row[i] + predict(filter, a, b, c)) & 0xff;
  }
}

/** The PNG predictor of a byte from its left (`a`), upper (`b`) and upper-left (`c`) neighbours. */
function predict(filter: number, a: number, b: number, c: number): number {
  switch (filter) {
    case 0:
      return 0;
    case 1:
      return a;
    case 2:
      return b;
    case 3:
      return (a + b) >>> 1;
    default: {
      const p = a + b - c;
      const pa = Math.abs(p - a);
      const pb = Math.abs(p - b);
      const pc = Math.abs(p - c);
      return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }
  }
}

function toRgb(width: number, height: number, channels: number, pixels: Uint8Array): RgbImage {
  if (channels === 3 || channels === 4) return createImage(width, height, channels, pixels);
  const hasAlpha = channels === 2;
  const out = createImage(width, height, hasAlpha ? 4 : 3);
  for (let i = 0, o = 0; i < pixels.length; i += channels) {
    out.data[o++] = pixels[i];
    out.data[o++] = pixels[i];
    out.data[o++] = pixels[i];
    if (hasAlpha) out.data[o++] = pixels[i + 1];
  }
  return out;
}

function chunk(type: string, body: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(12 + body.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, body.length);
  for (let i = 0; i < 4; i++) bytes[4 + i] = type.charCodeAt(i);
  bytes.set(body, 8);
  view.setUint32(8 + body.length, crc32(bytes.subarray(4, 8 + body.length)));
  return bytes;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function makeCrcTable(): Uint32Array {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}
