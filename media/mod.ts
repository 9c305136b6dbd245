/**
 * The media layer: from a decoded video tensor to files people can watch.
 *
 * - {@link videoTensorToFrames}: float `[F, 3, H, W]` in [0, 1] to 8-bit RGB frames, rounded
 *   like diffusers.
 * - {@link writeMp4}, {@link writeGif}, {@link writePngFrames}, {@link writeVideo}: frames to
 *   files through ffmpeg (or our PNG encoder), atomically and abortably.
 * - {@link contactSheet}, {@link writeContactSheet}: all frames in a grid on one PNG.
 * - {@link encodePng}, {@link decodePng}: 8-bit RGB/RGBA PNG.
 *
 * @module
 */

export { checkSameSize, createImage, type RgbImage } from "./image.ts";
export { crc32, decodePng, encodePng, type PngOptions } from "./png.ts";
export {
  type FramesOptions,
  type Rounding,
  roundToByte,
  truncateToByte,
  videoTensorToFrames,
} from "./frames.ts";
export {
  autoColumns,
  contactSheet,
  contactSheetDefaults,
  type ContactSheetOptions,
  writeContactSheet,
} from "./contact_sheet.ts";
export {
  ffmpegPath,
  type Mp4Options,
  videoDefaults,
  type VideoFormat,
  videoFormatOf,
  type VideoOptions,
  writeGif,
  writeMp4,
  writePngFrames,
  writeVideo,
} from "./video_writer.ts";
