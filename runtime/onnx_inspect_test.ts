import assert from "node:assert/strict";
import onnxProto from "onnx-proto";
import {
  elementBytes,
  elementTypeOf,
  externalDataPath,
  inspectOnnxModel,
  inspectOnnxSource,
  verifyExternalData,
} from "./onnx_inspect.ts";
import { type ByteSource, bytesSource } from "./protobuf_wire.ts";
import { encodeSafetensors } from "./safetensors.ts";
import { createTensor } from "./tensor.ts";

const { onnx } = onnxProto;
const FIXTURES = new URL("../tests/fixtures/tiny-cogvideox/", import.meta.url).pathname;

/** A one-node model, `y = x + w`, whose weight `w` is stored as given. */
function addModel(weight: onnxProto.onnx.ITensorProto): Uint8Array {
  const float = (name: string, dims: (number | string)[]) => ({
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: dims.map((d) => typeof d === "number" ? { dimValue: d } : { dimParam: d }) },
      },
    },
  });
  return onnx.ModelProto.encode({
    irVersion: 8,
    producerName: "test",
    opsetImport: [{ domain: "", version: 17 }, { domain: "com.microsoft", version: 1 }],
    graph: {
      name: "add",
      node: [{ name: "add", opType: "Add", input: ["x", "w"], output: ["y"] }],
      initializer: [{ name: "w", dataType: onnx.TensorProto.DataType.FLOAT, dims: [4], ...weight }],
      input: [float("x", ["batch", 4])],
      output: [float("y", ["batch", 4])],
    },
  }).finish();
}

function externalWeight(location: string, offset = 0): onnxProto.onnx.ITensorProto {
  return {
    dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
    externalData: [
      { key: "location", value: location },
      { key: "offset", value: String(offset) },
      { key: "length", value: "16" },
    ],
  };
}

Deno.test("inspectOnnxModel reads the fixture transformers' declared inputs and outputs", async () => {
  const info = await inspectOnnxModel(`${FIXTURES}5b/transformer/model.onnx`);
  assert.equal(info.irVersion, 8);
  assert.equal(info.producer, "pytorch 2.11.0");
  assert.deepEqual(info.opsets, [{ domain: "", version: 17 }]);
  assert.deepEqual(info.inputs.map((input) => [input.name, input.dtype, input.shape]), [
    ["hidden_states", "float32", ["batch", "frames", 4, "height", "width"]],
    ["encoder_hidden_states", "float32", ["batch", 16, 32]],
    ["timestep", "int64", ["batch"]],
    ["image_rotary_emb_cos", "float32", ["video_tokens", 16]],
    ["image_rotary_emb_sin", "float32", ["video_tokens", 16]],
  ]);
  assert.deepEqual(info.outputs, [{
    name: "sample",
    kind: "tensor",
    dtype: "float32",
    shape: ["batch", "frames", 4, "height", "width"],
  }]);
  assert.equal(info.initializerCount, 48);
  assert.deepEqual(info.externalDataFiles, []);
  await verifyExternalData(`${FIXTURES}5b/transformer/model.onnx`, info);

  const twoB = await inspectOnnxModel(`${FIXTURES}2b/transformer/model.onnx`);
  assert.deepEqual(twoB.inputs[0].shape, ["batch", 3, 4, 8, 8]);
  assert.equal(twoB.inputs.length, 3);
});

Deno.test("inspectOnnxModel reads the text encoder and the VAE decoder", async () => {
  const encoder = await inspectOnnxModel(`${FIXTURES}2b/text_encoder/model.onnx`);
  assert.deepEqual(encoder.inputs.map((input) => [input.name, input.dtype, input.shape]), [
    ["input_ids", "int64", ["batch", "sequence"]],
  ]);
  assert.deepEqual(encoder.outputs[0].shape, ["batch", "sequence", 32]);
  const decoder = await inspectOnnxModel(`${FIXTURES}2b/vae_decoder/model.onnx`);
  assert.deepEqual(decoder.inputs[0].shape, ["batch", 4, 3, "latent_height", "latent_width"]);
  assert.deepEqual(decoder.outputs[0].shape, ["batch", 3, 9, "height", "width"]);
});

Deno.test("inspectOnnxModel gives the same answer for bytes as for the file", async () => {
  const path = `${FIXTURES}2b/transformer/model.onnx`;
  const fromFile = await inspectOnnxModel(path);
  const fromBytes = await inspectOnnxModel(await Deno.readFile(path), { name: path });
  assert.deepEqual(fromBytes, fromFile);
});

Deno.test("inspectOnnxSource skips weights by length instead of reading them", async () => {
  const weights = new Uint8Array(8 << 20);
  const bytes = addModel({ dims: [weights.byteLength / 4], rawData: weights });
  let read = 0;
  const inner = bytesSource(bytes);
  const counting: ByteSource = {
    size: inner.size,
    read(offset, length) {
      read += length;
      return inner.read(offset, length);
    },
  };
  const info = await inspectOnnxSource(counting, "big.onnx");
  assert.equal(info.weightBytes, weights.byteLength);
  assert.deepEqual(info.inputs[0].shape, ["batch", 4]);
  assert.deepEqual(info.opsets.map((opset) => opset.domain), ["", "com.microsoft"]);
  assert.ok(read < 4096, `read ${read} bytes`);
});

Deno.test("external data references are listed and checked", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cogflow-inspect-" });
  try {
    const path = `${dir}/model.onnx`;
    await Deno.writeFile(path, addModel(externalWeight("weights/add.bin", 16)));
    const info = await inspectOnnxModel(path);
    assert.deepEqual(info.externalDataFiles, ["weights/add.bin"]);
    assert.deepEqual(info.externalTensors, [
      { tensor: "w", location: "weights/add.bin", offset: 16, length: 16 },
    ]);
    assert.equal(info.weightBytes, 16);

    await assert.rejects(
      verifyExternalData(path),
      new Error(
        `External data file "${dir}/weights/add.bin" referenced by "${path}" does not exist`,
      ),
    );
    await Deno.mkdir(`${dir}/weights`);
    await Deno.writeFile(`${dir}/weights/add.bin`, new Uint8Array(20));
    await assert.rejects(verifyExternalData(path), /is too short: 20 bytes, need 32/);
    await Deno.writeFile(`${dir}/weights/add.bin`, new Uint8Array(32));
    await verifyExternalData(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("external data outside the model's folder is refused", () => {
  assert.equal(
    externalDataPath("/models/a/model.onnx", "model.onnx.data"),
    "/models/a/model.onnx.data",
  );
  assert.throws(
    () => externalDataPath("/models/a/model.onnx", "../b/weights.bin"),
    /External data location "..\/b\/weights.bin" in "\/models\/a\/model.onnx" is outside the model's folder/,
  );
  assert.throws(() => externalDataPath("model.onnx", "/etc/passwd"), /outside the model's folder/);
});

Deno.test("a missing model file is named", async () => {
  await assert.rejects(
    inspectOnnxModel(`${FIXTURES}nope/model.onnx`),
    new Error(`Model file "${FIXTURES}nope/model.onnx" does not exist`),
  );
  await assert.rejects(inspectOnnxModel(FIXTURES), /Model file ".*" is a directory/);
});

Deno.test("files that are not ONNX models are refused with the path and the reason", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cogflow-inspect-" });
  const model = await Deno.readFile(`${FIXTURES}2b/transformer/model.onnx`);
  let seed = 1;
  const random = new Uint8Array(4096).map(() =>
    (seed = (seed * 1103515245 + 12345) % 2 ** 31) >> 16
  );
  const cases: [string, Uint8Array, RegExp][] = [
    ["empty.onnx", new Uint8Array(0), /: the file is empty$/],
    ["truncated.onnx", model.subarray(0, 100_000), /: invalid protobuf at byte \d+: /],
    ["cut-header.onnx", model.subarray(0, 3), /: invalid protobuf at byte \d+: /],
    ["random.onnx", random, /: invalid protobuf at byte \d+: /],
    [
      "notes.onnx",
      new TextEncoder().encode("name: model\nlayers: 12\n"),
      /: it looks like a text file$/,
    ],
    [
      "weights.onnx",
      encodeSafetensors({ w: createTensor("float32", [2]) }),
      /looks like a safetensors file$/,
    ],
    ["checkpoint.onnx", new Uint8Array([0x50, 0x4b, 3, 4, 0, 0, 0, 0]), /looks like a ZIP archive/],
    // Valid protobuf, even a valid ModelProto, but without a graph.
    [
      "no-graph.onnx",
      onnx.ModelProto.encode({ irVersion: 8, producerName: "x" }).finish(),
      /: it has no graph$/,
    ],
  ];
  try {
    for (const [name, bytes, expected] of cases) {
      const path = `${dir}/${name}`;
      await Deno.writeFile(path, bytes);
      const error = await inspectOnnxModel(path).catch((e) => e);
      assert.ok(error instanceof Error, name);
      assert.ok(error.message.startsWith(`Not an ONNX model "${path}": `), error.message);
      assert.match(error.message, expected);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("element types map to our dtype names", () => {
  assert.equal(elementTypeOf(1), "float32");
  assert.equal(elementTypeOf(7), "int64");
  assert.equal(elementTypeOf(10), "float16");
  assert.equal(elementTypeOf(16), "bfloat16");
  assert.equal(elementTypeOf(99), "undefined");
  assert.equal(elementBytes(1, 3), 12);
  assert.equal(elementBytes(22, 3), 2);
});
