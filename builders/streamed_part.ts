/**
 * A part's graph for weight streaming, the GPU's sequential offload: its weights become graph
 * inputs, fed on every run from host memory, so a session holds no weights and one session serves
 * every part of the same shape (a transformer's blocks). Names are made independent of where the
 * part sits: the blocks' checkpoint prefix numbers blocks within the part
 * (`transformer_blocks.7.attn1` becomes `transformer_blocks.@0.attn1`), activations from earlier
 * parts become `in:<name>` and those for later parts `out:<name>` (the last segment of the name),
 * model inputs and outputs keep theirs. Two blocks of one component then give the same bytes.
 *
 * @module
 */

import onnxProto from "onnx-proto";
import { valueInfo } from "./onnx_graph.ts";
import type { PartGraph } from "./part_graph.ts";
import type { ComponentWeights, WeightRef } from "./safetensors_weights.ts";

const { onnx } = onnxProto;

/** A weight a streamed part reads as a graph input. */
export interface StreamedWeight {
  /** The graph input it feeds. */
  input: string;
  /** The stored tensor. */
  ref: WeightRef;
}

/** A tensor of the run that a graph input or output carries. */
export interface NamedTensor {
  /** The name in the part's graph. */
  graph: string;
  /** The name in the run (the part graph's own name for it). */
  tensor: string;
}

/** A part's graph with its weights as inputs. */
export interface StreamedPart {
  /** The part's name (`part_03_block_2`). */
  name: string;
  /** The encoded graph: no initializer points outside it. */
  graph: Uint8Array;
  /** Inputs that are activations or model inputs, in declared order. */
  inputs: NamedTensor[];
  /** Outputs, in declared order. */
  outputs: NamedTensor[];
  /** Inputs that are weights, in declared order. */
  weights: StreamedWeight[];
}

/** What {@link streamedPart} needs besides the part. */
export interface StreamedPartOptions {
  /** The component's weights. */
  weights: ComponentWeights;
  /** The checkpoint prefix of its blocks (`transformer_blocks`). */
  blockPrefix: string;
  /** Names made by earlier parts (the part reads them as activations). */
  madeBefore: ReadonlySet<string>;
  /** Names later parts read (the part's other outputs are model outputs). */
  readAfter: ReadonlySet<string>;
}

/** A part as {@link streamedPart} takes it: a part graph's description and its encoded graph. */
export type PartSource = Pick<PartGraph, "name" | "kind" | "blocks" | "inputs" | "outputs"> & {
  /** The encoded graph, its weights as external initializers. */
  bytes: Uint8Array;
};

/** `part` with its weights as graph inputs and its names independent of its position. */
export function streamedPart(part: PartSource, options: StreamedPartOptions): StreamedPart {
  const model = onnx.ModelProto.decode(part.bytes);
  const graph = model.graph!;
  const renameBlocks = blockRenamer(options.blockPrefix, part.blocks);
  const boundary = new Map<string, string>();
  const inputs = part.inputs.map((tensor) => {
    const name = options.madeBefore.has(tensor) ? `in:${lastSegment(tensor)}` : tensor;
    boundary.set(tensor, name);
    return { graph: name, tensor };
  });
  const outputs = part.outputs.map((tensor) => {
    const name = options.readAfter.has(tensor) ? `out:${lastSegment(tensor)}` : tensor;
    boundary.set(tensor, name);
    return { graph: name, tensor };
  });
  const names = [...inputs, ...outputs].map((named) => named.graph);
  if (new Set(names).size !== names.length) {
    throw new Error(`Part "${part.name}": its boundary names repeat once renamed: ${names}`);
  }
  const rename = (name: string) => boundary.get(name) ?? renameBlocks(name);

  const weights: StreamedWeight[] = [];
  const initializers: onnxProto.onnx.ITensorProto[] = [];
  const weightInputs: onnxProto.onnx.IValueInfoProto[] = [];
  for (const initializer of graph.initializer ?? []) {
    if (initializer.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) {
      initializers.push({ ...initializer, name: rename(initializer.name!) });
      continue;
    }
    const ref = options.weights.tensors.get(initializer.name!);
    if (!ref) throw new Error(`Part "${part.name}": no stored weight "${initializer.name}"`);
    const input = rename(ref.name);
    weights.push({ input, ref });
    weightInputs.push(valueInfo(input, ref.dtype, ref.shape));
  }
  renameGraph(graph, rename);
  graph.name = part.kind;
  graph.initializer = initializers;
  graph.input = [...graph.input!, ...weightInputs];
  return {
    name: part.name,
    graph: onnx.ModelProto.encode(model).finish(),
    inputs,
    outputs,
    weights,
  };
}

/** Every part of a model for streaming, in running order (see {@link streamedPart}). */
export function streamedParts(
  parts: readonly PartGraph[],
  weights: ComponentWeights,
  blockPrefix: string,
): StreamedPart[] {
  const made = new Set<string>();
  return parts.map((part, index) => {
    const readAfter = new Set(parts.slice(index + 1).flatMap((later) => later.inputs));
    const streamed = streamedPart({ ...part, bytes: part.graph.toBytes() }, {
      weights,
      blockPrefix,
      madeBefore: made,
      readAfter,
    });
    for (const name of part.outputs) made.add(name);
    return streamed;
  });
}

/** Renames `<prefix>.<block>.` to `<prefix>.@<position in the part>.` wherever it occurs. */
function blockRenamer(prefix: string, blocks: readonly number[]): (name: string) => string {
  if (blocks.length === 0) return (name) => name;
  const escaped = prefix.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const pattern = new RegExp(`${escaped}\\.(\\d+)(?=[./_])`, "g");
  return (name) =>
    name.replace(pattern, (whole, index: string) => {
      const position = blocks.indexOf(Number(index));
      return position < 0 ? whole : `${prefix}.@${position}`;
    });
}

/** Renames the values, nodes, inputs and outputs of `graph` and of its subgraphs (`Loop` bodies). */
function renameGraph(graph: onnxProto.onnx.IGraphProto, rename: (name: string) => string): void {
  const renameInfo = (info: onnxProto.onnx.IValueInfoProto) => ({
    ...info,
    name: rename(info.name!),
  });
  graph.input = (graph.input ?? []).map(renameInfo);
  graph.output = (graph.output ?? []).map(renameInfo);
  for (const node of graph.node ?? []) {
    node.name = rename(node.name ?? "");
    node.input = (node.input ?? []).map((name) => name === "" ? name : rename(name));
    node.output = (node.output ?? []).map(rename);
    for (const attribute of node.attribute ?? []) {
      if (!attribute.g) continue;
      attribute.g.name = rename(attribute.g.name ?? "");
      renameGraph(attribute.g, rename);
    }
  }
}

function lastSegment(name: string): string {
  return name.slice(name.lastIndexOf(".") + 1);
}
