import assert from "node:assert/strict";
import * as ort from "onnxruntime-node";
import { GraphBuilder } from "../builders/onnx_graph.ts";
import { NativeOrt } from "./ort_native.ts";
import { createTensor } from "./tensor.ts";
import { testInWholeFfiChild, WHOLE_FFI } from "../tests/whole_ffi.ts";

const TRANSFORMER_2B = new URL(
  "../tests/fixtures/tiny-cogvideox/2b/transformer/model.onnx",
  import.meta.url,
).pathname;

/** `y = x * factor + 1` over float32 `[n]`. */
function affine(factor: number): Uint8Array {
  const b = new GraphBuilder({ name: "affine", computeDType: "float32" });
  const x = b.input("x", "float32", ["n"]);
  b.output(b.op("Add", [b.op("Mul", [x, b.scalar(factor)]), b.scalar(1)]), "y", "float32", ["n"]);
  return b.toBytes();
}

testInWholeFfiChild(
  "ort_native's tests pass in a child with the whole ffi permission",
  import.meta.url,
  4,
);

if (WHOLE_FFI) {
  Deno.test("a native session runs on CPU values, and its output feeds the next session without leaving ONNX Runtime", async () => {
    const native = NativeOrt.open();
    const double = native.createSession(affine(2));
    const triple = native.createSession(affine(3));
    assert.deepEqual(double.inputNames, ["x"]);
    assert.deepEqual(double.outputNames, ["y"]);
    const x = native.cpuValue(createTensor("float32", [4], Float32Array.from([0, 1, 2, -3])));
    const first = await double.run({ x });
    assert.deepEqual(first.y.shape, [4]);
    const second = await triple.run({ x: first.y });
    const y = second.y.toTensor();
    assert.deepEqual(y.shape, [4]);
    assert.deepEqual([...y.data as Float32Array], [4, 10, 16, -14]);
    for (const value of [x, first.y, second.y]) value.release();
    double.release();
    triple.release();
    assert.throws(() => double.run({}), /released/);
  });

  Deno.test("a native session gives onnxruntime-node's outputs for a model file", async () => {
    const bytes = await Deno.readFile(TRANSFORMER_2B);
    const ramp = (n: number, seed: number) =>
      Float32Array.from({ length: n }, (_, i) => (((i + seed) * 37) % 101) / 50.5 - 1);
    const feeds = {
      hidden_states: createTensor("float32", [2, 3, 4, 8, 8], ramp(2 * 3 * 4 * 8 * 8, 1)),
      encoder_hidden_states: createTensor("float32", [2, 16, 32], ramp(2 * 16 * 32, 7)),
      timestep: createTensor("int64", [2], new BigInt64Array([999n, 999n])),
    };
    const reference = await ort.InferenceSession.create(bytes);
    const expected = await reference.run(
      Object.fromEntries(
        Object.entries(feeds).map((
          [name, t],
        ) => [name, new ort.Tensor(t.dtype, t.data, [...t.shape])]),
      ),
    );
    await reference.release();
    const native = NativeOrt.open();
    const session = native.createSession(bytes);
    const values = Object.fromEntries(
      Object.entries(feeds).map(([name, t]) => [name, native.cpuValue(t)]),
    );
    const outputs = await session.run(values);
    const sample = outputs.sample.toTensor();
    assert.deepEqual(sample.shape, [...expected.sample.dims]);
    assert.deepEqual(sample.data, expected.sample.data);
    for (const value of [...Object.values(values), ...Object.values(outputs)]) value.release();
    session.release();
  });

  Deno.test("a host block holds tensors as views of one allocation; a view must fit it and its dtype", async () => {
    const native = NativeOrt.open();
    const block = native.hostBlock(512);
    const a = block.view(0, 16, "float32", [4]);
    const b = block.view(256, 8, "float32", [2]);
    a.bytes.set(new Uint8Array(Float32Array.of(1, 2, 3, 4).buffer));
    b.bytes.set(new Uint8Array(Float32Array.of(-1, 0.5).buffer));
    const session = native.createSession(affine(2));
    const outputs = await session.run({ x: a.value });
    assert.deepEqual([...outputs.y.toTensor().data as Float32Array], [3, 5, 7, 9]);
    assert.deepEqual([...b.value.toTensor().data as Float32Array], [-1, 0.5]);
    assert.throws(() => block.view(500, 16, "float32", [4]), /outside a block of 512/);
    assert.throws(() => block.view(0, 12, "float32", [4]), /12 bytes for float32 \[4\]/);
    for (const value of [a.value, b.value, outputs.y]) value.release();
    block.release();
    session.release();
  });

  Deno.test("native errors carry ONNX Runtime's message", () => {
    const native = NativeOrt.open();
    assert.throws(() => native.createSession(new Uint8Array([1, 2, 3])), /protobuf|parse|model/i);
  });
}
