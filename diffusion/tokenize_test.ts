import assert from "node:assert/strict";
import { readSafetensors } from "../runtime/safetensors.ts";
import { withTempDir } from "../tests/testing.ts";
import {
  createPromptTokenizer,
  findTokenizerFiles,
  loadPromptTokenizer,
  type PromptTokenizer,
  tokenizePrompts,
  type TokenizerFiles,
  type TokenizerJsonEncoder,
} from "./tokenize.ts";

const FIXTURES = new URL("../tests/fixtures/tiny-cogvideox/", import.meta.url);
const TOKENIZER_DIR = new URL("2b/tokenizer", FIXTURES).pathname;
const HF_FIXTURES = new URL("../tests/fixtures/tiny-cogvideox-hf/", import.meta.url);
const SPIECE_DIR = new URL("2b/tokenizer", HF_FIXTURES).pathname;

function row(tokenized: { inputIds: { data: BigInt64Array } }, index: number, length: number) {
  return [...tokenized.inputIds.data.subarray(length * index, length * index + length)].map(Number);
}

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
    const encoding = (tokenizer.encoder as TokenizerJsonEncoder).tokenizer.encode(text);
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
      message: `No tokenizer in "${dir}": missing tokenizer.json or spiece.model`,
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

Deno.test("loadPromptTokenizer reads a spiece.model folder as transformers' T5Tokenizer", async () => {
  const tokenizer = await loadPromptTokenizer(SPIECE_DIR);
  assert.equal(tokenizer.padId, 0);
  assert.equal(tokenizer.eosId, 1);
  assert.equal(tokenizer.paddingSide, "right");
  assert.equal(tokenizer.truncationSide, "right");
  assert.equal(tokenizer.source, SPIECE_DIR);
});

Deno.test("tokenizePrompts gives the pipeline's input_ids for every string of the HF tokenizer_tests.json", async () => {
  const tests = JSON.parse(await Deno.readTextFile(new URL("tokenizer_tests.json", HF_FIXTURES)));
  const cases: { text: string; input_ids: number[]; ids_untruncated: number[] }[] = tests.cases;
  const tokenizer = await loadPromptTokenizer(SPIECE_DIR);
  const tokenized = tokenizePrompts(tokenizer, cases.map((c) => c.text), {
    maxLength: tests.max_length,
  });
  assert.deepEqual(tokenized.inputIds.shape, [13, 16]);
  cases.forEach((c, i) => {
    assert.deepEqual(row(tokenized, i, 16), c.input_ids, `input_ids of ${JSON.stringify(c.text)}`);
    assert.equal(tokenized.droppedTokens[i], Math.max(0, c.ids_untruncated.length - 16));
  });
  const long = cases.findIndex((c) => c.text.startsWith("A small robot"));
  assert.equal(
    tokenized.droppedText[long],
    "an old brick wall while curious children watch from the sidewalk nearby",
  );
});

for (const name of ["ddim-2b-49f", "dpm-5b-49f-nonsquare"]) {
  Deno.test(`tokenizePrompts with spiece.model gives the input_ids of case ${name}`, async () => {
    const caseDir = new URL(`cases/${name}/`, HF_FIXTURES);
    const caseJson = JSON.parse(await Deno.readTextFile(new URL("case.json", caseDir)));
    const tensors =
      (await readSafetensors(new URL("tensors.safetensors", caseDir).pathname)).tensors;
    const args = caseJson.pipeline_args;
    const tokenizer = await loadPromptTokenizer(
      new URL(`${caseJson.model_dir}/tokenizer`, HF_FIXTURES).pathname,
    );
    const options = { maxLength: args.max_sequence_length };
    const positive = tokenizePrompts(tokenizer, [args.prompt], options);
    const negative = tokenizePrompts(tokenizer, [args.negative_prompt], options);
    assert.deepEqual(positive.inputIds, tensors.get("input_ids"));
    assert.deepEqual(negative.inputIds, tensors.get("negative_input_ids"));
    if (name === "dpm-5b-49f-nonsquare") {
      // The README: 38 + `</s>` and 29 + `</s>` tokens, 15 of which fit beside `</s>`.
      assert.deepEqual([positive.droppedTokens, negative.droppedTokens], [[23], [14]]);
    }
  });
}

Deno.test("tokenizePrompts tokenizes a prompt of a megabyte in reasonable time", async () => {
  const tokenizer: PromptTokenizer = await loadPromptTokenizer(SPIECE_DIR);
  const sentence = "a red ball rolls across a table café ﬁsh ";
  const prompt = sentence.repeat(Math.ceil((1 << 20) / sentence.length));
  const started = performance.now();
  const tokenized = tokenizePrompts(tokenizer, [prompt], { maxLength: 226 });
  const elapsed = performance.now() - started;
  const once = tokenizer.encoder.encode(sentence).content;
  const expected = Array.from({ length: 225 }, (_, i) => once[i % once.length]);
  assert.deepEqual(row(tokenized, 0, 226), [...expected, 1]);
  assert.equal(
    tokenized.droppedTokens[0],
    once.length * (prompt.length / sentence.length) - 225,
  );
  assert.ok(elapsed < 8000, `took ${elapsed} ms`);
});

Deno.test("findTokenizerFiles tells the layouts apart and lists the files a load reads", async () => {
  assert.deepEqual(await findTokenizerFiles(SPIECE_DIR), {
    layout: "spiece.model",
    files: ["spiece.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"]
      .map((name) => `${SPIECE_DIR}/${name}`),
  });
  assert.deepEqual(await findTokenizerFiles(`${TOKENIZER_DIR}/`), {
    layout: "tokenizer.json",
    files: ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
      .map((name) => `${TOKENIZER_DIR}/${name}`),
  });
  await withTempDir(async (dir) => {
    // tokenizer.json wins over spiece.model, as in transformers.
    await Deno.copyFile(`${SPIECE_DIR}/spiece.model`, `${dir}/spiece.model`);
    await Deno.copyFile(`${TOKENIZER_DIR}/tokenizer.json`, `${dir}/tokenizer.json`);
    assert.equal((await findTokenizerFiles(dir)).layout, "tokenizer.json");
    await Deno.remove(`${dir}/tokenizer.json`);
    assert.deepEqual(await findTokenizerFiles(dir), {
      layout: "spiece.model",
      files: [`${dir}/spiece.model`],
    });
    // Only spiece.model: transformers' defaults for the pad and end-of-sequence tokens.
    const tokenizer = await loadPromptTokenizer(dir);
    assert.deepEqual([tokenizer.padId, tokenizer.eosId], [0, 1]);
    await Deno.remove(`${dir}/spiece.model`);
    await assert.rejects(findTokenizerFiles(dir), {
      message: `No tokenizer in "${dir}": missing tokenizer.json or spiece.model`,
    });
  });
});

Deno.test("loadPromptTokenizer names a corrupt spiece.model", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/spiece.model`, "not a model");
    await assert.rejects(loadPromptTokenizer(dir), (error: Error) => {
      assert.match(
        error.message,
        new RegExp(`^Invalid SentencePiece model "${dir}/spiece.model": `),
      );
      return true;
    });
  });
});
