/**
 * The graph builders: each CogVideoX component's ONNX graph built from its `config.json`, with
 * its weights read in place from the downloaded safetensors files.
 *
 * @module
 */

export { buildModelFile, type BuiltModel, type GraphBuilderFunction } from "./built_model.ts";
export { componentModel, type ComponentModelOptions } from "./component_model.ts";
export { type ComputeDType, GraphBuilder } from "./onnx_graph.ts";
export {
  type ComponentWeights,
  loadComponentWeights,
  openComponentWeights,
  type WeightRef,
} from "./safetensors_weights.ts";

export {
  buildCogVideoXTransformer,
  readCogVideoXTransformerConfig,
} from "./cogvideox_transformer.ts";
export {
  buildCogVideoXVaeDecoder,
  readCogVideoXVaeDecoderConfig,
} from "./cogvideox_vae_decoder.ts";
export { videoDecoderModel } from "./video_decoder_model.ts";
export { buildT5Encoder, readT5EncoderConfig } from "./t5_encoder.ts";
