/**
 * save_video: frames to an MP4 (H.264), a GIF or a folder of PNG frames, with a contact sheet PNG
 * beside it for a quick look. Written atomically under the output policy of
 * `runtime/output_target.ts`: an existing file is kept unless `if_exists` says otherwise, and the
 * contact sheet follows the video's name and policy. A batch of videos gets one file per video
 * (`name-0.mp4`, `name-1.mp4`).
 *
 * @module
 */

import { basename, dirname, extname, join } from "node:path";
import { z } from "zod";
import { defineNode, outputPath, pathsPort } from "../engine/mod.ts";
import { writeContactSheet } from "../media/contact_sheet.ts";
import { videoTensorToFrames } from "../media/frames.ts";
import { type VideoFormat, videoFormatOf, writeVideo } from "../media/video_writer.ts";
import {
  checkOutputTargets,
  ifExistsSetting,
  incrementedPath,
  outputPathProblem,
  writeOutput,
} from "../runtime/output_target.ts";
import { sliceBatch } from "../runtime/tensor_ops.ts";
import { videoPort } from "./ports.ts";

/** The save_video node type. */
export const saveVideo = defineNode({
  type: "save_video",
  version: 1,
  description: "Saves frames as MP4, GIF or PNG frames, plus a contact sheet PNG",
  category: "output",
  inputs: {
    frames: videoPort().describe(
      "Videos [batch, frames, 3, height, width], float32 in [0, 1], from vae_decode",
    ),
  },
  settings: {
    path: outputPath().describe(
      "The .mp4 or .gif file, or a folder for PNG frames; a batch writes name-0, name-1, ... (relative to the current folder)",
    ),
    format: z.enum(["auto", "mp4", "gif", "png"]).default("auto").describe(
      "Video format; auto: from the path's extension, .mp4 or .gif, none for PNG frames (default auto)",
    ),
    fps: z.number().positive().default(8).describe(
      "Frames per second of MP4 and GIF videos (default 8, as CogVideoX makes them)",
    ),
    contact_sheet: z.boolean().default(true).describe(
      "Also write a PNG of all frames beside each video, name.sheet.png (default true)",
    ),
    if_exists: ifExistsSetting.describe(
      "When a video exists: error refuses, overwrite replaces it, increment writes the first free of name-1, name-2, ... (default error)",
    ),
  },
  outputs: {
    files: pathsPort().describe("The absolute paths written: each video, then its contact sheet"),
  },
  output: true,
  async infer(ctx, _inputs, { path, format, contact_sheet, if_exists }) {
    let chosen: VideoFormat = format === "auto" ? "png" : format;
    if (format === "auto") {
      try {
        chosen = videoFormatOf(path);
      } catch (error) {
        ctx.error((error as Error).message, { setting: "path" });
        return;
      }
    }
    const problem = await outputPathProblem(path, if_exists, { folder: chosen === "png" }) ??
      (contact_sheet ? await outputPathProblem(sheetPath(path), if_exists) : undefined);
    if (problem) ctx.error(problem, { setting: "path" });
  },
  async run(ctx, { frames }, settings) {
    const format: VideoFormat = settings.format === "auto"
      ? videoFormatOf(settings.path)
      : settings.format;
    const count = frames.shape[0];
    const paths = Array.from(
      { length: count },
      (_, index) => count === 1 ? settings.path : incrementedPath(settings.path, index),
    );
    // The contact sheet follows the video: its name is the video's, and an existing one counts.
    const target = {
      folder: format === "png",
      companions: settings.contact_sheet ? (video: string) => [sheetPath(video)] : undefined,
    };
    await checkOutputTargets(paths, settings.if_exists, target);
    const files: string[] = [];
    for (const [index, path] of paths.entries()) {
      ctx.signal.throwIfAborted();
      const images = videoTensorToFrames(sliceBatch(frames, index, index + 1));
      const written = await writeOutput(
        path,
        settings.if_exists,
        (temporary) =>
          writeVideo(temporary, images, { format, fps: settings.fps, signal: ctx.signal }),
        { ...target, signal: ctx.signal },
      );
      files.push(written);
      if (settings.contact_sheet) {
        const sheet = await writeOutput(
          sheetPath(written),
          settings.if_exists === "overwrite" ? "overwrite" : "error",
          (temporary) => writeContactSheet(temporary, images, { signal: ctx.signal }),
          { signal: ctx.signal },
        );
        files.push(sheet);
      }
      ctx.progress(index + 1, count);
    }
    for (const file of files) await ctx.dependsOnFile(file);
    return { files };
  },
});

/** The contact sheet beside a video: `out/video.mp4` has `out/video.sheet.png`. */
export function sheetPath(video: string): string {
  const extension = extname(video);
  return join(dirname(video), `${basename(video, extension)}.sheet.png`);
}
