import assert from "node:assert/strict";
import { join } from "node:path";
import { usesFusedAttention } from "./onnx_attention.ts";
import { textEncoderModel } from "../tests/onnx_models.ts";
import { fixture, withTempDir } from "../tests/testing.ts";

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
