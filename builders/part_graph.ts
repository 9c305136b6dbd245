/**
 * A component's graph built as parts that run one after another (sequential offload): a
 * prologue, groups of blocks, an epilogue. Each part is a graph of its own whose initializers
 * point into the downloaded safetensors files, like the whole graph's. The builders assemble the
 * whole graph and the parts from the same module functions; this file holds what the parts add:
 * their boundaries.
 *
 * Activations cross a boundary in float32 (a part casts them to the compute dtype inside), so
 * every part has float32 inputs and outputs whatever the compute dtype; float16 and bfloat16
 * values survive the round trip through float32 exactly, so the parts compute what the whole
 * graph does.
 *
 * @module
 */

import { type ComputeDType, GraphBuilder, ONNX_DTYPES, type ValueDType } from "./onnx_graph.ts";
import type { ComponentWeights } from "./safetensors_weights.ts";

/** Settings of a build in parts. */
export interface PartsOptions {
  /** Blocks per part (default 1). */
  blocksPerGroup?: number;
}

/** One part's graph, before encoding. */
export interface PartGraph {
  /** File stem, as `runtime/onnx_split.ts` names parts (`part_02_blocks_2_3`). */
  name: string;
  /** What the part holds. */
  kind: "prologue" | "blocks" | "epilogue";
  /** Block indices of a "blocks" part. */
  blocks: number[];
  /** The part's graph (its weights are {@link GraphBuilder.usedWeights}). */
  graph: GraphBuilder;
  /** Tensors it reads: model inputs and outputs of earlier parts. */
  inputs: string[];
  /** Tensors it makes for later parts or as model outputs. */
  outputs: string[];
}

/** Declares one part's graph inputs and outputs, casting activations at its boundary. */
export class PartBoundary {
  /** Input names, in declared order. */
  readonly inputs: string[] = [];
  /** Output names, in declared order. */
  readonly outputs: string[] = [];
  readonly #b: GraphBuilder;

  /** Boundaries of the graph `b`. */
  constructor(b: GraphBuilder) {
    this.#b = b;
  }

  /** A model input, declared as the whole graph declares it (returned as declared). */
  modelInput(name: string, dtype: ValueDType, dims: readonly (number | string)[]): string {
    this.inputs.push(name);
    return this.#b.input(name, dtype, dims);
  }

  /** An activation from an earlier part: a float32 input, returned in the compute dtype. */
  activation(name: string, dims: readonly (number | string)[]): string {
    this.inputs.push(name);
    const b = this.#b;
    const value = b.input(name, "float32", dims);
    return b.computeDType === "float32"
      ? value
      : b.op("Cast", [value], { to: ONNX_DTYPES[b.computeDType] });
  }

  /** An activation (in the compute dtype) for a later part, or a model output: float32. */
  output(value: string, name: string, dims: readonly (number | string)[]): void {
    this.outputs.push(name);
    const b = this.#b;
    const float32 = b.computeDType === "float32"
      ? value
      : b.op("Cast", [value], { to: ONNX_DTYPES.float32 });
    b.output(float32, name, "float32", dims);
  }
}

/** Block indices `0 .. count - 1` in groups of `size`. */
export function blockGroups(count: number, size = 1): number[][] {
  if (!Number.isInteger(size) || size < 1) throw new Error(`Invalid blocks per group: ${size}`);
  const groups: number[][] = [];
  for (let start = 0; start < count; start += size) {
    groups.push(Array.from({ length: Math.min(size, count - start) }, (_, i) => start + i));
  }
  return groups;
}

/** The file stem of part `index`, as onnx_split.ts names them (`part_01_block_0`, `part_02_blocks_1_2`). */
export function partName(
  index: number,
  kind: PartGraph["kind"],
  blocks: readonly number[] = [],
): string {
  let suffix: string = kind;
  if (blocks.length === 1) suffix = `block_${blocks[0]}`;
  if (blocks.length > 1) suffix = `blocks_${blocks[0]}_${blocks.at(-1)}`;
  return `part_${String(index).padStart(2, "0")}_${suffix}`;
}

/**
 * Part `index` of `component` (graph name `<component>.<part name>`): `build` adds its nodes and
 * declares its boundary.
 */
export function buildPart(
  component: string,
  part: { index: number; kind: PartGraph["kind"]; blocks: number[] },
  options: { weights: ComponentWeights; dtype?: ComputeDType },
  build: (b: GraphBuilder, io: PartBoundary) => void,
): PartGraph {
  const name = partName(part.index, part.kind, part.blocks);
  const b = new GraphBuilder({
    name: `${component}.${name}`,
    weights: options.weights,
    computeDType: options.dtype,
  });
  const io = new PartBoundary(b);
  build(b, io);
  return {
    name,
    kind: part.kind,
    blocks: part.blocks,
    graph: b,
    inputs: io.inputs,
    outputs: io.outputs,
  };
}
