import assert from "node:assert/strict";
import { join } from "node:path";
import { applyEdits, describeText, EditError, openWorkflowEditor } from "./edit.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const MODEL = join(ROOT, "tests/fixtures/tiny-cogvideox/2b");

/** The tiny workflow (its comments included), reading the fixture models by absolute path. */
async function tinyText(): Promise<string> {
  const text = await Deno.readTextFile(join(ROOT, "workflows/tiny.yaml"));
  return text.replace("../tests/fixtures/tiny-cogvideox/2b", MODEL);
}

/** The lines removed from `before` and added in `after`, by a longest-common-subsequence diff. */
function lineDiff(before: string, after: string): { removed: string[]; added: string[] } {
  const a = before.split("\n");
  const b = after.split("\n");
  const common = Array.from({ length: a.length + 1 }, () => new Array(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      common[i][j] = a[i] === b[j]
        ? common[i + 1][j + 1] + 1
        : Math.max(common[i + 1][j], common[i][j + 1]);
    }
  }
  const removed: string[] = [];
  const added: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      i++;
      j++;
    } else if (j < b.length && (i === a.length || common[i][j + 1] >= common[i + 1][j])) {
      added.push(b[j++]);
    } else {
      removed.push(a[i++]);
    }
  }
  return { removed, added };
}

const SMALL = `# A small workflow.
cogflow: 1
name: small
params:
  steps: { type: integer, default: 2 } # how many
nodes:
  pipe:
    type: load_pipeline
    with: { path: ${MODEL} }
  # Tokens of the prompt.
  prompts:
    type: tokenize
    in: { tokenizer: pipe.tokenizer }
    with:
      prompt: hello
      max_length: 16
  encode:
    type: text_encode
    in:
      model: pipe.text_encoder # the encoder
      input_ids: prompts.input_ids
`;

Deno.test("saving an untouched document writes back identical bytes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "tiny.yaml");
    const text = await tinyText();
    await Deno.writeTextFile(path, text);
    const editor = await openWorkflowEditor(path);
    assert.equal(editor.changed, false);
    await editor.save();
    assert.equal(await Deno.readTextFile(path), text);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("setting a setting changes only its line, comments kept", async () => {
  const text = await tinyText();
  const editor = await applyEdits(text, [
    { op: "set_setting", node: "prompts", name: "max_length", value: 12 },
  ]);
  assert.deepEqual(lineDiff(text, editor.text), {
    removed: [
      "    with: { prompt: $prompt, negative_prompt: $negative_prompt, max_length: $max_sequence_length }",
    ],
    added: ["    with: { prompt: $prompt, negative_prompt: $negative_prompt, max_length: 12 }"],
  });
  assert.match(editor.text, /# Memory hooks wrap the models/);
});

Deno.test("a new setting goes into the node's flow or block mapping, or a new one", async () => {
  const editor = await applyEdits(SMALL, [
    { op: "set_setting", node: "pipe", name: "dtype", value: "float32" },
    { op: "set_setting", node: "prompts", name: "negative_prompt", value: "blurry, dark" },
    { op: "add_node", id: "n", type: "noise" },
    { op: "set_setting", node: "n", name: "seed", value: 3 },
  ]);
  const diff = lineDiff(SMALL, editor.text);
  assert.deepEqual(diff.removed, [`    with: { path: ${MODEL} }`]);
  assert.deepEqual(diff.added, [
    `    with: { path: ${MODEL}, dtype: float32 }`,
    '      negative_prompt: "blurry, dark"',
    "  n:",
    "    type: noise",
    "    with: { seed: 3 }",
  ]);
});

Deno.test("a setting is removed with undefined, its empty mapping too", async () => {
  const editor = await applyEdits(SMALL, [
    { op: "set_setting", node: "prompts", name: "prompt", value: undefined },
    { op: "set_setting", node: "prompts", name: "max_length", value: undefined },
  ]);
  assert.deepEqual(lineDiff(SMALL, editor.text), {
    removed: ["    with:", "      prompt: hello", "      max_length: 16"],
    added: [],
  });
});

Deno.test("an unknown setting is refused with the settings there are", async () => {
  await assert.rejects(
    applyEdits(SMALL, [{ op: "set_setting", node: "prompts", name: "nope", value: 1 }]),
    (error: Error) =>
      error instanceof EditError &&
      /^Unknown setting "nope" for node type "tokenize": its settings are /.test(error.message),
  );
});

Deno.test("set_param changes the default on its line, the comment after it kept", async () => {
  const editor = await applyEdits(SMALL, [{ op: "set_param", name: "steps", value: 5 }]);
  assert.deepEqual(lineDiff(SMALL, editor.text), {
    removed: ["  steps: { type: integer, default: 2 } # how many"],
    added: ["  steps: { type: integer, default: 5 } # how many"],
  });
});

Deno.test("add_node appends a block after the last node; move_node writes ui.positions", async () => {
  const editor = await applyEdits(SMALL, [
    { op: "add_node", id: "sched", type: "scheduler", settings: { type: "ddim" } },
    { op: "move_node", id: "sched", position: [120.4, 80] },
    { op: "move_node", id: "pipe", position: [0, 0] },
  ]);
  assert.deepEqual(lineDiff(SMALL, editor.text).added, [
    "  sched:",
    "    type: scheduler",
    "    with: { type: ddim }",
    "ui:",
    "  positions:",
    "    sched: [120, 80]",
    "    pipe: [0, 0]",
  ]);
  const graph = describeText(editor.text);
  assert.deepEqual(graph.nodes.find((node) => node.id === "sched")?.position, [120, 80]);
  // The engine ignores `ui:`.
  editor.connect("pipe.scheduler", "sched.base");
  assert.match(editor.text, /^ {4}with: \{ type: ddim \}\n {4}in: \{ base: pipe.scheduler \}\n/m);
  assert.deepEqual(await editor.validate(), []);
  // Moving again replaces the position in place.
  editor.moveNode("sched", [1, 2]);
  assert.match(editor.text, /^ {4}sched: \[1, 2\]$/m);
});

Deno.test("add_node refuses an existing id and an unknown type", async () => {
  await assert.rejects(
    applyEdits(SMALL, [{ op: "add_node", id: "pipe", type: "noise" }]),
    /Node "pipe" exists already/,
  );
  await assert.rejects(
    applyEdits(SMALL, [{ op: "add_node", id: "x", type: "nope" }]),
    /Unknown node type "nope"/,
  );
});

Deno.test("remove_node removes the node and the inputs that read it", async () => {
  const editor = await applyEdits(SMALL, [{ op: "remove_node", id: "prompts" }]);
  assert.deepEqual(lineDiff(SMALL, editor.text), {
    removed: [
      "  prompts:",
      "    type: tokenize",
      "    in: { tokenizer: pipe.tokenizer }",
      "    with:",
      "      prompt: hello",
      "      max_length: 16",
      "      input_ids: prompts.input_ids",
    ],
    added: [],
  });
  assert.match(editor.text, /# Tokens of the prompt./);
});

Deno.test("rename_node updates in:, wraps:, outputs: and ui:", async () => {
  const text = `${
    SMALL.replace("nodes:", "outputs: [encode]\nnodes:")
  }  hook:\n    type: model_offload\n    wraps: [pipe.text_encoder]\nui:\n  positions:\n    pipe: [1, 2]\n`;
  const editor = await applyEdits(text, [{ op: "rename_node", id: "pipe", to: "pipeline" }, {
    op: "rename_node",
    id: "encode",
    to: "enc",
  }]);
  assert.doesNotMatch(editor.text, /\bpipe\b/);
  assert.match(editor.text, /in: \{ tokenizer: pipeline.tokenizer \}/);
  assert.match(editor.text, /model: pipeline.text_encoder # the encoder/);
  assert.match(editor.text, /wraps: \[pipeline.text_encoder\]/);
  assert.match(editor.text, /outputs: \[enc\]/);
  assert.match(editor.text, /^ {4}pipeline: \[1, 2\]$/m);
  assert.equal(
    lineDiff(text, editor.text).removed.length,
    lineDiff(text, editor.text).added.length,
  );
  assert.deepEqual(await editor.validate(), []);
});

Deno.test("connect writes the reference; disconnect removes it", async () => {
  const text = await tinyText();
  const editor = await applyEdits(text, [
    { op: "disconnect", to: "decode.latents" },
  ]);
  const problems = await editor.validate();
  assert.ok(
    problems.some((problem) => problem.code === "missing_input" && problem.node === "decode"),
  );
  editor.connect("sample.latents", "decode.latents");
  assert.equal(
    editor.text,
    text.replace(
      "in: { model: pipe.vae, latents: sample.latents }",
      "in: { model: pipe.vae, latents: sample.latents }",
    ),
  );
  assert.deepEqual(await editor.validate(), []);
});

Deno.test("an incompatible connection is refused with the reason", async () => {
  const editor = await applyEdits(SMALL, []);
  assert.throws(
    () => editor.connect("pipe.vae", "encode.model"),
    (error: Error) =>
      error instanceof EditError &&
      error.message ===
        'Cannot connect "pipe.vae" to "encode.model": expected model<text_encoder>, got model<vae>',
  );
  assert.match(
    editor.connectionProblem("pipe.tokenizer", "encode.input_ids") ?? "",
    /^Cannot connect "pipe.tokenizer" to "encode.input_ids": expected tensor/,
  );
  assert.match(editor.connectionProblem("encode.prompt_embeds", "prompts.tokenizer") ?? "", /./);
  assert.equal(editor.connectionProblem("pipe.text_encoder", "encode.model"), undefined);
  assert.equal(editor.text, SMALL);
});

Deno.test("a connection that would make a cycle is refused", async () => {
  const editor = await applyEdits(SMALL, [
    { op: "add_node", id: "n", type: "noise" },
  ]);
  editor.connect("encode.prompt_embeds", "n.prompt_embeds");
  assert.equal(
    editor.connectionProblem("n.latents", "encode.input_ids"),
    'Cannot connect "n.latents" to "encode.input_ids": it would make a cycle',
  );
});

Deno.test("validate reports problems with their node and port", async () => {
  const editor = await applyEdits(SMALL, [
    { op: "set_setting", node: "prompts", name: "max_length", value: "many" },
  ]);
  const problems = await editor.validate();
  assert.equal(problems.length, 1);
  assert.equal(problems[0].node, "prompts");
  assert.equal(problems[0].port, "max_length");
});
