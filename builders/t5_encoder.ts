/**
 * The T5 text encoder (transformers' `T5EncoderModel`, T5 v1.1 as CogVideoX uses it) as an ONNX
 * graph built from `text_encoder/config.json` and its safetensors weights (shards followed
 * through `model.safetensors.index.json`).
 *
 * Graph input `input_ids` int64 `[batch, sequence]`, output `last_hidden_state` float32
 * `[batch, sequence, d_model]`; batch and sequence are dynamic and there is no attention mask
 * (the pipeline encodes `<pad>` positions like other tokens). The relative position buckets are a
 * constant table computed in TypeScript (t5_relative_position.ts) that relative positions are
 * clamped into, so any sequence length works.
 *
 * Compute dtype float32 (the CPU) or bfloat16 (GPU providers); float16 is refused because T5
 * v1.1 overflows in it. The RMS norm statistics are taken in float32 whatever the compute dtype,
 * as transformers does. Nodes are named by module path (`encoder.block.3.layer.1/...`), weights
 * by checkpoint key.
 *
 * {@link t5EncoderParts} builds the same encoder as parts for sequential offload (embeddings and
 * position bias, groups of blocks, the final norm) from the same module functions: on the CPU in
 * float32 they give the whole graph's output bit for bit.
 *
 * @module
 */

import { type ComputeDType, float, GraphBuilder, ONNX_DTYPES } from "./onnx_graph.ts";
import { dim, gelu, geluTanh, linear, transpose, unsqueeze } from "./layers.ts";
import type { ComponentWeights } from "./safetensors_weights.ts";
import { relativePositionBucketTable } from "./t5_relative_position.ts";
import {
  blockGroups,
  buildPart,
  type PartBoundary,
  type PartGraph,
  type PartsOptions,
} from "./part_graph.ts";
import { UserError } from "../runtime/user_error.ts";

/** Options of {@link buildT5Encoder}. */
export interface BuildT5EncoderOptions {
  /** The component's parsed config.json. */
  config: Record<string, unknown>;
  /** Path of that config.json, for error messages. */
  configPath: string;
  /** The component's weights. */
  weights: ComponentWeights;
  /** Compute dtype (default float32; float16 is refused). */
  dtype?: ComputeDType;
}

/** The activations of the feed-forward layer (transformers' `dense_act_fn`). */
export type T5DenseActFn = "relu" | "gelu" | "gelu_new";

/** The `T5Config` values the encoder graph depends on, defaults filled in. */
export interface T5EncoderConfig {
  /** Rows of the token embedding `shared.weight`. */
  vocab_size: number;
  /** Hidden width. */
  d_model: number;
  /** Channels per attention head. */
  d_kv: number;
  /** Width of the feed-forward layer. */
  d_ff: number;
  /** Encoder blocks. */
  num_layers: number;
  /** Attention heads. */
  num_heads: number;
  /** Buckets of the relative position bias. */
  relative_attention_num_buckets: number;
  /** Distance from which relative positions share the last bucket. */
  relative_attention_max_distance: number;
  /** Epsilon of the RMS norms. */
  layer_norm_epsilon: number;
  /** `relu`, `gated-relu`, `gelu` or `gated-gelu`. */
  feed_forward_proj: string;
  /** The activation `feed_forward_proj` gives (`gated-gelu` means `gelu_new`, the tanh form). */
  dense_act_fn: T5DenseActFn;
  /** Whether the feed-forward layer is gated (`wi_0`, `wi_1`) or plain (`wi`). */
  is_gated_act: boolean;
}

/** transformers' `T5Config` defaults of the integer arguments. */
const INTEGER_DEFAULTS = {
  vocab_size: 32128,
  d_model: 512,
  d_kv: 64,
  d_ff: 2048,
  num_layers: 6,
  num_heads: 8,
  relative_attention_num_buckets: 32,
  relative_attention_max_distance: 128,
} as const;

/** `feed_forward_proj` values the graph supports, with the activation transformers derives. */
const FEED_FORWARD_PROJ: Readonly<Record<string, T5DenseActFn>> = {
  "relu": "relu",
  "gated-relu": "relu",
  "gelu": "gelu",
  "gated-gelu": "gelu_new",
};

/** Reads and validates a `T5EncoderModel` config; missing keys take `T5Config`'s defaults. */
export function readT5EncoderConfig(
  config: Record<string, unknown>,
  configPath: string,
): T5EncoderConfig {
  const where = `in "${configPath}"`;
  const unsupported = (key: string, expected: string) =>
    new UserError(
      `Unsupported "${key}": ${JSON.stringify(config[key])} ${where}: expected ${expected}`,
    );
  if (config._class_name !== undefined && config._class_name !== "T5EncoderModel") {
    throw unsupported("_class_name", `"T5EncoderModel"`);
  }
  const architectures = config.architectures;
  if (
    architectures !== undefined &&
    !(Array.isArray(architectures) && architectures.length === 1 &&
      architectures[0] === "T5EncoderModel")
  ) {
    throw unsupported("architectures", `["T5EncoderModel"]`);
  }
  if (config.model_type !== undefined && config.model_type !== "t5") {
    throw unsupported("model_type", `"t5"`);
  }
  const integer = (key: keyof typeof INTEGER_DEFAULTS) => {
    const value = config[key] ?? INTEGER_DEFAULTS[key];
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
      throw unsupported(key, "a positive integer");
    }
    return value;
  };
  const epsilon = config.layer_norm_epsilon ?? 1e-6;
  if (typeof epsilon !== "number" || !(epsilon > 0) || !Number.isFinite(epsilon)) {
    throw unsupported("layer_norm_epsilon", "a positive number");
  }
  const feedForwardProj = config.feed_forward_proj ?? "relu";
  const denseActFn = typeof feedForwardProj === "string"
    ? FEED_FORWARD_PROJ[feedForwardProj]
    : undefined;
  if (denseActFn === undefined) {
    throw unsupported(
      "feed_forward_proj",
      Object.keys(FEED_FORWARD_PROJ).map((name) => `"${name}"`).join(", "),
    );
  }
  const isGatedAct = (feedForwardProj as string).startsWith("gated-");
  // transformers derives both from feed_forward_proj; a saved copy that disagrees is suspect.
  const derived = `(what "feed_forward_proj": "${feedForwardProj}" gives)`;
  if (config.is_gated_act !== undefined && config.is_gated_act !== isGatedAct) {
    throw unsupported("is_gated_act", `${isGatedAct} ${derived}`);
  }
  if (config.dense_act_fn !== undefined && config.dense_act_fn !== denseActFn) {
    throw unsupported("dense_act_fn", `"${denseActFn}" ${derived}`);
  }
  const parsed: T5EncoderConfig = {
    vocab_size: integer("vocab_size"),
    d_model: integer("d_model"),
    d_kv: integer("d_kv"),
    d_ff: integer("d_ff"),
    num_layers: integer("num_layers"),
    num_heads: integer("num_heads"),
    relative_attention_num_buckets: integer("relative_attention_num_buckets"),
    relative_attention_max_distance: integer("relative_attention_max_distance"),
    layer_norm_epsilon: epsilon,
    feed_forward_proj: feedForwardProj as string,
    dense_act_fn: denseActFn,
    is_gated_act: isGatedAct,
  };
  if (parsed.relative_attention_num_buckets < 4) {
    throw unsupported("relative_attention_num_buckets", "at least 4");
  }
  const maxExact = Math.floor(parsed.relative_attention_num_buckets / 4);
  if (parsed.relative_attention_max_distance <= maxExact) {
    throw unsupported(
      "relative_attention_max_distance",
      `more than a quarter of "relative_attention_num_buckets" (${maxExact})`,
    );
  }
  return parsed;
}

/** Builds the T5 encoder graph; returns the ModelProto bytes. */
export function buildT5Encoder(options: BuildT5EncoderOptions): Uint8Array {
  return t5EncoderGraph(options).toBytes();
}

/**
 * The T5 encoder graph before encoding (tests read {@link GraphBuilder.usedWeights} from it).
 * Config errors, a float16 compute dtype and missing or misshapen weights are UserErrors.
 */
export function t5EncoderGraph(options: BuildT5EncoderOptions): GraphBuilder {
  const config = readT5EncoderConfig(options.config, options.configPath);
  const dtype = computeDTypeOf(options);
  const b = new GraphBuilder({
    name: "text_encoder",
    weights: options.weights,
    computeDType: dtype,
  });
  t5EncoderModel({ b, config, configPath: options.configPath });
  return b;
}

/** The compute dtype of a build; float16 is refused. */
function computeDTypeOf(options: BuildT5EncoderOptions): ComputeDType {
  const dtype = options.dtype ?? "float32";
  if (dtype === "float16") {
    throw new UserError(
      `Cannot build the T5 text encoder of "${options.configPath}" in "float16": T5 overflows in float16, it runs in "float32" or "bfloat16"`,
    );
  }
  return dtype;
}

/**
 * The T5 encoder as parts for sequential offload, assembled from the same module functions as
 * the whole graph (see part_graph.ts), with the same input and output:
 * - `part_00_prologue`: `input_ids` to `shared.hidden_states` (the token embeddings) and
 *   `encoder.position_bias` (`[1, heads, sequence, sequence]`, block 0's relative position bias,
 *   which every block adds);
 * - a part per group of `blocksPerGroup` blocks: hidden states and the position bias to
 *   `encoder.block.<last>.hidden_states`;
 * - the epilogue: `final_layer_norm` to `last_hidden_state`.
 */
export function t5EncoderParts(options: BuildT5EncoderOptions & PartsOptions): PartGraph[] {
  const config = readT5EncoderConfig(options.config, options.configPath);
  const dtype = computeDTypeOf(options);
  const hiddenDims = ["batch", "sequence", config.d_model];
  const biasDims = [1, config.num_heads, "sequence", "sequence"];
  const part = (
    index: number,
    kind: PartGraph["kind"],
    blocks: number[],
    build: (m: Model, io: PartBoundary) => void,
  ): PartGraph =>
    buildPart(
      "text_encoder",
      { index, kind, blocks },
      { weights: options.weights, dtype },
      (b, io) => build({ b, config, configPath: options.configPath }, io),
    );
  const parts = [part(0, "prologue", [], (m, io) => {
    const inputIds = io.modelInput("input_ids", "int64", ["batch", "sequence"]);
    const inputsEmbeds = embeddings(m, inputIds);
    const positionBias = m.b.scope(
      "encoder.block.0.layer.0.SelfAttention",
      () => computeBias(m, inputsEmbeds),
    );
    io.output(inputsEmbeds, "shared.hidden_states", hiddenDims);
    io.output(positionBias, "encoder.position_bias", biasDims);
  })];
  let previous = "shared.hidden_states";
  for (const blocks of blockGroups(config.num_layers, options.blocksPerGroup)) {
    const from = previous;
    const to = `encoder.block.${blocks.at(-1)}.hidden_states`;
    parts.push(part(parts.length, "blocks", blocks, (m, io) => {
      const hiddenStates = io.activation(from, hiddenDims);
      const positionBias = io.activation("encoder.position_bias", biasDims);
      const out = m.b.scope("encoder", () => t5Blocks(m, hiddenStates, blocks, positionBias));
      io.output(out.hiddenStates, to, hiddenDims);
    }));
    previous = to;
  }
  parts.push(part(parts.length, "epilogue", [], (m, io) => {
    const hiddenStates = io.activation(previous, hiddenDims);
    const normed = m.b.scope("encoder.final_layer_norm", () => t5LayerNorm(m, hiddenStates));
    io.output(normed, "last_hidden_state", hiddenDims);
  }));
  return parts;
}

/** What the module functions share. */
interface Model {
  b: GraphBuilder;
  config: T5EncoderConfig;
  configPath: string;
}

/** `T5EncoderModel.forward`: token ids to `last_hidden_state`. */
function t5EncoderModel(m: Model): void {
  const { b, config } = m;
  const inputIds = b.input("input_ids", "int64", ["batch", "sequence"]);
  const inputsEmbeds = embeddings(m, inputIds);
  let hiddenStates = b.scope("encoder", () => t5Stack(m, inputsEmbeds));
  if (b.computeDType !== "float32") hiddenStates = b.op("Cast", [hiddenStates], { to: 1 });
  b.output(hiddenStates, "last_hidden_state", "float32", ["batch", "sequence", config.d_model]);
}

/** The token embeddings (`T5Stack.embed_tokens`, tied to `shared`). */
function embeddings(m: Model, inputIds: string): string {
  const { b, config } = m;
  // encoder.embed_tokens is tied to shared; older checkpoints store it under its own key too.
  const embedScope = b.hasWeight("shared.weight") || !b.hasWeight("encoder.embed_tokens.weight")
    ? "shared"
    : "encoder.embed_tokens";
  return b.scope(embedScope, () => embedding(m, inputIds, config.vocab_size));
}

/** `nn.Embedding` under the current scope. */
function embedding(m: Model, ids: string, rows: number): string {
  const { b } = m;
  const ref = checkedWeightRef(m, "weight", [rows, m.config.d_model]);
  // Gather from the stored dtype and cast the rows only: no float32 copy of the whole table.
  const gathered = b.op("Gather", [b.weight("weight", ref.dtype), ids], { axis: 0 });
  return ref.dtype === b.computeDType ? gathered : b.op("Cast", [gathered], {
    to: ONNX_DTYPES[b.computeDType],
  });
}

/** `T5Stack.forward` (encoder): the blocks, all reusing block 0's position bias, then a norm. */
function t5Stack(m: Model, inputsEmbeds: string): string {
  const { b, config } = m;
  const blocks = Array.from({ length: config.num_layers }, (_, i) => i);
  const { hiddenStates } = t5Blocks(m, inputsEmbeds, blocks, undefined);
  return b.scope("final_layer_norm", () => t5LayerNorm(m, hiddenStates));
}

/** The listed blocks in order; block 0 computes the position bias unless it is given. */
function t5Blocks(
  m: Model,
  inputsEmbeds: string,
  blocks: readonly number[],
  positionBias: string | undefined,
): BlockOutput {
  let out = { hiddenStates: inputsEmbeds, positionBias };
  for (const i of blocks) {
    out = m.b.scope(
      `block.${i}`,
      () =>
        t5Block(m, out.hiddenStates, {
          positionBias: out.positionBias,
          hasRelativeAttentionBias: i === 0,
        }),
    );
  }
  return out as BlockOutput;
}

/** What a block and its attention hand on: the hidden states and the position bias. */
interface BlockOutput {
  hiddenStates: string;
  positionBias: string;
}

/** `T5Block.forward` (encoder: self-attention then feed-forward). */
function t5Block(
  m: Model,
  hiddenStates: string,
  options: { positionBias?: string; hasRelativeAttentionBias: boolean },
): BlockOutput {
  const { b } = m;
  const attention = b.scope("layer.0", () => t5LayerSelfAttention(m, hiddenStates, options));
  const output = b.scope("layer.1", () => t5LayerFF(m, attention.hiddenStates));
  return { hiddenStates: output, positionBias: attention.positionBias };
}

/** `T5LayerSelfAttention.forward`: pre-norm attention with a residual. */
function t5LayerSelfAttention(
  m: Model,
  hiddenStates: string,
  options: { positionBias?: string; hasRelativeAttentionBias: boolean },
): BlockOutput {
  const { b } = m;
  const normedHiddenStates = b.scope("layer_norm", () => t5LayerNorm(m, hiddenStates));
  const attention = b.scope("SelfAttention", () => t5Attention(m, normedHiddenStates, options));
  return {
    hiddenStates: b.op("Add", [hiddenStates, attention.hiddenStates]),
    positionBias: attention.positionBias,
  };
}

/**
 * `T5Attention.forward` without a mask: `softmax(q k^T + position_bias) v`, unscaled (T5 folds
 * the scale into its initialisation), as com.microsoft MultiHeadAttention with `scale` 1.
 */
function t5Attention(
  m: Model,
  hiddenStates: string,
  options: { positionBias?: string; hasRelativeAttentionBias: boolean },
): BlockOutput {
  const { b, config } = m;
  const innerDim = config.num_heads * config.d_kv;
  const query = dense(m, "q", hiddenStates, [innerDim, config.d_model]);
  const key = dense(m, "k", hiddenStates, [innerDim, config.d_model]);
  const value = dense(m, "v", hiddenStates, [innerDim, config.d_model]);
  let positionBias = options.positionBias;
  if (positionBias === undefined) {
    if (!options.hasRelativeAttentionBias) throw new Error("T5 attention without a position bias");
    positionBias = computeBias(m, hiddenStates);
  }
  const attnOutput = b.op("MultiHeadAttention", [query, key, value, "", "", positionBias], {
    num_heads: config.num_heads,
    scale: float(1),
  }, { domain: "com.microsoft" });
  const output = dense(m, "o", attnOutput, [config.d_model, innerDim]);
  return { hiddenStates: output, positionBias };
}

/**
 * `T5Attention.compute_bias`: `relative_attention_bias(bucket(memory - query))` as
 * `[1, heads, sequence, sequence]`. Relative positions are clamped into the bucket table, which
 * reaches past `relative_attention_max_distance` (farther ones share its end buckets).
 */
function computeBias(m: Model, hiddenStates: string): string {
  const { b, config } = m;
  const { span, buckets } = relativePositionBucketTable({
    numBuckets: config.relative_attention_num_buckets,
    maxDistance: config.relative_attention_max_distance,
  });
  const length = b.op("Squeeze", [dim(b, hiddenStates, 1)]);
  const positions = b.op("Range", [b.scalar(0, "int64"), length, b.scalar(1, "int64")]);
  const contextPosition = unsqueeze(b, positions, [1]);
  const memoryPosition = unsqueeze(b, positions, [0]);
  const relativePosition = b.op("Sub", [memoryPosition, contextPosition]);
  const clamped = b.op("Clip", [
    relativePosition,
    b.scalar(-span, "int64"),
    b.scalar(span, "int64"),
  ]);
  const table = b.constant("int64", [buckets.length], Array.from(buckets, BigInt));
  const relativePositionBucket = b.op("Gather", [
    table,
    b.op("Add", [clamped, b.scalar(span, "int64")]),
  ], {
    axis: 0,
  });
  const weight = b.scope("relative_attention_bias", () => {
    checkedWeightRef(m, "weight", [config.relative_attention_num_buckets, config.num_heads]);
    return b.weight("weight");
  });
  const values = b.op("Gather", [weight, relativePositionBucket], { axis: 0 });
  return unsqueeze(b, transpose(b, values, [2, 0, 1]), [0]);
}

/** `T5LayerFF.forward`: pre-norm feed-forward with a residual. */
function t5LayerFF(m: Model, hiddenStates: string): string {
  const { b, config } = m;
  const forwardedStates = b.scope("layer_norm", () => t5LayerNorm(m, hiddenStates));
  const dense = b.scope(
    "DenseReluDense",
    () =>
      config.is_gated_act
        ? t5DenseGatedActDense(m, forwardedStates)
        : t5DenseActDense(m, forwardedStates),
  );
  return b.op("Add", [hiddenStates, dense]);
}

/** `T5DenseGatedActDense.forward`: `wo(act(wi_0(x)) * wi_1(x))`. */
function t5DenseGatedActDense(m: Model, hiddenStates: string): string {
  const { b, config } = m;
  const hiddenGelu = act(m, dense(m, "wi_0", hiddenStates, [config.d_ff, config.d_model]));
  const hiddenLinear = dense(m, "wi_1", hiddenStates, [config.d_ff, config.d_model]);
  const gated = b.op("Mul", [hiddenGelu, hiddenLinear]);
  return dense(m, "wo", gated, [config.d_model, config.d_ff]);
}

/** `T5DenseActDense.forward`: `wo(act(wi(x)))`. */
function t5DenseActDense(m: Model, hiddenStates: string): string {
  const { config } = m;
  const hidden = act(m, dense(m, "wi", hiddenStates, [config.d_ff, config.d_model]));
  return dense(m, "wo", hidden, [config.d_model, config.d_ff]);
}

/** A bias-free `nn.Linear` child of the current scope, its weight checked against the config. */
function dense(m: Model, name: string, x: string, shape: [number, number]): string {
  return m.b.scope(name, () => {
    checkedWeightRef(m, "weight", shape);
    return linear(m.b, x, { bias: false });
  });
}

/** `ACT2FN[config.dense_act_fn]`. */
function act(m: Model, x: string): string {
  switch (m.config.dense_act_fn) {
    case "gelu_new":
      return geluTanh(m.b, x);
    case "gelu":
      return gelu(m.b, x);
    case "relu":
      return m.b.op("Relu", [x]);
  }
}

/**
 * `T5LayerNorm.forward`: RMS norm without mean and bias, `weight * x / sqrt(mean(x^2) + eps)`, the
 * statistics and the scaling in float32 and cast back to the compute dtype before the weight.
 */
function t5LayerNorm(m: Model, hiddenStates: string): string {
  const { b, config } = m;
  checkedWeightRef(m, "weight", [config.d_model]);
  const float32 = b.computeDType !== "float32";
  const x = float32 ? b.op("Cast", [hiddenStates], { to: 1 }) : hiddenStates;
  const variance = b.op("ReduceMean", [b.op("Mul", [x, x]), b.int64s([-1])], { keepdims: 1 });
  const eps = b.scalar(config.layer_norm_epsilon, "float32");
  const rsqrt = b.op("Reciprocal", [b.op("Sqrt", [b.op("Add", [variance, eps])])]);
  let normed = b.op("Mul", [x, rsqrt]);
  if (float32) normed = b.op("Cast", [normed], { to: ONNX_DTYPES[b.computeDType] });
  return b.op("Mul", [b.weight("weight"), normed]);
}

/** The weight under `name` in the current scope; a UserError when its shape is not the config's. */
function checkedWeightRef(m: Model, name: string, shape: readonly number[]) {
  const ref = m.b.weightRef(name);
  if (ref.shape.length !== shape.length || ref.shape.some((d, i) => d !== shape[i])) {
    throw new UserError(
      `Weight "${ref.name}" has shape [${ref.shape.join(", ")}], but "${m.configPath}" gives [${
        shape.join(", ")
      }]`,
    );
  }
  return ref;
}
