import assert from "node:assert/strict";
import {
  chunkedDecode,
  concatFrames,
  type ConvCaches,
  latentFrameChunks,
  sliceFrames,
} from "./chunked_vae_decode.ts";
import { createTensor, type Tensor } from "../runtime/tensor.ts";

/** `[batch, channels, frames, 1, 1]` whose value at (b, c, t) is 100 b + 10 c + t. */
function numbered(batch: number, channels: number, frames: number): Tensor<"float32"> {
  const data = new Float32Array(batch * channels * frames);
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < channels; c++) {
      for (let t = 0; t < frames; t++) data[(b * channels + c) * frames + t] = 100 * b + 10 * c + t;
    }
  }
  return createTensor("float32", [batch, channels, frames, 1, 1], data);
}

Deno.test("latentFrameChunks splits as diffusers' _decode: the first chunk takes the remainder", () => {
  const lengths = (frames: number) => latentFrameChunks(frames).map(([start, end]) => end - start);
  assert.deepEqual(latentFrameChunks(13), [[0, 3], [3, 5], [5, 7], [7, 9], [9, 11], [11, 13]]);
  assert.deepEqual(lengths(12), [2, 2, 2, 2, 2, 2]);
  assert.deepEqual(lengths(3), [3]);
  assert.deepEqual(lengths(2), [2]);
  assert.deepEqual(lengths(1), [1]);
  assert.deepEqual(lengths(7), [3, 2, 2]);
  assert.deepEqual(latentFrameChunks(7, 3).map(([start, end]) => end - start), [4, 3]);
});

Deno.test("sliceFrames and concatFrames cut and join along time", () => {
  const z = numbered(2, 3, 5);
  const parts = [sliceFrames(z, 0, 3), sliceFrames(z, 3, 5)];
  assert.deepEqual(parts[1].shape, [2, 3, 2, 1, 1]);
  assert.deepEqual(Array.from(parts[1].data.subarray(0, 4)), [3, 4, 13, 14]);
  assert.deepEqual(concatFrames(parts), z);
});

Deno.test("chunkedDecode hands each chunk the caches of the previous one and joins the outputs", async () => {
  const z = numbered(1, 2, 13);
  const seen: { frames: number[]; cache: number | undefined }[] = [];
  const progress: string[] = [];
  const sample = await chunkedDecode(z, (chunk, caches) => {
    seen.push({
      frames: Array.from(chunk.data.subarray(0, chunk.shape[2])),
      cache: caches?.count.data[0],
    });
    // A stand-in decoder: 4 output frames per latent frame, counting chunks in its cache.
    const out = createTensor("float32", [1, 3, chunk.shape[2] * 4, 2, 2]);
    out.data.fill(seen.length);
    const next: ConvCaches = {
      count: createTensor("float32", [1], new Float32Array([(caches?.count.data[0] ?? 0) + 1])),
    };
    return Promise.resolve({ sample: out, caches: next });
  }, { onChunk: (done, total) => progress.push(`${done}/${total}`) });
  assert.deepEqual(seen, [
    { frames: [0, 1, 2], cache: undefined },
    { frames: [3, 4], cache: 1 },
    { frames: [5, 6], cache: 2 },
    { frames: [7, 8], cache: 3 },
    { frames: [9, 10], cache: 4 },
    { frames: [11, 12], cache: 5 },
  ]);
  assert.deepEqual(progress, ["1/6", "2/6", "3/6", "4/6", "5/6", "6/6"]);
  assert.deepEqual(sample.shape, [1, 3, 52, 2, 2]);
  // Channel 1's frames: 12 of chunk 1, then 8 of each later chunk.
  const frame = (t: number) => sample.data[(1 * 52 + t) * 4];
  assert.deepEqual([frame(0), frame(11), frame(12), frame(19), frame(20), frame(51)], [
    1,
    1,
    2,
    2,
    3,
    6,
  ]);
});

Deno.test("chunkedDecode stops between chunks when cancelled", async () => {
  const controller = new AbortController();
  let calls = 0;
  await assert.rejects(
    chunkedDecode(numbered(1, 1, 6), (chunk) => {
      calls++;
      controller.abort();
      return Promise.resolve({ sample: chunk, caches: {} });
    }, { signal: controller.signal }),
  );
  assert.equal(calls, 1);
});
