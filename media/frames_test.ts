import assert from "node:assert/strict";
import { createTensor } from "../runtime/tensor.ts";
import { roundToByte, truncateToByte, videoTensorToFrames } from "./frames.ts";

// float32 inputs and what numpy makes of them: `(x * 255).round().astype(np.uint8)` (diffusers'
// numpy_to_pil) and `(x * 255).astype(np.uint8)` (export_to_video given numpy frames).
// Many products are exact ties (x.5); numpy rounds those to even.
const INPUTS = [0, 1, 0.5, 0.25, 0.1, 0.9999, 1 / 255, 2.5 / 255, 3.5 / 255, 0.3, 0.7, 126.5 / 255];
const NUMPY_ROUND = [0, 255, 128, 64, 26, 255, 1, 2, 4, 76, 178, 126];
const NUMPY_TRUNCATE = [0, 255, 127, 63, 25, 254, 1, 2, 3, 76, 178, 126];

Deno.test("roundToByte and truncateToByte match numpy on float32", () => {
  const inputs = Array.from(new Float32Array(INPUTS));
  assert.deepEqual(inputs.map(roundToByte), NUMPY_ROUND);
  assert.deepEqual(inputs.map(truncateToByte), NUMPY_TRUNCATE);
});

Deno.test("out-of-range values are clamped", () => {
  for (const toByte of [roundToByte, truncateToByte]) {
    assert.deepEqual([-0.2, -Infinity, 1.7, Infinity].map(toByte), [0, 0, 255, 255]);
  }
});

Deno.test("videoTensorToFrames interleaves the channel planes of each frame", () => {
  // Two 1x2 frames: frame f, channel c, pixel x holds (f * 100 + c * 10 + x) / 255.
  const values = [];
  for (let f = 0; f < 2; f++) {
    for (let c = 0; c < 3; c++) {
      for (let x = 0; x < 2; x++) values.push((f * 100 + c * 10 + x) / 255);
    }
  }
  const video = createTensor("float32", [2, 3, 1, 2], new Float32Array(values));
  const frames = videoTensorToFrames(video);
  assert.equal(frames.length, 2);
  assert.deepEqual(frames[0], {
    width: 2,
    height: 1,
    channels: 3,
    data: new Uint8Array([0, 10, 20, 1, 11, 21]),
  });
  assert.deepEqual([...frames[1].data], [100, 110, 120, 101, 111, 121]);
});

Deno.test("videoTensorToFrames rounds like diffusers unless asked to truncate", () => {
  const count = INPUTS.length;
  // One frame, 1 pixel high: the same values in all three channels.
  const planes = new Float32Array([...INPUTS, ...INPUTS, ...INPUTS]);
  const video = createTensor("float32", [1, 1, 3, 1, count], planes);
  const red = (data: Uint8Array) => data.filter((_, i) => i % 3 === 0);
  assert.deepEqual([...red(videoTensorToFrames(video)[0].data)], NUMPY_ROUND);
  assert.deepEqual(
    [...red(videoTensorToFrames(video, { rounding: "truncate" })[0].data)],
    NUMPY_TRUNCATE,
  );
});

Deno.test("videoTensorToFrames rejects NaN, naming where it is", () => {
  const data = new Float32Array(2 * 3 * 2 * 2).fill(0.5);
  data[(1 * 3 + 2) * 4 + 3] = NaN; // frame 1, channel 2, row 1, column 1
  assert.throws(
    () => videoTensorToFrames(createTensor("float32", [2, 3, 2, 2], data)),
    {
      message:
        "Cannot convert the video to 8-bit frames: NaN at frame 1, channel 2, row 1, column 1",
    },
  );
});

Deno.test("videoTensorToFrames rejects other shapes and dtypes", () => {
  assert.throws(
    () => videoTensorToFrames(createTensor("float32", [2, 4, 2, 2])),
    /Expected a video tensor of shape \[F, 3, H, W\] or \[1, F, 3, H, W\], got \[2, 4, 2, 2\]/,
  );
  assert.throws(
    () => videoTensorToFrames(createTensor("float32", [2, 1, 3, 2, 2])),
    /Expected one video, got a batch of 2/,
  );
  assert.throws(
    () => videoTensorToFrames(createTensor("uint8", [1, 3, 2, 2])),
    /Expected a video tensor of dtype float32 or float64, got uint8/,
  );
});
