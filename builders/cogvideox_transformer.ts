/**
 * The CogVideoX 1.0 transformer (diffusers' `CogVideoXTransformer3DModel`, 2b and 5b styles) as
 * an ONNX graph built from `transformer/config.json` and its safetensors weights.
 *
 * Graph inputs (float32 at the boundary, cast to the compute dtype inside):
 * - `hidden_states` `[batch, frames, in_channels, height, width]` (latents, frames first)
 * - `encoder_hidden_states` `[batch, text_tokens, text_embed_dim]`
 * - `timestep` int64 `[batch]`
 * - rotary models (`use_rotary_positional_embeddings`): `image_rotary_emb_cos` and
 *   `image_rotary_emb_sin` `[video_tokens, attention_head_dim]` (diffusion/rotary_embedding.ts)
 * - sin-cos models: `pos_embedding` `[video_tokens, heads * attention_head_dim]`, the video rows
 *   of diffusers' joint table (its text rows are zeros, so they are not added;
 *   diffusion/sincos_pos_embedding.ts computes it)
 *
 * `video_tokens` is `frames * (height / patch_size) * (width / patch_size)`, rows ordered frame,
 * patch row, patch column. Output `sample` float32, shaped like `hidden_states` with
 * `out_channels`. Batch, frames, height, width and text length are all dynamic.
 *
 * Nodes are named by module path (`transformer_blocks.1.attn1/...`), weights by checkpoint key.
 *
 * {@link cogVideoXTransformerParts} builds the same model as parts for sequential offload (the
 * embeddings, groups of blocks, the output layers), assembled from the same module functions:
 * on the CPU in float32 the parts give the whole graph's output bit for bit.
 *
 * @module
 */

import {
  type ComputeDType,
  GraphBuilder,
  ONNX_DTYPES,
  subgraph,
  type ValueDType,
} from "./onnx_graph.ts";
import { concat, dim, geluTanh, layerNorm, linear, reshape, silu, transpose } from "./layers.ts";
import type { ComponentWeights } from "./safetensors_weights.ts";
import {
  blockGroups,
  buildPart,
  type PartBoundary,
  type PartGraph,
  type PartsOptions,
} from "./part_graph.ts";
import { UserError } from "../runtime/user_error.ts";

/** Options of {@link buildCogVideoXTransformer}. */
export interface BuildCogVideoXTransformerOptions {
  /** The component's parsed config.json. */
  config: Record<string, unknown>;
  /** Path of that config.json, for error messages. */
  configPath: string;
  /** The component's weights. */
  weights: ComponentWeights;
  /** Compute dtype (default float32). */
  dtype?: ComputeDType;
  /**
   * Computes attention in chunks of this many query rows (keys and values whole), each chunk a
   * `MultiHeadAttention` of its own, concatenated: bounds what an unfused attention kernel holds
   * at once to `[batch, heads, rows, sequence]` probabilities. The sequence is dynamic: a `Loop`
   * runs one chunk per iteration (the query padded to whole chunks). Its nodes are under
   * `attention_query_chunk_<rows>` (runtime/onnx_attention.ts reads that). Default: one
   * `MultiHeadAttention` over the whole sequence.
   */
  attentionQueryChunk?: number;
}

/**
 * The query chunk load_pipeline builds the transformer with for the CPU provider. Where ONNX
 * Runtime's CPU `MultiHeadAttention` holds probabilities (its flash path off), 1024 rows hold
 * `[2, 30, 1024, 17776]` float32, 4.1 GiB, for CogVideoX-2b at 480 x 720 x 49 with guidance.
 * Each chunk's call transposes the whole keys and values: measured on 2 cores at 4096 tokens and
 * 30 heads, 1024-row chunks ran as fast as whole attention, 512 rows 30% slower, 256 rows 40%.
 */
export const CPU_ATTENTION_QUERY_CHUNK = 1024;

/** The `CogVideoXTransformer3DModel` arguments the graph depends on, defaults filled in. */
export interface CogVideoXTransformerConfig {
  /** Attention heads. */
  num_attention_heads: number;
  /** Channels per head. */
  attention_head_dim: number;
  /** Latent channels in. */
  in_channels: number;
  /** Latent channels out. */
  out_channels: number;
  /** Timestep embedding order `cos, sin` (true) or `sin, cos`. */
  flip_sin_to_cos: boolean;
  /** `downscale_freq_shift` of the timestep embedding. */
  freq_shift: number;
  /** Width of the time embedding. */
  time_embed_dim: number;
  /** Width of the text encoder's output. */
  text_embed_dim: number;
  /** Transformer blocks. */
  num_layers: number;
  /** Bias on to_q, to_k, to_v. */
  attention_bias: boolean;
  /** Spatial patch size. */
  patch_size: number;
  /** Pixel frames per latent frame (used by the sin-cos table). */
  temporal_compression_ratio: number;
  /** Text rows of the sin-cos table. */
  max_text_seq_length: number;
  /** Affine parameters on the block and output layer norms. */
  norm_elementwise_affine: boolean;
  /** Epsilon of the block and output layer norms. */
  norm_eps: number;
  /** Divides spatial positions of the sin-cos table. */
  spatial_interpolation_scale: number;
  /** Divides temporal positions of the sin-cos table. */
  temporal_interpolation_scale: number;
  /** Rotary tables (5b) instead of the sin-cos table (2b). */
  use_rotary_positional_embeddings: boolean;
  /** Bias on the patch embedding convolution. */
  patch_bias: boolean;
}

/** Epsilon of the query and key layer norms (`Attention(eps=1e-6)` in `CogVideoXBlock`). */
const QK_NORM_EPS = 1e-6;

/** Reads and validates a `CogVideoXTransformer3DModel` config; missing keys take diffusers' defaults. */
export function readCogVideoXTransformerConfig(
  config: Record<string, unknown>,
  configPath: string,
): CogVideoXTransformerConfig {
  const where = `in "${configPath}"`;
  const className = config._class_name;
  if (className !== undefined && className !== "CogVideoXTransformer3DModel") {
    throw new UserError(
      `Unsupported "_class_name": ${
        JSON.stringify(className)
      } ${where}: expected "CogVideoXTransformer3DModel"`,
    );
  }
  const known = new Set([
    ...Object.keys(DEFAULTS),
    "dropout",
    "sample_width",
    "sample_height",
    "sample_frames",
    "patch_size_t",
    "activation_fn",
    "timestep_activation_fn",
    "use_learned_positional_embeddings",
    "ofs_embed_dim",
  ]);
  for (const key of Object.keys(config)) {
    if (!key.startsWith("_") && !known.has(key)) {
      throw new UserError(
        `Unknown key "${key}" ${where}: not a CogVideoXTransformer3DModel argument`,
      );
    }
  }
  const value = (key: string) => config[key] === undefined ? defaultOf(key) : config[key];
  const unsupported = (key: string, expected: string) =>
    new UserError(
      `Unsupported "${key}": ${JSON.stringify(config[key])} ${where}: expected ${expected}`,
    );
  const positiveInteger = (key: string) => {
    const v = value(key);
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
      throw unsupported(key, "a positive integer");
    }
    return v;
  };
  const finite = (key: string) => {
    const v = value(key);
    if (typeof v !== "number" || !Number.isFinite(v)) throw unsupported(key, "a number");
    return v;
  };
  const positive = (key: string) => {
    const v = finite(key);
    if (v <= 0) throw unsupported(key, "a positive number");
    return v;
  };
  const boolean = (key: string) => {
    const v = value(key);
    if (typeof v !== "boolean") throw unsupported(key, "true or false");
    return v;
  };
  const exactly = (key: string, allowed: unknown) => {
    if (config[key] !== undefined && config[key] !== allowed) {
      throw unsupported(key, JSON.stringify(allowed));
    }
  };

  exactly("activation_fn", "gelu-approximate");
  exactly("timestep_activation_fn", "silu");
  if (config.patch_size_t !== undefined && config.patch_size_t !== null) {
    throw unsupported("patch_size_t", "null (temporal patches of CogVideoX 1.5 are not supported)");
  }
  if (config.ofs_embed_dim !== undefined && config.ofs_embed_dim !== null) {
    throw unsupported(
      "ofs_embed_dim",
      "null (the ofs embedding of CogVideoX 1.5 is not supported)",
    );
  }
  if (
    config.use_learned_positional_embeddings !== undefined &&
    config.use_learned_positional_embeddings !== false
  ) {
    throw unsupported(
      "use_learned_positional_embeddings",
      "false (learned positional embeddings are not supported)",
    );
  }
  const dropout = value("dropout");
  if (typeof dropout !== "number" || !(dropout >= 0 && dropout <= 1)) {
    throw unsupported("dropout", "a number from 0 to 1");
  }
  for (const key of ["sample_width", "sample_height", "sample_frames"]) positiveInteger(key);

  const parsed: CogVideoXTransformerConfig = {
    num_attention_heads: positiveInteger("num_attention_heads"),
    attention_head_dim: positiveInteger("attention_head_dim"),
    in_channels: positiveInteger("in_channels"),
    out_channels: positiveInteger("out_channels"),
    flip_sin_to_cos: boolean("flip_sin_to_cos"),
    freq_shift: finite("freq_shift"),
    time_embed_dim: positiveInteger("time_embed_dim"),
    text_embed_dim: positiveInteger("text_embed_dim"),
    num_layers: positiveInteger("num_layers"),
    attention_bias: boolean("attention_bias"),
    patch_size: positiveInteger("patch_size"),
    temporal_compression_ratio: positiveInteger("temporal_compression_ratio"),
    max_text_seq_length: positiveInteger("max_text_seq_length"),
    norm_elementwise_affine: boolean("norm_elementwise_affine"),
    norm_eps: positive("norm_eps"),
    spatial_interpolation_scale: positive("spatial_interpolation_scale"),
    temporal_interpolation_scale: positive("temporal_interpolation_scale"),
    use_rotary_positional_embeddings: boolean("use_rotary_positional_embeddings"),
    patch_bias: boolean("patch_bias"),
  };
  const innerDim = parsed.num_attention_heads * parsed.attention_head_dim;
  if (parsed.use_rotary_positional_embeddings && parsed.attention_head_dim % 2 !== 0) {
    throw unsupported("attention_head_dim", "an even number (rotary embeddings rotate pairs)");
  }
  if (!parsed.use_rotary_positional_embeddings && innerDim % 16 !== 0) {
    throw new UserError(
      `Unsupported "num_attention_heads" * "attention_head_dim" = ${innerDim} ${where}: the sin-cos positional embedding needs a multiple of 16`,
    );
  }
  if (Math.floor(innerDim / 2) === parsed.freq_shift) {
    throw unsupported(
      "freq_shift",
      `a value other than half the inner dimension (${innerDim / 2})`,
    );
  }
  return parsed;
}

/** diffusers' defaults of the arguments {@link CogVideoXTransformerConfig} holds. */
const DEFAULTS: Readonly<Record<keyof CogVideoXTransformerConfig, unknown>> = {
  num_attention_heads: 30,
  attention_head_dim: 64,
  in_channels: 16,
  out_channels: 16,
  flip_sin_to_cos: true,
  freq_shift: 0,
  time_embed_dim: 512,
  text_embed_dim: 4096,
  num_layers: 30,
  attention_bias: true,
  patch_size: 2,
  temporal_compression_ratio: 4,
  max_text_seq_length: 226,
  norm_elementwise_affine: true,
  norm_eps: 1e-5,
  spatial_interpolation_scale: 1.875,
  temporal_interpolation_scale: 1.0,
  use_rotary_positional_embeddings: false,
  patch_bias: true,
};

function defaultOf(key: string): unknown {
  if (key in DEFAULTS) return DEFAULTS[key as keyof CogVideoXTransformerConfig];
  return { dropout: 0.0, sample_width: 90, sample_height: 60, sample_frames: 49 }[key];
}

/** Builds the transformer graph; returns the ModelProto bytes. */
export function buildCogVideoXTransformer(options: BuildCogVideoXTransformerOptions): Uint8Array {
  return cogVideoXTransformerGraph(options).toBytes();
}

/**
 * The transformer graph before encoding (tests read {@link GraphBuilder.usedWeights} from it).
 * Config errors and missing or misshapen weights are UserErrors naming the key.
 */
export function cogVideoXTransformerGraph(options: BuildCogVideoXTransformerOptions): GraphBuilder {
  const config = readCogVideoXTransformerConfig(options.config, options.configPath);
  const b = new GraphBuilder({
    name: "transformer",
    weights: options.weights,
    computeDType: options.dtype,
  });
  const queryChunk = checkedQueryChunk(options.attentionQueryChunk);
  cogVideoXTransformer3DModel({ b, config, configPath: options.configPath, queryChunk });
  return b;
}

/**
 * The transformer as parts for sequential offload, assembled from the same module functions as
 * the whole graph (see part_graph.ts), with the same model inputs and output:
 * - `part_00_prologue`: `hidden_states`, `encoder_hidden_states`, `timestep` (and
 *   `pos_embedding`) to `patch_embed.hidden_states`, `patch_embed.encoder_hidden_states` and
 *   `time_embedding.emb`;
 * - a part per group of `blocksPerGroup` blocks: those three (and the rotary tables) to
 *   `transformer_blocks.<last>.hidden_states` and `transformer_blocks.<last>.encoder_hidden_states`;
 * - the epilogue: the last group's hidden states, `emb` and `hidden_states` (for its shape) to
 *   `sample`.
 */
export function cogVideoXTransformerParts(
  options: BuildCogVideoXTransformerOptions & PartsOptions,
): PartGraph[] {
  const config = readCogVideoXTransformerConfig(options.config, options.configPath);
  const queryChunk = checkedQueryChunk(options.attentionQueryChunk);
  const innerDim = config.num_attention_heads * config.attention_head_dim;
  const tokens = (what: string, width: number) => ["batch", what, width];
  const stateDims = {
    hidden: tokens("video_tokens", innerDim),
    encoder: tokens("text_tokens", innerDim),
    emb: ["batch", config.time_embed_dim],
  };
  const part = (
    index: number,
    kind: PartGraph["kind"],
    blocks: number[],
    build: (m: Model, io: PartBoundary) => void,
  ): PartGraph =>
    buildPart(
      "transformer",
      { index, kind, blocks },
      options,
      (b, io) => build({ b, config, configPath: options.configPath, queryChunk }, io),
    );
  const hiddenIn = (io: PartBoundary, prefix: string) =>
    io.activation(`${prefix}.hidden_states`, stateDims.hidden);
  const embIn = (io: PartBoundary) => io.activation("time_embedding.emb", stateDims.emb);

  const groups = blockGroups(config.num_layers, options.blocksPerGroup);
  const parts = [part(0, "prologue", [], (m, io) => {
    const state = embeddings(m, modelInputs(m, io, { rotary: false }));
    io.output(state.hidden, "patch_embed.hidden_states", stateDims.hidden);
    io.output(state.encoder, "patch_embed.encoder_hidden_states", stateDims.encoder);
    io.output(state.emb, "time_embedding.emb", stateDims.emb);
  })];
  let previous = "patch_embed";
  for (const [g, blocks] of groups.entries()) {
    const from = previous;
    const to = `transformer_blocks.${blocks.at(-1)}`;
    parts.push(part(parts.length, "blocks", blocks, (m, io) => {
      const hidden = hiddenIn(io, from);
      const encoder = io.activation(`${from}.encoder_hidden_states`, stateDims.encoder);
      const emb = embIn(io);
      const rotary = config.use_rotary_positional_embeddings ? rotaryInputs(m, io) : undefined;
      const state = transformerBlocks(m, { hidden, encoder, emb }, blocks, rotary);
      io.output(state.hidden, `${to}.hidden_states`, stateDims.hidden);
      // The epilogue reads no text tokens.
      if (g < groups.length - 1) {
        io.output(state.encoder, `${to}.encoder_hidden_states`, stateDims.encoder);
      }
    }));
    previous = to;
  }
  parts.push(part(parts.length, "epilogue", [], (m, io) => {
    const hidden = hiddenIn(io, previous);
    const emb = embIn(io);
    const hiddenInput = io.modelInput("hidden_states", "float32", hiddenStatesDims(config));
    io.output(outputSample(m, hidden, emb, hiddenInput), "sample", sampleDims(config));
  }));
  return parts;
}

/** What the module functions share. */
interface Model {
  b: GraphBuilder;
  config: CogVideoXTransformerConfig;
  configPath: string;
  /** Query rows per attention chunk, or undefined for whole attention. */
  queryChunk?: number;
}

function checkedQueryChunk(rows: number | undefined): number | undefined {
  if (rows === undefined) return undefined;
  if (!Number.isInteger(rows) || rows < 1) {
    throw new UserError(`Invalid attention query chunk "${rows}": expected a positive integer`);
  }
  return rows;
}

/**
 * `MultiHeadAttention(query, key, value)` on `[batch, tokens, heads * head_dim]`, whole or in
 * chunks of `m.queryChunk` query rows (see {@link BuildCogVideoXTransformerOptions}): the query
 * padded with zero rows to whole chunks, a `Loop` over the chunks (keys and values read whole
 * from the outer graph), its `[chunks, batch, rows, inner]` scan output put back in token order
 * and the padding dropped.
 */
function multiHeadAttention(m: Model, query: string, key: string, value: string): string {
  const { b, config } = m;
  const heads = config.num_attention_heads;
  const innerDim = heads * config.attention_head_dim;
  const rows = m.queryChunk;
  const attention = (g: GraphBuilder, q: string) =>
    g.op("MultiHeadAttention", [q, key, value], { num_heads: heads }, {
      domain: "com.microsoft",
    });
  if (rows === undefined) return attention(b, query);
  return b.scope(`attention_query_chunk_${rows}`, () => {
    const tokens = dim(b, query, 1);
    const size = b.int64s([rows]);
    // ceil(tokens / rows) chunks; the query padded to chunks * rows.
    const chunks = b.op("Div", [b.op("Add", [tokens, b.int64s([rows - 1])]), size]);
    const padding = b.op("Sub", [b.op("Mul", [chunks, size]), tokens]);
    const zeros = b.int64s([0, 0, 0, 0]);
    const padded = b.op("Pad", [query, concat(b, [zeros, padding, b.int64s([0])], 0)]);

    const body = new GraphBuilder({ name: `${b.path}.body`, computeDType: b.computeDType });
    body.scope(`${b.path}.body`, () => {
      const iteration = body.input(`${b.path}.body/iteration`, "int64", []);
      const condition = body.input(`${b.path}.body/condition`, "bool", []);
      body.output(condition, `${b.path}.body/condition_out`, "bool", []);
      const start = body.op("Mul", [body.op("Unsqueeze", [iteration, b.int64s([0])]), size]);
      const end = body.op("Add", [start, size]);
      const slice = body.op("Slice", [padded, start, end, b.int64s([1])]);
      const out = attention(body, slice);
      body.output(out, out, b.computeDType, ["batch", rows, innerDim]);
    });
    const scanned = b.op("Loop", [b.op("Squeeze", [chunks, b.int64s([0])]), ""], {
      body: subgraph(body),
    });
    // [chunks, batch, rows, inner] -> [batch, chunks * rows, inner] -> the real tokens.
    const ordered = reshape(b, b.op("Transpose", [scanned], { perm: [1, 0, 2, 3] }), [
      0,
      -1,
      innerDim,
    ]);
    return b.op("Slice", [ordered, b.int64s([0]), tokens, b.int64s([1])]);
  });
}

/** The rotary tables shaped to broadcast over `[batch, video_tokens, heads, head_dim]`. */
interface Rotary {
  cos: string;
  sin: string;
}

/** The graph inputs (as declared, float32) and the tables in their compute form. */
interface ModelInputs {
  hiddenStates: string;
  encoderHiddenStates: string;
  timestep: string;
  posEmbedding?: string;
  rotary?: Rotary;
}

/** What flows between blocks, in the compute dtype. */
interface State {
  hidden: string;
  encoder: string;
  emb: string;
}

/** Declares inputs of the whole graph (`b.input`) or of a part (`PartBoundary`). */
interface Inputs {
  modelInput(name: string, dtype: ValueDType, dims: readonly (number | string)[]): string;
}

/** `CogVideoXTransformer3DModel.forward`. */
function cogVideoXTransformer3DModel(m: Model): void {
  const { b, config } = m;
  const graphInputs: Inputs = { modelInput: (name, dtype, dims) => b.input(name, dtype, dims) };
  const inputs = modelInputs(m, graphInputs, { rotary: true });
  const blocks = Array.from({ length: config.num_layers }, (_, i) => i);
  const state = transformerBlocks(m, embeddings(m, inputs), blocks, inputs.rotary);
  const output = outputSample(m, state.hidden, state.emb, inputs.hiddenStates);
  const sample = castTo(b, output, "float32");
  b.output(sample, "sample", "float32", sampleDims(config));
}

function hiddenStatesDims(config: CogVideoXTransformerConfig): (number | string)[] {
  return ["batch", "frames", config.in_channels, "height", "width"];
}

function sampleDims(config: CogVideoXTransformerConfig): (number | string)[] {
  return ["batch", "frames", config.out_channels, "height", "width"];
}

/** The model inputs the embeddings read, and the rotary tables unless `rotary` is false. */
function modelInputs(m: Model, io: Inputs, options: { rotary: boolean }): ModelInputs {
  const { b, config } = m;
  const innerDim = config.num_attention_heads * config.attention_head_dim;
  const inputs: ModelInputs = {
    hiddenStates: io.modelInput("hidden_states", "float32", hiddenStatesDims(config)),
    encoderHiddenStates: io.modelInput("encoder_hidden_states", "float32", [
      "batch",
      "text_tokens",
      config.text_embed_dim,
    ]),
    timestep: io.modelInput("timestep", "int64", ["batch"]),
  };
  if (config.use_rotary_positional_embeddings) {
    if (options.rotary) inputs.rotary = rotaryInputs(m, io);
  } else {
    inputs.posEmbedding = toCompute(
      b,
      io.modelInput("pos_embedding", "float32", ["video_tokens", innerDim]),
    );
  }
  return inputs;
}

/** The rotary tables' inputs, shaped to broadcast over the heads. */
function rotaryInputs(m: Model, io: Inputs): Rotary {
  const { b, config } = m;
  const head = config.attention_head_dim;
  const cos = io.modelInput("image_rotary_emb_cos", "float32", ["video_tokens", head]);
  const sin = io.modelInput("image_rotary_emb_sin", "float32", ["video_tokens", head]);
  // apply_rotary_emb computes in float32 whatever the model dtype: the tables stay float32.
  return {
    cos: b.op("Unsqueeze", [cos, b.int64s([1])]),
    sin: b.op("Unsqueeze", [sin, b.int64s([1])]),
  };
}

/** The forward up to the blocks: time embedding, then the patch embedding of text and video. */
function embeddings(m: Model, inputs: ModelInputs): State {
  const { b, config } = m;
  const innerDim = config.num_attention_heads * config.attention_head_dim;
  const hiddenStates = toCompute(b, inputs.hiddenStates);
  const encoderHiddenStates = toCompute(b, inputs.encoderHiddenStates);
  const tEmb = b.scope("time_proj", () => timesteps(m, inputs.timestep, innerDim));
  const emb = b.scope("time_embedding", () => timestepEmbedding(m, toCompute(b, tEmb), innerDim));
  const [encoder, hidden] = b.scope(
    "patch_embed",
    () => cogVideoXPatchEmbed(m, encoderHiddenStates, hiddenStates, inputs.posEmbedding),
  );
  return { hidden, encoder, emb };
}

/** The `transformer_blocks` listed in `blocks`, in order. */
function transformerBlocks(
  m: Model,
  state: State,
  blocks: readonly number[],
  rotary: Rotary | undefined,
): State {
  const { b } = m;
  let { hidden, encoder } = state;
  const textLength = dim(b, encoder, 1);
  for (const i of blocks) {
    [hidden, encoder] = b.scope(
      "transformer_blocks",
      () =>
        b.scope(
          String(i),
          () => cogVideoXBlock(m, hidden, encoder, state.emb, textLength, rotary),
        ),
    );
  }
  return { hidden, encoder, emb: state.emb };
}

/** The forward after the blocks: norm_final, norm_out, proj_out, unpatchify (compute dtype). */
function outputSample(m: Model, hiddenStates: string, emb: string, hiddenInput: string): string {
  const { b, config } = m;
  const innerDim = config.num_attention_heads * config.attention_head_dim;
  let hidden = b.scope("norm_final", () => normLayer(m, hiddenStates, innerDim, config.norm_eps));
  hidden = b.scope("norm_out", () => adaLayerNorm(m, hidden, emb, innerDim));
  const p = config.patch_size;
  hidden = b.scope(
    "proj_out",
    () => checkedLinear(m, hidden, innerDim, p * p * config.out_channels, true),
  );
  return unpatchify(m, hidden, hiddenInput);
}

/**
 * `Timesteps(inner_dim, flip_sin_to_cos, freq_shift)`: `get_timestep_embedding` in float32, as
 * diffusers computes it whatever the model dtype. The frequencies are rounded the way torch
 * rounds each float32 step.
 */
function timesteps(m: Model, timestep: string, embeddingDim: number): string {
  const { b, config } = m;
  const f = Math.fround;
  const halfDim = Math.floor(embeddingDim / 2);
  const frequencies = Array.from({ length: halfDim }, (_, k) => {
    const exponent = f(f(f(-Math.log(10000)) * k) / f(halfDim - config.freq_shift));
    return f(Math.exp(exponent));
  });
  const t = b.op("Unsqueeze", [
    b.op("Cast", [timestep], { to: ONNX_DTYPES.float32 }),
    b.int64s([1]),
  ]);
  const angles = b.op("Mul", [t, b.constant("float32", [1, halfDim], frequencies)]);
  const sin = b.op("Sin", [angles]);
  const cos = b.op("Cos", [angles]);
  let emb = concat(b, config.flip_sin_to_cos ? [cos, sin] : [sin, cos], 1);
  if (embeddingDim % 2 === 1) {
    emb = b.op("Pad", [emb, b.int64s([0, 0, 0, 1]), b.scalar(0, "float32")]);
  }
  return emb;
}

/** `TimestepEmbedding(inner_dim, time_embed_dim, "silu")`: linear_1, SiLU, linear_2. */
function timestepEmbedding(m: Model, sample: string, inChannels: number): string {
  const { b, config } = m;
  const dimOut = config.time_embed_dim;
  let x = b.scope("linear_1", () => checkedLinear(m, sample, inChannels, dimOut, true));
  x = silu(b, x);
  return b.scope("linear_2", () => checkedLinear(m, x, dimOut, dimOut, true));
}

/**
 * `CogVideoXPatchEmbed` (CogVideoX 1.0, no temporal patches): the text projection and the
 * per-frame patch convolution, returned apart (`[text, video]`) since the model splits them
 * right after; the sin-cos table is added to the video tokens (its text rows are zeros).
 */
function cogVideoXPatchEmbed(
  m: Model,
  textEmbeds: string,
  imageEmbeds: string,
  posEmbedding: string | undefined,
): [string, string] {
  const { b, config } = m;
  const innerDim = config.num_attention_heads * config.attention_head_dim;
  const p = config.patch_size;
  const text = b.scope(
    "text_proj",
    () => checkedLinear(m, textEmbeds, config.text_embed_dim, innerDim, true),
  );
  const frames = b.op("Reshape", [
    imageEmbeds,
    concat(
      b,
      [b.int64s([-1, config.in_channels]), dim(b, imageEmbeds, 3), dim(b, imageEmbeds, 4)],
      0,
    ),
  ]);
  const patches = b.scope("proj", () => {
    // ONNX Conv has no bfloat16 kernel type (opset 21): that model dtype convolves in float32.
    const convDType = b.computeDType === "bfloat16" ? "float32" : b.computeDType;
    checkShape(m, "weight", [innerDim, config.in_channels, p, p]);
    const inputs = [castTo(b, frames, convDType), b.weight("weight", convDType)];
    if (config.patch_bias) {
      checkShape(m, "bias", [innerDim]);
      inputs.push(b.weight("bias", convDType));
    }
    return castTo(
      b,
      b.op("Conv", inputs, { kernel_shape: [p, p], strides: [p, p] }),
      b.computeDType,
      convDType,
    );
  });
  // [batch * frames, inner, h, w] -> [batch, frames * h * w, inner]
  const perFrame = b.op("Reshape", [
    patches,
    concat(b, [dim(b, imageEmbeds, 0), dim(b, imageEmbeds, 1), b.int64s([innerDim, -1])], 0),
  ]);
  let video = reshape(b, transpose(b, perFrame, [0, 1, 3, 2]), [0, -1, innerDim]);
  if (posEmbedding) video = b.op("Add", [video, posEmbedding]);
  return [text, video];
}

/** `CogVideoXBlock.forward`: returns `[hidden_states, encoder_hidden_states]`. */
function cogVideoXBlock(
  m: Model,
  hiddenStates: string,
  encoderHiddenStates: string,
  temb: string,
  textLength: string,
  rotary: Rotary | undefined,
): [string, string] {
  const { b, config } = m;
  const innerDim = config.num_attention_heads * config.attention_head_dim;
  const [normHidden, normEncoder, gateMsa, encGateMsa] = b.scope(
    "norm1",
    () => cogVideoXLayerNormZero(m, hiddenStates, encoderHiddenStates, temb),
  );
  const [attnHidden, attnEncoder] = b.scope(
    "attn1",
    () => cogVideoXAttention(m, normHidden, normEncoder, textLength, rotary),
  );
  let hidden = b.op("Add", [hiddenStates, b.op("Mul", [gateMsa, attnHidden])]);
  let encoder = b.op("Add", [encoderHiddenStates, b.op("Mul", [encGateMsa, attnEncoder])]);

  const [normHidden2, normEncoder2, gateFf, encGateFf] = b.scope(
    "norm2",
    () => cogVideoXLayerNormZero(m, hidden, encoder, temb),
  );
  const joint = concat(b, [normEncoder2, normHidden2], 1);
  const ffOutput = b.scope("ff", () => feedForward(m, joint, innerDim));
  hidden = b.op("Add", [hidden, b.op("Mul", [gateFf, tokensFrom(b, ffOutput, textLength)])]);
  encoder = b.op("Add", [encoder, b.op("Mul", [encGateFf, tokensBefore(b, ffOutput, textLength)])]);
  return [hidden, encoder];
}

/**
 * `CogVideoXLayerNormZero`: one `linear(silu(temb))` gives shift, scale, gate for the video and
 * the text tokens; returns `[hidden, encoder, gate, enc_gate]`, the gates `[batch, 1, dim]`.
 */
function cogVideoXLayerNormZero(
  m: Model,
  hiddenStates: string,
  encoderHiddenStates: string,
  temb: string,
): [string, string, string, string] {
  const { b, config } = m;
  const innerDim = config.num_attention_heads * config.attention_head_dim;
  const modulation = b.scope(
    "linear",
    () => checkedLinear(m, silu(b, temb), config.time_embed_dim, 6 * innerDim, true),
  );
  const [shift, scale, gate, encShift, encScale, encGate] = b.ops(
    "Split",
    [b.op("Unsqueeze", [modulation, b.int64s([1])])],
    { axis: 2, num_outputs: 6 },
    { outputs: 6 },
  );
  const modulate = (x: string, shiftOf: string, scaleOf: string) => {
    const normed = b.scope("norm", () => normLayer(m, x, innerDim, config.norm_eps));
    const scaled = b.op("Mul", [normed, b.op("Add", [b.scalar(1), scaleOf])]);
    return b.op("Add", [scaled, shiftOf]);
  };
  const hidden = modulate(hiddenStates, shift, scale);
  const encoder = modulate(encoderHiddenStates, encShift, encScale);
  return [hidden, encoder, gate, encGate];
}

/**
 * `Attention` with `CogVideoXAttnProcessor2_0`: joint self-attention over text then video
 * tokens, per-head layer norms on queries and keys, rotary embeddings on the video tokens only.
 * Returns `[hidden_states, encoder_hidden_states]`.
 */
function cogVideoXAttention(
  m: Model,
  hiddenStates: string,
  encoderHiddenStates: string,
  textLength: string,
  rotary: Rotary | undefined,
): [string, string] {
  const { b, config } = m;
  const heads = config.num_attention_heads;
  const headDim = config.attention_head_dim;
  const innerDim = heads * headDim;
  const joint = concat(b, [encoderHiddenStates, hiddenStates], 1);
  const project = (name: string) =>
    b.scope(name, () => checkedLinear(m, joint, innerDim, innerDim, config.attention_bias));
  let query = project("to_q");
  let key = project("to_k");
  const value = project("to_v");

  query = reshape(b, query, [0, 0, heads, headDim]);
  key = reshape(b, key, [0, 0, heads, headDim]);
  query = b.scope("norm_q", () => normLayer(m, query, headDim, QK_NORM_EPS, true));
  key = b.scope("norm_k", () => normLayer(m, key, headDim, QK_NORM_EPS, true));
  if (rotary) {
    const rotate = (x: string) =>
      concat(b, [
        tokensBefore(b, x, textLength),
        applyRotaryEmb(b, tokensFrom(b, x, textLength), rotary),
      ], 1);
    query = rotate(query);
    key = rotate(key);
  }
  query = reshape(b, query, [0, 0, innerDim]);
  key = reshape(b, key, [0, 0, innerDim]);

  // Scaled dot product attention with the default scale 1 / sqrt(head_dim).
  const attended = multiHeadAttention(m, query, key, value);
  const out = b.scope(
    "to_out",
    () => b.scope("0", () => checkedLinear(m, attended, innerDim, innerDim, true)),
  );
  return [tokensFrom(b, out, textLength), tokensBefore(b, out, textLength)];
}

/**
 * `apply_rotary_emb(x, (cos, sin), use_real=True, use_real_unbind_dim=-1)` on `[batch, tokens,
 * heads, head_dim]`: `x * cos + rotated * sin` with the interleaved pairs `(x0, x1) -> (-x1, x0)`,
 * in float32.
 */
function applyRotaryEmb(b: GraphBuilder, x: string, rotary: Rotary): string {
  const x32 = castTo(b, x, "float32");
  const pairs = reshape(b, x32, [0, 0, 0, -1, 2]);
  const [real, imag] = b.ops("Split", [pairs], { axis: -1, num_outputs: 2 }, { outputs: 2 });
  const rotated = reshape(b, concat(b, [b.op("Neg", [imag]), real], -1), [0, 0, 0, -1]);
  const out = b.op("Add", [
    b.op("Mul", [x32, rotary.cos]),
    b.op("Mul", [rotated, rotary.sin]),
  ]);
  return castTo(b, out, b.computeDType, "float32");
}

/** `FeedForward(dim, activation_fn="gelu-approximate")`: net.0.proj, GELU tanh, net.2. */
function feedForward(m: Model, x: string, dimIn: number): string {
  const { b } = m;
  const inner = 4 * dimIn;
  const projected = b.scope(
    "net",
    () => b.scope("0", () => b.scope("proj", () => checkedLinear(m, x, dimIn, inner, true))),
  );
  const activated = geluTanh(b, projected);
  return b.scope("net", () => b.scope("2", () => checkedLinear(m, activated, inner, dimIn, true)));
}

/** `AdaLayerNorm(chunk_dim=1)`: `linear(silu(temb))` chunked into shift then scale. */
function adaLayerNorm(m: Model, x: string, temb: string, innerDim: number): string {
  const { b, config } = m;
  const modulation = b.scope(
    "linear",
    () => checkedLinear(m, silu(b, temb), config.time_embed_dim, 2 * innerDim, true),
  );
  const [shift, scale] = b.ops(
    "Split",
    [b.op("Unsqueeze", [modulation, b.int64s([1])])],
    { axis: 2, num_outputs: 2 },
    { outputs: 2 },
  );
  const normed = b.scope("norm", () => normLayer(m, x, innerDim, config.norm_eps));
  return b.op("Add", [b.op("Mul", [normed, b.op("Add", [b.scalar(1), scale])]), shift]);
}

/** The model's output tokens `[batch, frames * h * w, C p p]` back to `[batch, frames, C, H, W]`. */
function unpatchify(m: Model, x: string, hiddenInput: string): string {
  const { b, config } = m;
  const p = config.patch_size;
  const pixelsPerPatch = b.int64s([p]);
  const h = b.op("Div", [dim(b, hiddenInput, 3), pixelsPerPatch]);
  const w = b.op("Div", [dim(b, hiddenInput, 4), pixelsPerPatch]);
  const batchAndFrames = b.op("Shape", [hiddenInput], { start: 0, end: 2 });
  const grid = b.op("Reshape", [x, concat(b, [batchAndFrames, h, w, b.int64s([-1, p, p])], 0)]);
  const ordered = transpose(b, grid, [0, 1, 4, 2, 5, 3, 6]);
  return b.op("Reshape", [
    ordered,
    concat(b, [
      batchAndFrames,
      b.int64s([config.out_channels]),
      b.op("Mul", [h, pixelsPerPatch]),
      b.op("Mul", [w, pixelsPerPatch]),
    ], 0),
  ]);
}

/** `nn.LayerNorm(channels, eps)` under the current scope, affine as the config says (or `affine`). */
function normLayer(
  m: Model,
  x: string,
  channels: number,
  epsilon: number,
  affine = m.config.norm_elementwise_affine,
): string {
  if (affine) {
    checkShape(m, "weight", [channels]);
    checkShape(m, "bias", [channels]);
  }
  return layerNorm(m.b, x, { epsilon, affine, channels });
}

/** `nn.Linear(inFeatures, outFeatures, bias)` under the current scope, shapes checked. */
function checkedLinear(
  m: Model,
  x: string,
  inFeatures: number,
  outFeatures: number,
  bias: boolean,
): string {
  checkShape(m, "weight", [outFeatures, inFeatures]);
  if (bias) checkShape(m, "bias", [outFeatures]);
  return linear(m.b, x, { bias });
}

/** Fails with a UserError naming the key when a weight is missing or has another shape. */
function checkShape(m: Model, name: string, expected: readonly number[]): void {
  const ref = m.b.weightRef(name);
  if (ref.shape.length !== expected.length || ref.shape.some((d, i) => d !== expected[i])) {
    throw new UserError(
      `Weight "${ref.name}" in "${ref.file}" has shape [${
        ref.shape.join(", ")
      }]: "${m.configPath}" implies [${expected.join(", ")}]`,
    );
  }
}

/** `x[:, :length]` on the token axis. */
function tokensBefore(b: GraphBuilder, x: string, length: string): string {
  return b.op("Slice", [x, b.int64s([0]), length, b.int64s([1])]);
}

/** `x[:, start:]` on the token axis. */
function tokensFrom(b: GraphBuilder, x: string, start: string): string {
  return b.op("Slice", [x, start, b.int64s([Number.MAX_SAFE_INTEGER]), b.int64s([1])]);
}

/** A float32 graph input in the compute dtype. */
function toCompute(b: GraphBuilder, x: string): string {
  return castTo(b, x, b.computeDType, "float32");
}

/** `x` (of dtype `from`, default the compute dtype) as `to`. */
function castTo(
  b: GraphBuilder,
  x: string,
  to: ValueDType,
  from: ValueDType = b.computeDType,
): string {
  return to === from ? x : b.op("Cast", [x], { to: ONNX_DTYPES[to] });
}
