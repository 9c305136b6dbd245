import assert from "node:assert/strict";
import { Unigram } from "./unigram.ts";

// ids: 0 <unk>, 1 ▁, 2 a, 3 b, 4 ▁a, 5 ab, 6 ▁ab, 7 😀, 8 xy
const VOCAB = [
  { piece: "<unk>", score: 0 },
  { piece: "▁", score: -2 },
  { piece: "a", score: -3 },
  { piece: "b", score: -3 },
  { piece: "▁a", score: -2.5 },
  { piece: "ab", score: -4 },
  { piece: "▁ab", score: -7 },
  { piece: "😀", score: -5 },
  { piece: "xy", score: -1 },
];

function encode(model: Unigram, word: string): number[] {
  const out: number[] = [];
  model.encode(word, out);
  return out;
}

Deno.test("Unigram takes the segmentation with the highest total score", () => {
  const model = new Unigram(VOCAB, 0);
  // ▁a + b = -5.5 beats ▁ + ab = -6 and ▁ab = -7.
  assert.deepEqual(encode(model, "▁ab"), [4, 3]);
  assert.deepEqual(encode(model, "▁a"), [4]);
  assert.deepEqual(encode(model, "😀a"), [7, 2]);
  assert.deepEqual(encode(model, ""), []);
});

Deno.test("Unigram fuses consecutive unknown characters into one <unk>", () => {
  const model = new Unigram(VOCAB, 0);
  // "x" and "y" have no piece of their own, but "xy" is a piece, which wins.
  assert.deepEqual(encode(model, "axy"), [2, 8]);
  assert.deepEqual(encode(model, "aqé😃b"), [2, 0, 3]);
  assert.deepEqual(encode(model, "q"), [0]);
  // Ids are appended to what `out` holds.
  const out = [42];
  model.encode("aq", out);
  assert.deepEqual(out, [42, 2, 0]);
});

Deno.test("Unigram maps tokens and ids both ways", () => {
  const model = new Unigram(VOCAB, 0);
  assert.equal(model.size, 9);
  assert.equal(model.tokenToId("▁ab"), 6);
  assert.equal(model.tokenToId("zz"), undefined);
  assert.equal(model.idToToken(7), "😀");
  assert.equal(model.idToToken(9), undefined);
  assert.throws(() => new Unigram(VOCAB, 9), /Invalid unk id "9"/);
});

Deno.test("Unigram segments a word of a million characters without recursion", () => {
  const model = new Unigram(VOCAB, 0);
  const word = "ab".repeat(1 << 19);
  const started = performance.now();
  const ids = encode(model, word);
  const elapsed = performance.now() - started;
  // "ab" (-4) beats "a" + "b" (-6).
  assert.equal(ids.length, 1 << 19);
  assert.ok(ids.every((id) => id === 5));
  assert.ok(elapsed < 5000, `took ${elapsed} ms`);
});
