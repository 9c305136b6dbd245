import assert from "node:assert/strict";
import { fixture, outputsOf, runYaml, validationErrors } from "../tests/testing.ts";

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
  assert.deepEqual(
    { ...(tokenizer as Record<string, unknown>), fingerprint: undefined },
    { kind: "tokenizer", dir: fixture("2b", "tokenizer"), fingerprint: undefined },
  );
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
    }": missing tokenizer.json`,
  ]);
});
