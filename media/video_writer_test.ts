import assert from "node:assert/strict";
import { join } from "node:path";
import { createImage, type RgbImage } from "./image.ts";
import { decodePng } from "./png.ts";
import { fileNames, withTempDir } from "../tests/testing.ts";
import {
  ffmpegPath,
  videoFormatOf,
  writeGif,
  writeMp4,
  writePngFrames,
  writeVideo,
} from "./video_writer.ts";

const RED: [number, number, number] = [200, 60, 30];

function solidFrames(count: number, width: number, height: number, rgb = RED): RgbImage[] {
  return Array.from({ length: count }, () => {
    const frame = createImage(width, height, 3);
    for (let i = 0; i < frame.data.length; i += 3) frame.data.set(rgb, i);
    return frame;
  });
}

/** What `ffmpeg -i path` says about the input (it exits with an error: no output given). */
async function probe(path: string): Promise<string> {
  const { stderr } = await new Deno.Command(await ffmpegPath(), {
    args: ["-hide_banner", "-i", path],
    stdout: "null",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(stderr);
}

/** Decodes every frame of a video file to raw rgb24 bytes. */
async function decodeRgb(path: string): Promise<Uint8Array> {
  const { success, stdout, stderr } = await new Deno.Command(await ffmpegPath(), {
    args: [
      "-hide_banner",
      "-loglevel",
      "error",
      "-i",
      path,
      "-f",
      "rawvideo",
      "-pix_fmt",
      "rgb24",
      "-",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(success, new TextDecoder().decode(stderr));
  return stdout;
}

function assertAllPixelsNear(rgb: Uint8Array, expected: readonly number[], tolerance: number) {
  for (let i = 0; i < rgb.length; i++) {
    const difference = Math.abs(rgb[i] - expected[i % 3]);
    if (difference > tolerance) {
      assert.fail(
        `Pixel ${Math.floor(i / 3)} is ${[...rgb.subarray(i - (i % 3), i - (i % 3) + 3)]}`,
      );
    }
  }
}

/** A stand-in for ffmpeg: a shell script, to make failures and hangs happen on cue. */
async function fakeFfmpeg(dir: string, body: string): Promise<string> {
  const path = join(dir, "fake_ffmpeg.sh");
  await Deno.writeTextFile(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return path;
}

Deno.test("writeMp4 writes H.264 yuv420p with faststart, padding odd sizes to even", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "out", "video.mp4");
    await writeMp4(path, solidFrames(3, 17, 9), { fps: 8, preset: "ultrafast" });
    assert.deepEqual(await fileNames(join(dir, "out")), ["video.mp4"]);

    const info = await probe(path);
    assert.match(info, /Video: h264 .*yuv420p\(tv, bt709.*\), 18x10/);
    assert.match(info, / 8 fps/);

    const bytes = await Deno.readFile(path);
    const text = new TextDecoder("latin1").decode(bytes);
    assert.equal(text.slice(4, 8), "ftyp");
    assert.ok(text.indexOf("moov") < text.indexOf("mdat"), "moov should come first (+faststart)");

    const rgb = await decodeRgb(path);
    assert.equal(rgb.length, 3 * 18 * 10 * 3);
    assertAllPixelsNear(rgb, RED, 4);
  });
});

Deno.test("writeMp4 keeps an existing file and leaves no temporary file when ffmpeg fails", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "video.mp4");
    await Deno.writeTextFile(path, "previous");
    await assert.rejects(
      writeMp4(path, solidFrames(2, 8, 8), { preset: "bogus", overwrite: true }),
      (error: Error) => {
        assert.match(error.message, /^ffmpeg failed to write ".*video\.mp4" \(exit code 1\): /);
        assert.match(error.message, /invalid preset 'bogus'/);
        return true;
      },
    );
    assert.equal(await Deno.readTextFile(path), "previous");
    assert.deepEqual(await fileNames(dir), ["video.mp4"]);

    await assert.rejects(writeMp4(path, solidFrames(2, 8, 8)), /already exists/);
  });
});

Deno.test("writeGif writes a looping GIF with a palette that fits the colours", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "video.gif");
    const frames = [...solidFrames(2, 10, 6), ...solidFrames(2, 10, 6, [20, 120, 250])];
    await writeGif(path, frames, { fps: 4 });
    const bytes = await Deno.readFile(path);
    assert.equal(new TextDecoder().decode(bytes.subarray(0, 6)), "GIF89a");
    const view = new DataView(bytes.buffer);
    assert.equal(view.getUint16(6, true), 10); // logical screen width
    assert.equal(view.getUint16(8, true), 6);
    assert.ok(new TextDecoder("latin1").decode(bytes).includes("NETSCAPE2.0"), "loops");

    const rgb = await decodeRgb(path);
    const frameBytes = 10 * 6 * 3;
    assertAllPixelsNear(rgb.subarray(0, frameBytes), RED, 2);
    assertAllPixelsNear(rgb.subarray(rgb.length - frameBytes), [20, 120, 250], 2);
  });
});

Deno.test("writePngFrames writes numbered PNG files into a new folder", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "frames");
    const frames = [...solidFrames(1, 5, 3), ...solidFrames(1, 5, 3, [1, 2, 3])];
    const written = await writePngFrames(path, frames);
    assert.deepEqual(written, [join(path, "frame_0000.png"), join(path, "frame_0001.png")]);
    assert.deepEqual(await fileNames(dir), ["frames"]);
    for (const [index, file] of written.entries()) {
      assert.deepEqual(decodePng(await Deno.readFile(file)), frames[index]);
    }
    await assert.rejects(writePngFrames(path, frames), /already exists/);
    await writePngFrames(path, frames.slice(1), { overwrite: true });
    // The manifest marks the folder as cogflow's: overwrite may replace only what it lists.
    assert.deepEqual(await fileNames(path), [".cogflow-output.json", "frame_0000.png"]);
  });
});

Deno.test("aborting kills ffmpeg and leaves nothing behind", async () => {
  await withTempDir(async (dir) => {
    // The fake creates its output, then hangs without reading its input.
    const ffmpeg = await fakeFfmpeg(
      dir,
      'for last; do :; done\necho partial > "$last"\nexec sleep 60',
    );
    const path = join(dir, "out", "video.mp4");
    const controller = new AbortController();
    const writing = writeMp4(path, solidFrames(4, 64, 64), { ffmpeg, signal: controller.signal });
    while (!(await fileNames(join(dir, "out")).catch(() => [])).length) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    controller.abort(new Error("Stopped by the user"));
    await assert.rejects(writing, /Stopped by the user/);
    assert.deepEqual(await fileNames(join(dir, "out")), []);
  });
});

Deno.test("an already aborted signal writes nothing", async () => {
  await withTempDir(async (dir) => {
    const signal = AbortSignal.abort(new Error("Too late"));
    await assert.rejects(
      writeGif(join(dir, "a.gif"), solidFrames(1, 2, 2), { signal }),
      /Too late/,
    );
    await assert.rejects(
      writePngFrames(join(dir, "a"), solidFrames(1, 2, 2), { signal }),
      /Too late/,
    );
    assert.deepEqual(await fileNames(dir), []);
  });
});

Deno.test("ffmpeg's stderr is trimmed into the error message", async () => {
  await withTempDir(async (dir) => {
    const ffmpeg = await fakeFfmpeg(dir, `echo "  Unknown encoder 'libx264'  " >&2\nexit 3`);
    await assert.rejects(
      writeMp4(join(dir, "v.mp4"), solidFrames(1, 2, 2), { ffmpeg }),
      {
        message: `ffmpeg failed to write "${
          join(dir, "v.mp4")
        }" (exit code 3): Unknown encoder 'libx264'`,
      },
    );
    await assert.rejects(
      writeGif(join(dir, "v.gif"), solidFrames(1, 2, 2), { ffmpeg: join(dir, "missing") }),
      /Cannot run ffmpeg ".*missing"/,
    );
    assert.deepEqual(await fileNames(dir), ["fake_ffmpeg.sh"]);
  });
});

Deno.test("ffmpegPath prefers the option, then COGFLOW_FFMPEG, then the npm package", async () => {
  const saved = Deno.env.get("COGFLOW_FFMPEG");
  try {
    Deno.env.delete("COGFLOW_FFMPEG");
    const bundled = await ffmpegPath();
    assert.ok((await Deno.stat(bundled)).isFile);
    Deno.env.set("COGFLOW_FFMPEG", "/opt/ffmpeg");
    assert.equal(await ffmpegPath(), "/opt/ffmpeg");
    assert.equal(await ffmpegPath({ ffmpeg: "/usr/bin/ffmpeg" }), "/usr/bin/ffmpeg");
  } finally {
    if (saved === undefined) Deno.env.delete("COGFLOW_FFMPEG");
    else Deno.env.set("COGFLOW_FFMPEG", saved);
  }
});

Deno.test("writeVideo picks the format from the extension", async () => {
  assert.equal(videoFormatOf("out/video.MP4"), "mp4");
  assert.equal(videoFormatOf("out/video.gif"), "gif");
  assert.equal(videoFormatOf("out/frames"), "png");
  assert.throws(
    () => videoFormatOf("out/video.webm"),
    /Cannot tell the video format of "out\/video\.webm"/,
  );
  await withTempDir(async (dir) => {
    await writeVideo(join(dir, "frames"), solidFrames(2, 2, 2));
    await writeVideo(join(dir, "clip"), solidFrames(2, 2, 2), { format: "gif" });
    assert.deepEqual(await fileNames(dir), ["clip", "frames"]);
    assert.equal(
      new TextDecoder().decode((await Deno.readFile(join(dir, "clip"))).subarray(0, 3)),
      "GIF",
    );
  });
});
