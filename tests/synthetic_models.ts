/**
 * Synthetic CogVideoX-shaped ONNX models for the tests of the model manager, the split and the
 * session workers, and for the memory and time benchmarks (bench/).
 *
 * The three networks have the I/O names, dtypes and ranks of the tiny-cogvideox fixture models
 * (text encoder, dynamic-shape 2b-style transformer, VAE decoder) and random weights of any size.
 * Node and initializer names follow the diffusers TorchScript export of the fixtures
 * (`/m/transformer_blocks.3/attn1/to_q/MatMul`, `m.transformer_blocks.3.attn1.to_q.weight`), so
 * code that splits the real transformer into blocks also splits these.
 *
 * Weights come from a seeded xorshift generator, one stream per tensor (so every block has its own
 * weights), and are streamed into `model.onnx.data` in chunks.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import onnxProto from "onnx-proto";

type onnx = typeof onnxProto.onnx;
type TensorProto = onnxProto.onnx.ITensorProto;
type NodeProto = onnxProto.onnx.INodeProto;
type AttributeProto = onnxProto.onnx.IAttributeProto;
type ValueInfoProto = onnxProto.onnx.IValueInfoProto;

const onnxTypes: onnx = onnxProto.onnx;
const ATTR = onnxTypes.AttributeProto.AttributeType;
const FLOAT = onnxTypes.TensorProto.DataType.FLOAT;
const INT64 = onnxTypes.TensorProto.DataType.INT64;
const EXTERNAL = onnxTypes.TensorProto.DataLocation.EXTERNAL;
const MS_DOMAIN = "com.microsoft";

/** Sizes of the synthetic T5-style text encoder. */
export interface TextEncoderOptions {
  /** Rows of the token embedding; must cover the tokenizer (1000 ids for the fixture's). */
  vocabSize: number;
  /** Hidden size (`d_model`), also the transformer's `text_embed_dim`. */
  dModel: number;
  /** Inner size of the gated-GELU feed-forward (`d_ff`). */
  dFf: number;
  /** Attention heads; `dModel` must be divisible by it. */
  numHeads: number;
  /** Encoder blocks. */
  numLayers: number;
}

/** Sizes of the synthetic CogVideoX transformer. */
export interface TransformerOptions {
  /** Inner dimension (`num_attention_heads * attention_head_dim`). */
  hiddenSize: number;
  /** Attention heads; `hiddenSize` must be divisible by it. */
  numAttentionHeads: number;
  /** Transformer blocks (`num_layers`). */
  numLayers: number;
  /** Feed-forward inner size as a multiple of `hiddenSize` (4 in CogVideoX). */
  mlpRatio: number;
  /** Latent channels of `hidden_states` and `sample`. */
  inChannels: number;
  /** Spatial patch size. */
  patchSize: number;
  /** Text tokens of `encoder_hidden_states` (`max_text_seq_length`); fixed in the graph. */
  textSeqLength: number;
  /** Width of `encoder_hidden_states`; must equal the text encoder's `dModel`. */
  textEmbedDim: number;
  /** Width of the timestep embedding (`time_embed_dim`). */
  timeEmbedDim: number;
  /** Default video frames in pixels space for the config (`sample_frames`, 9 = 3 latent frames). */
  sampleFrames: number;
  /** Default latent height for the config (`sample_height`). */
  sampleHeight: number;
  /** Default latent width for the config (`sample_width`). */
  sampleWidth: number;
}

/** Sizes of the synthetic VAE decoder (3 latent frames in, 9 frames at 8x the size out). */
export interface VaeDecoderOptions {
  /** Channels of `latent_sample`; must equal the transformer's `inChannels`. */
  latentChannels: number;
  /** Channels per level in encoder order, as diffusers' `block_out_channels` (4 levels). */
  blockOutChannels: number[];
  /** The decoder has `layersPerBlock + 1` resnets per up block, as in diffusers. */
  layersPerBlock: number;
  /** `scaling_factor` written to the config. */
  scalingFactor: number;
}

/** Everything `writeSyntheticPipeline` needs. */
export interface SyntheticPipelineOptions {
  /** Seed of the weight generator. */
  seed: number;
  /** Write weights to `model.onnx.data` (true) or inline in `model.onnx` (false). */
  externalData: boolean;
  /** First scope of node and initializer names; "m" like the fixture export, "" for none. */
  namePrefix: string;
  /** Text encoder sizes. */
  textEncoder: TextEncoderOptions;
  /** Transformer sizes. */
  transformer: TransformerOptions;
  /** VAE decoder sizes. */
  vaeDecoder: VaeDecoderOptions;
}

/** How one model is written. */
export interface WriteModelOptions {
  /** Seed of the weight generator. */
  seed?: number;
  /** Write weights to `<path>.data` (default true) or inline. */
  externalData?: boolean;
  /** First scope of node and initializer names (default "m", as the fixture export). */
  namePrefix?: string;
}

/** What was written for one model. */
export interface WrittenModel {
  /** Path of the `.onnx` file. */
  path: string;
  /** Path of the external data file, or null when weights are inline. */
  dataPath: string | null;
  /** Size of the `.onnx` file. */
  onnxBytes: number;
  /** Size of the external data file (0 when inline). */
  dataBytes: number;
  /** Number of weight values (float32). */
  parameters: number;
  /** Wall time of building and writing. */
  seconds: number;
}

/** What `writeSyntheticPipeline` wrote. */
export interface SyntheticPipelineSummary {
  /** The pipeline folder. */
  dir: string;
  /** `text_encoder/model.onnx`. */
  textEncoder: WrittenModel;
  /** `transformer/model.onnx`. */
  transformer: WrittenModel;
  /** `vae_decoder/model.onnx`. */
  vaeDecoder: WrittenModel;
  /** Wall time of the whole folder. */
  seconds: number;
}

/** Names of the built-in size presets. */
export type PresetName = "small" | "bench";

/**
 * Built-in sizes. "small" is a few MB for tests; "bench" has a 1.2 GB transformer in 8 blocks of
 * 151 MB (hidden 1536, 24 heads), a 389 MB text encoder and a 212 MB VAE decoder (float32).
 */
export const presets: Readonly<Record<PresetName, SyntheticPipelineOptions>> = {
  small: {
    seed: 0,
    externalData: true,
    namePrefix: "m",
    textEncoder: { vocabSize: 1000, dModel: 64, dFf: 128, numHeads: 4, numLayers: 2 },
    transformer: {
      hiddenSize: 128,
      numAttentionHeads: 4,
      numLayers: 2,
      mlpRatio: 4,
      inChannels: 4,
      patchSize: 2,
      textSeqLength: 16,
      textEmbedDim: 64,
      timeEmbedDim: 32,
      sampleFrames: 9,
      sampleHeight: 8,
      sampleWidth: 8,
    },
    vaeDecoder: {
      latentChannels: 4,
      blockOutChannels: [8, 8, 16, 16],
      layersPerBlock: 1,
      scalingFactor: 1.15258426,
    },
  },
  bench: {
    seed: 0,
    externalData: true,
    namePrefix: "m",
    textEncoder: { vocabSize: 32128, dModel: 1024, dFf: 2816, numHeads: 16, numLayers: 5 },
    transformer: {
      hiddenSize: 1536,
      numAttentionHeads: 24,
      numLayers: 8,
      mlpRatio: 4,
      inChannels: 16,
      patchSize: 2,
      textSeqLength: 226,
      textEmbedDim: 1024,
      timeEmbedDim: 512,
      sampleFrames: 9,
      sampleHeight: 32,
      sampleWidth: 32,
    },
    vaeDecoder: {
      latentChannels: 16,
      blockOutChannels: [128, 256, 256, 288],
      layersPerBlock: 2,
      scalingFactor: 1.15258426,
    },
  },
};

/** Latent frames the VAE decoder takes (one temporal chunk, as the fixture's). */
export const VAE_LATENT_FRAMES = 3;

/**
 * Picks a latent size whose transformer sequence has exactly `videoTokens` video tokens
 * (`frames * (height / patch) * (width / patch)`), as square as possible. The whole sequence is
 * `videoTokens + textSeqLength`.
 */
export function latentSizeForVideoTokens(
  videoTokens: number,
  options: { frames?: number; patchSize?: number } = {},
): { frames: number; height: number; width: number } {
  const frames = options.frames ?? VAE_LATENT_FRAMES;
  const patch = options.patchSize ?? 2;
  if (!Number.isInteger(videoTokens) || videoTokens <= 0 || videoTokens % frames !== 0) {
    throw new Error(
      `Cannot size latents: expected a positive multiple of ${frames} frames, got ${videoTokens} video tokens`,
    );
  }
  const perFrame = videoTokens / frames;
  let rows = Math.floor(Math.sqrt(perFrame));
  while (perFrame % rows !== 0) rows--;
  return { frames, height: rows * patch, width: (perFrame / rows) * patch };
}

/** Transformer sequence length (text plus video tokens) for a latent of the given size. */
export function sequenceLength(
  transformer: Pick<TransformerOptions, "patchSize" | "textSeqLength">,
  latent: { frames: number; height: number; width: number },
): number {
  const p = transformer.patchSize;
  return transformer.textSeqLength + latent.frames * (latent.height / p) * (latent.width / p);
}

// ---------------------------------------------------------------------------------------------
// Weights

/** How an initializer's values are made: uniform noise around `offset`, or given values. */
type Fill =
  | { kind: "uniform"; offset: number; scale: number }
  | { kind: "values"; values: Float32Array };

interface InitializerSpec {
  name: string;
  dims: number[];
  fill: Fill;
}

/** A seed per tensor name, so that every tensor (and every block) gets its own stream. */
function tensorSeed(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h === 0 ? 0x9e3779b9 : h;
}

/** Fills `out[0..count)` with xorshift32 uniform values in [offset - scale, offset + scale). */
function fillUniform(
  out: Float32Array,
  count: number,
  state: number,
  offset: number,
  scale: number,
): number {
  let x = state;
  const k = (2 * scale) / 4294967296;
  const c = offset - scale;
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = (x >>> 0) * k + c;
  }
  return x;
}

/** Uniform weights with standard deviation 1 / sqrt(fanIn). */
function weightFill(fanIn: number): Fill {
  return { kind: "uniform", offset: 0, scale: Math.sqrt(3 / fanIn) };
}

function biasFill(fanIn: number): Fill {
  return { kind: "uniform", offset: 0, scale: 1 / Math.sqrt(fanIn) };
}

const NORM_WEIGHT: Fill = { kind: "uniform", offset: 1, scale: 0.1 };
const NORM_BIAS: Fill = { kind: "uniform", offset: 0, scale: 0.05 };

function elementCount(dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

// ---------------------------------------------------------------------------------------------
// Graph building

interface GraphSpec {
  name: string;
  nodes: NodeProto[];
  initializers: InitializerSpec[];
  inputs: ValueInfoProto[];
  outputs: ValueInfoProto[];
}

function intAttr(name: string, i: number): AttributeProto {
  return { name, type: ATTR.INT, i };
}

function intsAttr(name: string, ints: number[]): AttributeProto {
  return { name, type: ATTR.INTS, ints };
}

function floatAttr(name: string, f: number): AttributeProto {
  return { name, type: ATTR.FLOAT, f };
}

function stringAttr(name: string, s: string): AttributeProto {
  return { name, type: ATTR.STRING, s: new TextEncoder().encode(s) };
}

function tensorValueInfo(
  name: string,
  elemType: number,
  dims: (number | string)[],
): ValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: {
          dim: dims.map((d) => typeof d === "number" ? { dimValue: d } : { dimParam: d }),
        },
      },
    },
  };
}

interface NodeOptions {
  attributes?: AttributeProto[];
  domain?: string;
  /** Output names; by default one `<node name>_output_0`. */
  outputs?: string[];
  /** Number of default-named outputs. */
  outputCount?: number;
}

/**
 * Collects nodes and initializer specs, naming them like the TorchScript exporter: a node in scope
 * `transformer_blocks.0/attn1/to_q` is `/m/transformer_blocks.0/attn1/to_q/MatMul` (then
 * `MatMul_1`, ...), its output `<name>_output_0`, and a module weight `m.<dotted scope>.weight`.
 */
class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: InitializerSpec[] = [];
  private readonly counts = new Map<string, number>();

  constructor(private readonly prefix: string) {}

  weight(path: string, dims: number[], fill: Fill): string {
    const name = this.prefix ? `${this.prefix}.${path}` : path;
    this.initializers.push({ name, dims, fill });
    return name;
  }

  node(scope: string, opType: string, inputs: string[], options: NodeOptions = {}): string[] {
    const scopePath = [this.prefix, scope].filter((s) => s !== "").join("/");
    const base = `/${scopePath}${scopePath ? "/" : ""}${opType}`;
    const count = this.counts.get(base) ?? 0;
    this.counts.set(base, count + 1);
    const name = count === 0 ? base : `${base}_${count}`;
    const outputs = options.outputs ??
      Array.from({ length: options.outputCount ?? 1 }, (_, i) => `${name}_output_${i}`);
    this.nodes.push({
      name,
      opType,
      domain: options.domain ?? "",
      input: inputs,
      output: outputs,
      attribute: options.attributes ?? [],
    });
    return outputs;
  }

  one(scope: string, opType: string, inputs: string[], options: NodeOptions = {}): string {
    return this.node(scope, opType, inputs, options)[0];
  }

  int64s(scope: string, values: number[]): string {
    const raw = new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer);
    const value: TensorProto = { dims: [values.length], dataType: INT64, rawData: raw };
    return this.one(scope, "Constant", [], {
      attributes: [{ name: "value", type: ATTR.TENSOR, t: value }],
    });
  }

  floats(scope: string, dims: number[], values: number[] | Float32Array): string {
    const raw = new Uint8Array(Float32Array.from(values).buffer);
    const value: TensorProto = { dims, dataType: FLOAT, rawData: raw };
    return this.one(scope, "Constant", [], {
      attributes: [{ name: "value", type: ATTR.TENSOR, t: value }],
    });
  }
}

function dotted(scope: string): string {
  return scope.replaceAll("/", ".");
}

/** `x @ W + b` with W stored [in, out], exported as MatMul then Add like the fixtures. */
function linear(
  g: GraphBuilder,
  scope: string,
  x: string,
  inFeatures: number,
  outFeatures: number,
  bias = true,
): string {
  const w = g.weight(`${dotted(scope)}.weight`, [inFeatures, outFeatures], weightFill(inFeatures));
  const y = g.one(scope, "MatMul", [x, w]);
  if (!bias) return y;
  const b = g.weight(`${dotted(scope)}.bias`, [outFeatures], biasFill(inFeatures));
  return g.one(scope, "Add", [b, y]);
}

/** A torch Linear on a [batch, features] tensor, exported as Gemm with W stored [out, in]. */
function gemm(
  g: GraphBuilder,
  scope: string,
  x: string,
  inFeatures: number,
  outFeatures: number,
): string {
  const w = g.weight(`${dotted(scope)}.weight`, [outFeatures, inFeatures], weightFill(inFeatures));
  const b = g.weight(`${dotted(scope)}.bias`, [outFeatures], biasFill(inFeatures));
  return g.one(scope, "Gemm", [x, w, b], {
    attributes: [floatAttr("alpha", 1), floatAttr("beta", 1), intAttr("transB", 1)],
  });
}

function silu(g: GraphBuilder, scope: string, x: string): string {
  return g.one(scope, "Mul", [x, g.one(scope, "Sigmoid", [x])]);
}

/** LayerNormalization over the last axis; `weights` names the module whose weight (and bias) it uses. */
function layerNorm(
  g: GraphBuilder,
  scope: string,
  x: string,
  weights: { weight: string; bias?: string },
  epsilon: number,
): string {
  const inputs = weights.bias ? [x, weights.weight, weights.bias] : [x, weights.weight];
  return g.one(scope, "LayerNormalization", inputs, {
    attributes: [intAttr("axis", -1), floatAttr("epsilon", epsilon)],
  });
}

function normWeights(
  g: GraphBuilder,
  scope: string,
  size: number,
  bias = true,
): { weight: string; bias?: string } {
  const weight = g.weight(`${dotted(scope)}.weight`, [size], NORM_WEIGHT);
  return bias ? { weight, bias: g.weight(`${dotted(scope)}.bias`, [size], NORM_BIAS) } : { weight };
}

// ---------------------------------------------------------------------------------------------
// Text encoder

function buildTextEncoder(o: TextEncoderOptions, prefix: string): GraphSpec {
  requireDivisible(o.dModel, o.numHeads, "text encoder dModel", "numHeads");
  const g = new GraphBuilder(prefix);
  const shared = g.weight("shared.weight", [o.vocabSize, o.dModel], {
    kind: "uniform",
    offset: 0,
    scale: Math.sqrt(3),
  });
  let x = g.one("encoder/embed_tokens", "Gather", [shared, "input_ids"]);
  for (let i = 0; i < o.numLayers; i++) {
    const s = `encoder/block.${i}`;
    const ln0 = `${s}/layer.0/layer_norm`;
    let h = layerNorm(g, ln0, x, normWeights(g, ln0, o.dModel, false), 1e-6);
    const attn = `${s}/layer.0/SelfAttention`;
    const q = linear(g, `${attn}/q`, h, o.dModel, o.dModel, false);
    const k = linear(g, `${attn}/k`, h, o.dModel, o.dModel, false);
    const v = linear(g, `${attn}/v`, h, o.dModel, o.dModel, false);
    const a = g.one(attn, "MultiHeadAttention", [q, k, v], {
      domain: MS_DOMAIN,
      attributes: [intAttr("num_heads", o.numHeads)],
    });
    x = g.one(`${s}/layer.0`, "Add", [x, linear(g, `${attn}/o`, a, o.dModel, o.dModel, false)]);
    const ln1 = `${s}/layer.1/layer_norm`;
    h = layerNorm(g, ln1, x, normWeights(g, ln1, o.dModel, false), 1e-6);
    const ff = `${s}/layer.1/DenseReluDense`;
    const gate = g.one(`${ff}/act`, "FastGelu", [
      linear(g, `${ff}/wi_0`, h, o.dModel, o.dFf, false),
    ], {
      domain: MS_DOMAIN,
    });
    const up = linear(g, `${ff}/wi_1`, h, o.dModel, o.dFf, false);
    const y = linear(g, `${ff}/wo`, g.one(ff, "Mul", [gate, up]), o.dFf, o.dModel, false);
    x = g.one(`${s}/layer.1`, "Add", [x, y]);
  }
  const final = "encoder/final_layer_norm";
  g.node(final, "LayerNormalization", [x, normWeights(g, final, o.dModel, false).weight], {
    attributes: [intAttr("axis", -1), floatAttr("epsilon", 1e-6)],
    outputs: ["last_hidden_state"],
  });
  return {
    name: "synthetic_text_encoder",
    nodes: g.nodes,
    initializers: g.initializers,
    inputs: [tensorValueInfo("input_ids", INT64, ["batch", "sequence"])],
    outputs: [tensorValueInfo("last_hidden_state", FLOAT, ["batch", "sequence", o.dModel])],
  };
}

// ---------------------------------------------------------------------------------------------
// Transformer

interface Modulated {
  video: string;
  text: string;
  gate: string;
  encGate: string;
}

/** CogVideoXLayerNormZero: adaptive LayerNorm of both streams from the timestep embedding. */
function layerNormZero(
  g: GraphBuilder,
  scope: string,
  video: string,
  text: string,
  embAct: string,
  o: TransformerOptions,
): Modulated {
  const d = o.hiddenSize;
  const mod = gemm(g, `${scope}/linear`, embAct, o.timeEmbedDim, 6 * d);
  const chunks = g.node(scope, "Split", [mod, g.int64s(scope, [d, d, d, d, d, d])], {
    attributes: [intAttr("axis", 1)],
    outputCount: 6,
  });
  const [shift, scale, gate, encShift, encScale, encGate] = chunks.map((c) =>
    g.one(scope, "Unsqueeze", [c, g.int64s(scope, [1])])
  );
  const weights = normWeights(g, `${scope}/norm`, d);
  const one = g.floats(scope, [], [1]);
  const modulate = (normScope: string, x: string, sc: string, sh: string) => {
    const n = layerNorm(g, normScope, x, weights, 1e-5);
    const scaled = g.one(scope, "Mul", [n, g.one(scope, "Add", [sc, one])]);
    return g.one(scope, "Add", [scaled, sh]);
  };
  return {
    video: modulate(`${scope}/norm`, video, scale, shift),
    text: modulate(`${scope}/norm_1`, text, encScale, encShift),
    gate,
    encGate,
  };
}

/** LayerNorm over each head's slice (`attn1.norm_q` / `norm_k`). */
function headNorm(g: GraphBuilder, scope: string, x: string, o: TransformerOptions): string {
  const heads = o.numAttentionHeads;
  const headDim = o.hiddenSize / heads;
  const split = g.one(scope, "Reshape", [x, g.int64s(scope, [0, 0, heads, headDim])]);
  const n = layerNorm(g, scope, split, normWeights(g, scope, headDim), 1e-6);
  return g.one(scope, "Reshape", [n, g.int64s(scope, [0, 0, o.hiddenSize])]);
}

/** Splits a [batch, text + video, D] tensor at the text length (a [1] int64 tensor). */
function splitTokens(
  g: GraphBuilder,
  scope: string,
  x: string,
  textLength: string,
): { text: string; video: string } {
  const axis = g.int64s(scope, [1]);
  return {
    text: g.one(scope, "Slice", [x, g.int64s(scope, [0]), textLength, axis]),
    video: g.one(scope, "Slice", [x, textLength, g.int64s(scope, [Number.MAX_SAFE_INTEGER]), axis]),
  };
}

function gatedAdd(g: GraphBuilder, scope: string, x: string, gate: string, y: string): string {
  return g.one(scope, "Add", [x, g.one(scope, "Mul", [gate, y])]);
}

function transformerBlock(
  g: GraphBuilder,
  index: number,
  streams: { video: string; text: string },
  embAct: string,
  o: TransformerOptions,
  last: boolean,
): { video: string; text: string } {
  const s = `transformer_blocks.${index}`;
  const d = o.hiddenSize;
  const textLength = g.one(s, "Shape", [streams.text], {
    attributes: [intAttr("start", 1), intAttr("end", 2)],
  });

  const n1 = layerNormZero(g, `${s}/norm1`, streams.video, streams.text, embAct, o);
  const attn = `${s}/attn1`;
  const x = g.one(attn, "Concat", [n1.text, n1.video], { attributes: [intAttr("axis", 1)] });
  const q = headNorm(g, `${attn}/norm_q`, linear(g, `${attn}/to_q`, x, d, d), o);
  const k = headNorm(g, `${attn}/norm_k`, linear(g, `${attn}/to_k`, x, d, d), o);
  const v = linear(g, `${attn}/to_v`, x, d, d);
  const a = g.one(attn, "MultiHeadAttention", [q, k, v], {
    domain: MS_DOMAIN,
    attributes: [intAttr("num_heads", o.numAttentionHeads)],
  });
  const attnOut = splitTokens(g, attn, linear(g, `${attn}/to_out.0`, a, d, d), textLength);
  let video = gatedAdd(g, s, streams.video, n1.gate, attnOut.video);
  let text = gatedAdd(g, s, streams.text, n1.encGate, attnOut.text);

  const n2 = layerNormZero(g, `${s}/norm2`, video, text, embAct, o);
  const y = g.one(s, "Concat", [n2.text, n2.video], { attributes: [intAttr("axis", 1)] });
  const inner = Math.round(o.mlpRatio * d);
  const hidden = g.one(
    `${s}/ff/net.0`,
    "FastGelu",
    [linear(g, `${s}/ff/net.0/proj`, y, d, inner)],
    {
      domain: MS_DOMAIN,
    },
  );
  const ffOut = splitTokens(g, s, linear(g, `${s}/ff/net.2`, hidden, inner, d), textLength);
  video = gatedAdd(g, s, video, n2.gate, ffOut.video);
  // The last block's text stream is dead, and the export drops it; so do we.
  if (!last) text = gatedAdd(g, s, text, n2.encGate, ffOut.text);
  return { video, text };
}

function buildTransformer(o: TransformerOptions, prefix: string): GraphSpec {
  requireDivisible(
    o.hiddenSize,
    o.numAttentionHeads,
    "transformer hiddenSize",
    "numAttentionHeads",
  );
  requireDivisible(o.hiddenSize, 2, "transformer hiddenSize", "2");
  const g = new GraphBuilder(prefix);
  const d = o.hiddenSize;
  const p = o.patchSize;
  const shape = g.one("", "Shape", ["hidden_states"]);

  // Sinusoidal timestep embedding of width D, cos first (flip_sin_to_cos), freq_shift 0.
  const half = d / 2;
  const freqs = Float32Array.from(
    { length: half },
    (_, i) => Math.exp((-Math.log(10000) * i) / half),
  );
  const t = g.one("time_proj", "Cast", ["timestep"], { attributes: [intAttr("to", FLOAT)] });
  const tCol = g.one("time_proj", "Unsqueeze", [t, g.int64s("time_proj", [1])]);
  const args = g.one("time_proj", "Mul", [tCol, g.floats("time_proj", [1, half], freqs)]);
  const tProj = g.one(
    "time_proj",
    "Concat",
    [g.one("time_proj", "Cos", [args]), g.one("time_proj", "Sin", [args])],
    { attributes: [intAttr("axis", 1)] },
  );
  const t1 = silu(
    g,
    "time_embedding/act",
    gemm(g, "time_embedding/linear_1", tProj, d, o.timeEmbedDim),
  );
  const temb = gemm(g, "time_embedding/linear_2", t1, o.timeEmbedDim, o.timeEmbedDim);
  // The export computes silu(temb) once, inside block 0, and every block and norm_out reads it.
  const embAct = silu(g, "transformer_blocks.0/norm1/silu", temb);

  // Patch embedding: Conv with kernel = stride = patch on each frame, then tokens in
  // (frame, patch row, patch column) order after the projected text tokens.
  const pe = "patch_embed";
  const textTokens = linear(g, `${pe}/text_proj`, "encoder_hidden_states", o.textEmbedDim, d);
  const chw = g.one(pe, "Slice", [shape, g.int64s(pe, [2]), g.int64s(pe, [5])]);
  const framesShape = g.one(pe, "Concat", [g.int64s(pe, [-1]), chw], {
    attributes: [intAttr("axis", 0)],
  });
  const frames = g.one(pe, "Reshape", ["hidden_states", framesShape]);
  const projW = g.weight(
    `${pe}.proj.weight`,
    [d, o.inChannels, p, p],
    weightFill(o.inChannels * p * p),
  );
  const projB = g.weight(`${pe}.proj.bias`, [d], biasFill(o.inChannels * p * p));
  const patches = g.one(`${pe}/proj`, "Conv", [frames, projW, projB], {
    attributes: [intsAttr("kernel_shape", [p, p]), intsAttr("strides", [p, p])],
  });
  const bf = g.one(pe, "Slice", [shape, g.int64s(pe, [0]), g.int64s(pe, [2])]);
  const perFrameShape = g.one(pe, "Concat", [bf, g.int64s(pe, [d, -1])], {
    attributes: [intAttr("axis", 0)],
  });
  const perFrame = g.one(pe, "Reshape", [patches, perFrameShape]);
  const tokensFirst = g.one(pe, "Transpose", [perFrame], {
    attributes: [intsAttr("perm", [0, 1, 3, 2])],
  });
  const videoTokens = g.one(pe, "Reshape", [tokensFirst, g.int64s(pe, [0, -1, d])]);
  const tokens = g.one(pe, "Concat", [textTokens, videoTokens], {
    attributes: [intAttr("axis", 1)],
  });
  const textLength = g.one("", "Shape", ["encoder_hidden_states"], {
    attributes: [intAttr("start", 1), intAttr("end", 2)],
  });
  let streams = splitTokens(g, "", tokens, textLength);

  for (let i = 0; i < o.numLayers; i++) {
    streams = transformerBlock(g, i, streams, embAct, o, i === o.numLayers - 1);
  }

  const video = layerNorm(g, "norm_final", streams.video, normWeights(g, "norm_final", d), 1e-5);
  const mod = gemm(g, "norm_out/linear", embAct, o.timeEmbedDim, 2 * d);
  const [shift, scale] = g.node("norm_out", "Split", [mod, g.int64s("norm_out", [d, d])], {
    attributes: [intAttr("axis", 1)],
    outputCount: 2,
  }).map((c) => g.one("norm_out", "Unsqueeze", [c, g.int64s("norm_out", [1])]));
  const normed = layerNorm(g, "norm_out/norm", video, normWeights(g, "norm_out/norm", d), 1e-6);
  const onePlusScale = g.one("norm_out", "Add", [scale, g.floats("norm_out", [], [1])]);
  const modulated = g.one("norm_out", "Add", [
    g.one("norm_out", "Mul", [normed, onePlusScale]),
    shift,
  ]);
  const out = linear(g, "proj_out", modulated, d, p * p * o.inChannels);

  // Unpatchify: [B, F*h*w, p*p*C] -> [B, F, h, w, C, p, p] -> [B, F, C, h, p, w, p] -> input shape.
  const hw = g.one("", "Div", [
    g.one("", "Slice", [shape, g.int64s("", [3]), g.int64s("", [5])]),
    g.int64s("", [p, p]),
  ]);
  const gridShape = g.one("", "Concat", [
    g.one("", "Slice", [shape, g.int64s("", [0]), g.int64s("", [2])]),
    hw,
    g.int64s("", [o.inChannels, p, p]),
  ], { attributes: [intAttr("axis", 0)] });
  const grid = g.one("", "Reshape", [out, gridShape]);
  const permuted = g.one("", "Transpose", [grid], {
    attributes: [intsAttr("perm", [0, 1, 4, 2, 5, 3, 6])],
  });
  g.node("", "Reshape", [permuted, shape], { outputs: ["sample"] });

  const videoDims = ["batch", "frames", o.inChannels, "height", "width"];
  return {
    name: "synthetic_transformer",
    nodes: g.nodes,
    initializers: g.initializers,
    inputs: [
      tensorValueInfo("hidden_states", FLOAT, videoDims),
      tensorValueInfo("encoder_hidden_states", FLOAT, ["batch", o.textSeqLength, o.textEmbedDim]),
      tensorValueInfo("timestep", INT64, ["batch"]),
    ],
    outputs: [tensorValueInfo("sample", FLOAT, videoDims)],
  };
}

// ---------------------------------------------------------------------------------------------
// VAE decoder

/** A 3x3x3 convolution with "same" padding on a [batch, channels, frames, height, width] tensor. */
function conv3d(
  g: GraphBuilder,
  scope: string,
  x: string,
  inChannels: number,
  outChannels: number,
  options: { kernel?: number; outputs?: string[] } = {},
): string {
  const k = options.kernel ?? 3;
  const fanIn = inChannels * k * k * k;
  const w = g.weight(
    `${dotted(scope)}.weight`,
    [outChannels, inChannels, k, k, k],
    weightFill(fanIn),
  );
  const b = g.weight(`${dotted(scope)}.bias`, [outChannels], biasFill(fanIn));
  const pad = (k - 1) / 2;
  return g.one(scope, "Conv", [x, w, b], {
    attributes: [
      intsAttr("kernel_shape", [k, k, k]),
      intsAttr("pads", [pad, pad, pad, pad, pad, pad]),
    ],
    outputs: options.outputs,
  });
}

function resnet(
  g: GraphBuilder,
  scope: string,
  x: string,
  inChannels: number,
  outChannels: number,
): string {
  let h = silu(g, `${scope}/nonlinearity`, x);
  h = conv3d(g, `${scope}/conv1/conv`, h, inChannels, outChannels);
  h = silu(g, `${scope}/nonlinearity`, h);
  h = conv3d(g, `${scope}/conv2/conv`, h, outChannels, outChannels);
  const shortcut = inChannels === outChannels
    ? x
    : conv3d(g, `${scope}/conv_shortcut`, x, inChannels, outChannels, { kernel: 1 });
  return g.one(scope, "Add", [shortcut, h]);
}

/** Frame indices of CogVideoX's temporal upsampling: the first frame once, the others twice. */
function temporalUpsampleIndices(frames: number): number[] {
  const indices = [0];
  for (let f = 1; f < frames; f++) indices.push(f, f);
  return indices;
}

function buildVaeDecoder(o: VaeDecoderOptions, prefix: string): GraphSpec {
  if (o.blockOutChannels.length !== 4) {
    throw new Error(
      `Cannot build VAE decoder: expected 4 blockOutChannels (8x upsampling), got ${o.blockOutChannels.length}`,
    );
  }
  const g = new GraphBuilder(prefix);
  const channels = [...o.blockOutChannels].reverse();
  let c = channels[0];
  let x = conv3d(g, "decoder/conv_in/conv", "latent_sample", o.latentChannels, c);
  for (let r = 0; r < 2; r++) x = resnet(g, `decoder/mid_block/resnets.${r}`, x, c, c);
  let frames = VAE_LATENT_FRAMES;
  for (let j = 0; j < channels.length; j++) {
    const up = `decoder/up_blocks.${j}`;
    for (let r = 0; r <= o.layersPerBlock; r++) {
      x = resnet(g, `${up}/resnets.${r}`, x, c, channels[j]);
      c = channels[j];
    }
    if (j === channels.length - 1) continue;
    const s = `${up}/upsamplers.0`;
    // log2(temporal compression 4) = 2 up blocks also upsample time: 3 -> 5 -> 9 frames.
    if (j < 2) {
      const indices = temporalUpsampleIndices(frames);
      x = g.one(s, "Gather", [x, g.int64s(s, indices)], { attributes: [intAttr("axis", 2)] });
      frames = indices.length;
    }
    x = g.one(s, "Resize", [x, "", g.floats(s, [5], [1, 1, 1, 2, 2])], {
      attributes: [
        stringAttr("mode", "nearest"),
        stringAttr("coordinate_transformation_mode", "asymmetric"),
        stringAttr("nearest_mode", "floor"),
      ],
    });
    x = conv3d(g, `${s}/conv`, x, c, c);
  }
  x = silu(g, "decoder/conv_act", x);
  conv3d(g, "decoder/conv_out/conv", x, c, 3, { outputs: ["sample"] });
  return {
    name: "synthetic_vae_decoder",
    nodes: g.nodes,
    initializers: g.initializers,
    inputs: [
      tensorValueInfo("latent_sample", FLOAT, [
        "batch",
        o.latentChannels,
        VAE_LATENT_FRAMES,
        "latent_height",
        "latent_width",
      ]),
    ],
    outputs: [tensorValueInfo("sample", FLOAT, ["batch", 3, frames, "height", "width"])],
  };
}

// ---------------------------------------------------------------------------------------------
// Writing

/** External data offsets are page aligned, so that ONNX Runtime can map them. */
const DATA_ALIGNMENT = 4096;
/** Tensors smaller than this stay inline even with external data (as onnx's own default). */
const EXTERNAL_THRESHOLD_BYTES = 1024;
const CHUNK_FLOATS = 1 << 20;
/** Protobuf messages cannot exceed 2 GiB. */
const MAX_INLINE_BYTES = 2 ** 31 - 2 ** 24;

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await file.write(bytes.subarray(written));
}

/** Calls `write` with successive chunks of the tensor's values (a reused buffer). */
async function produceValues(
  spec: InitializerSpec,
  seed: number,
  chunk: Float32Array,
  write: (values: Float32Array) => Promise<void> | void,
): Promise<void> {
  if (spec.fill.kind === "values") {
    await write(spec.fill.values);
    return;
  }
  const { offset, scale } = spec.fill;
  let state = tensorSeed(seed, spec.name);
  let left = elementCount(spec.dims);
  while (left > 0) {
    const n = Math.min(left, chunk.length);
    state = fillUniform(chunk, n, state, offset, scale);
    await write(chunk.subarray(0, n));
    left -= n;
  }
}

function bytesOf(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

async function writeGraph(
  path: string,
  graph: GraphSpec,
  seed: number,
  externalData: boolean,
): Promise<WrittenModel> {
  const started = performance.now();
  await Deno.mkdir(dirname(path), { recursive: true });
  const dataPath = `${path}.data`;
  const location = basename(dataPath);
  const chunk = new Float32Array(CHUNK_FLOATS);
  const initializers: TensorProto[] = [];
  let parameters = 0;
  let dataBytes = 0;
  let inlineBytes = 0;
  const file = externalData
    ? await Deno.open(dataPath, { write: true, create: true, truncate: true })
    : null;
  try {
    for (const spec of graph.initializers) {
      const count = elementCount(spec.dims);
      const byteLength = count * 4;
      parameters += count;
      const tensor: TensorProto = { name: spec.name, dims: spec.dims, dataType: FLOAT };
      if (file && byteLength >= EXTERNAL_THRESHOLD_BYTES) {
        const offset = Math.ceil(dataBytes / DATA_ALIGNMENT) * DATA_ALIGNMENT;
        if (offset > dataBytes) await writeAll(file, new Uint8Array(offset - dataBytes));
        await produceValues(spec, seed, chunk, (values) => writeAll(file, bytesOf(values)));
        dataBytes = offset + byteLength;
        tensor.dataLocation = EXTERNAL;
        tensor.externalData = [
          { key: "location", value: location },
          { key: "offset", value: String(offset) },
          { key: "length", value: String(byteLength) },
        ];
      } else {
        inlineBytes += byteLength;
        if (inlineBytes > MAX_INLINE_BYTES) {
          throw new Error(
            `Cannot write "${path}" inline: weights exceed the 2 GiB protobuf limit; use external data`,
          );
        }
        const values = new Float32Array(count);
        let at = 0;
        await produceValues(spec, seed, chunk, (part) => {
          values.set(part, at);
          at += part.length;
        });
        tensor.rawData = bytesOf(values);
      }
      initializers.push(tensor);
    }
  } finally {
    file?.close();
  }
  if (!externalData) await Deno.remove(dataPath).catch(() => {});

  const model = {
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }, { domain: MS_DOMAIN, version: 1 }],
    producerName: "cogflow bench/synthetic_models.ts",
    graph: {
      name: graph.name,
      node: graph.nodes,
      initializer: initializers,
      input: graph.inputs,
      output: graph.outputs,
    },
  };
  const encoded = onnxTypes.ModelProto.encode(model).finish();
  await Deno.writeFile(path, encoded);
  return {
    path,
    dataPath: externalData ? dataPath : null,
    onnxBytes: encoded.length,
    dataBytes,
    parameters,
    seconds: (performance.now() - started) / 1000,
  };
}

function requireDivisible(value: number, by: number, what: string, byWhat: string): void {
  if (!Number.isInteger(value / by)) {
    throw new Error(`Invalid ${what}: expected a multiple of ${byWhat} (${by}), got ${value}`);
  }
}

/** Writes a synthetic T5-style text encoder: `input_ids` int64 [batch, sequence] -> `last_hidden_state`. */
export function writeTextEncoder(
  path: string,
  options: TextEncoderOptions,
  write: WriteModelOptions = {},
): Promise<WrittenModel> {
  const graph = buildTextEncoder(options, write.namePrefix ?? "m");
  return writeGraph(path, graph, write.seed ?? 0, write.externalData ?? true);
}

/**
 * Writes a synthetic CogVideoX transformer: `hidden_states` [batch, frames, C, height, width],
 * `encoder_hidden_states` [batch, textSeqLength, textEmbedDim], `timestep` int64 [batch] ->
 * `sample` shaped like `hidden_states`. Frames, height and width are dynamic (height and width
 * multiples of the patch size).
 */
export function writeTransformer(
  path: string,
  options: TransformerOptions,
  write: WriteModelOptions = {},
): Promise<WrittenModel> {
  const graph = buildTransformer(options, write.namePrefix ?? "m");
  return writeGraph(path, graph, write.seed ?? 0, write.externalData ?? true);
}

/**
 * Writes a synthetic VAE decoder: `latent_sample` [batch, C, 3, h, w] ->
 * `sample` [batch, 3, 9, 8h, 8w].
 */
export function writeVaeDecoder(
  path: string,
  options: VaeDecoderOptions,
  write: WriteModelOptions = {},
): Promise<WrittenModel> {
  const graph = buildVaeDecoder(options, write.namePrefix ?? "m");
  return writeGraph(path, graph, write.seed ?? 0, write.externalData ?? true);
}

// ---------------------------------------------------------------------------------------------
// Pipeline folder

const FIXTURE_2B = new URL("./fixtures/tiny-cogvideox/2b/", import.meta.url);

function transformerConfig(o: TransformerOptions): Record<string, unknown> {
  return {
    _class_name: "CogVideoXTransformer3DModel",
    _diffusers_version: "0.40.0.dev0",
    activation_fn: "gelu-approximate",
    attention_bias: true,
    attention_head_dim: o.hiddenSize / o.numAttentionHeads,
    dropout: 0.0,
    flip_sin_to_cos: true,
    freq_shift: 0,
    in_channels: o.inChannels,
    max_text_seq_length: o.textSeqLength,
    norm_elementwise_affine: true,
    norm_eps: 1e-5,
    num_attention_heads: o.numAttentionHeads,
    num_layers: o.numLayers,
    ofs_embed_dim: null,
    out_channels: o.inChannels,
    patch_bias: true,
    patch_size: o.patchSize,
    patch_size_t: null,
    sample_frames: o.sampleFrames,
    sample_height: o.sampleHeight,
    sample_width: o.sampleWidth,
    spatial_interpolation_scale: 1.875,
    temporal_compression_ratio: 4,
    temporal_interpolation_scale: 1.0,
    text_embed_dim: o.textEmbedDim,
    time_embed_dim: o.timeEmbedDim,
    timestep_activation_fn: "silu",
    use_learned_positional_embeddings: false,
    use_rotary_positional_embeddings: false,
  };
}

function vaeConfig(o: VaeDecoderOptions, t: TransformerOptions): Record<string, unknown> {
  const levels = o.blockOutChannels.length;
  return {
    _class_name: "AutoencoderKLCogVideoX",
    _diffusers_version: "0.40.0.dev0",
    act_fn: "silu",
    block_out_channels: o.blockOutChannels,
    down_block_types: Array(levels).fill("CogVideoXDownBlock3D"),
    force_upcast: true,
    in_channels: 3,
    invert_scale_latents: false,
    latent_channels: o.latentChannels,
    latents_mean: null,
    latents_std: null,
    layers_per_block: o.layersPerBlock,
    norm_eps: 1e-6,
    norm_num_groups: 2,
    out_channels: 3,
    sample_height: t.sampleHeight * 8,
    sample_width: t.sampleWidth * 8,
    scaling_factor: o.scalingFactor,
    shift_factor: null,
    temporal_compression_ratio: 4,
    up_block_types: Array(levels).fill("CogVideoXUpBlock3D"),
    use_post_quant_conv: false,
    use_quant_conv: false,
  };
}

function textEncoderConfig(o: TextEncoderOptions): Record<string, unknown> {
  return {
    architectures: ["T5EncoderModel"],
    classifier_dropout: 0.0,
    d_ff: o.dFf,
    d_kv: o.dModel / o.numHeads,
    d_model: o.dModel,
    decoder_start_token_id: 0,
    dense_act_fn: "gelu_new",
    dropout_rate: 0.1,
    dtype: "float32",
    eos_token_id: 1,
    feed_forward_proj: "gated-gelu",
    initializer_factor: 1.0,
    is_decoder: false,
    is_encoder_decoder: false,
    is_gated_act: true,
    layer_norm_epsilon: 1e-6,
    model_type: "t5",
    num_decoder_layers: o.numLayers,
    num_heads: o.numHeads,
    num_layers: o.numLayers,
    pad_token_id: 0,
    relative_attention_max_distance: 128,
    relative_attention_num_buckets: 8,
    scale_decoder_outputs: false,
    tie_word_embeddings: true,
    use_cache: false,
    vocab_size: o.vocabSize,
  };
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  await Deno.writeTextFile(path, JSON.stringify(value, null, 2) + "\n");
}

async function copyFixtureFolder(name: string, dir: string): Promise<void> {
  const from = new URL(`${name}/`, FIXTURE_2B);
  await Deno.mkdir(join(dir, name), { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.isFile) await Deno.copyFile(new URL(entry.name, from), join(dir, name, entry.name));
  }
}

function checkPipelineOptions(o: SyntheticPipelineOptions): void {
  if (o.transformer.textEmbedDim !== o.textEncoder.dModel) {
    throw new Error(
      `Invalid synthetic pipeline: transformer textEmbedDim ${o.transformer.textEmbedDim} differs from text encoder dModel ${o.textEncoder.dModel}`,
    );
  }
  if (o.transformer.inChannels !== o.vaeDecoder.latentChannels) {
    throw new Error(
      `Invalid synthetic pipeline: transformer inChannels ${o.transformer.inChannels} differs from VAE latentChannels ${o.vaeDecoder.latentChannels}`,
    );
  }
  if (o.textEncoder.vocabSize < 1000) {
    throw new Error(
      `Invalid synthetic pipeline: text encoder vocabSize must cover the fixture tokenizer's 1000 ids, got ${o.textEncoder.vocabSize}`,
    );
  }
}

/**
 * Writes a whole pipeline folder in the diffusers/Optimum layout of the tiny-cogvideox fixtures:
 * `model_index.json`, `scheduler/` and `tokenizer/` (copied from the 2b fixture), and
 * `text_encoder/`, `transformer/`, `vae/` + `vae_decoder/` with configs matching the synthetic
 * shapes and the ONNX models. `synthetic.json` records the options used.
 */
export async function writeSyntheticPipeline(
  dir: string,
  options: PresetName | SyntheticPipelineOptions,
): Promise<SyntheticPipelineSummary> {
  const o = typeof options === "string" ? presets[options] : options;
  if (!o) {
    throw new Error(
      `Unknown synthetic preset "${options}": expected one of ${Object.keys(presets).join(", ")}`,
    );
  }
  checkPipelineOptions(o);
  const started = performance.now();
  const write: WriteModelOptions = {
    seed: o.seed,
    externalData: o.externalData,
    namePrefix: o.namePrefix,
  };
  await Deno.mkdir(dir, { recursive: true });
  await Deno.copyFile(new URL("model_index.json", FIXTURE_2B), join(dir, "model_index.json"));
  await copyFixtureFolder("scheduler", dir);
  await copyFixtureFolder("tokenizer", dir);
  await writeJson(join(dir, "text_encoder", "config.json"), textEncoderConfig(o.textEncoder));
  await writeJson(join(dir, "transformer", "config.json"), transformerConfig(o.transformer));
  const vae = vaeConfig(o.vaeDecoder, o.transformer);
  await writeJson(join(dir, "vae", "config.json"), vae);
  await writeJson(join(dir, "vae_decoder", "config.json"), vae);
  await writeJson(join(dir, "synthetic.json"), o);
  const textEncoder = await writeTextEncoder(
    join(dir, "text_encoder", "model.onnx"),
    o.textEncoder,
    write,
  );
  const transformer = await writeTransformer(
    join(dir, "transformer", "model.onnx"),
    o.transformer,
    write,
  );
  const vaeDecoder = await writeVaeDecoder(
    join(dir, "vae_decoder", "model.onnx"),
    o.vaeDecoder,
    write,
  );
  return {
    dir,
    textEncoder,
    transformer,
    vaeDecoder,
    seconds: (performance.now() - started) / 1000,
  };
}
