import assert from "node:assert/strict";
import type { Tensor } from "../runtime/tensor.ts";
import {
  assertClose,
  outputsOf,
  readCase,
  reference,
  runYaml,
  validationErrors,
} from "../tests/testing.ts";

const ENCODE_CASE_IDS = `
cogflow: 1
name: text_encode_test
nodes:
  encoder:
    type: load_model
    with: { path: 5b/text_encoder/model.onnx, role: text_encoder }
  ids:
    type: load_tensor
    with: { path: cases/dpm-5b-dynamic-cfg/tensors.safetensors, name: input_ids }
  negative_ids:
    type: load_tensor
    with: { path: cases/dpm-5b-dynamic-cfg/tensors.safetensors, name: negative_input_ids }
  encode:
    type: text_encode
    in: { model: encoder, input_ids: ids, negative_input_ids: negative_ids }
`;

Deno.test("text_encode turns the case's token ids into diffusers' prompt embeddings", async () => {
  const run = await runYaml(ENCODE_CASE_IDS, { only: ["encode"] });
  const outputs = outputsOf(run, "encode");
  const dpm = await readCase("dpm-5b-dynamic-cfg");
  for (const name of ["prompt_embeds", "negative_prompt_embeds"]) {
    const embeds = outputs[name] as Tensor;
    assert.deepEqual(embeds.shape, [1, 16, 32]);
    assertClose(embeds, reference(dpm, name), name);
  }
});

Deno.test("text_encode without negative ids gives no negative embeddings", async () => {
  const run = await runYaml(
    ENCODE_CASE_IDS.replace(", negative_input_ids: negative_ids", ""),
    { only: ["encode"] },
  );
  const outputs = outputsOf(run, "encode");
  assert.deepEqual((outputs.prompt_embeds as Tensor).shape, [1, 16, 32]);
  assert.equal(outputs.negative_prompt_embeds, undefined);
});

Deno.test("text_encode refuses a model that does not take token ids, before running", async () => {
  const errors = await validationErrors(
    ENCODE_CASE_IDS.replace("5b/text_encoder/model.onnx", "5b/vae_decoder/model.onnx"),
  );
  assert.equal(errors.length, 1);
  assert.match(
    errors[0],
    /nodes\.encode\.in\.model: Model "encoder.model" does not look like a text encoder: it takes latent_sample float32, expected one int64 input of token ids$/,
  );
});
