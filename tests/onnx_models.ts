/**
 * Small ONNX models written by tests: a text encoder of any width (to wire into a pipeline whose
 * transformer expects another), the same graph with an operator ONNX Runtime does not know (a
 * file that reads as a valid model but cannot be loaded), and a VAE decoder declaring another
 * number of latent channels.
 *
 * @module
 */

import onnxProto from "onnx-proto";

const { onnx } = onnxProto;

function dims(shape: (number | string)[]) {
  return { dim: shape.map((d) => typeof d === "number" ? { dimValue: d } : { dimParam: d }) };
}

function floatValue(name: string, shape: (number | string)[]) {
  return {
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: dims(shape) } },
  };
}

/** Options of {@link textEncoderModel}. */
export interface TextEncoderModelOptions {
  /** Width of the embeddings (the fixture's is 32). */
  width: number;
  /** Token ids the table covers (the fixture tokenizer's 1000 by default). */
  vocabSize?: number;
  /** The operator looking up the embeddings: `Gather`, or an unknown one. */
  opType?: string;
}

/**
 * A text encoder as the pipeline sees one: `input_ids` int64 `[batch, sequence]` to
 * `last_hidden_state` float32 `[batch, sequence, width]`, here a plain embedding table lookup.
 */
export function textEncoderModel(options: TextEncoderModelOptions): Uint8Array {
  const { width, vocabSize = 1000, opType = "Gather" } = options;
  const table = new Float32Array(vocabSize * width);
  for (let i = 0; i < table.length; i++) table[i] = Math.sin(i) / 4;
  return onnx.ModelProto.encode({
    irVersion: 8,
    producerName: "cogflow tests",
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "text_encoder",
      node: [{
        name: "embed",
        opType,
        input: ["table", "input_ids"],
        output: ["last_hidden_state"],
        attribute: [{ name: "axis", type: onnx.AttributeProto.AttributeType.INT, i: 0 }],
      }],
      initializer: [{
        name: "table",
        dataType: onnx.TensorProto.DataType.FLOAT,
        dims: [vocabSize, width],
        rawData: new Uint8Array(table.buffer),
      }],
      input: [{
        name: "input_ids",
        type: {
          tensorType: {
            elemType: onnx.TensorProto.DataType.INT64,
            shape: dims(["batch", "sequence"]),
          },
        },
      }],
      output: [floatValue("last_hidden_state", ["batch", "sequence", width])],
    },
  }).finish();
}

/**
 * A model declaring a VAE decoder's input, `latent_sample` `[batch, channels, 3, height, width]`,
 * for validation tests: it only passes its input through.
 */
export function vaeDecoderModel(options: { channels: number }): Uint8Array {
  return onnx.ModelProto.encode({
    irVersion: 8,
    producerName: "cogflow tests",
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "vae_decoder",
      node: [{ name: "pass", opType: "Identity", input: ["latent_sample"], output: ["sample"] }],
      input: [floatValue("latent_sample", ["batch", options.channels, 3, "height", "width"])],
      output: [floatValue("sample", ["batch", options.channels, 3, "height", "width"])],
    },
  }).finish();
}
