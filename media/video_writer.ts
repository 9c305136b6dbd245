/**
 * Writing frames out as a video: MP4 (H.264), GIF, or a folder of PNG files.
 *
 * MP4 and GIF pipe raw `rgb24` (or `rgba`) frames into ffmpeg's stdin. Every output is atomic
 * (see `runtime/atomic_file.ts`): ffmpeg writes to a hidden temporary path, with an explicit
 * `-f mp4` / `-f gif` since that path has no extension, and the result is renamed into place
 * only when ffmpeg succeeds. On failure or abort, ffmpeg is stopped, the temporary output
 * removed, and an existing file at the target is left as it was.
 *
 * ffmpeg is found through {@link ffmpegPath}: the `ffmpeg` option, else the `COGFLOW_FFMPEG`
 * environment variable, else the binary of the `@ffmpeg-installer/ffmpeg` npm package, which is
 * imported only then.
 *
 * @module
 */

import { join } from "node:path";
import { type AtomicOutputOptions, withAtomicOutput } from "../runtime/atomic_file.ts";
import { checkSameSize, createImage, type RgbImage } from "./image.ts";
import { encodePng } from "./png.ts";
import { encodeThroughBroker, ffmpegBrokerPath } from "./ffmpeg_client.ts";
import { type EncodeRequest, ffmpegArgs } from "./ffmpeg_protocol.ts";

/** Options of every video writer. */
export interface VideoOptions extends AtomicOutputOptions {
  /** Frames per second; CogVideoX videos are 8 fps. */
  fps?: number;
  /** Path of the ffmpeg binary; overrides `COGFLOW_FFMPEG` and the npm package. */
  ffmpeg?: string;
}

/** Options of {@link writeMp4}. */
export interface Mp4Options extends VideoOptions {
  /** x264 constant rate factor: 0 is lossless, 18 visually lossless, 23 x264's default. */
  crf?: number;
  /** x264 speed/size preset, `ultrafast` to `veryslow`. */
  preset?: string;
}

/** Output formats of {@link writeVideo}: a file, or `"png"` for a folder of PNG frames. */
export type VideoFormat = "mp4" | "gif" | "png";

/** Defaults of {@link Mp4Options}. */
export const videoDefaults = {
  fps: 8,
  crf: 18,
  preset: "medium",
} satisfies Mp4Options;

/**
 * The ffmpeg binary to run: `options.ffmpeg`, else `$COGFLOW_FFMPEG`, else the one that the
 * `@ffmpeg-installer/ffmpeg` npm package ships (imported lazily, on first use).
 */
export async function ffmpegPath(options: { ffmpeg?: string } = {}): Promise<string> {
  if (options.ffmpeg) return options.ffmpeg;
  const fromEnvironment = Deno.env.get("COGFLOW_FFMPEG");
  if (fromEnvironment) return fromEnvironment;
  try {
    const installer = await import("@ffmpeg-installer/ffmpeg");
    return installer.default.path;
  } catch (error) {
    // The package throws plain strings when it has no binary for this platform.
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(
      `Cannot find ffmpeg: set COGFLOW_FFMPEG or pass the ffmpeg option: ${reason}`,
    );
  }
}

/**
 * Writes frames as an H.264 MP4 (libx264, `yuv420p`, `+faststart` so that playback can start
 * before the whole file is downloaded).
 *
 * `yuv420p` stores colour at half resolution, so width and height must be even: an odd-sized
 * video gets its last column and/or row repeated once, making it one pixel wider or taller
 * (rather than scaled, which would blur every frame, or padded with black). The RGB to YUV
 * conversion uses the BT.709 matrix at limited range, and the file is tagged so, which is what
 * players assume for HD video (ffmpeg's default would be untagged BT.601).
 */
export async function writeMp4(
  path: string,
  frames: readonly RgbImage[],
  options: Mp4Options = {},
): Promise<void> {
  const crf = options.crf ?? videoDefaults.crf;
  const preset = options.preset ?? videoDefaults.preset;
  if (!Number.isFinite(crf) || crf < 0 || crf > 51) {
    throw new RangeError(`Invalid MP4 crf ${crf}: expected a number from 0 to 51`);
  }
  checkSameSize(frames);
  const evenFrames = frames.map(padToEven);
  await encodeWithFfmpeg(path, evenFrames, { format: "mp4", crf, preset }, options);
}

/**
 * Writes frames as a looping GIF. One ffmpeg call computes a palette from all frames
 * (`palettegen`) and maps the frames to it with dithering (`paletteuse`), which looks much
 * better than ffmpeg's fixed default palette.
 */
export async function writeGif(
  path: string,
  frames: readonly RgbImage[],
  options: VideoOptions = {},
): Promise<void> {
  await encodeWithFfmpeg(path, frames, { format: "gif" }, options);
}

/**
 * Writes each frame as a PNG file in a new folder `dir`: `frame_0000.png`, `frame_0001.png`
 * and so on (more digits past 10000 frames). The folder is written under a temporary name and
 * renamed when complete. Returns the paths of the files.
 */
export async function writePngFrames(
  dir: string,
  frames: readonly RgbImage[],
  options: AtomicOutputOptions = {},
): Promise<string[]> {
  checkSameSize(frames);
  const names = frames.map((_, index) => frameFileName(index, frames.length));
  await withAtomicOutput(dir, async (temporaryDir) => {
    await Deno.mkdir(temporaryDir);
    for (const [index, frame] of frames.entries()) {
      options.signal?.throwIfAborted();
      await Deno.writeFile(join(temporaryDir, names[index]), encodePng(frame));
    }
  }, options);
  return names.map((name) => join(dir, name));
}

/**
 * Writes frames in `format`, or in the format named by the extension of `path` (`.mp4`, `.gif`;
 * a path without one is a folder of PNG frames).
 */
export async function writeVideo(
  path: string,
  frames: readonly RgbImage[],
  options: Mp4Options & { format?: VideoFormat } = {},
): Promise<void> {
  const format = options.format ?? videoFormatOf(path);
  if (format === "mp4") await writeMp4(path, frames, options);
  else if (format === "gif") await writeGif(path, frames, options);
  else if (format === "png") await writePngFrames(path, frames, options);
  else throw new RangeError(`Unknown video format "${format}": expected "mp4", "gif" or "png"`);
}

/** The format that the extension of `path` names: `.mp4`, `.gif`, or none for a PNG folder. */
export function videoFormatOf(path: string): VideoFormat {
  const name = path.split(/[\\/]/).pop() ?? "";
  const extension = /\.([^.]+)$/.exec(name)?.[1]?.toLowerCase();
  if (extension === "mp4") return "mp4";
  if (extension === "gif") return "gif";
  if (extension === undefined) return "png";
  throw new RangeError(
    `Cannot tell the video format of "${path}": expected a .mp4 or .gif file, ` +
      `or a folder name without an extension for PNG frames`,
  );
}

/** Name of frame `index` of `count` in a PNG folder. */
function frameFileName(index: number, count: number): string {
  const digits = Math.max(4, String(count - 1).length);
  return `frame_${String(index).padStart(digits, "0")}.png`;
}

/**
 * Encodes raw frames with ffmpeg: through the launcher's broker when this process runs under it
 * (it may run no program itself), else by running ffmpeg here.
 */
async function encodeWithFfmpeg(
  path: string,
  frames: readonly RgbImage[],
  encoding: Pick<EncodeRequest, "format" | "crf" | "preset">,
  options: VideoOptions,
): Promise<void> {
  const fps = options.fps ?? videoDefaults.fps;
  if (!Number.isFinite(fps) || fps <= 0) {
    throw new RangeError(`Invalid fps ${fps}: expected a positive number`);
  }
  const { width, height, channels } = checkSameSize(frames);
  const request: EncodeRequest = {
    ...encoding,
    width,
    height,
    channels: channels === 3 ? 3 : 4,
    fps,
    frames: frames.length,
  };
  const broker = ffmpegBrokerPath();
  if (broker) {
    await withAtomicOutput(path, async (temporaryPath) => {
      const data = frames.map((frame) => frame.data);
      const bytes = await encodeThroughBroker(broker, request, data, options.signal).catch(
        (error) => {
          options.signal?.throwIfAborted();
          throw new Error(`Cannot write "${path}": ${(error as Error).message}`);
        },
      );
      await Deno.writeFile(temporaryPath, bytes, { createNew: true, signal: options.signal });
    }, options);
    return;
  }
  const executable = await ffmpegPath(options);
  await withAtomicOutput(path, async (temporaryPath) => {
    const args = ffmpegArgs(request, temporaryPath);
    await runWithInput(executable, args, frames, path, options.signal);
  }, options);
}

/**
 * Spawns `executable`, writes every frame to its stdin and waits for it. Stderr is collected
 * as it comes (so that a chatty process never blocks) and quoted in the error if it fails.
 */
async function runWithInput(
  executable: string,
  args: string[],
  frames: readonly RgbImage[],
  path: string,
  signal: AbortSignal | undefined,
): Promise<void> {
  signal?.throwIfAborted();
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(executable, {
      args,
      stdin: "piped",
      stdout: "null",
      stderr: "piped",
      signal,
    }).spawn();
  } catch (error) {
    throw new Error(`Cannot run ffmpeg "${executable}": ${(error as Error).message}`);
  }
  const stderr = new Response(child.stderr).text();
  const stdin = child.stdin.getWriter();
  let writeError: unknown;
  try {
    for (const frame of frames) await stdin.write(frame.data);
    await stdin.close();
  } catch (error) {
    // ffmpeg stopped reading (it failed or was killed): its status and stderr say why.
    writeError = error;
    await stdin.abort(error).catch(() => {});
  }
  const [status, message] = await Promise.all([child.status, stderr]);
  signal?.throwIfAborted();
  const detail = lastChars(message.trim(), 4000);
  if (!status.success) {
    const exit = status.signal ? `signal ${status.signal}` : `exit code ${status.code}`;
    throw new Error(
      `ffmpeg failed to write "${path}" (${exit})${detail ? `: ${detail}` : ""}`,
    );
  }
  if (writeError) {
    const reason = writeError instanceof Error ? writeError.message : String(writeError);
    throw new Error(`ffmpeg stopped reading frames for "${path}": ${reason}`);
  }
}

/** The frame itself if its size is even, else a copy with the last column and/or row repeated. */
function padToEven(frame: RgbImage): RgbImage {
  const { width, height, channels, data } = frame;
  if (width % 2 === 0 && height % 2 === 0) return frame;
  const paddedWidth = width + (width % 2);
  const paddedHeight = height + (height % 2);
  const out = createImage(paddedWidth, paddedHeight, channels);
  const rowBytes = width * channels;
  const paddedRowBytes = paddedWidth * channels;
  for (let y = 0; y < paddedHeight; y++) {
    const sourceRow = Math.min(y, height - 1) * rowBytes;
    const outRow = y * paddedRowBytes;
    out.data.set(data.subarray(sourceRow, sourceRow + rowBytes), outRow);
    if (paddedWidth !== width) {
      const lastPixel = sourceRow + rowBytes - channels;
      out.data.set(data.subarray(lastPixel, lastPixel + channels), outRow + rowBytes);
    }
  }
  return out;
}

function lastChars(text: string, count: number): string {
  return text.length <= count ? text : `...${text.slice(text.length - count)}`;
}
