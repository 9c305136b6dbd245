import assert from "node:assert/strict";
import * as ort from "onnxruntime-node";
import { readSafetensors } from "../runtime/safetensors.ts";
import { createTensor, expectDType, maxAbsDiff, type Tensor } from "../runtime/tensor.ts";
import { planTiles, tiledDecode, type TileDecoder, type TilingOptions } from "./tiled_decode.ts";

const FIXTURES = new URL("../tests/fixtures/tiny-cogvideox/", import.meta.url);
const TILED_CASE = new URL("cases/ddim-2b-tiled/", FIXTURES);

Deno.test("planTiles gives the tiling integers recorded by diffusers for ddim-2b-tiled", async () => {
  const caseJson = JSON.parse(await Deno.readTextFile(new URL("case.json", TILED_CASE)));
  const geometry = caseJson.vae.tiling_geometry;
  const tiling = caseJson.vae.tiling;
  const plan = planTiles(8, 8, {
    tileSampleMinHeight: tiling.tile_sample_min_height,
    tileSampleMinWidth: tiling.tile_sample_min_width,
    tileOverlapFactorHeight: tiling.tile_overlap_factor_height,
    tileOverlapFactorWidth: tiling.tile_overlap_factor_width,
  });
  assert.deepEqual(plan, {
    tiled: true,
    tileLatentMinHeight: geometry.tile_latent_min_height,
    tileLatentMinWidth: geometry.tile_latent_min_width,
    overlapHeight: geometry.overlap_height,
    overlapWidth: geometry.overlap_width,
    blendExtentHeight: geometry.blend_extent_height,
    blendExtentWidth: geometry.blend_extent_width,
    rowLimitHeight: geometry.row_limit_height,
    rowLimitWidth: geometry.row_limit_width,
    tileRowsLatentStart: geometry.tile_rows_latent_start,
    tileColsLatentStart: geometry.tile_cols_latent_start,
    consistentHeight: true,
    consistentWidth: true,
  });
});

Deno.test("planTiles: diffusers' defaults are consistent, other roundings are not", () => {
  // CogVideoX at 480 x 720: tiles of 240 x 360 pixels, overlap factors 1/6 and 1/5.
  const defaults = planTiles(60, 90, {
    tileSampleMinHeight: 240,
    tileSampleMinWidth: 360,
    tileOverlapFactorHeight: 1 / 6,
    tileOverlapFactorWidth: 1 / 5,
  });
  assert.equal(defaults.overlapHeight, 25);
  assert.equal(defaults.rowLimitHeight, 200);
  assert.equal(defaults.overlapWidth, 36);
  assert.equal(defaults.rowLimitWidth, 288);
  assert.deepEqual(defaults.tileRowsLatentStart, [0, 25, 50]);
  assert.deepEqual(defaults.tileColsLatentStart, [0, 36, 72]);
  assert.ok(defaults.consistentHeight && defaults.consistentWidth);

  // 48-pixel tiles with 1/5: stride int(6 * 0.8) = 4 latents = 32 pixels, but row_limit 48 - 9 = 39.
  const odd = planTiles(16, 16, {
    tileSampleMinHeight: 48,
    tileSampleMinWidth: 360,
    tileOverlapFactorHeight: 1 / 5,
    tileOverlapFactorWidth: 1 / 6,
  });
  assert.equal(odd.overlapHeight, 4);
  assert.equal(odd.rowLimitHeight, 39);
  assert.equal(odd.consistentHeight, false);
  // 360 pixels with 1/6: stride int(45 * 5/6) = 37 latents = 296 pixels, but row_limit 300.
  assert.equal(odd.overlapWidth, 37);
  assert.equal(odd.rowLimitWidth, 300);
  assert.equal(odd.consistentWidth, false);

  assert.throws(
    () =>
      planTiles(8, 8, {
        tileSampleMinHeight: 16,
        tileSampleMinWidth: 16,
        tileOverlapFactorHeight: 0.75,
        tileOverlapFactorWidth: 0.25,
      }),
    /leaves no stride/,
  );
});

Deno.test("tiledDecode with the ONNX VAE decoder matches diffusers' tiled and untiled decode", async () => {
  const tensors =
    (await readSafetensors(new URL("tensors.safetensors", TILED_CASE).pathname)).tensors;
  const latents = expectDType(tensors.get("vae_decoder_input")!, "float32");
  const session = await ort.InferenceSession.create(
    new URL("2b/vae_decoder/model.onnx", FIXTURES).pathname,
    { intraOpNumThreads: 1, interOpNumThreads: 1 },
  );
  try {
    const tileShapes: string[] = [];
    const decodeTile: TileDecoder = async (tile) => {
      tileShapes.push(`${tile.shape[3]}x${tile.shape[4]}`);
      const feeds = { latent_sample: new ort.Tensor("float32", tile.data, [...tile.shape]) };
      const { sample } = await session.run(feeds);
      return createTensor("float32", sample.dims, sample.data as Float32Array);
    };
    const progress: string[] = [];
    const tiled = await tiledDecode(latents, decodeTile, {
      tileSampleMinHeight: 32,
      tileSampleMinWidth: 32,
      tileOverlapFactorHeight: 1 / 4,
      tileOverlapFactorWidth: 1 / 4,
      onProgress: (done, total) => progress.push(`${done}/${total}`),
    });
    assert.deepEqual(tileShapes, ["4x4", "4x4", "4x2", "4x4", "4x4", "4x2", "2x4", "2x4", "2x2"]);
    assert.equal(progress.join(" "), "1/9 2/9 3/9 4/9 5/9 6/9 7/9 8/9 9/9");
    const tiledDiff = maxAbsDiff(tiled, tensors.get("vae_decoder_output")!);
    assert.ok(tiledDiff < 1e-4, `tiled decode differs from diffusers by ${tiledDiff}`);

    // The latent fits in a 64-pixel tile: one decoder call on the whole latent.
    tileShapes.length = 0;
    const untiled = await tiledDecode(latents, decodeTile, {
      tileSampleMinHeight: 64,
      tileSampleMinWidth: 64,
      tileOverlapFactorHeight: 1 / 6,
      tileOverlapFactorWidth: 1 / 5,
    });
    assert.deepEqual(tileShapes, ["8x8"]);
    const untiledDiff = maxAbsDiff(untiled, tensors.get("vae_decoder_output_untiled")!);
    assert.ok(untiledDiff < 1e-4, `untiled decode differs from diffusers by ${untiledDiff}`);
  } finally {
    await session.release();
  }
});

// A latent whose channels 0 and 1 hold each latent's own row and column, so that a fake decoder
// knows where every pixel of a tile lies in the whole picture.
function positionLatents(height: number, width: number): Tensor<"float32"> {
  const latents = createTensor("float32", [1, 2, 1, height, width]);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      latents.data[y * width + x] = y;
      latents.data[height * width + y * width + x] = x;
    }
  }
  return latents;
}

function smoothField(channel: number, frame: number, y: number, x: number): number {
  return Math.sin(0.05 * y + channel) * Math.cos(0.031 * x - frame) + 0.002 * (x - y);
}

// A decoder that is an exact function of the pixel position (plus `tileTerm` of the position
// inside the tile): 3 channels, 2 frames, 8 pixels per latent.
function fakeDecoder(tileTerm = 0): TileDecoder {
  return (tile) => {
    const [, , , height, width] = tile.shape;
    const sampleHeight = 8 * height;
    const sampleWidth = 8 * width;
    const sample = createTensor("float32", [1, 3, 2, sampleHeight, sampleWidth]);
    let index = 0;
    for (let channel = 0; channel < 3; channel++) {
      for (let frame = 0; frame < 2; frame++) {
        for (let y = 0; y < sampleHeight; y++) {
          for (let x = 0; x < sampleWidth; x++) {
            const latent = (y >> 3) * width + (x >> 3);
            const pixelY = 8 * tile.data[latent] + (y & 7);
            const pixelX = 8 * tile.data[height * width + latent] + (x & 7);
            sample.data[index++] = smoothField(channel, frame, pixelY, pixelX) + tileTerm * (y - x);
          }
        }
      }
    }
    return Promise.resolve(sample);
  };
}

// diffusers' tiled_decode written out literally: blend with the last `extent` rows of the tile
// above, crop every tile to row_limit, concatenate.
async function diffusersTiledDecode(
  latents: Tensor<"float32">,
  decodeTile: TileDecoder,
  options: TilingOptions,
): Promise<{ shape: number[]; data: Float32Array }> {
  const [, , , height, width] = latents.shape;
  const plan = planTiles(height, width, options);
  const tiles: Tensor<"float32">[][] = [];
  for (const top of plan.tileRowsLatentStart) {
    const row: Tensor<"float32">[] = [];
    for (const left of plan.tileColsLatentStart) {
      const tileHeight = Math.min(plan.tileLatentMinHeight, height - top);
      const tileWidth = Math.min(plan.tileLatentMinWidth, width - left);
      const tile = createTensor("float32", [1, 2, 1, tileHeight, tileWidth]);
      for (let c = 0; c < 2; c++) {
        for (let y = 0; y < tileHeight; y++) {
          for (let x = 0; x < tileWidth; x++) {
            tile.data[(c * tileHeight + y) * tileWidth + x] =
              latents.data[(c * height + top + y) * width + left + x];
          }
        }
      }
      row.push(await decodeTile(tile));
    }
    tiles.push(row);
  }
  const at = (t: Tensor<"float32">, p: number, y: number, x: number) =>
    (p * t.shape[3] + y) * t.shape[4] + x;
  const planes = 6;
  for (let i = 0; i < tiles.length; i++) {
    for (let j = 0; j < tiles[i].length; j++) {
      const b = tiles[i][j];
      if (i > 0) {
        const a = tiles[i - 1][j];
        const extent = Math.min(a.shape[3], b.shape[3], plan.blendExtentHeight);
        for (let p = 0; p < planes; p++) {
          for (let y = 0; y < extent; y++) {
            for (let x = 0; x < b.shape[4]; x++) {
              b.data[at(b, p, y, x)] = Math.fround(
                a.data[at(a, p, a.shape[3] - extent + y, x)] * Math.fround(1 - y / extent),
              ) +
                Math.fround(b.data[at(b, p, y, x)] * Math.fround(y / extent));
            }
          }
        }
      }
      if (j > 0) {
        const a = tiles[i][j - 1];
        const extent = Math.min(a.shape[4], b.shape[4], plan.blendExtentWidth);
        for (let p = 0; p < planes; p++) {
          for (let y = 0; y < b.shape[3]; y++) {
            for (let x = 0; x < extent; x++) {
              b.data[at(b, p, y, x)] = Math.fround(
                a.data[at(a, p, y, a.shape[4] - extent + x)] * Math.fround(1 - x / extent),
              ) +
                Math.fround(b.data[at(b, p, y, x)] * Math.fround(x / extent));
            }
          }
        }
      }
    }
  }
  const cropHeights = tiles.map((row) => Math.min(plan.rowLimitHeight, row[0].shape[3]));
  const cropWidths = tiles[0].map((tile) => Math.min(plan.rowLimitWidth, tile.shape[4]));
  const outHeight = cropHeights.reduce((sum, h) => sum + h, 0);
  const outWidth = cropWidths.reduce((sum, w) => sum + w, 0);
  const data = new Float32Array(planes * outHeight * outWidth);
  let top = 0;
  for (let i = 0; i < tiles.length; i++) {
    let left = 0;
    for (let j = 0; j < tiles[i].length; j++) {
      const tile = tiles[i][j];
      for (let p = 0; p < planes; p++) {
        for (let y = 0; y < cropHeights[i]; y++) {
          for (let x = 0; x < cropWidths[j]; x++) {
            data[(p * outHeight + top + y) * outWidth + left + x] = tile.data[at(tile, p, y, x)];
          }
        }
      }
      left += cropWidths[j];
    }
    top += cropHeights[i];
  }
  return { shape: [1, 3, 2, outHeight, outWidth], data };
}

function tiling(
  height: number,
  width: number,
  factorHeight: number,
  factorWidth: number,
): TilingOptions {
  return {
    tileSampleMinHeight: height,
    tileSampleMinWidth: width,
    tileOverlapFactorHeight: factorHeight,
    tileOverlapFactorWidth: factorWidth,
  };
}

Deno.test("tiledDecode equals diffusers to the bit where diffusers' tiling is consistent", async () => {
  const configurations: [TilingOptions, number, number][] = [
    [tiling(32, 32, 1 / 4, 1 / 4), 8, 8],
    [tiling(32, 32, 1 / 4, 1 / 4), 9, 5],
    [tiling(32, 32, 1 / 4, 1 / 4), 11, 4],
    [tiling(48, 40, 1 / 3, 1 / 5), 13, 17],
    [tiling(64, 48, 1 / 8, 1 / 2), 19, 10],
    [tiling(240, 360, 1 / 6, 1 / 5), 31, 46],
    [tiling(240, 360, 1 / 6, 1 / 5), 51, 73],
  ];
  // tileTerm makes neighbouring tiles disagree, so that the blend weights matter.
  const decodeTile = fakeDecoder(0.01);
  for (const [options, height, width] of configurations) {
    const latents = positionLatents(height, width);
    const plan = planTiles(height, width, options);
    assert.ok(plan.tiled && plan.consistentHeight && plan.consistentWidth);
    const expected = await diffusersTiledDecode(latents, decodeTile, options);
    const actual = await tiledDecode(latents, decodeTile, options);
    assert.deepEqual(actual.shape, [1, 3, 2, 8 * height, 8 * width]);
    assert.deepEqual(actual.shape, expected.shape);
    assert.ok(
      actual.data.every((value, i) => value === expected.data[i]),
      `tiled decode differs from diffusers for ${JSON.stringify(options)} on ${height} x ${width}`,
    );
  }
});

Deno.test("tiledDecode returns the requested size and blends without seams where diffusers' tiling is inconsistent", async () => {
  const configurations: [TilingOptions, number, number][] = [
    [tiling(48, 48, 1 / 5, 1 / 5), 13, 10], // stride 32 px, row_limit 39, blend 9 < shared 16
    [tiling(16, 32, 1 / 4, 1 / 4), 7, 9], // stride 8 px, row_limit 12, blend 4 < shared 8
    [tiling(36, 40, 1 / 4, 1 / 3), 10, 12], // 36 px is not whole latents; blend 9 > shared 8
    [tiling(360, 256, 1 / 6, 1 / 6), 50, 40], // diffusers' width default 360 with the height factor 1/6
    [tiling(240, 360, 1 / 6, 1 / 5), 31, 46], // consistent, for comparison
  ];
  const decodeTile = fakeDecoder();
  for (const [options, height, width] of configurations) {
    const latents = positionLatents(height, width);
    const plan = planTiles(height, width, options);
    assert.ok(plan.tiled);
    const sample = await tiledDecode(latents, decodeTile, options);
    assert.deepEqual(sample.shape, [1, 3, 2, 8 * height, 8 * width]);
    // Every tile decodes the same field, so a seamless blend gives the field itself everywhere.
    const field = (await decodeTile(latents)).data;
    let maxDiff = 0;
    for (let i = 0; i < field.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(sample.data[i] - field[i]));
    }
    assert.ok(
      maxDiff < 1e-6,
      `seam of ${maxDiff} for ${JSON.stringify(options)} on ${height} x ${width}`,
    );
    if (!(plan.consistentHeight && plan.consistentWidth)) {
      const diffusers = await diffusersTiledDecode(latents, decodeTile, options);
      assert.notDeepEqual(diffusers.shape, sample.shape);
    }
  }
});

Deno.test("tiledDecode stops at an aborted signal and checks the decoder's output shape", async () => {
  const latents = positionLatents(8, 8);
  const options = tiling(32, 32, 1 / 4, 1 / 4);
  const controller = new AbortController();
  let calls = 0;
  const decodeTile = fakeDecoder();
  const abortAfterTwo: TileDecoder = (tile) => {
    if (++calls === 2) controller.abort();
    return decodeTile(tile);
  };
  await assert.rejects(
    tiledDecode(latents, abortAfterTwo, { ...options, signal: controller.signal }),
    (error: Error) => error.name === "AbortError",
  );
  assert.equal(calls, 2);

  const wrongSize: TileDecoder = (tile) =>
    Promise.resolve(createTensor("float32", [1, 3, 2, tile.shape[3], 8]));
  await assert.rejects(
    tiledDecode(latents, wrongSize, options),
    /Tile decoder returned float32 \[1, 3, 2, 4, 8\]/,
  );
});
