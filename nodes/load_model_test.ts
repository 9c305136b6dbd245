import assert from "node:assert/strict";
import { join } from "node:path";
import type { ModelHandle } from "../runtime/model_handle.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { textEncoderModel } from "../tests/onnx_models.ts";
import {
  fixture,
  outputsOf,
  runFailure,
  runYaml,
  validationErrors,
  withTempDir,
} from "../tests/testing.ts";

function loadModelWorkflow(path: string, settings = ""): string {
  return `
cogflow: 1
name: load_model_test
nodes:
  model: { type: load_model, with: { path: "${path}"${settings} } }
`;
}

/** Encodes the ddim-2b case's token ids with the text encoder in `path`. */
function encodeWorkflow(path: string): string {
  return `
cogflow: 1
name: load_model_test
nodes:
  encoder: { type: load_model, with: { path: "${path}", role: text_encoder } }
  ids:
    type: load_tensor
    with: { path: cases/ddim-2b/tensors.safetensors, name: input_ids }
  encode: { type: text_encode, in: { model: encoder, input_ids: ids } }
`;
}

Deno.test("load_model describes a model file without loading it: inputs, outputs and config", async () => {
  const run = await runYaml(
    loadModelWorkflow("5b/transformer/model.onnx", ", role: transformer"),
    { only: ["model"] },
  );
  const model = outputsOf(run, "model").model as ModelHandle;
  assert.equal(model.kind, "onnx_model");
  assert.equal(model.name, "transformer");
  assert.equal(model.role, "transformer");
  assert.equal(model.path, fixture("5b", "transformer", "model.onnx"));
  assert.deepEqual(model.signature.inputs.map((input) => input.name), [
    "hidden_states",
    "encoder_hidden_states",
    "timestep",
    "image_rotary_emb_cos",
    "image_rotary_emb_sin",
  ]);
  // The config.json beside the model comes with it.
  assert.equal(model.config.use_rotary_positional_embeddings, true);
});

Deno.test("load_model of a missing or corrupt file is a validation error naming the file", async () => {
  await withTempDir(async (dir) => {
    const missing = join(dir, "missing.onnx");
    assert.deepEqual(
      (await validationErrors(loadModelWorkflow(missing))).map((e) =>
        e.replace(/^.*?nodes\./, "nodes.")
      ),
      [`nodes.model: Node "model": Model file "${missing}" does not exist`],
    );

    const text = join(dir, "notes.onnx");
    await Deno.writeTextFile(text, "not a model\n");
    assert.deepEqual(
      (await validationErrors(loadModelWorkflow(text))).map((e) =>
        e.replace(/^.*?nodes\./, "nodes.")
      ),
      [`nodes.model: Node "model": Not an ONNX model "${text}": it looks like a text file`],
    );

    const truncated = join(dir, "truncated.onnx");
    const bytes = await Deno.readFile(fixture("2b", "transformer", "model.onnx"));
    await Deno.writeFile(truncated, bytes.subarray(0, 100_000));
    const [error, ...more] = await validationErrors(loadModelWorkflow(truncated));
    assert.deepEqual(more, []);
    assert.match(error, /Not an ONNX model ".*truncated\.onnx": invalid protobuf at byte \d+: /);
  });
});

Deno.test("load_model of a model ONNX Runtime cannot load fails when it runs, naming the model", async () => {
  await withTempDir(async (dir) => {
    const working = join(dir, "encoder.onnx");
    await Deno.writeFile(working, textEncoderModel({ width: 32 }));
    const run = await runYaml(encodeWorkflow(working), { only: ["encode"] });
    assert.deepEqual((outputsOf(run, "encode").prompt_embeds as Tensor).shape, [1, 16, 32]);

    // The file is a well-formed ONNX model, so it passes validation; its operator is unknown.
    const broken = join(dir, "broken.onnx");
    await Deno.writeFile(broken, textEncoderModel({ width: 32, opType: "NoSuchOp" }));
    const failure = await runFailure(encodeWorkflow(broken));
    assert.ok(
      failure.message.startsWith(
        `Node "encode" (text_encode) failed: Cannot load model "broken" from "${broken}": `,
      ),
      failure.message,
    );
    assert.match(failure.message, /NoSuchOp/);
  });
});
