import assert from "node:assert/strict";
import { withTempDir } from "../tests/testing.ts";
import { readSentencePieceModel } from "./sentencepiece_model.ts";
import { loadT5Tokenizer, T5Tokenizer, t5TokenizerOptions } from "./t5_tokenizer.ts";

const HF_FIXTURES = new URL("../tests/fixtures/tiny-cogvideox-hf/", import.meta.url);
const TOKENIZER_DIR = new URL("2b/tokenizer", HF_FIXTURES).pathname;

interface TokenizerTestCase {
  text: string;
  input_ids: number[];
  ids_untruncated: number[];
  tokens: string[];
}

async function testCases(): Promise<TokenizerTestCase[]> {
  const tests = JSON.parse(await Deno.readTextFile(new URL("tokenizer_tests.json", HF_FIXTURES)));
  assert.equal(tests.cases.length, 13);
  return tests.cases;
}

Deno.test("T5Tokenizer gives transformers' ids and tokens on every string of tokenizer_tests.json", async () => {
  for (const variant of ["2b", "5b"]) {
    const tokenizer = await loadT5Tokenizer(new URL(`${variant}/tokenizer`, HF_FIXTURES).pathname);
    for (const { text, ids_untruncated, tokens } of await testCases()) {
      const encoding = tokenizer.tokenize(text);
      assert.deepEqual(encoding.tokens, tokens, `tokens of ${JSON.stringify(text)}`);
      assert.deepEqual(encoding.ids, ids_untruncated, `ids of ${JSON.stringify(text)}`);
    }
  }
});

Deno.test("T5Tokenizer matches special tokens written in the text before normalizing", async () => {
  const tokenizer = await loadT5Tokenizer(TOKENIZER_DIR);
  assert.equal(tokenizer.vocabSize, 1100);
  assert.equal(tokenizer.addedTokens.length, 103);
  assert.deepEqual(tokenizer.encode("<extra_id_0>a</s><pad><unk><extra_id_99>"), {
    prefix: [],
    content: [1099, 3, 1, 0, 2, 1000],
    suffix: [1],
  });
  // A sentinel the files do not know is plain text.
  assert.deepEqual(tokenizer.tokenize("<extra_id_100>").tokens.slice(0, 3), ["▁", "<unk>", "e"]);
  assert.equal(tokenizer.tokenToId("<extra_id_7>"), 1092);
  assert.equal(tokenizer.tokenToId("▁a"), 3);
  assert.equal(tokenizer.tokenToId("nope"), undefined);
  assert.equal(tokenizer.idToToken(1092), "<extra_id_7>");
});

Deno.test("T5Tokenizer.decode writes ▁ as spaces, without the first one", async () => {
  const tokenizer = await loadT5Tokenizer(TOKENIZER_DIR);
  const { content } = tokenizer.encode("a red ball rolls across a table");
  assert.equal(tokenizer.decode(content), "a red ball rolls across a table");
  assert.equal(tokenizer.decode(content.slice(3)), "ball rolls across a table");
  assert.equal(tokenizer.decode([]), "");
});

Deno.test("T5Tokenizer without added_tokens_decoder registers the special tokens and sentinels itself", async () => {
  const model = await readSentencePieceModel(`${TOKENIZER_DIR}/spiece.model`);
  const bare = new T5Tokenizer(model);
  const fromAddedTokensJson = new T5Tokenizer(
    model,
    t5TokenizerOptions({
      model,
      addedTokens: JSON.parse(await Deno.readTextFile(`${TOKENIZER_DIR}/added_tokens.json`)),
      specialTokensMap: { eos_token: "</s>", pad_token: "<pad>", unk_token: "<unk>" },
    }, TOKENIZER_DIR),
  );
  for (const tokenizer of [bare, fromAddedTokensJson]) {
    assert.equal(tokenizer.addedTokens.length, 103);
    for (const { text, ids_untruncated } of await testCases()) {
      assert.deepEqual(tokenizer.tokenize(text).ids, ids_untruncated, JSON.stringify(text));
    }
  }
});

Deno.test("loadT5Tokenizer names the file that is corrupt", async () => {
  await withTempDir(async (dir) => {
    const model = await Deno.readFile(`${TOKENIZER_DIR}/spiece.model`);
    await Deno.writeFile(`${dir}/spiece.model`, model.subarray(0, 5000));
    await assert.rejects(loadT5Tokenizer(dir), (error: Error) => {
      assert.match(
        error.message,
        new RegExp(`^Invalid SentencePiece model "${dir}/spiece.model": `),
      );
      return true;
    });
    await Deno.writeFile(`${dir}/spiece.model`, model);
    await Deno.writeTextFile(`${dir}/tokenizer_config.json`, "{ not json");
    await assert.rejects(loadT5Tokenizer(dir), (error: Error) => {
      assert.match(
        error.message,
        new RegExp(`^Invalid tokenizer file "${dir}/tokenizer_config.json": not JSON`),
      );
      return true;
    });
    await Deno.writeTextFile(
      `${dir}/tokenizer_config.json`,
      JSON.stringify({ eos_token: "<eos>" }),
    );
    await assert.rejects(loadT5Tokenizer(dir), {
      message: `Invalid tokenizer "${dir}": eos_token "<eos>" is not in the vocabulary`,
    });
    await Deno.writeTextFile(
      `${dir}/tokenizer_config.json`,
      JSON.stringify({ added_tokens_decoder: { "1": { lstrip: false } } }),
    );
    await assert.rejects(loadT5Tokenizer(dir), {
      message:
        `Invalid tokenizer file "${dir}/tokenizer_config.json": added_tokens_decoder "1" has no content`,
    });
  });
});
