/**
 * Sequential offload of a built component: its parts are built directly (per block group), not
 * split from the whole graph, so their initializers point straight into the downloaded
 * safetensors files like the whole graph's: no weight is copied to disk (`runtime/onnx_split.ts`,
 * for ONNX files, writes each part's weights into its own external data file). Each part's graph
 * is stored content-addressed beside the whole graph (`.cache/graphs/<component>.<part>-<sha>/`,
 * as built_model.ts stores whole graphs) and runs with the weights' real folder.
 *
 * - The transformer and the T5 text encoder are built in parts: a prologue (embeddings), groups of
 *   `blocksPerGroup` blocks, an epilogue (output layers); see `cogVideoXTransformerParts` and
 *   `t5EncoderParts`.
 * - A built VAE decoder is not split: it runs whole, as one part that stays resident while the
 *   model is in use, with a logged note. Its weights are small (0.4 GB for CogVideoX-2b's decoder);
 *   its memory is activations, which temporal chunks and `vae_tiling` bound, and its up blocks
 *   would have to pass the chunk loop's convolution caches through every part.
 *
 * @module
 */

import type { ModelBuild } from "../runtime/model_handle.ts";
import type { SplitPart } from "../runtime/onnx_split.ts";
import { buildModelFile, type GraphBuilderFunction } from "./built_model.ts";
import { buildCogVideoXTransformer, cogVideoXTransformerParts } from "./cogvideox_transformer.ts";
import { buildCogVideoXVaeDecoder } from "./cogvideox_vae_decoder.ts";
import type { PartGraph, PartsOptions } from "./part_graph.ts";
import { type ComponentWeights, openComponentWeights } from "./safetensors_weights.ts";
import { buildT5Encoder, t5EncoderParts } from "./t5_encoder.ts";
import { streamedPart, streamedParts } from "./streamed_part.ts";
import type { WorkerChainPlan } from "../runtime/session_guard.ts";
import { chainParts } from "../runtime/streamed_chain.ts";

/** The components cogflow builds, as a {@link ModelBuild} names them. */
export type BuiltComponent = "cogvideox_transformer" | "cogvideox_vae_decoder" | "t5_encoder";

/** Each component's builder of the whole graph, and of the parts where it has one. */
const COMPONENTS: Record<
  BuiltComponent,
  {
    build: GraphBuilderFunction;
    parts?: (options: Parameters<GraphBuilderFunction>[0] & PartsOptions) => PartGraph[];
    /** The checkpoint prefix of its blocks (weight streaming names blocks by position). */
    blockPrefix?: string;
  }
> = {
  cogvideox_transformer: {
    build: buildCogVideoXTransformer,
    parts: cogVideoXTransformerParts,
    blockPrefix: "transformer_blocks",
  },
  t5_encoder: { build: buildT5Encoder, parts: t5EncoderParts, blockPrefix: "encoder.block" },
  cogvideox_vae_decoder: { build: buildCogVideoXVaeDecoder },
};

/** The component a builder function builds, for {@link ModelBuild.component}. */
export function builtComponentOf(build: GraphBuilderFunction): BuiltComponent | undefined {
  return (Object.keys(COMPONENTS) as BuiltComponent[]).find((name) =>
    COMPONENTS[name].build === build
  );
}

/** A built part, as the sequential runner runs it. */
export interface BuiltPart extends SplitPart {
  /** The real folder of the weight files its external data locations name. */
  externalDataFolder: string;
}

/** A built component's parts, shaped like a split's result where the runner reads it. */
export interface BuiltParts {
  /** The parts, in running order. */
  parts: BuiltPart[];
  /** What the parts make of the model. */
  plan: {
    /** Blocks per part. */
    blocksPerGroup: number;
    /** Block indices, ascending. */
    blocks: number[];
    /** Model inputs the parts read. */
    modelInputs: string[];
    /** Model outputs, in declared order. */
    modelOutputs: string[];
    /** Bytes of the weights, each counted once. */
    weightBytes: number;
  };
  /** Set when the model runs whole (one part, its own graph): why. */
  whole?: string;
}

/** Options of {@link buildModelParts}. */
export interface BuildModelPartsOptions {
  /** Model name, for the parts' cache folders (`transformer`). */
  name: string;
  /** The model's graph file (the one part of a model that runs whole). */
  path: string;
  /** The whole graph's input names (those of a model that runs whole). */
  inputs: string[];
  /** The whole graph's output names. */
  outputs: string[];
  /** How the model was built. */
  build: ModelBuild;
  /** Blocks per part. */
  blocksPerGroup: number;
  /** Cache folder of the parts' graphs (the built graphs' cache). */
  cacheDir: string;
}

/** Builds a built component's parts and stores their graphs (once per content). */
export async function buildModelParts(options: BuildModelPartsOptions): Promise<BuiltParts> {
  const { build } = options;
  const component = COMPONENTS[build.component as BuiltComponent];
  if (!component) throw new Error(`Unknown built component "${build.component}"`);
  const weights = await openComponentWeights(build.weightFiles);
  if (!component.parts) {
    const bytes = [...weights.tensors.values()].reduce((sum, ref) => sum + ref.length, 0);
    const part: BuiltPart = {
      name: "part_00_whole",
      kind: "blocks",
      blocks: [],
      nodeCount: 0,
      initializerCount: weights.tensors.size,
      weightBytes: bytes,
      transposedWeights: 0,
      inputs: options.inputs,
      outputs: options.outputs,
      path: options.path,
      dataPath: null,
      externalDataFolder: weights.folder,
    };
    return {
      parts: [part],
      plan: {
        blocksPerGroup: options.blocksPerGroup,
        blocks: [],
        modelInputs: options.inputs,
        modelOutputs: options.outputs,
        weightBytes: bytes,
      },
      whole:
        "a built VAE decoder runs whole under sequential_offload, resident while in use (its weights are small; its memory is activations, which temporal chunks and vae_tiling bound)",
    };
  }
  const graphs = partGraphs(component.parts, build, weights, options.blocksPerGroup);
  const parts: BuiltPart[] = [];
  for (const graph of graphs) {
    const bytes = graph.graph.toBytes();
    const stored = await buildModelFile({
      name: `${options.name}.${graph.name}`,
      build: () => bytes,
      config: build.config,
      configPath: build.configPath,
      weights,
      dtype: build.dtype,
      cacheDir: options.cacheDir,
    });
    const used = [...graph.graph.usedWeights()];
    parts.push({
      name: graph.name,
      kind: graph.kind,
      blocks: graph.blocks,
      nodeCount: graph.graph.nodeCount,
      initializerCount: used.length,
      weightBytes: used.reduce((sum, key) => sum + weights.tensors.get(key)!.length, 0),
      transposedWeights: 0,
      inputs: graph.inputs,
      outputs: graph.outputs,
      path: stored.path,
      dataPath: null,
      externalDataFolder: stored.externalDataFolder,
    });
  }
  const made = new Set(parts.flatMap((part) => part.outputs));
  const epilogue = parts[parts.length - 1];
  return {
    parts,
    plan: {
      blocksPerGroup: options.blocksPerGroup,
      blocks: parts.flatMap((part) => part.blocks),
      modelInputs: [...new Set(parts.flatMap((part) => part.inputs))].filter((name) =>
        !made.has(name)
      ),
      modelOutputs: epilogue.outputs,
      weightBytes: parts.reduce((sum, part) => sum + part.weightBytes, 0),
    },
  };
}

/** The parts' graphs of a build, by the component's `parts` builder. */
function partGraphs(
  parts: NonNullable<(typeof COMPONENTS)[BuiltComponent]["parts"]>,
  build: ModelBuild,
  weights: ComponentWeights,
  blocksPerGroup: number,
): PartGraph[] {
  return parts({
    config: build.config,
    configPath: build.configPath,
    weights,
    dtype: build.dtype,
    attentionQueryChunk: build.attentionQueryChunk,
    blocksPerGroup,
  });
}

/**
 * A built model for weight streaming (builders/streamed_part.ts), as a session worker takes it:
 * its parts, or, for a component not built in parts (the VAE decoder), its whole graph (`whole`:
 * the stored graph file and its inputs and outputs) as one part.
 */
export async function buildStreamedModel(
  build: ModelBuild,
  blocksPerGroup: number,
  whole: { path: string; inputs: string[]; outputs: string[] },
): Promise<WorkerChainPlan> {
  const component = COMPONENTS[build.component as BuiltComponent];
  if (!component) throw new Error(`Unknown built component "${build.component}"`);
  const weights = await openComponentWeights(build.weightFiles);
  if (!component.parts || !component.blockPrefix) {
    const part = streamedPart({
      name: "part_00_whole",
      kind: "blocks",
      blocks: [],
      inputs: whole.inputs,
      outputs: whole.outputs,
      bytes: await Deno.readFile(whole.path),
    }, { weights, blockPrefix: "", madeBefore: new Set(), readAfter: new Set() });
    return { parts: chainParts([part], weights.folder), modelOutputs: whole.outputs };
  }
  const graphs = partGraphs(component.parts, build, weights, blocksPerGroup);
  return {
    parts: chainParts(streamedParts(graphs, weights, component.blockPrefix), weights.folder),
    modelOutputs: graphs[graphs.length - 1].outputs,
  };
}
