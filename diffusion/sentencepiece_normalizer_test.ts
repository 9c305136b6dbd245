import assert from "node:assert/strict";
import { readSentencePieceModel } from "./sentencepiece_model.ts";
import { normalizeLikeSentencePiece, PrecompiledCharsmap } from "./sentencepiece_normalizer.ts";
import { Unigram } from "./unigram.ts";

const HF_FIXTURES = new URL("../tests/fixtures/tiny-cogvideox-hf/", import.meta.url);
const SPIECE = new URL("2b/tokenizer/spiece.model", HF_FIXTURES).pathname;

async function nmtNfkc(): Promise<PrecompiledCharsmap> {
  const model = await readSentencePieceModel(SPIECE);
  return new PrecompiledCharsmap(model.normalizerSpec.precompiledCharsmap);
}

Deno.test("PrecompiledCharsmap folds compatibility characters as NFKC does", async () => {
  const charsmap = await nmtNfkc();
  for (
    const text of [
      "Full-width ＡＢＣ ｄｏｇ",
      "ligatures ﬁsh ﬂoats oﬀ",
      "① ½ ™ ℃",
      "𝐀𝐁 outside the BMP",
      "cafe\u0301 composed",
    ]
  ) {
    assert.equal(charsmap.normalize(text), text.normalize("NFKC"), JSON.stringify(text));
  }
});

Deno.test("PrecompiledCharsmap turns other whitespace into spaces and leaves plain text alone", async () => {
  const charsmap = await nmtNfkc();
  const plain = "a red ball rolls across a table";
  assert.equal(charsmap.normalize(plain), plain);
  assert.equal(charsmap.normalize("tab\tnew\nline"), "tab new line");
  assert.equal(charsmap.normalize("a\u00a0b\u3000c\u200bd"), "a b c d");
  // CR LF is one grapheme cluster, replaced whole by what its first character maps to: this is
  // tokenizers' behaviour, where sentencepiece maps each character.
  assert.equal(charsmap.normalize("one\r\ntwo"), "one two");
  assert.deepEqual(charsmap.longestMatch("\r\n", 0), { length: 1, replacement: " " });
  // A cluster of 6 UTF-8 bytes or more is mapped character by character: halfwidth ｶﾞ gives カ
  // and a combining voicing mark, where sentencepiece's longest rule composes ガ.
  assert.equal(charsmap.normalize("ｶﾞ"), "\u30ab\u3099");
  assert.deepEqual(charsmap.longestMatch("ｶﾞ", 0), { length: 2, replacement: "\u30ac" });
});

Deno.test("PrecompiledCharsmap.longestMatch finds sentencepiece's longest rule at a position", async () => {
  const charsmap = await nmtNfkc();
  assert.deepEqual(charsmap.longestMatch("xA\u030a", 1), { length: 2, replacement: "Å" });
  assert.deepEqual(charsmap.longestMatch("ﬁ", 0), { length: 1, replacement: "fi" });
  assert.equal(charsmap.longestMatch("abc", 0), undefined);
});

Deno.test("PrecompiledCharsmap without rules changes nothing; a malformed one is an error", () => {
  const identity = new PrecompiledCharsmap(new Uint8Array(0));
  assert.ok(identity.empty);
  assert.equal(identity.normalize("ＡＢＣ\t"), "ＡＢＣ\t");
  assert.throws(() => new PrecompiledCharsmap(new Uint8Array([200, 0, 0, 0, 1, 2])), {
    name: "SentencePieceModelError",
    message: "precompiled_charsmap of 6 bytes has an invalid trie size 200",
  });
});

Deno.test("normalizeLikeSentencePiece gives the text sentencepiece segments for every fixture string", async () => {
  const model = await readSentencePieceModel(SPIECE);
  const charsmap = new PrecompiledCharsmap(model.normalizerSpec.precompiledCharsmap);
  // sentencepiece never matches control pieces (`</s>`) in text: an empty piece matches nothing.
  const pieces = model.pieces.map((p) => p.type === "control" ? { piece: "", score: 0 } : p);
  const unigram = new Unigram(pieces, model.trainerSpec.unkId);
  const tests = JSON.parse(await Deno.readTextFile(new URL("tokenizer_tests.json", HF_FIXTURES)));
  for (const { text, sentencepiece } of tests.cases) {
    const normalized = normalizeLikeSentencePiece(text, charsmap, model.normalizerSpec);
    const ids: number[] = [];
    // sentencepiece segments the whole text at once.
    unigram.encode(normalized, ids);
    assert.deepEqual(ids, sentencepiece.ids, JSON.stringify(text));
  }
  const spec = { addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true };
  assert.equal(normalizeLikeSentencePiece("  ＡＢ \t c  ", charsmap, spec), "▁AB▁c");
  assert.equal(normalizeLikeSentencePiece(" \u3000 ", charsmap, spec), "");
  assert.equal(
    normalizeLikeSentencePiece(" a  b ", charsmap, {
      addDummyPrefix: false,
      removeExtraWhitespaces: false,
      escapeWhitespaces: false,
    }),
    " a  b ",
  );
});
