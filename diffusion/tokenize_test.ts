import assert from "node:assert/strict";
import { readSafetensors } from "../runtime/safetensors.ts";
import {
  createPromptTokenizer,
  loadPromptTokenizer,
  tokenizePrompts,
  type TokenizerFiles,
} from "./tokenize.ts";

const FIXTURES = new URL("../tests/fixtures/tiny-cogvideox/", import.meta.url);
const TOKENIZER_DIR = new URL("2b/tokenizer", FIXTURES).pathname;

interface TokenizerTestCase {
  text: string;
  tokens: string[];
  ids: number[];
  input_ids_max_length_16: number[];
}

Deno.test("loadPromptTokenizer reads the pad and end-of-sequence ids from the tokenizer files", async () => {
  const tokenizer = await loadPromptTokenizer(TOKENIZER_DIR);
  const expected = JSON.parse(await Deno.readTextFile(new URL("tokenizer_tests.json", FIXTURES)));
  assert.equal(tokenizer.padId, expected.pad_id);
  assert.equal(tokenizer.eosId, expected.eos_id);
  assert.equal(tokenizer.paddingSide, "right");
  assert.equal(tokenizer.truncationSide, "right");
});

Deno.test("tokenizePrompts matches transformers on every string of tokenizer_tests.json", async () => {
  const tokenizer = await loadPromptTokenizer(TOKENIZER_DIR);
  const expected = JSON.parse(await Deno.readTextFile(new URL("tokenizer_tests.json", FIXTURES)));
  const cases: TokenizerTestCase[] = expected.cases;
  for (const { text, tokens, ids } of cases) {
    const encoding = tokenizer.tokenizer.encode(text);
    assert.deepEqual(encoding.tokens, tokens, `tokens of ${JSON.stringify(text)}`);
    assert.deepEqual(encoding.ids, ids, `ids of ${JSON.stringify(text)}`);
  }
  const { inputIds, droppedTokens } = tokenizePrompts(tokenizer, cases.map((c) => c.text), {
    maxLength: expected.max_length,
  });
  assert.deepEqual(inputIds.shape, [cases.length, 16]);
  cases.forEach((c, i) => {
    const row = [...inputIds.data.subarray(16 * i, 16 * i + 16)].map(Number);
    assert.deepEqual(row, c.input_ids_max_length_16, `input_ids of ${JSON.stringify(c.text)}`);
    // ids holds the content tokens and the one `</s>`.
    assert.equal(
      droppedTokens[i],
      Math.max(0, c.ids.length - 16),
      `dropped of ${JSON.stringify(c.text)}`,
    );
  });
});

for (const name of ["ddim-2b", "dpm-5b-dynamic-cfg"]) {
  Deno.test(`tokenizePrompts gives the input_ids of case ${name}`, async () => {
    const caseDir = new URL(`cases/${name}/`, FIXTURES);
    const caseJson = JSON.parse(await Deno.readTextFile(new URL("case.json", caseDir)));
    const tensors =
      (await readSafetensors(new URL("tensors.safetensors", caseDir).pathname)).tensors;
    const args = caseJson.pipeline_args;
    const tokenizer = await loadPromptTokenizer(
      new URL(`${caseJson.model_dir}/tokenizer`, FIXTURES).pathname,
    );
    const prompts = ([] as string[]).concat(args.prompt);
    const negativePrompts = ([] as string[]).concat(args.negative_prompt);
    const positive = tokenizePrompts(tokenizer, prompts, { maxLength: args.max_sequence_length });
    const negative = tokenizePrompts(tokenizer, negativePrompts, {
      maxLength: args.max_sequence_length,
    });
    assert.deepEqual(positive.inputIds, tensors.get("input_ids"));
    assert.deepEqual(negative.inputIds, tensors.get("negative_input_ids"));
    if (name === "dpm-5b-dynamic-cfg") {
      // 23 and 21 content tokens, 15 of which fit beside `</s>`.
      assert.deepEqual(positive.droppedTokens, [8]);
      assert.deepEqual(negative.droppedTokens, [6]);
      assert.equal(positive.droppedText[0], "esh snow in a quiet pine forest");
    } else {
      assert.deepEqual(positive.droppedTokens, [0]);
      assert.deepEqual(negative.droppedText, [""]);
    }
  });
}

Deno.test("tokenizePrompts honours padding_side and truncation_side", async () => {
  const files: TokenizerFiles = {
    tokenizerJson: JSON.parse(await Deno.readTextFile(`${TOKENIZER_DIR}/tokenizer.json`)),
    tokenizerConfig: {
      pad_token: { content: "<pad>" },
      padding_side: "left",
      truncation_side: "left",
    },
    specialTokensMap: { eos_token: "</s>" },
  };
  const tokenizer = createPromptTokenizer(files);
  assert.equal(tokenizer.eosId, 1);
  // "a red ball rolls across a table": 11 content tokens.
  const { inputIds, droppedTokens } = tokenizePrompts(tokenizer, [
    "a red ball rolls across a table",
    "",
  ], {
    maxLength: 6,
  });
  assert.deepEqual(
    [...inputIds.data].map(Number),
    [148, 150, 3, 4, 67, 4, 146, 1].slice(-6).concat([0, 0, 0, 0, 0, 1]),
  );
  assert.deepEqual(droppedTokens, [6, 0]);
  assert.throws(
    () => tokenizePrompts(tokenizer, ["a"], { maxLength: 0 }),
    /Invalid max length "0"/,
  );
});

Deno.test("loadPromptTokenizer names the file that is missing or corrupt", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(loadPromptTokenizer(dir), {
      message: `Cannot load tokenizer: "${dir}/tokenizer.json" not found`,
    });
    await Deno.copyFile(`${TOKENIZER_DIR}/tokenizer.json`, `${dir}/tokenizer.json`);
    await Deno.writeTextFile(`${dir}/tokenizer_config.json`, "{ not json");
    await assert.rejects(loadPromptTokenizer(dir), (error: Error) => {
      assert.match(
        error.message,
        new RegExp(`^Invalid tokenizer file "${dir}/tokenizer_config.json": not JSON: `),
      );
      return true;
    });
    await Deno.writeTextFile(`${dir}/tokenizer_config.json`, "[]");
    await assert.rejects(loadPromptTokenizer(dir), {
      message: `Invalid tokenizer file "${dir}/tokenizer_config.json": expected a JSON object`,
    });
    await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify({ eos_token: "</s>" }));
    await assert.rejects(loadPromptTokenizer(dir), {
      message: `Invalid tokenizer "${dir}": no pad_token, which padding to max_length needs`,
    });
    await Deno.writeTextFile(
      `${dir}/special_tokens_map.json`,
      JSON.stringify({ pad_token: "<nothing>" }),
    );
    await assert.rejects(loadPromptTokenizer(dir), {
      message: `Invalid tokenizer "${dir}": pad_token "<nothing>" is not in the vocabulary`,
    });
    await Deno.writeTextFile(
      `${dir}/special_tokens_map.json`,
      JSON.stringify({ pad_token: "<pad>" }),
    );
    assert.equal((await loadPromptTokenizer(dir)).padId, 0);
    await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify({ model: {} }));
    await assert.rejects(
      loadPromptTokenizer(dir),
      (error: Error) => error.message.startsWith(`Invalid tokenizer "${dir}": `),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
