/**
 * save_video: frames to an MP4 (H.264), a GIF or a folder of PNG frames, with a contact sheet PNG
 * beside it for a quick look. Written atomically; an existing file is kept unless `if_exists`
 * says otherwise. A batch of videos gets one file per video (`name-0.mp4`, `name-1.mp4`).
 *
 * @module
 */

import { basename, dirname, extname, join } from "node:path";
import { z } from "zod";
import { defineNode, outputPath, pathsPort } from "../engine/mod.ts";
import { writeContactSheet } from "../media/contact_sheet.ts";
import { videoTensorToFrames } from "../media/frames.ts";
import { type VideoFormat, videoFormatOf, writeVideo } from "../media/video_writer.ts";
import { ifExistsSetting, withIfExists } from "../runtime/output_target.ts";
import { sliceBatch } from "../runtime/tensor_ops.ts";
import { videoPort } from "./ports.ts";

/** The save_video node type. */
export const saveVideo = defineNode({
  type: "save_video",
  version: 1,
  description: "Saves frames as MP4, GIF or PNG frames, plus a contact sheet PNG",
  category: "output",
  inputs: { frames: videoPort() },
  settings: {
    path: outputPath(),
    format: z.enum(["auto", "mp4", "gif", "png"]).default("auto"),
    fps: z.number().positive().default(8),
    contact_sheet: z.boolean().default(true),
    if_exists: ifExistsSetting,
  },
  outputs: { files: pathsPort() },
  output: true,
  infer(ctx, _inputs, { path, format }) {
    if (format !== "auto") return;
    try {
      videoFormatOf(path);
    } catch (error) {
      ctx.error((error as Error).message, { setting: "path" });
    }
  },
  async run(ctx, { frames }, settings) {
    const format: VideoFormat = settings.format === "auto"
      ? videoFormatOf(settings.path)
      : settings.format;
    const count = frames.shape[0];
    const files: string[] = [];
    for (let index = 0; index < count; index++) {
      ctx.signal.throwIfAborted();
      const images = videoTensorToFrames(sliceBatch(frames, index, index + 1));
      const path = count === 1 ? settings.path : numbered(settings.path, index);
      const written = await withIfExists(
        path,
        settings.if_exists,
        (target, overwrite) =>
          writeVideo(target, images, { format, fps: settings.fps, overwrite, signal: ctx.signal }),
      );
      files.push(written);
      if (settings.contact_sheet) {
        const sheet = await withIfExists(
          sheetPath(written),
          "overwrite",
          (target, overwrite) =>
            writeContactSheet(target, images, { overwrite, signal: ctx.signal }),
        );
        files.push(sheet);
      }
      ctx.progress(index + 1, count);
    }
    for (const file of files) await ctx.dependsOnFile(file);
    return { files };
  },
});

/** `out/video.mp4` with index 1 is `out/video-1.mp4`. */
function numbered(path: string, index: number): string {
  const extension = extname(path);
  return join(dirname(path), `${basename(path, extension)}-${index}${extension}`);
}

/** The contact sheet beside a video: `out/video.mp4` has `out/video.sheet.png`. */
export function sheetPath(video: string): string {
  const extension = extname(video);
  return join(dirname(video), `${basename(video, extension)}.sheet.png`);
}
