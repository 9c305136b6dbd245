import assert from "node:assert/strict";
import { join } from "node:path";
import { attentionKindOf, scanAttention, usesFusedAttention } from "./onnx_attention.ts";
import { textEncoderModel } from "../tests/onnx_models.ts";
import { fixture, ROOT, withTempDir } from "../tests/testing.ts";

Deno.test("torch's export of diffusers' attention (MatMul, Softmax) is not fused", async () => {
  assert.equal(await usesFusedAttention(fixture("2b", "transformer", "model.onnx")), false);
  assert.equal(await usesFusedAttention(fixture("5b", "transformer", "model.onnx")), false);
});

Deno.test("a graph with a MultiHeadAttention node is fused; an unreadable file counts as unfused", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "model.onnx");
    await Deno.writeFile(path, textEncoderModel({ width: 4, opType: "MultiHeadAttention" }));
    assert.equal(await usesFusedAttention(path), true);
    assert.equal(await usesFusedAttention(join(dir, "missing.onnx")), false);
  });
});

Deno.test("a chunked MultiHeadAttention graph reports its query chunk; the CPU counts it unfused per chunk", async () => {
  const { buildCogVideoXTransformer } = await import("../builders/cogvideox_transformer.ts");
  const { loadComponentWeights } = await import("../builders/safetensors_weights.ts");
  const dir = join(ROOT, "tests", "fixtures", "tiny-cogvideox-hf", "2b", "transformer");
  const config = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
  const model = {
    config,
    configPath: join(dir, "config.json"),
    weights: await loadComponentWeights(dir),
  };
  await withTempDir(async (temp) => {
    const whole = join(temp, "whole.onnx");
    const chunked = join(temp, "chunked.onnx");
    await Deno.writeFile(whole, buildCogVideoXTransformer(model));
    await Deno.writeFile(chunked, buildCogVideoXTransformer({ ...model, attentionQueryChunk: 7 }));
    assert.deepEqual(await scanAttention(whole), { fused: true });
    assert.deepEqual(await scanAttention(chunked), { fused: true, queryChunk: 7 });
    assert.deepEqual(attentionKindOf(await scanAttention(chunked), "cpu"), {
      attention: "unfused",
      attentionQueryChunk: 7,
    });
    assert.deepEqual(attentionKindOf(await scanAttention(whole), "cpu"), { attention: "fused" });
    assert.deepEqual(attentionKindOf(await scanAttention(chunked), "cuda"), { attention: "fused" });
    assert.deepEqual(attentionKindOf({ fused: false }, "cuda"), { attention: "unfused" });
  });
});
