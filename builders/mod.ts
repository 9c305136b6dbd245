/**
 * The graph builders: each CogVideoX component's ONNX graph built from its `config.json`, with
 * its weights read in place from the downloaded safetensors files.
 *
 * @module
 */

import { UserError } from "../runtime/user_error.ts";
import type { GraphBuilderFunction } from "./built_model.ts";

export { buildModelFile, type BuiltModel, type GraphBuilderFunction } from "./built_model.ts";
export { componentModel, type ComponentModelOptions } from "./component_model.ts";
export { type ComputeDType, GraphBuilder } from "./onnx_graph.ts";
export {
  type ComponentWeights,
  loadComponentWeights,
  openComponentWeights,
  type WeightRef,
} from "./safetensors_weights.ts";

const notYet = (what: string): GraphBuilderFunction => ({ configPath }) => {
  throw new UserError(`Building the ${what} from "${configPath}" is not available yet`);
};

/** Builds the T5 text encoder graph. */
export const buildT5Encoder: GraphBuilderFunction = notYet("T5 encoder");
/** Builds the CogVideoX transformer graph. */
export const buildCogVideoXTransformer: GraphBuilderFunction = notYet("transformer");
/** Builds the CogVideoX VAE decoder graph. */
export const buildCogVideoXVaeDecoder: GraphBuilderFunction = notYet("VAE decoder");
