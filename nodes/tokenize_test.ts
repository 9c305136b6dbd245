import assert from "node:assert/strict";
import { join } from "node:path";
import { UserError } from "../engine/mod.ts";
import type { Tensor } from "../runtime/tensor.ts";
import {
  assertBitEqual,
  logMessages,
  outputsOf,
  readCase,
  reference,
  ROOT,
  rows,
  runFailure,
  runYaml,
  validationErrors,
  withTempDir,
} from "../tests/testing.ts";

const HF_DIR = join(ROOT, "tests", "fixtures", "tiny-cogvideox-hf");

/** A workflow that only tokenizes, with the fixture tokenizer. */
function tokenizeWorkflow(settings: string, tokenizer = "2b/tokenizer"): string {
  return `
cogflow: 1
name: tokenize_test
nodes:
  tokenizer: { type: load_tokenizer, with: { path: "${tokenizer}" } }
  prompts:
    type: tokenize
    in: { tokenizer: tokenizer }
    with: ${settings}
`;
}

async function tokenizeOutputs(settings: string, tokenizer?: string) {
  const run = await runYaml(tokenizeWorkflow(settings, tokenizer), { only: ["prompts"] });
  const outputs = outputsOf(run, "prompts");
  return {
    ids: outputs.input_ids as Tensor<"int64">,
    negativeIds: outputs.negative_input_ids as Tensor<"int64">,
    warnings: logMessages(run.events, "prompts"),
  };
}

function idsOf(tensor: Tensor, row = 0): number[] {
  return Array.from(rows(tensor, row).data as BigInt64Array, Number);
}

Deno.test("tokenize pads like the pipeline: content, </s>, then <pad> up to max_length", async () => {
  const { ids, negativeIds, warnings } = await tokenizeOutputs(
    `{ prompt: "a red ball rolls across a table", max_length: 16 }`,
  );
  const ddim = await readCase("ddim-2b");
  assertBitEqual(ids, reference(ddim, "input_ids"), "input_ids");
  // The negative prompt defaults to "", which is `</s>` then padding.
  assertBitEqual(negativeIds, reference(ddim, "negative_input_ids"), "negative_input_ids");
  assert.deepEqual(idsOf(negativeIds), [1, ...new Array(15).fill(0)]);
  assert.deepEqual(warnings, []);
});

Deno.test("tokenize warns once per truncated prompt, saying how many tokens were dropped", async () => {
  const dpm = await readCase("dpm-5b-dynamic-cfg");
  const args = dpm.json.pipeline_args;
  const { ids, negativeIds, warnings } = await tokenizeOutputs(
    JSON.stringify({ prompt: args.prompt, negative_prompt: args.negative_prompt, max_length: 16 }),
  );
  assertBitEqual(ids, reference(dpm, "input_ids"), "input_ids");
  assertBitEqual(negativeIds, reference(dpm, "negative_input_ids"), "negative_input_ids");
  assert.deepEqual(warnings, [
    'The prompt was truncated: 8 tokens dropped ("esh snow in a quiet pine forest")',
    'The negative prompt was truncated: 6 tokens dropped ("distorted")',
  ]);
});

Deno.test("tokenize takes a list of prompts with one negative prompt for all of them", async () => {
  const long = "a golden retriever runs through fresh snow in a quiet pine forest";
  const { ids, negativeIds, warnings } = await tokenizeOutputs(
    JSON.stringify({
      prompt: ["a red ball rolls across a table", long],
      negative_prompt: "blurry, low quality, distorted",
      max_length: 16,
    }),
  );
  assert.deepEqual(ids.shape, [2, 16]);
  assert.deepEqual(negativeIds.shape, [2, 16]);
  const ddim = await readCase("ddim-2b");
  const dpm = await readCase("dpm-5b-dynamic-cfg");
  assert.deepEqual(idsOf(ids, 0), idsOf(reference(ddim, "input_ids")));
  assert.deepEqual(idsOf(ids, 1), idsOf(reference(dpm, "input_ids")));
  // The one negative prompt is repeated for each prompt, and its truncation reported once.
  assert.deepEqual(idsOf(negativeIds, 0), idsOf(reference(dpm, "negative_input_ids")));
  assert.deepEqual(idsOf(negativeIds, 1), idsOf(reference(dpm, "negative_input_ids")));
  assert.deepEqual(warnings, [
    'Prompt 2 was truncated: 8 tokens dropped ("esh snow in a quiet pine forest")',
    'The negative prompt was truncated: 6 tokens dropped ("distorted")',
  ]);
});

Deno.test("tokenize takes one negative prompt per prompt", async () => {
  const { negativeIds, warnings } = await tokenizeOutputs(
    JSON.stringify({
      prompt: ["a red ball", "a blue cube"],
      negative_prompt: ["", "blurry, low quality, distorted"],
      max_length: 16,
    }),
  );
  const dpm = await readCase("dpm-5b-dynamic-cfg");
  assert.deepEqual(idsOf(negativeIds, 0), [1, ...new Array(15).fill(0)]);
  assert.deepEqual(idsOf(negativeIds, 1), idsOf(reference(dpm, "negative_input_ids")));
  assert.deepEqual(warnings, [
    'Negative prompt 2 was truncated: 6 tokens dropped ("distorted")',
  ]);
});

Deno.test("tokenize rejects a number of negative prompts that is neither one nor one per prompt", async () => {
  const errors = await validationErrors(
    tokenizeWorkflow(`{ prompt: [a, b], negative_prompt: [x, y, z], max_length: 16 }`),
  );
  assert.equal(errors.length, 1);
  assert.match(
    errors[0],
    /nodes\.prompts\.with\.negative_prompt: Got 3 negative prompts for 2 prompts: give one, or one per prompt$/,
  );
});

Deno.test("tokenize runs a SentencePiece tokenizer folder as transformers' T5Tokenizer", async () => {
  const tests = JSON.parse(await Deno.readTextFile(join(HF_DIR, "tokenizer_tests.json")));
  const [short, long] = ["a red ball", "A small robot"].map((start) =>
    tests.cases.find((c: { text: string }) => c.text.startsWith(start))
  );
  const { ids, negativeIds, warnings } = await tokenizeOutputs(
    JSON.stringify({ prompt: [short.text, long.text], max_length: 16 }),
    join(HF_DIR, "2b", "tokenizer"),
  );
  assert.deepEqual(idsOf(ids, 0), short.input_ids);
  assert.deepEqual(idsOf(ids, 1), long.input_ids);
  assert.deepEqual(idsOf(negativeIds, 1), [1, ...new Array(15).fill(0)]);
  assert.deepEqual(warnings, [
    'Prompt 2 was truncated: 31 tokens dropped ("an old brick wall while curious children watch from the sidewalk nearby")',
  ]);
});

Deno.test("tokenize quotes at most 200 characters of what truncation dropped", async () => {
  const { warnings } = await tokenizeOutputs(
    JSON.stringify({ prompt: "a red ball ".repeat(1000), max_length: 16 }),
    join(HF_DIR, "2b", "tokenizer"),
  );
  assert.equal(warnings.length, 1);
  assert.equal(
    warnings[0],
    // 7 tokens per "a red ball" (ball is spelt out), 15 kept.
    `The prompt was truncated: 6985 tokens dropped ("${
      "red ball a ".repeat(20).slice(0, 200)
    }...")`,
  );
});

Deno.test("tokenize of a corrupt spiece.model fails with a user error naming the file", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "spiece.model"), "not a model");
    const failure = await runFailure(tokenizeWorkflow(`{ prompt: "a" }`, dir));
    assert.ok(failure.cause instanceof UserError);
    assert.match(
      failure.message,
      new RegExp(
        `^Node "prompts" \\(tokenize\\) failed: Cannot load tokenizer "${dir}": Invalid SentencePiece model "${
          join(dir, "spiece.model")
        }": not a SentencePiece model: `,
      ),
    );
  });
});
