/**
 * Writes a complete CogVideoX-2b pipeline folder in the Hugging Face layout, with the real
 * configs and seeded random weights, for measuring memory and time at real model size without
 * downloading the model:
 *
 *   model_index.json, scheduler/, tokenizer/   copied from the tiny fixture (the same as the real
 *                                              files; the tokenizer's ids are < 1100)
 *   text_encoder/   T5-v1.1-XXL encoder, float16, two shards + model.safetensors.index.json
 *   transformer/    CogVideoXTransformer3DModel 2b, one float16 file
 *   vae/            AutoencoderKLCogVideoX, float32, encoder and decoder
 *
 * The configs have the key sets of the tiny fixture's (which are the real files' key sets) with
 * the real values; the tensor names and shapes are derived from each config the way the
 * diffusers / transformers modules declare their parameters. `--config-from <folder>` takes
 * the configs of a fixture folder as they are instead (a test compares the result with it).
 *
 *   deno run -A bench/real_size/make_random_pipeline.ts --out /work/realsize/cogvideox-2b
 *     [--layers 30] [--t5-layers 24] [--seed 0] [--config-from tests/fixtures/tiny-cogvideox-hf/2b]
 *
 * Weights: uniform in +-0.02, normalisation weights in 1 +- 0.05, biases in +-0.01 (xorshift32
 * per tensor, seeded by the tensor's name), each tensor streamed to its file.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { float32ToFloat16Bits } from "../../builders/onnx_graph.ts";

/** The tiny fixture whose tokenizer, model index, scheduler config and config key sets are used. */
export const TINY_FIXTURE = join(
  dirname(fileURLToPath(import.meta.url)),
  "../../tests/fixtures/tiny-cogvideox-hf/2b",
);

/** CogVideoX-2b's transformer config values (THUDM/CogVideoX-2b `transformer/config.json`). */
export const REAL_TRANSFORMER: Readonly<Record<string, unknown>> = {
  activation_fn: "gelu-approximate",
  attention_bias: true,
  attention_head_dim: 64,
  dropout: 0.0,
  flip_sin_to_cos: true,
  freq_shift: 0,
  in_channels: 16,
  max_text_seq_length: 226,
  norm_elementwise_affine: true,
  norm_eps: 1e-5,
  num_attention_heads: 30,
  num_layers: 30,
  out_channels: 16,
  patch_size: 2,
  sample_frames: 49,
  sample_height: 60,
  sample_width: 90,
  spatial_interpolation_scale: 1.875,
  temporal_compression_ratio: 4,
  temporal_interpolation_scale: 1.0,
  text_embed_dim: 4096,
  time_embed_dim: 512,
  timestep_activation_fn: "silu",
  use_rotary_positional_embeddings: false,
};

/** CogVideoX's VAE config values (`vae/config.json`, the float32 re-upload). */
export const REAL_VAE: Readonly<Record<string, unknown>> = {
  act_fn: "silu",
  block_out_channels: [128, 256, 256, 512],
  down_block_types: Array(4).fill("CogVideoXDownBlock3D"),
  force_upcast: true,
  in_channels: 3,
  invert_scale_latents: false,
  latent_channels: 16,
  latents_mean: null,
  latents_std: null,
  layers_per_block: 3,
  norm_eps: 1e-6,
  norm_num_groups: 32,
  out_channels: 3,
  sample_height: 480,
  sample_width: 720,
  scaling_factor: 1.15258426,
  shift_factor: null,
  temporal_compression_ratio: 4,
  up_block_types: Array(4).fill("CogVideoXUpBlock3D"),
  use_post_quant_conv: false,
  use_quant_conv: false,
};

/** google/t5-v1_1-xxl's encoder values that differ from the tiny fixture's config. */
export const REAL_T5: Readonly<Record<string, unknown>> = {
  vocab_size: 32128,
  d_model: 4096,
  d_kv: 64,
  d_ff: 10240,
  num_layers: 24,
  num_decoder_layers: 24,
  num_heads: 64,
  relative_attention_num_buckets: 32,
  relative_attention_max_distance: 128,
  feed_forward_proj: "gated-gelu",
  layer_norm_epsilon: 1e-6,
  torch_dtype: "float16",
};

/** How a tensor's random values are drawn. */
export type TensorKind = "weight" | "norm" | "bias";

/** One tensor to write. */
export interface TensorSpec {
  /** The checkpoint key. */
  name: string;
  /** Dimensions. */
  shape: number[];
  /** What it is, for its values. */
  kind: TensorKind;
}

/** A safetensors file to write: its name in the component folder and its tensors. */
export interface WeightFile {
  /** File name (`model-00001-of-00002.safetensors`). */
  file: string;
  /** Its tensors. */
  tensors: TensorSpec[];
}

/** Storage dtype code of a safetensors header. */
export type StorageDType = "F16" | "F32";

function int(config: Record<string, unknown>, key: string): number {
  const value = config[key];
  if (typeof value !== "number" || !Number.isInteger(value) || value <= 0) {
    throw new Error(`Expected a positive integer "${key}" in the config, got ${value}`);
  }
  return value;
}

/** Adds the parameters of an `nn.Linear(inFeatures, outFeatures)`. */
function linear(
  out: TensorSpec[],
  name: string,
  outFeatures: number,
  inFeatures: number,
  bias = true,
) {
  out.push({ name: `${name}.weight`, shape: [outFeatures, inFeatures], kind: "weight" });
  if (bias) out.push({ name: `${name}.bias`, shape: [outFeatures], kind: "bias" });
}

/** Adds the parameters of an affine `nn.LayerNorm` / `nn.GroupNorm` (or, without bias, T5LayerNorm). */
function norm(out: TensorSpec[], name: string, channels: number, bias = true) {
  out.push({ name: `${name}.weight`, shape: [channels], kind: "norm" });
  if (bias) out.push({ name: `${name}.bias`, shape: [channels], kind: "bias" });
}

/** Adds the parameters of a convolution with a bias. */
function conv(out: TensorSpec[], name: string, shape: number[]) {
  out.push({ name: `${name}.weight`, shape, kind: "weight" });
  out.push({ name: `${name}.bias`, shape: [shape[0]], kind: "bias" });
}

/**
 * The parameters of transformers' `T5EncoderModel` as `save_pretrained` writes them (the
 * embedding once, as `shared.weight`), split into two shards like the real repository: the
 * embedding and the first half of the blocks, then the rest and the final norm.
 */
export function t5EncoderFiles(config: Record<string, unknown>): WeightFile[] {
  const dModel = int(config, "d_model");
  const inner = int(config, "num_heads") * int(config, "d_kv");
  const dFf = int(config, "d_ff");
  const layers = int(config, "num_layers");
  const gated = String(config.feed_forward_proj ?? "relu").startsWith("gated-");
  const first: TensorSpec[] = [];
  const second: TensorSpec[] = [];
  first.push({ name: "shared.weight", shape: [int(config, "vocab_size"), dModel], kind: "weight" });
  for (let i = 0; i < layers; i++) {
    const out = i < Math.ceil(layers / 2) ? first : second;
    const block = `encoder.block.${i}.layer`;
    // T5Attention: q, k, v, o without bias; only block 0 has the relative position buckets.
    for (const projection of ["q", "k", "v"]) {
      linear(out, `${block}.0.SelfAttention.${projection}`, inner, dModel, false);
    }
    linear(out, `${block}.0.SelfAttention.o`, dModel, inner, false);
    if (i === 0) {
      out.push({
        name: `${block}.0.SelfAttention.relative_attention_bias.weight`,
        shape: [int(config, "relative_attention_num_buckets"), int(config, "num_heads")],
        kind: "weight",
      });
    }
    norm(out, `${block}.0.layer_norm`, dModel, false);
    // T5DenseGatedActDense (wi_0, wi_1, wo) or T5DenseActDense (wi, wo).
    for (const projection of gated ? ["wi_0", "wi_1"] : ["wi"]) {
      linear(out, `${block}.1.DenseReluDense.${projection}`, dFf, dModel, false);
    }
    linear(out, `${block}.1.DenseReluDense.wo`, dModel, dFf, false);
    norm(out, `${block}.1.layer_norm`, dModel, false);
  }
  (second.length > 0 ? second : first).push({
    name: "encoder.final_layer_norm.weight",
    shape: [dModel],
    kind: "norm",
  });
  if (second.length === 0) return [{ file: "model.safetensors", tensors: first }];
  return [
    { file: "model-00001-of-00002.safetensors", tensors: first },
    { file: "model-00002-of-00002.safetensors", tensors: second },
  ];
}

/**
 * The parameters of diffusers' `CogVideoXTransformer3DModel` (CogVideoX 1.0: no `patch_size_t`,
 * no `ofs_embed_dim`; sin-cos or rotary positions, neither of which is a saved parameter).
 */
export function cogVideoXTransformerTensors(config: Record<string, unknown>): TensorSpec[] {
  for (const key of ["patch_size_t", "ofs_embed_dim"]) {
    if (config[key] !== undefined && config[key] !== null) {
      throw new Error(`Unsupported "${key}" in the transformer config: CogVideoX 1.0 has none`);
    }
  }
  if (config.use_learned_positional_embeddings === true) {
    throw new Error(`Unsupported "use_learned_positional_embeddings": true`);
  }
  const headDim = int(config, "attention_head_dim");
  const dim = int(config, "num_attention_heads") * headDim;
  const timeDim = int(config, "time_embed_dim");
  const patch = int(config, "patch_size");
  const inChannels = int(config, "in_channels");
  const outChannels = config.out_channels === null ? inChannels : int(config, "out_channels");
  const attentionBias = config.attention_bias !== false;
  const affine = config.norm_elementwise_affine !== false;
  const out: TensorSpec[] = [];
  // CogVideoXPatchEmbed: a Conv2d over patches and the text projection.
  conv(out, "patch_embed.proj", [dim, inChannels, patch, patch]);
  linear(out, "patch_embed.text_proj", dim, int(config, "text_embed_dim"));
  // TimestepEmbedding(inner_dim, time_embed_dim).
  linear(out, "time_embedding.linear_1", timeDim, dim);
  linear(out, "time_embedding.linear_2", timeDim, timeDim);
  for (let i = 0; i < int(config, "num_layers"); i++) {
    const block = `transformer_blocks.${i}`;
    // CogVideoXLayerNormZero: a Linear to 6 modulations and a LayerNorm.
    linear(out, `${block}.norm1.linear`, 6 * dim, timeDim);
    if (affine) norm(out, `${block}.norm1.norm`, dim);
    // Attention with qk_norm="layer_norm" (over one head), bias as configured, out bias always.
    norm(out, `${block}.attn1.norm_q`, headDim);
    norm(out, `${block}.attn1.norm_k`, headDim);
    for (const projection of ["to_q", "to_k", "to_v"]) {
      linear(out, `${block}.attn1.${projection}`, dim, dim, attentionBias);
    }
    linear(out, `${block}.attn1.to_out.0`, dim, dim);
    linear(out, `${block}.norm2.linear`, 6 * dim, timeDim);
    if (affine) norm(out, `${block}.norm2.norm`, dim);
    // FeedForward: GELU(dim, 4 dim) then Linear(4 dim, dim).
    linear(out, `${block}.ff.net.0.proj`, 4 * dim, dim);
    linear(out, `${block}.ff.net.2`, dim, 4 * dim);
  }
  if (affine) norm(out, "norm_final", dim);
  // AdaLayerNorm(time_embed_dim, output_dim=2 inner_dim).
  linear(out, "norm_out.linear", 2 * dim, timeDim);
  if (affine) norm(out, "norm_out.norm", dim);
  linear(out, "proj_out", patch * patch * outChannels, dim);
  return out;
}

/** The parameters of a CogVideoXResnetBlock3D (no time embedding: `temb_channels` 0). */
function resnetBlock(
  out: TensorSpec[],
  name: string,
  inChannels: number,
  outChannels: number,
  spatialNormDim?: number,
) {
  const normOf = (normName: string, channels: number) => {
    if (spatialNormDim === undefined) return norm(out, `${name}.${normName}`, channels);
    spatialNorm(out, `${name}.${normName}`, channels, spatialNormDim);
  };
  normOf("norm1", inChannels);
  conv(out, `${name}.conv1.conv`, [outChannels, inChannels, 3, 3, 3]);
  normOf("norm2", outChannels);
  conv(out, `${name}.conv2.conv`, [outChannels, outChannels, 3, 3, 3]);
  // use_conv_shortcut is False: a plain CogVideoXSafeConv3d (no `.conv` inside) of kernel 1.
  if (inChannels !== outChannels) {
    conv(out, `${name}.conv_shortcut`, [outChannels, inChannels, 1, 1, 1]);
  }
}

/** The parameters of a CogVideoXSpatialNorm3D: a GroupNorm and two 1x1x1 causal convolutions. */
function spatialNorm(out: TensorSpec[], name: string, channels: number, zqChannels: number) {
  norm(out, `${name}.norm_layer`, channels);
  conv(out, `${name}.conv_y.conv`, [channels, zqChannels, 1, 1, 1]);
  conv(out, `${name}.conv_b.conv`, [channels, zqChannels, 1, 1, 1]);
}

/** The parameters of diffusers' `AutoencoderKLCogVideoX`: encoder and decoder. */
export function cogVideoXVaeTensors(config: Record<string, unknown>): TensorSpec[] {
  if (config.use_quant_conv === true || config.use_post_quant_conv === true) {
    throw new Error(`Unsupported "use_quant_conv" / "use_post_quant_conv": CogVideoX has neither`);
  }
  const channels = config.block_out_channels;
  if (!Array.isArray(channels) || channels.length === 0) {
    throw new Error(`Expected a list "block_out_channels" in the VAE config`);
  }
  const blockOut = channels as number[];
  const layers = int(config, "layers_per_block");
  const latent = int(config, "latent_channels");
  const out: TensorSpec[] = [];
  // CogVideoXEncoder3D.
  conv(out, "encoder.conv_in.conv", [blockOut[0], int(config, "in_channels"), 3, 3, 3]);
  let outputChannel = blockOut[0];
  blockOut.forEach((channel, i) => {
    const inputChannel = outputChannel;
    outputChannel = channel;
    for (let j = 0; j < layers; j++) {
      resnetBlock(
        out,
        `encoder.down_blocks.${i}.resnets.${j}`,
        j === 0 ? inputChannel : outputChannel,
        outputChannel,
      );
    }
    if (i < blockOut.length - 1) {
      conv(out, `encoder.down_blocks.${i}.downsamplers.0.conv`, [channel, channel, 3, 3]);
    }
  });
  const last = blockOut[blockOut.length - 1];
  for (let j = 0; j < 2; j++) resnetBlock(out, `encoder.mid_block.resnets.${j}`, last, last);
  norm(out, "encoder.norm_out", last);
  conv(out, "encoder.conv_out.conv", [2 * latent, last, 3, 3, 3]);
  // CogVideoXDecoder3D: reversed channels, one more resnet per up block, spatial norms on zq.
  const reversed = [...blockOut].reverse();
  conv(out, "decoder.conv_in.conv", [reversed[0], latent, 3, 3, 3]);
  for (let j = 0; j < 2; j++) {
    resnetBlock(out, `decoder.mid_block.resnets.${j}`, reversed[0], reversed[0], latent);
  }
  outputChannel = reversed[0];
  reversed.forEach((channel, i) => {
    const previous = outputChannel;
    outputChannel = channel;
    for (let j = 0; j < layers + 1; j++) {
      resnetBlock(
        out,
        `decoder.up_blocks.${i}.resnets.${j}`,
        j === 0 ? previous : outputChannel,
        outputChannel,
        latent,
      );
    }
    if (i < reversed.length - 1) {
      conv(out, `decoder.up_blocks.${i}.upsamplers.0.conv`, [channel, channel, 3, 3]);
    }
  });
  const first = reversed[reversed.length - 1];
  spatialNorm(out, "decoder.norm_out", first, latent);
  conv(out, "decoder.conv_out.conv", [int(config, "out_channels"), first, 3, 3, 3]);
  return out;
}

/** Elements of a shape. */
export function elementCount(shape: readonly number[]): number {
  return shape.reduce((product, dimension) => product * dimension, 1);
}

/** Centre and half width of each kind's uniform distribution. */
const DISTRIBUTIONS: Readonly<Record<TensorKind, [number, number]>> = {
  weight: [0, 0.02],
  norm: [1, 0.05],
  bias: [0, 0.01],
};

const float16Tables = new Map<TensorKind, Uint16Array>();

/** Float16 bits of the kind's distribution at each of 65536 evenly spaced points. */
function float16Table(kind: TensorKind): Uint16Array {
  let table = float16Tables.get(kind);
  if (!table) {
    const [centre, halfWidth] = DISTRIBUTIONS[kind];
    table = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) {
      table[i] = float32ToFloat16Bits(centre + halfWidth * ((i + 0.5) / 32768 - 1));
    }
    float16Tables.set(kind, table);
  }
  return table;
}

/** A nonzero xorshift32 seed from a tensor name and the run's seed (FNV-1a). */
function seedOf(name: string, seed: number): number {
  let hash = 0x811c9dc5 ^ seed;
  for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193);
  return (hash >>> 0) || 1;
}

const CHUNK_ELEMENTS = 1 << 23;

function writeAll(file: Deno.FsFile, bytes: Uint8Array) {
  let done = 0;
  while (done < bytes.length) done += file.writeSync(bytes.subarray(done));
}

/** Bytes per element of a storage dtype. */
function bytesOf(dtype: StorageDType): number {
  return dtype === "F16" ? 2 : 4;
}

/**
 * The header bytes (length prefix included) of a safetensors file holding `tensors` in that
 * order, padded with spaces so the data starts 8-byte aligned.
 */
export function safetensorsHeader(tensors: readonly TensorSpec[], dtype: StorageDType): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let offset = 0;
  for (const tensor of tensors) {
    const size = elementCount(tensor.shape) * bytesOf(dtype);
    header[tensor.name] = { dtype, shape: tensor.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let text = JSON.stringify(header);
  text += " ".repeat((8 - ((8 + new TextEncoder().encode(text).length) % 8)) % 8);
  const body = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(body.length), true);
  out.set(body, 8);
  return out;
}

/** Writes one safetensors file of random tensors (sorted by name), streaming each tensor. */
export function writeRandomSafetensors(
  path: string,
  tensors: readonly TensorSpec[],
  dtype: StorageDType,
  seed: number,
): number {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const file = Deno.openSync(path, { write: true, create: true, truncate: true });
  let bytes = 0;
  try {
    writeAll(file, safetensorsHeader(sorted, dtype));
    const f16 = new Uint16Array(CHUNK_ELEMENTS);
    const f32 = new Float32Array(CHUNK_ELEMENTS);
    for (const tensor of sorted) {
      let state = seedOf(tensor.name, seed);
      let left = elementCount(tensor.shape);
      const table = float16Table(tensor.kind);
      const [centre, halfWidth] = DISTRIBUTIONS[tensor.kind];
      while (left > 0) {
        const n = Math.min(left, CHUNK_ELEMENTS);
        for (let i = 0; i < n; i++) {
          state ^= state << 13;
          state ^= state >>> 17;
          state ^= state << 5;
          if (dtype === "F16") f16[i] = table[state & 0xffff];
          else f32[i] = centre + halfWidth * ((state >>> 0) / 2147483648 - 1);
        }
        const chunk = dtype === "F16"
          ? new Uint8Array(f16.buffer, 0, n * 2)
          : new Uint8Array(f32.buffer, 0, n * 4);
        writeAll(file, chunk);
        bytes += chunk.length;
        left -= n;
      }
    }
  } finally {
    file.close();
  }
  return bytes;
}

/** A JSON file as transformers / diffusers write it: sorted keys, indent 2, trailing newline. */
export function jsonText(value: Record<string, unknown>): string {
  const sorted = Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : 1)));
  return JSON.stringify(sorted, null, 2) + "\n";
}

/** Options of {@link makeRandomPipeline}. */
export interface MakeRandomPipelineOptions {
  /** The folder to write (created; files in it are replaced). */
  out: string;
  /** Take this fixture folder's configs as they are instead of the real values. */
  configFrom?: string;
  /** Transformer blocks (default: the config's; 30 for the real model). */
  layers?: number;
  /** T5 encoder blocks (default: the config's; 24 for the real model). */
  t5Layers?: number;
  /** Seed of the random weights (default 0). */
  seed?: number;
  /** Called after each file is written. */
  onFile?: (path: string, bytes: number) => void;
}

async function readConfig(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await Deno.readTextFile(path));
}

/** The fixture's config with `values` set; every key of `values` must already be in it. */
function withValues(
  config: Record<string, unknown>,
  values: Readonly<Record<string, unknown>>,
  what: string,
): Record<string, unknown> {
  for (const key of Object.keys(values)) {
    if (!(key in config)) throw new Error(`The fixture's ${what} config has no key "${key}"`);
  }
  return { ...config, ...values };
}

/** Writes the pipeline folder; returns the bytes of weights written. */
export async function makeRandomPipeline(options: MakeRandomPipelineOptions): Promise<number> {
  const source = options.configFrom ?? TINY_FIXTURE;
  const seed = options.seed ?? 0;
  let textEncoder = await readConfig(join(source, "text_encoder/config.json"));
  let transformer = await readConfig(join(source, "transformer/config.json"));
  let vae = await readConfig(join(source, "vae/config.json"));
  if (!options.configFrom) {
    textEncoder = withValues(textEncoder, REAL_T5, "text encoder");
    transformer = withValues(transformer, REAL_TRANSFORMER, "transformer");
    vae = withValues(vae, REAL_VAE, "VAE");
  }
  if (options.layers !== undefined) transformer = { ...transformer, num_layers: options.layers };
  if (options.t5Layers !== undefined) {
    textEncoder = {
      ...textEncoder,
      num_layers: options.t5Layers,
      num_decoder_layers: options.t5Layers,
    };
  }
  for (const folder of ["scheduler", "tokenizer", "text_encoder", "transformer", "vae"]) {
    await Deno.mkdir(join(options.out, folder), { recursive: true });
  }
  await Deno.copyFile(join(source, "model_index.json"), join(options.out, "model_index.json"));
  await Deno.copyFile(
    join(source, "scheduler/scheduler_config.json"),
    join(options.out, "scheduler/scheduler_config.json"),
  );
  for await (const entry of Deno.readDir(join(source, "tokenizer"))) {
    if (entry.isFile) {
      await Deno.copyFile(
        join(source, "tokenizer", entry.name),
        join(options.out, "tokenizer", entry.name),
      );
    }
  }
  let total = 0;
  const write = (component: string, file: string, tensors: TensorSpec[], dtype: StorageDType) => {
    const path = join(options.out, component, file);
    const bytes = writeRandomSafetensors(path, tensors, dtype, seed);
    total += bytes;
    options.onFile?.(path, bytes);
    return bytes;
  };

  await Deno.writeTextFile(join(options.out, "text_encoder/config.json"), jsonText(textEncoder));
  const shards = t5EncoderFiles(textEncoder);
  const weightMap: Record<string, string> = {};
  let t5Bytes = 0;
  for (const shard of shards) {
    t5Bytes += write("text_encoder", shard.file, shard.tensors, "F16");
    for (const tensor of shard.tensors) weightMap[tensor.name] = shard.file;
  }
  if (shards.length > 1) {
    await Deno.writeTextFile(
      join(options.out, "text_encoder/model.safetensors.index.json"),
      jsonText({
        metadata: { total_size: t5Bytes },
        weight_map: Object.fromEntries(
          Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : 1)),
        ),
      }),
    );
  }

  await Deno.writeTextFile(join(options.out, "transformer/config.json"), jsonText(transformer));
  write(
    "transformer",
    "diffusion_pytorch_model.safetensors",
    cogVideoXTransformerTensors(transformer),
    "F16",
  );
  await Deno.writeTextFile(join(options.out, "vae/config.json"), jsonText(vae));
  write("vae", "diffusion_pytorch_model.safetensors", cogVideoXVaeTensors(vae), "F32");
  return total;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      out: { type: "string" },
      layers: { type: "string" },
      "t5-layers": { type: "string" },
      seed: { type: "string" },
      "config-from": { type: "string" },
    },
  });
  if (!values.out) {
    console.error(
      "Usage: make_random_pipeline.ts --out DIR [--layers N] [--t5-layers N] [--seed N] [--config-from FIXTURE]",
    );
    Deno.exit(2);
  }
  const integer = (text: string | undefined) => (text === undefined ? undefined : Number(text));
  const started = performance.now();
  const total = await makeRandomPipeline({
    out: values.out,
    configFrom: values["config-from"],
    layers: integer(values.layers),
    t5Layers: integer(values["t5-layers"]),
    seed: integer(values.seed),
    onFile: (path, bytes) =>
      console.log(
        `${path}: ${(bytes / 1e9).toFixed(3)} GB (${
          ((performance.now() - started) / 1000).toFixed(1)
        } s)`,
      ),
  });
  console.log(`${(total / 1e9).toFixed(3)} GB of weights in ${values.out}`);
}
