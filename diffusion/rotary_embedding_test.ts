import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { readSafetensors } from "../runtime/safetensors.ts";
import { expectDType, maxAbsDiff } from "../runtime/tensor.ts";
import {
  get3dRotaryPosEmbed,
  prepareRotaryPositionalEmbeddings,
  resizeCropRegionForGrid,
  rotaryPosEmbed1d,
  type RotaryTransformerConfig,
} from "./rotary_embedding.ts";

const FIXTURES = new URL("../tests/fixtures/tiny-cogvideox/", import.meta.url);
const transformer5b: RotaryTransformerConfig = JSON.parse(
  await Deno.readTextFile(new URL("5b/transformer/config.json", FIXTURES)),
);

Deno.test("dpm-5b-dynamic-cfg: tables match image_rotary_emb_cos/sin for 64 x 64 px, 3 frames", async () => {
  const { tensors } = await readSafetensors(
    fileURLToPath(new URL("cases/dpm-5b-dynamic-cfg/tensors.safetensors", FIXTURES)),
  );
  const tables = prepareRotaryPositionalEmbeddings(
    { height: 64, width: 64, latentFrames: 3 },
    transformer5b,
  );
  const cos = expectDType(tensors.get("image_rotary_emb_cos")!, "float32").data;
  const sin = expectDType(tensors.get("image_rotary_emb_sin")!, "float32").data;
  assert.deepEqual(tables.cos.shape, [48, 16]);
  assert.deepEqual(tables.sin.shape, [48, 16]);
  // README tolerance is 1e-4; torch's float32 cos (MKL/SLEEF) is sometimes one ulp off
  // the correctly rounded value computed here, so cos differs by up to 2^-24.
  assert.ok(maxAbsDiff(tables.cos.data, cos) <= 2 ** -24);
  assert.deepEqual(tables.sin.data, sin);
});

Deno.test("resizeCropRegionForGrid centers the token grid on the base grid", () => {
  assert.deepEqual(resizeCropRegionForGrid([4, 4], 4, 4), [[0, 0], [4, 4]]);
  assert.deepEqual(resizeCropRegionForGrid([3, 5], 4, 4), [[1, 0], [3, 4]]);
  assert.deepEqual(resizeCropRegionForGrid([6, 6], 4, 4), [[0, 0], [4, 4]]);
  assert.deepEqual(resizeCropRegionForGrid([5, 3], 4, 4), [[0, 1], [4, 3]]);
  // CogVideoX-5b at 480 x 720: 30 x 45 tokens on its 30 x 45 base grid.
  assert.deepEqual(resizeCropRegionForGrid([30, 45], 45, 30), [[0, 0], [30, 45]]);
  // Python rounds ties to even: crop_top = round(1.5) = 2, round(0.5) = 0.
  assert.deepEqual(resizeCropRegionForGrid([1, 4], 4, 4), [[2, 0], [3, 4]]);
  assert.deepEqual(resizeCropRegionForGrid([3, 4], 4, 4), [[0, 0], [3, 4]]);
});

Deno.test("rotaryPosEmbed1d: cos/sin of position times 1 / theta ** (2k / dim), each twice", () => {
  const { cos, sin } = rotaryPosEmbed1d(4, [0, 3]);
  const f = Math.fround;
  const slow = f(1 / f(Math.pow(10000, 0.5)));
  assert.deepEqual(Array.from(cos), [
    1,
    1,
    1,
    1,
    f(Math.cos(3)),
    f(Math.cos(3)),
    f(Math.cos(f(3 * slow))),
    f(Math.cos(f(3 * slow))),
  ]);
  assert.deepEqual(Array.from(sin.subarray(0, 4)), [0, 0, 0, 0]);
  assert.throws(() => rotaryPosEmbed1d(3, [0]), /Invalid rotary dimension 3: must be even/);
});

Deno.test("6 x 10 latents, 2 frames: [time | height | width] parts over the cropped grid", () => {
  const { cos, sin } = prepareRotaryPositionalEmbeddings(
    { height: 48, width: 80, latentFrames: 2 },
    transformer5b,
  );
  const [frames, rows, cols, dim] = [2, 3, 5, 16];
  assert.deepEqual(cos.shape, [frames * rows * cols, dim]);
  const f = Math.fround;
  // Crop [[1, 0], [3, 4]]: rows at linspace(1, 2, 3), columns at linspace(0, 3.2, 5).
  const rowPositions = [1, 1.5, 2];
  const step = f(f(3.2) / 4);
  const colPositions = [0, step, f(2 * step), f(f(3.2) - step), f(3.2)];
  for (let t = 0; t < frames; t++) {
    for (let h = 0; h < rows; h++) {
      for (let w = 0; w < cols; w++) {
        const row = ((t * rows + h) * cols + w) * dim;
        // The first frequency of each part is 1, so its angle is the position itself.
        assert.equal(cos.data[row + 0], f(Math.cos(t)));
        assert.equal(cos.data[row + 4], f(Math.cos(rowPositions[h])));
        assert.equal(cos.data[row + 10], f(Math.cos(colPositions[w])));
        for (let j = 0; j < dim; j += 2) {
          assert.equal(cos.data[row + j], cos.data[row + j + 1]);
          assert.equal(sin.data[row + j], sin.data[row + j + 1]);
          const norm = cos.data[row + j] ** 2 + sin.data[row + j] ** 2;
          assert.ok(Math.abs(norm - 1) < 1e-6);
        }
      }
    }
  }
});

Deno.test("CogVideoX-5b sizes: 480 x 720 px, 13 latent frames, head dim 64", () => {
  const { cos, sin } = prepareRotaryPositionalEmbeddings(
    { height: 480, width: 720, latentFrames: 13 },
    {
      attention_head_dim: 64,
      patch_size: 2,
      patch_size_t: null,
      sample_height: 60,
      sample_width: 90,
    },
  );
  assert.deepEqual(cos.shape, [13 * 30 * 45, 64]);
  assert.deepEqual(sin.shape, [13 * 30 * 45, 64]);
  const lastRow = (13 * 30 * 45 - 1) * 64; // frame 12, row 29, column 44
  assert.equal(cos.data[lastRow], Math.fround(Math.cos(12)));
  assert.equal(cos.data[lastRow + 16], Math.fround(Math.cos(29)));
  assert.equal(cos.data[lastRow + 40], Math.fround(Math.cos(44)));
});

Deno.test("head dimensions that cannot be split and CogVideoX 1.5 are errors", () => {
  assert.throws(
    () =>
      get3dRotaryPosEmbed({
        embedDim: 8,
        cropsCoords: [[0, 0], [4, 4]],
        gridSize: [4, 4],
        temporalSize: 1,
      }),
    /Invalid rotary head dimension 8: must be a multiple of 16/,
  );
  assert.throws(
    () =>
      prepareRotaryPositionalEmbeddings(
        { height: 64, width: 64, latentFrames: 3 },
        { ...transformer5b, patch_size_t: 2 },
      ),
    /patch_size_t 2 \(CogVideoX 1.5\)/,
  );
  assert.throws(
    () =>
      prepareRotaryPositionalEmbeddings({ height: 8, width: 64, latentFrames: 3 }, transformer5b),
    /Invalid video size 64x8, 3 latent frames: no tokens/,
  );
});
