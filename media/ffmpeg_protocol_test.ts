import assert from "node:assert/strict";
import {
  checkEncodeRequest,
  ENCODE_LIMITS,
  type EncodeRequest,
  ffmpegArgs,
} from "./ffmpeg_protocol.ts";

const mp4: EncodeRequest = {
  format: "mp4",
  width: 8,
  height: 6,
  channels: 3,
  fps: 8,
  frames: 2,
  crf: 18,
  preset: "ultrafast",
};

Deno.test("checkEncodeRequest keeps only the known fields of a good request", () => {
  assert.deepEqual(checkEncodeRequest({ ...mp4, extra: "-i /etc/shadow" }), mp4);
  assert.deepEqual(
    checkEncodeRequest({ format: "gif", width: 3, height: 5, channels: 4, fps: 2.5, frames: 1 }),
    { format: "gif", width: 3, height: 5, channels: 4, fps: 2.5, frames: 1 },
  );
  assert.deepEqual(checkEncodeRequest({ ...mp4, crf: undefined, preset: undefined }), {
    ...mp4,
    crf: 18,
    preset: "medium",
  });
});

Deno.test("checkEncodeRequest refuses what is not a fixed choice or a bounded number", () => {
  const cases: [unknown, RegExp][] = [
    [null, /expected an object/],
    [[mp4], /expected an object/],
    [{ ...mp4, format: "/tmp/x" }, /"format" must be "mp4" or "gif"/],
    [{ ...mp4, preset: "medium -i /etc/shadow" }, /"preset" must be one of ultrafast/],
    [{ ...mp4, crf: "18" }, /"crf" must be a number from 0 to 51/],
    [{ ...mp4, crf: 52 }, /"crf"/],
    [{ ...mp4, width: 7 }, /width and height must be even/],
    [{ ...mp4, width: 0 }, /"width" must be a whole number from 1 to 16384/],
    [{ ...mp4, height: 1e9 }, /"height"/],
    [{ ...mp4, frames: 1.5 }, /"frames"/],
    [{ ...mp4, channels: 1 }, /"channels" must be 3 or 4/],
    [{ ...mp4, fps: Infinity }, /"fps"/],
    [{ ...mp4, fps: -1 }, /"fps"/],
    [
      { ...mp4, width: 16384, height: 16384, frames: 100_000 },
      new RegExp(`at most ${ENCODE_LIMITS.bytes} bytes`),
    ],
  ];
  for (const [request, expected] of cases) {
    const problem = checkEncodeRequest(request);
    assert.equal(typeof problem, "string", JSON.stringify(request));
    assert.match(problem as string, expected);
  }
});

Deno.test("ffmpegArgs reads raw frames from stdin and names the output last", () => {
  const args = ffmpegArgs(mp4, "/out/.v.mp4.tmp-1");
  assert.deepEqual(args.slice(0, 14), [
    "-hide_banner",
    "-nostats",
    "-loglevel",
    "error",
    "-f",
    "rawvideo",
    "-pix_fmt",
    "rgb24",
    "-video_size",
    "8x6",
    "-framerate",
    "8",
    "-i",
    "pipe:0",
  ]);
  assert.deepEqual(args.slice(-4), ["-f", "mp4", "-y", "/out/.v.mp4.tmp-1"]);
  assert.ok(args.includes("libx264") && args.includes("ultrafast") && args.includes("+faststart"));
  const gif = ffmpegArgs({ ...mp4, format: "gif", channels: 4 }, "/out/g");
  assert.ok(gif.includes("rgba") && gif.includes("-loop") && !gif.includes("libx264"));
  assert.deepEqual(gif.slice(-4), ["-f", "gif", "-y", "/out/g"]);
});
