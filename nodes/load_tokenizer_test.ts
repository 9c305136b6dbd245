import assert from "node:assert/strict";
import { join } from "node:path";
import { UserError } from "../engine/mod.ts";
import {
  fixture,
  outputsOf,
  ROOT,
  runYaml,
  validationErrors,
  withTempDir,
} from "../tests/testing.ts";
import { describeTokenizerFolder } from "./load_tokenizer.ts";

const SPIECE_DIR = join(ROOT, "tests", "fixtures", "tiny-cogvideox-hf", "2b", "tokenizer");

Deno.test("load_tokenizer points at a tokenizer folder", async () => {
  const run = await runYaml(
    `
cogflow: 1
name: load_tokenizer_test
nodes:
  tokenizer: { type: load_tokenizer, with: { path: 2b/tokenizer } }
`,
    { only: ["tokenizer"] },
  );
  const { tokenizer } = outputsOf(run, "tokenizer");
  const dir = fixture("2b", "tokenizer");
  assert.deepEqual(
    { ...(tokenizer as Record<string, unknown>), fingerprint: undefined },
    {
      kind: "tokenizer",
      dir,
      fingerprint: undefined,
      files: ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
        .map((name) => join(dir, name)),
    },
  );
});

Deno.test("load_tokenizer takes a SentencePiece folder without tokenizer.json", async () => {
  const run = await runYaml(
    `
cogflow: 1
name: load_tokenizer_test
nodes:
  tokenizer: { type: load_tokenizer, with: { path: "${SPIECE_DIR}" } }
`,
    { only: ["tokenizer"] },
  );
  assert.deepEqual(
    outputsOf(run, "tokenizer").tokenizer,
    await describeTokenizerFolder(SPIECE_DIR),
  );
});

Deno.test("describeTokenizerFolder fingerprints every file a load reads", async () => {
  const handle = await describeTokenizerFolder(SPIECE_DIR);
  assert.deepEqual(
    handle.files,
    ["spiece.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"]
      .map((name) => join(SPIECE_DIR, name)),
  );
  assert.match(
    handle.fingerprint,
    /^spiece\.model:257849:\d+,tokenizer_config\.json:20717:\d+,special_tokens_map\.json:2543:\d+,added_tokens\.json:2493:\d+$/,
  );
  await withTempDir(async (dir) => {
    await Deno.copyFile(join(SPIECE_DIR, "spiece.model"), join(dir, "spiece.model"));
    const before = await describeTokenizerFolder(dir);
    await Deno.writeTextFile(join(dir, "tokenizer_config.json"), "{}");
    const after = await describeTokenizerFolder(dir);
    assert.notEqual(after.fingerprint, before.fingerprint);
    await Deno.remove(join(dir, "spiece.model"));
    await assert.rejects(describeTokenizerFolder(dir), (error: Error) => {
      assert.ok(error instanceof UserError);
      assert.equal(
        error.message,
        `No tokenizer in "${dir}": missing tokenizer.json or spiece.model`,
      );
      return true;
    });
  });
});

Deno.test("load_tokenizer of a folder without tokenizer.json is a validation error", async () => {
  const errors = await validationErrors(`
cogflow: 1
name: load_tokenizer_test
nodes:
  tokenizer: { type: load_tokenizer, with: { path: 2b/transformer } }
`);
  assert.deepEqual(errors.map((error) => error.replace(/^.*?nodes\./, "nodes.")), [
    `nodes.tokenizer: Node "tokenizer": No tokenizer in "${
      fixture("2b", "transformer")
    }": missing tokenizer.json or spiece.model`,
  ]);
});
