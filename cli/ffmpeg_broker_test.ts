import assert from "node:assert/strict";
import { join } from "node:path";
import { encodeThroughBroker } from "../media/ffmpeg_client.ts";
import type { EncodeRequest } from "../media/ffmpeg_protocol.ts";
import { ffmpegPath } from "../media/video_writer.ts";
import { fileNames, ROOT, withTempDir } from "../tests/testing.ts";
import { spawnFfmpegBroker, startFfmpegBroker } from "./ffmpeg_broker.ts";

const request: EncodeRequest = {
  format: "gif",
  width: 4,
  height: 4,
  channels: 3,
  fps: 8,
  frames: 2,
};
const frames = [new Uint8Array(48).fill(200), new Uint8Array(48).fill(20)];

Deno.test("the broker encodes frames and sends the file back, leaving nothing in its folder", async () => {
  await withTempDir(async (dir) => {
    const ffmpeg = await ffmpegPath();
    const broker = startFfmpegBroker({ ffmpeg: () => Promise.resolve(ffmpeg), dir });
    try {
      const [gif, mp4] = await Promise.all([
        encodeThroughBroker(broker.path, request, frames),
        encodeThroughBroker(
          broker.path,
          { ...request, format: "mp4", preset: "ultrafast" },
          frames,
        ),
      ]);
      assert.equal(new TextDecoder().decode(gif.subarray(0, 6)), "GIF89a");
      assert.equal(new TextDecoder().decode(mp4.subarray(4, 8)), "ftyp");
      assert.deepEqual(await fileNames(dir), ["ffmpeg.sock"]);
    } finally {
      broker.close();
    }
  });
});

Deno.test("the broker refuses a bad request and reports a missing ffmpeg", async () => {
  await withTempDir(async (dir) => {
    const broker = startFfmpegBroker({
      ffmpeg: () => Promise.reject(new Error("Cannot find ffmpeg: set COGFLOW_FFMPEG")),
      dir,
    });
    try {
      await assert.rejects(
        encodeThroughBroker(broker.path, { ...request, format: "mp4", preset: "-i x" }, frames),
        /^Error: Invalid request to the ffmpeg broker: "preset" must be one of/,
      );
      await assert.rejects(
        encodeThroughBroker(broker.path, request, frames),
        /^Error: Cannot find ffmpeg: set COGFLOW_FFMPEG$/,
      );
      await assert.rejects(
        encodeThroughBroker(broker.path, request, frames.slice(1)),
        /^RangeError: Frames hold 48 bytes, the request announces 96$/,
      );
      await assert.rejects(
        encodeThroughBroker(join(dir, "missing.sock"), request, frames),
        /^Error: Cannot reach the ffmpeg broker/,
      );
    } finally {
      broker.close();
    }
  });
});

Deno.test("the broker process makes its private folder, serves, and removes it when stopped", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "broker");
    const broker = await spawnFfmpegBroker({
      ffmpeg: await ffmpegPath(),
      dir,
      config: join(ROOT, "deno.json"),
    });
    assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700);
    const gif = await encodeThroughBroker(broker.path, request, frames);
    assert.equal(new TextDecoder().decode(gif.subarray(0, 6)), "GIF89a");
    await broker.stop();
    assert.deepEqual(await fileNames(root), []);
  });
});

Deno.test("the broker process encodes with LD_LIBRARY_PATH set, as CUDA users have it", async () => {
  await withTempDir(async (root) => {
    const before = Deno.env.get("LD_LIBRARY_PATH");
    Deno.env.set("LD_LIBRARY_PATH", join(root, "cuda", "lib"));
    let broker;
    try {
      broker = await spawnFfmpegBroker({
        ffmpeg: await ffmpegPath(),
        dir: join(root, "broker"),
        config: join(ROOT, "deno.json"),
      });
    } finally {
      if (before === undefined) Deno.env.delete("LD_LIBRARY_PATH");
      else Deno.env.set("LD_LIBRARY_PATH", before);
    }
    try {
      const gif = await encodeThroughBroker(broker.path, request, frames);
      assert.equal(new TextDecoder().decode(gif.subarray(0, 6)), "GIF89a");
    } finally {
      await broker.stop();
    }
  });
});
