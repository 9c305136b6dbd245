/**
 * Splits an ONNX model into parts that run one after another ("sequential offload"): a prologue,
 * groups of consecutive blocks, and an epilogue. For a transformer: the patch and time embeddings,
 * the transformer blocks, then the final norm, projection and unpatchify; for a VAE decoder:
 * `conv_in` and the mid block, the up blocks, then `norm_out`, `conv_act` and `conv_out`. Only
 * one part's weights need to be resident at a time (a decoder's activations still grow with the
 * picture: tiles bound those). Parts are written with their weights in external data files and
 * cached on disk, keyed by the model's content hash and the split settings.
 *
 * How nodes are placed:
 * - A node whose name (else one of its output names, else the names of the initializers it
 *   reads) matches the block pattern belongs to that block's group.
 * - Constant-like nodes (whose inputs are all initializers or other constant-like nodes, such as
 *   `Constant` and the `Identity` aliases of deduplicated weights) are copied into every part
 *   that reads them, so constants never travel between parts.
 * - Other unmatched nodes that depend on no block (shape arithmetic on the inputs, embeddings)
 *   go to the prologue; those that depend on a block go to the part of their first consumer,
 *   or to the epilogue when only model outputs need them.
 * - An initializer goes to every part with a node that reads it: one read by several parts is
 *   duplicated and reported in {@link SplitPlan.shared}, with its size, since duplicating a
 *   large weight would defeat the offload. (TorchScript exports share the weights of identical
 *   tensors, such as freshly initialized LayerNorm weights; trained weights rarely are.)
 *
 * A part's session is created for one call, without repacking its weights (see
 * `sequential_runner.ts`), so each MatMul packs its weight into MLAS's panel layout on every call.
 * Reading a `[K, N]` weight for that means short strided reads (16 floats from each of 256 rows
 * apart), slow straight from the mapped file. So a float32 weight that only MatMuls read as
 * their second input is written transposed, `[N, K]`, and read by com.microsoft `FusedMatMul`
 * with `transB=1`: the same product, packed from contiguous rows (a block at 48 video tokens ran
 * about 20% faster on a 2-CPU VM). The packed panels are the same, so are the results (bit for
 * bit, against MatMul on unpacked weights); names and sizes of the weights stay as they were.
 *
 * The cache is checked, not trusted: its manifest records each part file's size and SHA-256, and
 * a cached split is used only when every file has both. A part that is missing, cut short or
 * changed makes the split be removed (its own files only) and made again, with a warning. Hashing
 * reads every weight (1.5 s per GiB measured on the 2-CPU VM, from the page cache), and sequential
 * offload loads every part again on every step (a 5b transformer's 11 GB: 17 s of hashing per
 * step), so each file is verified once per process and remembered by its path, size and
 * modification time: later loads pay a `stat` ({@link verifySplitPart}).
 *
 * @module
 */

import onnxProto from "onnx-proto";
import { createHash } from "node:crypto";
import { quote } from "./quote.ts";
import {
  checkModelHead,
  decodeMessage,
  expectWireType,
  externalDataPath,
  GRAPH_FIELD_WIRE_TYPES,
  inspectOnnxModel,
  MODEL_FIELD_WIRE_TYPES,
  notOnnxError,
  openModel,
  type ScannedTensor,
  scanTensor,
  toNumber,
  verifyExternalData,
} from "./onnx_inspect.ts";
import {
  concatBytes,
  FileSource,
  readFields,
  readValue,
  readWhole,
  WireError,
} from "./protobuf_wire.ts";

const { onnx } = onnxProto;
type NodeProto = onnxProto.onnx.INodeProto;
type GraphProto = onnxProto.onnx.IGraphProto;
type TensorProto = onnxProto.onnx.ITensorProto;
type ValueInfoProto = onnxProto.onnx.IValueInfoProto;

/**
 * Block pattern of CogVideoX exports: transformer blocks (`/m/transformer_blocks.3/attn1/...`,
 * `transformer_blocks.3.ff...`) and the VAE decoder's up blocks (`/decoder/up_blocks.2/...`,
 * `m.decoder.up_blocks.2.resnets...`).
 */
export const DEFAULT_BLOCK_PATTERN =
  "(?:^|[/.])(?:transformer_blocks|up_blocks)\\.(\\d+)(?=[/.]|$)";

/** Settings of a split. */
export interface SplitOptions {
  /** Regular expression whose first group captures the block index. */
  blockPattern?: string | RegExp;
  /** Number of consecutive blocks in each part. */
  blocksPerGroup?: number;
  /** Initializers of at least this many bytes go to the part's external data file. */
  externalThreshold?: number;
  /** Store MatMul weights transposed, read by `FusedMatMul` (see the module documentation). */
  transposeMatMulWeights?: boolean;
}

/** Defaults of {@link SplitOptions}. */
export const splitDefaults = {
  blockPattern: DEFAULT_BLOCK_PATTERN,
  blocksPerGroup: 1,
  externalThreshold: 1024,
  transposeMatMulWeights: true,
} satisfies SplitOptions;

/** Settings of {@link splitModel}: those of the split, and where to keep the parts. */
export interface SplitModelOptions extends SplitOptions {
  /** Folder of the cache; each split gets a subfolder named by its cache key. */
  cacheDir: string;
  /** The model's {@link modelContentHash}, when the caller knows it already. */
  contentHash?: string;
  /** Told when a cached split was damaged and is made again, naming it. */
  onWarning?: (message: string) => void;
}

/** One part of a split, as planned. */
export interface PartPlan {
  /** File stem, e.g. "part_01_blocks_0_1". */
  name: string;
  /** What the part holds. */
  kind: "prologue" | "blocks" | "epilogue";
  /** Block indices of a "blocks" part. */
  blocks: number[];
  /** Number of nodes, duplicated constants included. */
  nodeCount: number;
  /** Number of initializers. */
  initializerCount: number;
  /** Bytes of the part's initializers. */
  weightBytes: number;
  /** MatMul weights stored transposed and read by `FusedMatMul` (see the module documentation). */
  transposedWeights: number;
  /** Tensors it reads: model inputs and outputs of earlier parts. */
  inputs: string[];
  /** Tensors it makes for later parts or as model outputs. */
  outputs: string[];
}

/** An initializer read by several parts and therefore stored in each. */
export interface SharedInitializer {
  /** Initializer name. */
  name: string;
  /** Its size in bytes. */
  bytes: number;
  /** The parts that hold a copy. */
  parts: string[];
}

/** How nodes were placed, by rule (see the module documentation). */
export interface PlacementCounts {
  /** Nodes matched by the block pattern. */
  byName: number;
  /** Constant-like nodes, copied into each part that reads them. */
  constants: number;
  /** Unmatched nodes depending on no block, put in the prologue. */
  prologue: number;
  /** Unmatched nodes after a block, put in their first consumer's part or the epilogue. */
  byConsumer: number;
  /** Constant-like nodes that nothing reads, left out. */
  unused: number;
}

/** What a split of a model gives, computed without writing anything. */
export interface SplitPlan {
  /** The model file. */
  modelPath: string;
  /** The block pattern used (a regular expression source). */
  pattern: string;
  /** Blocks per part. */
  blocksPerGroup: number;
  /** Block indices found, ascending. */
  blocks: number[];
  /** The parts, in running order. */
  parts: PartPlan[];
  /** Initializers stored in more than one part. */
  shared: SharedInitializer[];
  /** Bytes of the model's initializers, each counted once. */
  weightBytes: number;
  /** Model inputs, in declared order. */
  modelInputs: string[];
  /** Model outputs, in declared order. */
  modelOutputs: string[];
  /** How nodes were placed. */
  placements: PlacementCounts;
  /** Initializers no node reads: left out of every part. */
  unusedInitializers: string[];
}

/** A part written to disk. */
export interface SplitPart extends PartPlan {
  /** Path of the part's `.onnx` file. */
  path: string;
  /** Path of its external data file, or `null` when all its weights are inline. */
  dataPath: string | null;
  /**
   * Size and SHA-256 of each of its files, by path, as written (parts of the split cache have
   * them; parts made otherwise may not, and are not verified).
   */
  digests?: Record<string, FileDigest>;
}

/** The size and SHA-256 of a file. */
export interface FileDigest {
  /** Size in bytes. */
  bytes: number;
  /** Hex SHA-256 of the content. */
  sha256: string;
}

/** A split model on disk. */
export interface SplitResult {
  /** Folder holding the parts. */
  dir: string;
  /** Cache key: content hash of the model and the split settings. */
  key: string;
  /** True when the parts were already in the cache. */
  cached: boolean;
  /** The plan the parts follow. */
  plan: SplitPlan;
  /** The parts, in running order. */
  parts: SplitPart[];
}

/** No node matched the block pattern; says what was tried and which names the model has. */
export class NoBlocksError extends Error {
  /** The pattern tried. */
  readonly pattern: string;
  /** A few node names of the model. */
  readonly nodeNames: string[];
  /** A few initializer names of the model. */
  readonly initializerNames: string[];

  /** Makes the error for the model at `path`. */
  constructor(path: string, pattern: string, nodeNames: string[], initializerNames: string[]) {
    const list = (names: string[]) => names.map(quote).join(", ");
    super(
      `No blocks found in ${quote(path)} with block pattern ${quote(pattern)}: node names look ` +
        `like ${list(nodeNames)}; initializer names look like ${list(initializerNames)}`,
    );
    this.name = "NoBlocksError";
    this.pattern = pattern;
    this.nodeNames = nodeNames;
    this.initializerNames = initializerNames;
  }
}

/** A model read without its weights. */
interface Skeleton {
  path: string;
  /** ModelProto fields other than the graph. */
  model: onnxProto.onnx.ModelProto;
  /** GraphProto fields other than nodes and initializers. */
  graph: onnxProto.onnx.GraphProto;
  nodes: NodeProto[];
  initializers: ScannedTensor[];
}

async function readSkeleton(source: FileSource, path: string): Promise<Skeleton> {
  await checkModelHead(source, path);
  const modelParts: Uint8Array[] = [];
  const graphParts: Uint8Array[] = [];
  const nodes: NodeProto[] = [];
  const initializers: ScannedTensor[] = [];
  let graphs = 0;
  try {
    for await (const field of readFields(source)) {
      expectWireType(field, MODEL_FIELD_WIRE_TYPES, "ModelProto");
      if (field.field !== 7) {
        modelParts.push(await readWhole(source, field));
        continue;
      }
      graphs++;
      for await (const item of readFields(source, field.valueStart, field.end)) {
        expectWireType(item, GRAPH_FIELD_WIRE_TYPES, "GraphProto");
        if (item.field === 1) {
          const bytes = await readValue(source, item);
          nodes.push(decodeMessage(() => onnx.NodeProto.decode(bytes), item.valueStart));
        } else if (item.field === 5) {
          initializers.push(await scanTensor(source, item.valueStart, item.end));
        } else {
          graphParts.push(await readWhole(source, item));
        }
      }
    }
    if (graphs === 0) throw notOnnxError(path, "it has no graph");
    return {
      path,
      model: decodeMessage(() => onnx.ModelProto.decode(concatBytes(modelParts)), 0),
      graph: decodeMessage(() => onnx.GraphProto.decode(concatBytes(graphParts)), 0),
      nodes,
      initializers,
    };
  } catch (error) {
    if (error instanceof WireError) {
      throw notOnnxError(path, `invalid protobuf at byte ${error.offset}: ${error.message}`);
    }
    throw error;
  }
}

/** Names a subgraph reads from the scopes around it. */
function outerNames(graph: GraphProto): string[] {
  const defined = new Set<string>();
  for (const value of graph.input ?? []) defined.add(value.name ?? "");
  for (const tensor of graph.initializer ?? []) defined.add(tensor.name ?? "");
  for (const tensor of graph.sparseInitializer ?? []) defined.add(tensor.values?.name ?? "");
  for (const node of graph.node ?? []) for (const name of node.output ?? []) defined.add(name);
  const used = new Set<string>();
  for (const node of graph.node ?? []) {
    for (const name of nodeInputs(node)) if (!defined.has(name)) used.add(name);
  }
  return [...used];
}

/** Every tensor a node reads, including those its subgraphs read from outside. */
function nodeInputs(node: NodeProto): string[] {
  const names = (node.input ?? []).filter((name) => name !== "");
  for (const attribute of node.attribute ?? []) {
    for (const graph of [attribute.g, ...(attribute.graphs ?? [])]) {
      if (graph) names.push(...outerNames(graph));
    }
  }
  return [...new Set(names)];
}

// Ops whose results differ at each run: never copied into several parts.
const RANDOM_OPS = new Set([
  "RandomNormal",
  "RandomUniform",
  "RandomNormalLike",
  "RandomUniformLike",
  "Multinomial",
  "Bernoulli",
]);

/** The plan and, for writing, which nodes and tensors go to each part. */
interface Analysis {
  plan: SplitPlan;
  parts: {
    plan: PartPlan;
    nodes: NodeProto[];
    initializers: ScannedTensor[];
    sparse: onnxProto.onnx.ISparseTensorProto[];
    /** Initializers to write transposed, their MatMuls turned into FusedMatMuls. */
    transposed: Set<string>;
  }[];
  valueInfo: (name: string) => ValueInfoProto;
}

function compilePattern(pattern: string | RegExp): RegExp {
  try {
    const regex = typeof pattern === "string" ? new RegExp(pattern) : pattern;
    // Without the stateful flags, exec() gives the same answer on every call.
    return new RegExp(regex.source, regex.flags.replace("g", "").replace("y", ""));
  } catch (error) {
    throw new Error(`Invalid block pattern "${pattern}": ${(error as Error).message}`);
  }
}

function sample(names: string[], count: number): string[] {
  if (names.length <= count) return names;
  return Array.from({ length: count }, (_, i) => names[Math.floor((i * names.length) / count)]);
}

/** Facts about the graph that placement needs. */
interface GraphFacts {
  path: string;
  nodes: NodeProto[];
  initializers: Map<string, ScannedTensor>;
  sparse: Map<string, onnxProto.onnx.ISparseTensorProto>;
  modelInputs: string[];
  modelOutputs: string[];
  /** Tensors each node reads, subgraph captures included. */
  inputsOf: string[][];
  /** Node index making each tensor. */
  producer: Map<string, number>;
  /** Node indices, producers first. */
  order: number[];
  /** Whether a node only depends on initializers (and is not random). */
  constant: boolean[];
}

function graphFacts(skeleton: Skeleton): GraphFacts {
  const { path, nodes, graph } = skeleton;
  const initializers = new Map(skeleton.initializers.map((tensor) => [tensor.name, tensor]));
  const sparse = new Map(
    (graph.sparseInitializer ?? []).map((tensor) => [tensor.values?.name ?? "", tensor]),
  );
  const isConstantName = (name: string) => initializers.has(name) || sparse.has(name);
  const modelInputs = graph.input.map((value) => value.name ?? "").filter((name) =>
    !isConstantName(name)
  );
  const modelOutputs = graph.output.map((value) => value.name ?? "");
  const inputsOf = nodes.map(nodeInputs);
  const producer = new Map<string, number>();
  nodes.forEach((node, i) => {
    for (const name of node.output ?? []) if (name) producer.set(name, i);
  });
  const provided = new Set(modelInputs);
  for (const [i, names] of inputsOf.entries()) {
    for (const name of names) {
      if (!producer.has(name) && !isConstantName(name) && !provided.has(name)) {
        throw new Error(
          `Cannot split "${path}": node ${
            nodeLabel(nodes, i)
          } reads "${name}", which nothing provides`,
        );
      }
    }
  }
  const order = topologicalOrder(nodes.length, (i) => inputsOf[i], producer, path);
  const constant = new Array<boolean>(nodes.length).fill(false);
  for (const i of order) {
    constant[i] = !RANDOM_OPS.has(nodes[i].opType ?? "") &&
      inputsOf[i].every((name) =>
        isConstantName(name) || (producer.has(name) && constant[producer.get(name)!])
      );
  }
  return {
    path,
    nodes,
    initializers,
    sparse,
    modelInputs,
    modelOutputs,
    inputsOf,
    producer,
    order,
    constant,
  };
}

function nodeLabel(nodes: NodeProto[], i: number): string {
  return `"${nodes[i].name || nodes[i].output?.[0] || `#${i}`}"`;
}

/** Where each node runs: stage 0 is the prologue, then one stage per group, then the epilogue. */
interface Placement {
  blocks: number[];
  stageOfBlock: Map<number, number>;
  epilogue: number;
  /** Stage of each node that is not constant-like (-1 for those). */
  stage: number[];
  placements: PlacementCounts;
}

function placeNodes(facts: GraphFacts, regex: RegExp, blocksPerGroup: number): Placement {
  const { path, nodes, initializers, inputsOf, producer, order, constant } = facts;
  const blockOf = (name: string | null | undefined): number | null => {
    const match = name ? regex.exec(name) : null;
    if (!match) return null;
    const index = Number(match[1]);
    if (match[1] === undefined || !Number.isInteger(index)) {
      throw new Error(
        `Block pattern "${regex.source}" must capture the block index in its first group`,
      );
    }
    return index;
  };
  // Blocks by name: the node's name, else its outputs, else the initializers it reads directly.
  // Constant-like nodes are placed by their readers, whatever their names say.
  const matched = nodes.map((node, i) => {
    if (constant[i]) return null;
    const byName = blockOf(node.name) ?? (node.output ?? []).map(blockOf).find((b) => b !== null);
    if (byName !== undefined && byName !== null) return byName;
    const fromWeights = new Set(
      inputsOf[i].filter((name) => initializers.has(name)).map(blockOf).filter((b) => b !== null),
    );
    return fromWeights.size === 1 ? [...fromWeights][0] : null;
  });
  const blocks = [...new Set(matched.filter((b) => b !== null))].sort((a, b) => a - b);
  if (blocks.length === 0) {
    throw new NoBlocksError(
      path,
      regex.source,
      sample(nodes.map((node) => node.name ?? "").filter(Boolean), 5),
      sample([...initializers.keys()], 5),
    );
  }
  const epilogue = Math.ceil(blocks.length / blocksPerGroup) + 1;
  const stageOfBlock = new Map(
    blocks.map((block, i) => [block, 1 + Math.floor(i / blocksPerGroup)]),
  );

  // The latest block stage each node depends on (0: none).
  const anchor = new Array<number>(nodes.length).fill(0);
  for (const i of order) {
    if (constant[i]) continue;
    let value = matched[i] !== null ? stageOfBlock.get(matched[i]!)! : 0;
    for (const name of inputsOf[i]) {
      const from = producer.get(name);
      if (from !== undefined && !constant[from]) value = Math.max(value, anchor[from]);
    }
    anchor[i] = value;
  }
  const consumers = nodes.map(() => new Set<number>());
  for (const [i, names] of inputsOf.entries()) {
    for (const name of names) {
      const from = producer.get(name);
      if (from !== undefined) consumers[from].add(i);
    }
  }
  const placements = { byName: 0, constants: 0, prologue: 0, byConsumer: 0, unused: 0 };
  const stage = new Array<number>(nodes.length).fill(-1);
  // Consumers come later in the order, so walking it backwards places them first.
  for (const i of [...order].reverse()) {
    if (constant[i]) continue;
    if (matched[i] !== null) {
      stage[i] = stageOfBlock.get(matched[i]!)!;
      placements.byName++;
    } else if (anchor[i] === 0) {
      stage[i] = 0;
      placements.prologue++;
    } else {
      stage[i] = Math.min(epilogue, ...[...consumers[i]].map((c) => stage[c]));
      placements.byConsumer++;
    }
  }
  for (const i of order) {
    for (const name of inputsOf[i]) {
      const from = producer.get(name);
      if (from === undefined || constant[from] || stage[from] <= stage[i]) continue;
      const reader = `node ${nodeLabel(nodes, i)} (block ${matched[i] ?? "none"})`;
      const maker = `node ${nodeLabel(nodes, from)} (block ${matched[from] ?? "none"})`;
      throw new Error(
        `Cannot split "${path}": ${reader} reads "${name}" from ${maker}, so the blocks do not run in order`,
      );
    }
  }
  return { blocks, stageOfBlock, epilogue, stage, placements };
}

function analyze(skeleton: Skeleton, options: SplitOptions): Analysis {
  const blocksPerGroup = options.blocksPerGroup ?? splitDefaults.blocksPerGroup;
  if (!Number.isInteger(blocksPerGroup) || blocksPerGroup < 1) {
    throw new RangeError(`Invalid blocksPerGroup "${blocksPerGroup}": expected an integer >= 1`);
  }
  const regex = compilePattern(options.blockPattern ?? splitDefaults.blockPattern);
  const facts = graphFacts(skeleton);
  const { path, nodes, initializers, sparse, modelInputs, modelOutputs } = facts;
  const { inputsOf, producer, order, constant } = facts;
  const { blocks, stageOfBlock, epilogue, stage, placements } = placeNodes(
    facts,
    regex,
    blocksPerGroup,
  );
  const isConstantName = (name: string) => initializers.has(name) || sparse.has(name);

  // Members of each stage: its own nodes plus the constant-like nodes they need.
  const members = Array.from({ length: epilogue + 1 }, () => new Set<number>());
  const extraOutputs = Array.from({ length: epilogue + 1 }, () => [] as string[]);
  for (const i of order) if (!constant[i]) members[stage[i]].add(i);
  for (const name of modelOutputs) {
    const from = producer.get(name);
    if ((from !== undefined && constant[from]) || isConstantName(name)) {
      extraOutputs[epilogue].push(name);
    }
  }
  const usedConstants = new Set<number>();
  for (const [s, set] of members.entries()) {
    const pending = [...set].flatMap((i) => inputsOf[i]).concat(extraOutputs[s]);
    while (pending.length > 0) {
      const from = producer.get(pending.pop()!);
      if (from === undefined || !constant[from] || set.has(from)) continue;
      set.add(from);
      usedConstants.add(from);
      pending.push(...inputsOf[from]);
    }
  }
  placements.constants = usedConstants.size;
  placements.unused = constant.filter(Boolean).length - usedConstants.size;

  const valueInfo = valueInfoLookup(skeleton, facts);
  const position = new Array<number>(nodes.length);
  order.forEach((node, index) => position[node] = index);
  const stages = members.map((set, s) => {
    const list = [...set].sort((a, b) => position[a] - position[b]);
    const produced = new Set(list.flatMap((i) => (nodes[i].output ?? []).filter(Boolean)));
    const read = [...new Set(list.flatMap((i) => inputsOf[i]).concat(extraOutputs[s]))];
    return {
      index: s,
      list,
      produced,
      constants: read.filter(isConstantName),
      inputs: read.filter((name) => !produced.has(name) && !isConstantName(name)),
    };
  }).filter((s) => s.list.length > 0 || s.constants.length > 0);

  const parts: Analysis["parts"] = [];
  const holders = new Map<string, string[]>();
  for (const [k, current] of stages.entries()) {
    const later = new Set(stages.slice(k + 1).flatMap((s) => s.inputs));
    const outputs = [...current.produced]
      .filter((name) => later.has(name) || modelOutputs.includes(name))
      .concat(extraOutputs[current.index]);
    const kind = current.index === 0
      ? "prologue"
      : current.index === epilogue
      ? "epilogue"
      : "blocks";
    const partBlocks = blocks.filter((b) => stageOfBlock.get(b) === current.index);
    let suffix: string = kind;
    if (partBlocks.length === 1) suffix = `block_${partBlocks[0]}`;
    if (partBlocks.length > 1) suffix = `blocks_${partBlocks[0]}_${partBlocks.at(-1)}`;
    const name = `part_${String(k).padStart(2, "0")}_${suffix}`;
    const tensors = current.constants.filter((n) => initializers.has(n))
      .map((n) => initializers.get(n)!);
    for (const tensor of tensors) {
      holders.set(tensor.name, [...(holders.get(tensor.name) ?? []), name]);
    }
    // Model inputs first, in declared order.
    const inputs = modelInputs.filter((n) => current.inputs.includes(n))
      .concat(current.inputs.filter((n) => !modelInputs.includes(n)));
    for (const input of inputs) valueInfo(input);
    const partNodes = current.list.map((i) => nodes[i]);
    const transposed = (options.transposeMatMulWeights ?? splitDefaults.transposeMatMulWeights)
      ? transposableWeights(partNodes, tensors)
      : new Set<string>();
    parts.push({
      plan: {
        name,
        kind,
        blocks: partBlocks,
        nodeCount: current.list.length,
        initializerCount: tensors.length,
        weightBytes: tensors.reduce((sum, tensor) => sum + tensor.byteLength, 0),
        transposedWeights: transposed.size,
        inputs,
        outputs: [...new Set(outputs)],
      },
      nodes: partNodes,
      initializers: tensors,
      sparse: current.constants.filter((n) => sparse.has(n)).map((n) => sparse.get(n)!),
      transposed,
    });
  }

  const shared = [...holders].filter(([, names]) => names.length > 1).map(([name, names]) => ({
    name,
    bytes: initializers.get(name)!.byteLength,
    parts: names,
  }));
  return {
    plan: {
      modelPath: path,
      pattern: regex.source,
      blocksPerGroup,
      blocks,
      parts: parts.map((part) => part.plan),
      shared,
      weightBytes: skeleton.initializers.reduce((sum, tensor) => sum + tensor.byteLength, 0),
      modelInputs,
      modelOutputs,
      placements,
      unusedInitializers: [...initializers.keys()].filter((n) => !holders.has(n)),
    },
    parts,
    valueInfo,
  };
}

/**
 * The 2-D float32 initializers of a part that only MatMuls read, as their second input (the
 * weight of `x @ W`), with their data in one piece: those are written transposed.
 */
function transposableWeights(nodes: NodeProto[], tensors: ScannedTensor[]): Set<string> {
  const names = new Set(
    tensors.filter((tensor) =>
      tensor.dataType === FLOAT && tensor.dims.length === 2 &&
      (tensor.data.kind === "external" || tensor.data.kind === "inline")
    ).map((tensor) => tensor.name),
  );
  for (const node of nodes) {
    const asWeight = node.opType === "MatMul" && !node.domain ? node.input?.[1] : undefined;
    for (const name of nodeInputs(node)) {
      const onlyAsWeight = name === asWeight && node.input?.[0] !== name;
      if (!onlyAsWeight) names.delete(name);
    }
  }
  return names;
}

/** A MatMul reading a transposed weight: `FusedMatMul(x, W^T, transB=1)` is `MatMul(x, W)`. */
function fusedMatMul(node: NodeProto): NodeProto {
  return onnx.NodeProto.create({
    ...node,
    opType: "FusedMatMul",
    domain: "com.microsoft",
    attribute: [
      ...(node.attribute ?? []),
      { name: "transB", type: onnx.AttributeProto.AttributeType.INT, i: 1 },
    ],
  });
}

/** The `[cols, rows]` transpose of a row-major `[rows, cols]` matrix of 4-byte elements. */
export function transposeMatrix(bytes: Uint8Array, rows: number, cols: number): Uint8Array {
  if (bytes.byteLength !== rows * cols * 4) {
    throw new Error(`Cannot transpose ${bytes.byteLength} bytes as a ${rows} x ${cols} matrix`);
  }
  // Whole words, not floats: NaN payloads survive. A copy when the bytes are not 4-aligned.
  const from = bytes.byteOffset % 4 === 0
    ? new Uint32Array(bytes.buffer, bytes.byteOffset, rows * cols)
    : new Uint32Array(bytes.slice().buffer);
  const to = new Uint32Array(rows * cols);
  const tile = 64;
  for (let r0 = 0; r0 < rows; r0 += tile) {
    const r1 = Math.min(rows, r0 + tile);
    for (let c0 = 0; c0 < cols; c0 += tile) {
      const c1 = Math.min(cols, c0 + tile);
      for (let r = r0; r < r1; r++) {
        for (let c = c0; c < c1; c++) to[c * rows + r] = from[r * cols + c];
      }
    }
  }
  return new Uint8Array(to.buffer);
}

/**
 * The declared value info of a tensor, or one with the inferred element type only: tensors
 * crossing parts must be typed, and exporters seldom declare intermediate ones.
 */
function valueInfoLookup(skeleton: Skeleton, facts: GraphFacts): (name: string) => ValueInfoProto {
  const { graph } = skeleton;
  const { path, nodes, producer } = facts;
  const elementTypes = inferElementTypes(skeleton, facts.order);
  const known = new Map<string, ValueInfoProto>();
  for (const value of [...graph.valueInfo, ...graph.output, ...graph.input]) {
    known.set(value.name ?? "", value);
  }
  return (name: string): ValueInfoProto => {
    const declared = known.get(name);
    if (declared) return declared;
    const elemType = elementTypes.get(name);
    if (elemType !== undefined) return { name, type: { tensorType: { elemType } } };
    const from = producer.get(name);
    const made = from === undefined
      ? ""
      : ` (made by node ${nodeLabel(nodes, from)}, op "${nodes[from].opType}")`;
    throw new Error(`Cannot split "${path}": the element type of "${name}"${made} is unknown`);
  };
}

/** Node indices in an order where producers come first (the file's order when it already is). */
function topologicalOrder(
  count: number,
  inputsOf: (i: number) => string[],
  producer: ReadonlyMap<string, number>,
  path: string,
): number[] {
  const pending = new Array<number>(count).fill(0);
  const dependents = Array.from({ length: count }, () => [] as number[]);
  for (let i = 0; i < count; i++) {
    for (const name of new Set(inputsOf(i))) {
      const from = producer.get(name);
      if (from === undefined || from === i) continue;
      pending[i]++;
      dependents[from].push(i);
    }
  }
  const order: number[] = [];
  // Take ready nodes in file order, so a sorted graph keeps its order.
  const ready: number[] = [];
  for (let i = count - 1; i >= 0; i--) if (pending[i] === 0) ready.push(i);
  while (ready.length > 0) {
    const next = ready.pop()!;
    order.push(next);
    const released = dependents[next].filter((d) => --pending[d] === 0).sort((a, b) => b - a);
    ready.push(...released);
    if (released.length > 0) ready.sort((a, b) => b - a);
  }
  if (order.length !== count) throw new Error(`Cannot split "${path}": the graph has a cycle`);
  return order;
}

const BOOL_OPS = new Set([
  "Equal",
  "Less",
  "LessOrEqual",
  "Greater",
  "GreaterOrEqual",
  "Not",
  "And",
  "Or",
  "Xor",
  "IsNaN",
  "IsInf",
]);
const INT64_OPS = new Set(["Shape", "Size", "NonZero", "ArgMax", "ArgMin", "NonMaxSuppression"]);
const FLOAT = 1;
const UINT8 = 2;
const INT32 = 6;
const INT64 = 7;
const STRING = 8;
const BOOL = 9;

/**
 * Element types of the graph's tensors: declared ones, then propagated through the nodes.
 * Most ops give their first input's type; the others are listed.
 */
function inferElementTypes(skeleton: Skeleton, order: number[]): Map<string, number> {
  const types = new Map<string, number>();
  const { graph, nodes } = skeleton;
  for (const value of [...graph.input, ...graph.output, ...graph.valueInfo]) {
    const elemType = value.type?.tensorType?.elemType;
    if (elemType && value.name) types.set(value.name, elemType);
  }
  for (const tensor of skeleton.initializers) types.set(tensor.name, tensor.dataType);
  for (const tensor of graph.sparseInitializer) {
    if (tensor.values?.name) types.set(tensor.values.name, tensor.values.dataType ?? 0);
  }
  for (const i of order) {
    const node = nodes[i];
    const outputs = node.output ?? [];
    const result = outputTypes(node, (k) => types.get(node.input?.[k] ?? ""));
    outputs.forEach((name, k) => {
      if (name && !types.has(name) && result[k]) types.set(name, result[k]!);
    });
  }
  return types;
}

function outputTypes(
  node: NodeProto,
  input: (k: number) => number | undefined,
): (number | undefined)[] {
  const op = node.opType ?? "";
  const attribute = (name: string) => node.attribute?.find((a) => a.name === name);
  const intAttribute = (name: string) => {
    const value = attribute(name)?.i;
    return value === undefined || value === null ? undefined : toNumber(value);
  };
  const first = (node.input ?? []).findIndex((name) => name !== "");
  const same = first >= 0 ? input(first) : undefined;
  if (BOOL_OPS.has(op)) return [BOOL];
  if (INT64_OPS.has(op)) return [INT64];
  const subgraphOutputs = (graph: GraphProto | null | undefined, skip: number) =>
    (graph?.output ?? []).slice(skip).map((value) => value.type?.tensorType?.elemType ?? undefined);
  switch (op) {
    case "Cast":
      return [intAttribute("to")];
    case "CastLike":
      return [input(1)];
    case "Constant": {
      const value = node.attribute?.[0];
      if (!value) return [];
      if (value.name === "value") return [value.t?.dataType ?? undefined];
      if (value.name === "sparse_value") return [value.sparseTensor?.values?.dataType ?? undefined];
      if (value.name?.startsWith("value_float")) return [FLOAT];
      if (value.name?.startsWith("value_int")) return [INT64];
      if (value.name?.startsWith("value_string")) return [STRING];
      return [];
    }
    case "ConstantOfShape":
      return [attribute("value")?.t?.dataType ?? FLOAT];
    case "RandomNormal":
    case "RandomUniform":
      return [intAttribute("dtype") ?? FLOAT];
    case "RandomNormalLike":
    case "RandomUniformLike":
    case "Bernoulli":
    case "EyeLike":
      return [intAttribute("dtype") ?? same];
    case "Multinomial":
      return [intAttribute("dtype") ?? INT32];
    case "Where":
      return [input(1)];
    case "OneHot":
      return [input(2)];
    case "TopK":
    case "MaxPool":
      return [same, INT64];
    case "Unique":
      return [same, INT64, INT64, INT64];
    case "Dropout":
      return [same, BOOL];
    case "LayerNormalization": {
      const stash = intAttribute("stash_type") ?? FLOAT;
      return [same, stash, stash];
    }
    case "QuantizeLinear":
      return [input(2) ?? intAttribute("output_dtype") ?? UINT8];
    case "DequantizeLinear":
      return [input(1) ?? FLOAT];
    case "DynamicQuantizeLinear":
      return [UINT8, FLOAT, UINT8];
    case "MatMulInteger":
    case "ConvInteger":
      return [INT32];
    case "QLinearMatMul":
    case "QLinearConv":
      return [input(7)];
    case "If":
      return subgraphOutputs(attribute("then_branch")?.g, 0);
    case "Loop":
      return subgraphOutputs(attribute("body")?.g, 1);
    case "Scan":
      return subgraphOutputs(attribute("body")?.g, 0);
    default:
      return (node.output ?? []).map(() => same);
  }
}

/** Computes how a model would be split, without writing anything: blocks, parts, sizes. */
export async function planSplit(modelPath: string, options: SplitOptions = {}): Promise<SplitPlan> {
  const source = await openModel(modelPath);
  try {
    return analyze(await readSkeleton(source, modelPath), options).plan;
  } finally {
    source.close();
  }
}

/**
 * SHA-256 of a model file and of the external data files it references (in sorted order),
 * read in chunks.
 */
export async function modelContentHash(modelPath: string): Promise<string> {
  const info = await inspectOnnxModel(modelPath);
  await verifyExternalData(modelPath, info);
  const hash = createHash("sha256");
  const buffer = new Uint8Array(1 << 22);
  const feed = async (path: string) => {
    using file = await Deno.open(path, { read: true });
    while (true) {
      const count = await file.read(buffer);
      if (count === null) break;
      hash.update(buffer.subarray(0, count));
    }
  };
  await feed(modelPath);
  for (const location of [...info.externalDataFiles].sort()) {
    hash.update(`\0${location}\0`);
    await feed(externalDataPath(modelPath, location));
  }
  return hash.digest("hex");
}

/** Version of the on-disk layout: bump it when the parts change for the same settings. */
const CACHE_FORMAT = 3;

/** The cache key of a model's split: its content hash and the settings. */
export function splitCacheKey(contentHash: string, options: SplitOptions = {}): string {
  const regex = compilePattern(options.blockPattern ?? splitDefaults.blockPattern);
  const settings = JSON.stringify({
    format: CACHE_FORMAT,
    model: contentHash,
    pattern: regex.source,
    flags: regex.flags,
    blocksPerGroup: options.blocksPerGroup ?? splitDefaults.blocksPerGroup,
    externalThreshold: options.externalThreshold ?? splitDefaults.externalThreshold,
    transposeMatMulWeights: options.transposeMatMulWeights ??
      splitDefaults.transposeMatMulWeights,
  });
  return createHash("sha256").update(settings).digest("hex").slice(0, 32);
}

interface PartFiles {
  onnx: string;
  data: string | null;
  /** Size and SHA-256 by file name. */
  digests: Record<string, FileDigest>;
}

interface Manifest {
  format: number;
  key: string;
  plan: SplitPlan;
  files: PartFiles[];
}

/** The manifest of a cached split, or null when there is none or it cannot be used (it says why). */
async function readManifest(
  dir: string,
): Promise<{ manifest: Manifest } | { damaged: string } | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${dir}/manifest.json`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw new Error(`Cannot read split cache "${dir}/manifest.json": ${(error as Error).message}`);
  }
  try {
    const manifest = JSON.parse(text) as Manifest;
    if (
      manifest?.format !== CACHE_FORMAT || !Array.isArray(manifest.files) ||
      manifest.files.length !== manifest.plan?.parts?.length
    ) {
      return { damaged: "its manifest is not one of this version" };
    }
    return { manifest };
  } catch {
    return { damaged: "its manifest is not JSON" };
  }
}

function resultOf(
  modelPath: string,
  dir: string,
  manifest: Manifest,
  cached: boolean,
): SplitResult {
  const plan = { ...manifest.plan, modelPath };
  const parts = manifest.plan.parts.map((part, i) => {
    const files = manifest.files[i];
    const digests: Record<string, FileDigest> = {};
    for (const [name, digest] of Object.entries(files.digests ?? {})) {
      digests[`${dir}/${name}`] = digest;
    }
    return {
      ...part,
      path: `${dir}/${files.onnx}`,
      dataPath: files.data ? `${dir}/${files.data}` : null,
      digests,
    };
  });
  return { dir, key: manifest.key, cached, plan, parts };
}

/** Files verified in this process: path to the size, modification time and digest then. */
const verified = new Map<string, { bytes: number; mtimeMs: number; sha256: string }>();

/** SHA-256 of a file, read in chunks. */
export async function fileSha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  const buffer = new Uint8Array(1 << 22);
  using file = await Deno.open(path, { read: true });
  while (true) {
    const count = await file.read(buffer);
    if (count === null) break;
    hash.update(buffer.subarray(0, count));
  }
  return hash.digest("hex");
}

/**
 * Checks that a part's files are as written: present, of their size, with their SHA-256. Each
 * file is hashed once per process; later calls compare its size and modification time with those
 * it had when it was hashed (a `stat`). Returns what is wrong, or undefined.
 */
export async function verifySplitPart(part: SplitPart): Promise<string | undefined> {
  if (!part.digests) return undefined;
  const files = [part.path, ...(part.dataPath ? [part.dataPath] : [])];
  for (const path of files) {
    const expected = part.digests[path];
    if (!expected) return `${quote(path)} has no recorded digest`;
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch {
      return `${quote(path)} is missing`;
    }
    if (info.size !== expected.bytes) {
      return `${quote(path)} has ${info.size} bytes, not ${expected.bytes}`;
    }
    const mtimeMs = info.mtime?.getTime() ?? 0;
    const known = verified.get(path);
    if (known?.bytes === info.size && known.mtimeMs === mtimeMs) {
      if (known.sha256 === expected.sha256) continue;
      return `${quote(path)} does not match its SHA-256 digest`;
    }
    const sha256 = await fileSha256(path);
    verified.set(path, { bytes: info.size, mtimeMs, sha256 });
    if (sha256 !== expected.sha256) return `${quote(path)} does not match its SHA-256 digest`;
  }
  return undefined;
}

/** What is wrong with a cached split's parts, or undefined when every one is whole. */
async function damageOf(split: SplitResult): Promise<string | undefined> {
  for (const part of split.parts) {
    const problem = await verifySplitPart(part);
    if (problem) return problem;
  }
  return undefined;
}

/**
 * Removes a damaged split: the files a split writes (`*.onnx`, `*.onnx.data`, `manifest.json`)
 * in its folder, then the folder if nothing else is left in it.
 */
async function removeSplit(dir: string): Promise<void> {
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || !/(\.onnx|\.onnx\.data|^manifest\.json)$/.test(entry.name)) continue;
      await Deno.remove(`${dir}/${entry.name}`).catch(() => {});
      verified.delete(`${dir}/${entry.name}`);
    }
  } catch {
    // Gone already.
  }
  await Deno.remove(dir).catch(() => {});
}

/**
 * Splits a model into parts in `cacheDir` (see the module documentation), or returns the parts
 * already there for the same model content and settings. Safe when several processes split the
 * same model at once: each writes to a temporary folder that is then renamed into place.
 */
export async function splitModel(
  modelPath: string,
  options: SplitModelOptions,
): Promise<SplitResult> {
  const contentHash = options.contentHash ?? await modelContentHash(modelPath);
  const key = splitCacheKey(contentHash, options);
  const dir = `${options.cacheDir}/${key}`;
  const cached = await readManifest(dir);
  if (cached) {
    const manifest = "manifest" in cached ? cached.manifest : undefined;
    const result = manifest ? resultOf(modelPath, dir, manifest, true) : undefined;
    const problem = result ? await damageOf(result) : (cached as { damaged: string }).damaged;
    if (!problem) return result!;
    options.onWarning?.(
      `The split of ${quote(modelPath)} cached in ${quote(dir)} is damaged (${problem}): ` +
        "removed it, splitting the model again",
    );
    await removeSplit(dir);
  }

  const source = await openModel(modelPath);
  const temp = `${options.cacheDir}/.tmp-${key}-${crypto.randomUUID()}`;
  const external = new ExternalFiles(modelPath);
  try {
    const skeleton = await readSkeleton(source, modelPath);
    const analysis = analyze(skeleton, options);
    await Deno.mkdir(temp, { recursive: true });
    const writer: PartWriter = {
      dir: temp,
      skeleton,
      source,
      external,
      valueInfo: analysis.valueInfo,
      threshold: options.externalThreshold ?? splitDefaults.externalThreshold,
    };
    const files: PartFiles[] = [];
    for (const part of analysis.parts) {
      const written = await writePart(writer, part);
      const digests: Record<string, FileDigest> = {};
      for (const name of [written.onnx, ...(written.data ? [written.data] : [])]) {
        const bytes = (await Deno.stat(`${temp}/${name}`)).size;
        digests[name] = { bytes, sha256: await fileSha256(`${temp}/${name}`) };
      }
      files.push({ ...written, digests });
    }
    const manifest: Manifest = { format: CACHE_FORMAT, key, plan: analysis.plan, files };
    await Deno.writeTextFile(`${temp}/manifest.json`, JSON.stringify(manifest, null, 2));
    try {
      await Deno.rename(temp, dir);
    } catch (error) {
      // Another process finished first: use its parts.
      const theirs = await readManifest(dir);
      if (!theirs || !("manifest" in theirs)) throw error;
      await Deno.remove(temp, { recursive: true });
      return resultOf(modelPath, dir, theirs.manifest, true);
    }
    return resultOf(modelPath, dir, manifest, false);
  } catch (error) {
    await Deno.remove(temp, { recursive: true }).catch(() => {});
    throw error;
  } finally {
    external.close();
    source.close();
  }
}

/** The external data files of the source model, opened when first read. */
class ExternalFiles {
  #modelPath: string;
  #open = new Map<string, FileSource>();

  constructor(modelPath: string) {
    this.#modelPath = modelPath;
  }

  async get(location: string): Promise<FileSource> {
    let source = this.#open.get(location);
    if (!source) {
      const path = externalDataPath(this.#modelPath, location);
      try {
        source = await FileSource.open(path);
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) {
          throw new Error(
            `External data file "${path}" referenced by "${this.#modelPath}" does not exist`,
          );
        }
        throw error;
      }
      this.#open.set(location, source);
    }
    return source;
  }

  /** The byte range of an external tensor, checked against the file. */
  async range(
    tensor: string,
    data: { location: string; offset: number; length: number | null },
  ): Promise<{ source: FileSource; offset: number; length: number }> {
    const source = await this.get(data.location);
    const length = data.length ?? source.size - data.offset;
    if (data.offset + length > source.size) {
      throw new Error(
        `External data of "${tensor}" lies past the end of "${data.location}" (beside "${this.#modelPath}")`,
      );
    }
    return { source, offset: data.offset, length };
  }

  close(): void {
    for (const source of this.#open.values()) source.close();
  }
}

interface PartWriter {
  dir: string;
  skeleton: Skeleton;
  source: FileSource;
  external: ExternalFiles;
  valueInfo: (name: string) => ValueInfoProto;
  threshold: number;
}

const COPY_CHUNK = 1 << 23;
const LARGE_TENSOR = 1 << 20;

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.byteLength) written += await file.write(bytes.subarray(written));
}

/** Appends tensors to a part's external data file, aligned as onnx's `save_model` does. */
class DataFileWriter {
  readonly name: string;
  #path: string;
  #file: Deno.FsFile | null = null;
  #offset = 0;

  constructor(dir: string, name: string) {
    this.name = name;
    this.#path = `${dir}/${name}`;
  }

  get used(): boolean {
    return this.#file !== null;
  }

  /** Copies `length` bytes from `source` at `offset`; returns the external data entries. */
  async append(
    source: FileSource,
    offset: number,
    length: number,
  ): Promise<onnxProto.onnx.IStringStringEntryProto[]> {
    const { file, start } = await this.#begin(length);
    for (let done = 0; done < length; done += COPY_CHUNK) {
      await writeAll(file, await source.read(offset + done, Math.min(COPY_CHUNK, length - done)));
    }
    return this.#end(start, length);
  }

  /** Appends `bytes`; returns the external data entries. */
  async appendBytes(bytes: Uint8Array): Promise<onnxProto.onnx.IStringStringEntryProto[]> {
    const { file, start } = await this.#begin(bytes.byteLength);
    await writeAll(file, bytes);
    return this.#end(start, bytes.byteLength);
  }

  async #begin(length: number): Promise<{ file: Deno.FsFile; start: number }> {
    this.#file ??= await Deno.open(this.#path, { write: true, createNew: true });
    // Large tensors start on a 64 KiB boundary so that they can be memory-mapped.
    const alignment = length >= LARGE_TENSOR ? 65536 : 64;
    const padding = (alignment - (this.#offset % alignment)) % alignment;
    if (padding > 0) await writeAll(this.#file, new Uint8Array(padding));
    return { file: this.#file, start: this.#offset + padding };
  }

  #end(start: number, length: number): onnxProto.onnx.IStringStringEntryProto[] {
    this.#offset = start + length;
    return [
      { key: "location", value: this.name },
      { key: "offset", value: String(start) },
      { key: "length", value: String(length) },
    ];
  }

  close(): void {
    this.#file?.close();
  }
}

/** A tensor without its data, as a plain message to fill in. */
function tensorHead(meta: onnxProto.onnx.TensorProto): TensorProto {
  return {
    name: meta.name,
    dims: meta.dims,
    dataType: meta.dataType,
    segment: meta.segment,
    docString: meta.docString,
  };
}

async function emitInitializer(
  writer: PartWriter,
  data: DataFileWriter,
  tensor: ScannedTensor,
  transpose: boolean,
): Promise<TensorProto> {
  const head = tensorHead(tensor.meta);
  const location = tensor.data;
  if (transpose && (location.kind === "external" || location.kind === "inline")) {
    const { source, offset, length } = location.kind === "external"
      ? await writer.external.range(tensor.name, location)
      : { source: writer.source, offset: location.offset, length: location.length };
    const [rows, cols] = tensor.dims;
    const bytes = transposeMatrix(await source.read(offset, length), rows, cols);
    const transposed = { ...head, dims: [cols, rows] };
    if (bytes.byteLength < writer.threshold) return { ...transposed, rawData: bytes };
    const externalData = await data.appendBytes(bytes);
    return { ...transposed, externalData, dataLocation: onnx.TensorProto.DataLocation.EXTERNAL };
  }
  if (location.kind === "external") {
    const range = await writer.external.range(tensor.name, location);
    const externalData = await data.append(range.source, range.offset, range.length);
    return { ...head, externalData, dataLocation: onnx.TensorProto.DataLocation.EXTERNAL };
  }
  if (location.kind === "inline") {
    if (location.length >= writer.threshold) {
      const externalData = await data.append(writer.source, location.offset, location.length);
      return { ...head, externalData, dataLocation: onnx.TensorProto.DataLocation.EXTERNAL };
    }
    return { ...head, rawData: await writer.source.read(location.offset, location.length) };
  }
  if (location.kind === "typed") {
    const bytes = await writer.source.read(tensor.start, tensor.end - tensor.start);
    return onnx.TensorProto.decode(bytes);
  }
  return head;
}

function hasExternalTensor(node: NodeProto): boolean {
  const external = (tensor: TensorProto | null | undefined) =>
    tensor?.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL;
  const inGraph = (graph: GraphProto | null | undefined): boolean =>
    !!graph &&
    ((graph.initializer ?? []).some(external) || (graph.node ?? []).some(hasExternalTensor));
  return (node.attribute ?? []).some((a) =>
    external(a.t) || (a.tensors ?? []).some(external) || inGraph(a.g) ||
    (a.graphs ?? []).some(inGraph)
  );
}

/** A copy of the node whose attribute tensors (and subgraph initializers) hold their data inline. */
async function inlineExternalTensors(writer: PartWriter, node: NodeProto): Promise<NodeProto> {
  const copy = onnx.NodeProto.decode(onnx.NodeProto.encode(node).finish());
  const inline = async (tensor: TensorProto) => {
    if (tensor.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) return;
    const entries = new Map((tensor.externalData ?? []).map((e) => [e.key ?? "", e.value ?? ""]));
    const range = await writer.external.range(tensor.name ?? "", {
      location: entries.get("location") ?? "",
      offset: Number(entries.get("offset") ?? 0),
      length: entries.has("length") ? Number(entries.get("length")) : null,
    });
    tensor.rawData = await range.source.read(range.offset, range.length);
    tensor.externalData = [];
    tensor.dataLocation = onnx.TensorProto.DataLocation.DEFAULT;
  };
  const visitNode = async (current: NodeProto): Promise<void> => {
    for (const attribute of current.attribute ?? []) {
      if (attribute.t) await inline(attribute.t);
      for (const tensor of attribute.tensors ?? []) await inline(tensor);
      for (const graph of [attribute.g, ...(attribute.graphs ?? [])]) {
        if (!graph) continue;
        for (const tensor of graph.initializer ?? []) await inline(tensor);
        for (const inner of graph.node ?? []) await visitNode(inner);
      }
    }
  };
  await visitNode(copy);
  return copy;
}

async function writePart(
  writer: PartWriter,
  part: Analysis["parts"][number],
): Promise<{ onnx: string; data: string | null }> {
  const { name } = part.plan;
  const data = new DataFileWriter(writer.dir, `${name}.onnx.data`);
  const initializer: TensorProto[] = [];
  try {
    for (const tensor of part.initializers) {
      initializer.push(
        await emitInitializer(writer, data, tensor, part.transposed.has(tensor.name)),
      );
    }
  } finally {
    data.close();
  }
  const node: NodeProto[] = [];
  for (const current of part.nodes) {
    if (current.opType === "MatMul" && part.transposed.has(current.input?.[1] ?? "")) {
      node.push(fusedMatMul(current));
      continue;
    }
    node.push(hasExternalTensor(current) ? await inlineExternalTensors(writer, current) : current);
  }
  const { model, graph } = writer.skeleton;
  const boundary = new Set([...part.plan.inputs, ...part.plan.outputs]);
  const inside = new Set(part.nodes.flatMap((n) => [...(n.input ?? []), ...(n.output ?? [])]));
  // A transposed weight's declared shape (if any) no longer holds.
  const keep = (tensorName: string | null | undefined) =>
    !!tensorName && inside.has(tensorName) && !boundary.has(tensorName) &&
    !part.transposed.has(tensorName);
  const opsetImport = part.transposed.size > 0 &&
      !model.opsetImport.some((opset) => opset.domain === "com.microsoft")
    ? [...model.opsetImport, { domain: "com.microsoft", version: 1 }]
    : model.opsetImport;
  const partModel: onnxProto.onnx.IModelProto = {
    irVersion: model.irVersion,
    opsetImport,
    producerName: model.producerName,
    producerVersion: model.producerVersion,
    domain: model.domain,
    modelVersion: model.modelVersion,
    docString: model.docString,
    metadataProps: model.metadataProps,
    functions: model.functions,
    graph: {
      name: `${graph.name || "graph"}_${name}`,
      node,
      initializer,
      sparseInitializer: part.sparse,
      input: part.plan.inputs.map(writer.valueInfo),
      output: part.plan.outputs.map(writer.valueInfo),
      valueInfo: graph.valueInfo.filter((value) => keep(value.name)),
      quantizationAnnotation: graph.quantizationAnnotation.filter((a) =>
        inside.has(a.tensorName ?? "")
      ),
    },
  };
  const file = `${name}.onnx`;
  await Deno.writeFile(`${writer.dir}/${file}`, onnx.ModelProto.encode(partModel).finish());
  return { onnx: file, data: data.used ? data.name : null };
}
