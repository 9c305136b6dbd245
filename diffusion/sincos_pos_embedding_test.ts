import assert from "node:assert/strict";
import {
  cogVideoXPositionalEmbedding,
  get3dSincosPosEmbed,
  sincosPosEmbed1d,
} from "./sincos_pos_embedding.ts";

/**
 * diffusers' `get_3d_sincos_pos_embed(output_type="pt")` step by step on nested arrays: float32
 * grids, `meshgrid(grid_w, grid_h, indexing="xy")`, `stack`, the 1-D embeddings in float64,
 * `concat([emb_h, emb_w])`, `repeat_interleave`, `concat([temporal, spatial])`.
 */
function diffusersPort(
  embedDim: number,
  [width, height]: [number, number],
  frames: number,
  spatialScale: number,
  temporalScale: number,
): number[][][] {
  const f32 = Math.fround;
  const oneD = (dim: number, pos: number[]) => {
    const omega = Array.from({ length: dim / 2 }, (_, k) => 1.0 / 10000 ** (k / (dim / 2.0)));
    return pos.map((
      p,
    ) => [...omega.map((o) => Math.sin(p * o)), ...omega.map((o) => Math.cos(p * o))]);
  };
  const gridH = Array.from({ length: height }, (_, i) => f32(i / spatialScale));
  const gridW = Array.from({ length: width }, (_, i) => f32(i / spatialScale));
  // meshgrid "xy": two [height, width] grids, the first varying along the width.
  const grid0 = gridH.flatMap(() => gridW);
  const grid1 = gridH.flatMap((h) => gridW.map(() => h));
  const spatialDim = (3 * embedDim) / 4;
  const embH = oneD(spatialDim / 2, grid0);
  const embW = oneD(spatialDim / 2, grid1);
  const spatial = embH.map((row, i) => [...row, ...embW[i]]);
  const temporal = oneD(
    embedDim / 4,
    Array.from({ length: frames }, (_, t) => f32(t / temporalScale)),
  );
  return temporal.map((time) => spatial.map((space) => [...time, ...space]));
}

Deno.test("get3dSincosPosEmbed matches diffusers' formula, row for row", () => {
  const cases: [number, [number, number], number, number, number][] = [
    [32, [4, 4], 13, 1.875, 1.0],
    [32, [5, 3], 13, 1.875, 1.0],
    [48, [3, 2], 4, 1.5, 2.0],
  ];
  for (const [dim, size, frames, s, t] of cases) {
    const table = get3dSincosPosEmbed(dim, size, frames, s, t);
    const expected = diffusersPort(dim, size, frames, s, t).flat(2);
    assert.equal(table.length, expected.length);
    for (let i = 0; i < expected.length; i++) assert.equal(table[i], expected[i], `element ${i}`);
  }
});

Deno.test("get3dSincosPosEmbed rows: time first, then the column, then the row", () => {
  const table = get3dSincosPosEmbed(32, [4, 4], 2, 1.875, 1.0);
  const row = (t: number, y: number, x: number) =>
    Array.from(table.subarray((t * 16 + y * 4 + x) * 32, (t * 16 + y * 4 + x + 1) * 32));
  assert.deepEqual(row(0, 0, 0), [
    ...[0, 0, 0, 0, 1, 1, 1, 1],
    ...repeat([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1], 2),
  ]);
  const time = [1, 0.1, 0.01, 0.001];
  assert.deepEqual(row(1, 0, 0).slice(0, 8), [...time.map(Math.sin), ...time.map(Math.cos)]);
  const space = Array.from({ length: 6 }, (_, k) => 1 / 10000 ** (k / 6));
  const p = Math.fround(1 / 1.875);
  const column = [...space.map((o) => Math.sin(p * o)), ...space.map((o) => Math.cos(p * o))];
  assert.deepEqual(row(0, 0, 1).slice(8, 20), column);
  assert.deepEqual(row(0, 1, 0).slice(20, 32), column);
  assert.deepEqual(row(0, 1, 0).slice(8, 20), [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
});

Deno.test("cogVideoXPositionalEmbedding gives the video rows for the latents, as float32", () => {
  const config = {
    num_attention_heads: 4,
    attention_head_dim: 8,
    patch_size: 2,
    temporal_compression_ratio: 4,
    spatial_interpolation_scale: 1.875,
    temporal_interpolation_scale: 1.0,
  };
  const table = cogVideoXPositionalEmbedding(config, [2, 13, 4, 6, 10]);
  assert.equal(table.dtype, "float32");
  assert.deepEqual(table.shape, [13 * 3 * 5, 32]);
  assert.deepEqual(table.data, Float32Array.from(get3dSincosPosEmbed(32, [5, 3], 13, 1.875, 1.0)));
  // Defaults are diffusers' (temporal_compression_ratio 4, scales 1.875 and 1.0).
  const defaults = cogVideoXPositionalEmbedding(
    { num_attention_heads: 4, attention_head_dim: 8, patch_size: 2 },
    [1, 13, 4, 6, 10],
  );
  assert.deepEqual(defaults.data, table.data);
});

Deno.test("sin-cos widths that diffusers cannot split are refused", () => {
  assert.throws(() => sincosPosEmbed1d(3, [0]), RangeError);
  assert.throws(() => get3dSincosPosEmbed(24, [2, 2], 1), /divisible by 16/);
});

function repeat<T>(values: T[], times: number): T[] {
  return Array.from({ length: times }, () => values).flat();
}
