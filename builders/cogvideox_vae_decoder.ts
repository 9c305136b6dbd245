/**
 * The CogVideoX VAE decoder (`AutoencoderKLCogVideoX.decoder`, diffusers'
 * `CogVideoXDecoder3D`) as an ONNX graph built from `vae/config.json` and the VAE's safetensors
 * weights (which also hold the encoder; only `decoder.*` is read).
 *
 * diffusers decodes a video in temporal chunks of two latent frames (`_decode`), and every causal
 * convolution continues from the frames it saw last (its `conv_cache`). Two graphs:
 *
 * - The video graph (`latentFrames` given; what vae_decode runs for a built VAE, see
 *   builders/video_decoder_model.ts) decodes every chunk of a video of that many latent frames in
 *   one session run: `latent_sample` `[batch, latent_channels, latentFrames, h, w]` in, `sample`
 *   out. The first chunk is decoded in the graph, the others by a `Loop` over one chunk's
 *   decoder, the caches carried between iterations; both read the same initializers. Chunk by
 *   chunk it computes what the one-chunk graph computes, to the bit (float32 on the CPU).
 * - The one-chunk graph decodes one chunk: besides `latent_sample` it takes one cache per causal
 *   convolution with a temporal kernel, `conv_cache.<module path>`
 *   (`conv_cache.decoder.up_blocks.0.resnets.1.conv2`), and returns the updated caches as
 *   `conv_cache_out.<module path>` beside `sample`. For the first chunk the caches have 0 frames,
 *   and the convolution pads by repeating the chunk's first frame, as diffusers does without a
 *   cache. diffusers/chunked_vae_decode.ts runs the chunk loop in JS; every cache crosses the
 *   session boundary twice per chunk (3.5 GB per chunk at 480x720), which is why the video graph
 *   exists. Load_pipeline's VAE handle names this graph (it knows no frame count yet).
 *
 * Cache inputs are `[batch, channels, cache_frames, H, W]` where H and W are named after the
 * latent size they follow: `latent_height`, `2*latent_height`, `4*latent_height`, ... (the
 * spatial upsampling so far), so a caller can make the empty first-chunk caches.
 *
 * Inputs and outputs are float32; the graph computes in the compute dtype (cast at the boundary),
 * caches passed inside the video graph stay in it. In float16 or bfloat16 each GroupNorm's mean
 * and variance (over 12 million values per group at 480x720) are computed in float32, as torch
 * does for half inputs ({@link groupNorm}).
 *
 * @module
 */

import { type ComputeDType, GraphBuilder, ONNX_DTYPES, subgraph } from "./onnx_graph.ts";
import { dim, reshape, silu, slice } from "./layers.ts";
import { decodedFrames, latentFrameChunks } from "../diffusion/chunked_vae_decode.ts";
import type { ComponentWeights } from "./safetensors_weights.ts";
import { UserError } from "../runtime/user_error.ts";

/** The prefix of a decoder graph's cache inputs (`conv_cache.decoder.conv_in`). */
export const CONV_CACHE_INPUT_PREFIX = "conv_cache.";

/** The prefix of a decoder graph's updated cache outputs (`conv_cache_out.decoder.conv_in`). */
export const CONV_CACHE_OUTPUT_PREFIX = "conv_cache_out.";

/** The temporal dimension name of every cache input and output. */
export const CACHE_FRAMES = "cache_frames";

/** The decoder's part of an `AutoencoderKLCogVideoX` config, validated. */
export interface CogVideoXVaeDecoderConfig {
  /** `latent_channels`: channels of the latents (the decoder's `in_channels`). */
  latentChannels: number;
  /** `out_channels`: channels of the decoded video. */
  outChannels: number;
  /** `block_out_channels`, as the encoder lists them (the decoder reads them reversed). */
  blockOutChannels: number[];
  /** `layers_per_block`: each up block has one resnet more. */
  layersPerBlock: number;
  /** `norm_num_groups`: groups of every GroupNorm. */
  normNumGroups: number;
  /** `norm_eps` (the decoder's spatial norms use a fixed 1e-6, as in diffusers). */
  normEps: number;
  /** `temporal_compression_ratio`: the first log2 of it up blocks also upsample in time. */
  temporalCompressionRatio: number;
  /** `scaling_factor`: latents are divided by it before decoding (not part of the graph). */
  scalingFactor: number;
}

/** Options of {@link buildCogVideoXVaeDecoder}. */
export interface BuildCogVideoXVaeDecoderOptions {
  /** The component's parsed config.json. */
  config: Record<string, unknown>;
  /** Path of that config.json, for error messages. */
  configPath: string;
  /** The component's weights. */
  weights: ComponentWeights;
  /** Compute dtype (default float32). */
  dtype?: ComputeDType;
  /**
   * Latent frames of the videos to decode: the graph then decodes all of diffusers' temporal
   * chunks in one run, without cache inputs or outputs. Without it, the graph decodes one chunk.
   */
  latentFrames?: number;
}

const CLASS_NAME = "AutoencoderKLCogVideoX";
const UP_BLOCK_TYPE = "CogVideoXUpBlock3D";
/** `CogVideoXSpatialNorm3D` builds its GroupNorm with this eps whatever the config says. */
const SPATIAL_NORM_EPS = 1e-6;
/** A Slice end past any dimension. */
const TO_END = Number.MAX_SAFE_INTEGER;

/**
 * Validates the decoder's keys of an `AutoencoderKLCogVideoX` config; missing keys take diffusers'
 * defaults. An unknown class or an unsupported value is a UserError naming the file and the key.
 */
export function readCogVideoXVaeDecoderConfig(
  config: Record<string, unknown>,
  configPath: string,
): CogVideoXVaeDecoderConfig {
  const unsupported = (key: string, expected: string): never => {
    throw new UserError(
      `Unsupported ${JSON.stringify(key)}: ${
        JSON.stringify(config[key])
      } in "${configPath}": expected ${expected}`,
    );
  };
  const value = <T>(key: string, fallback: T): unknown =>
    config[key] === undefined ? fallback : config[key];
  const positiveInteger = (key: string, fallback: number): number => {
    const v = value(key, fallback);
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) {
      unsupported(key, "a positive integer");
    }
    return v as number;
  };

  const className = config._class_name;
  if (className !== undefined && className !== CLASS_NAME) {
    unsupported("_class_name", JSON.stringify(CLASS_NAME));
  }
  const actFn = value("act_fn", "silu");
  // get_activation gives nn.SiLU for both names.
  if (actFn !== "silu" && actFn !== "swish") unsupported("act_fn", '"silu"');

  const blockOutChannels = value("block_out_channels", [128, 256, 256, 512]);
  if (
    !Array.isArray(blockOutChannels) || blockOutChannels.length === 0 ||
    !blockOutChannels.every((c) => typeof c === "number" && Number.isSafeInteger(c) && c > 0)
  ) {
    unsupported("block_out_channels", "a non-empty list of positive integers");
  }
  const channels = blockOutChannels as number[];
  const normNumGroups = positiveInteger("norm_num_groups", 32);
  if (!channels.every((c) => c % normNumGroups === 0)) {
    unsupported("norm_num_groups", `a divisor of every "block_out_channels" (${channels})`);
  }

  const upBlockTypes = value("up_block_types", channels.map(() => UP_BLOCK_TYPE));
  if (
    !Array.isArray(upBlockTypes) || upBlockTypes.length !== channels.length ||
    !upBlockTypes.every((type) => type === UP_BLOCK_TYPE)
  ) {
    unsupported(
      "up_block_types",
      `${channels.length} times ${JSON.stringify(UP_BLOCK_TYPE)} (one per "block_out_channels")`,
    );
  }

  const layersPerBlock = value("layers_per_block", 3);
  if (
    typeof layersPerBlock !== "number" || !Number.isSafeInteger(layersPerBlock) ||
    layersPerBlock < 0
  ) {
    unsupported("layers_per_block", "an integer >= 0");
  }
  const normEps = value("norm_eps", 1e-6);
  if (typeof normEps !== "number" || !(normEps > 0)) unsupported("norm_eps", "a positive number");
  const ratio = value("temporal_compression_ratio", 4);
  if (
    typeof ratio !== "number" || !Number.isSafeInteger(ratio) || ratio < 1 || (ratio & (ratio - 1))
  ) {
    unsupported("temporal_compression_ratio", "a power of two (1, 2, 4, ...)");
  }
  const scalingFactor = value("scaling_factor", 1.15258426);
  if (
    typeof scalingFactor !== "number" || !(scalingFactor > 0) || !Number.isFinite(scalingFactor)
  ) {
    unsupported("scaling_factor", "a positive number");
  }
  if (value("use_post_quant_conv", false) !== false) unsupported("use_post_quant_conv", "false");

  return {
    latentChannels: positiveInteger("latent_channels", 16),
    outChannels: positiveInteger("out_channels", 3),
    blockOutChannels: channels,
    layersPerBlock: layersPerBlock as number,
    normNumGroups,
    normEps: normEps as number,
    temporalCompressionRatio: ratio as number,
    scalingFactor: scalingFactor as number,
  };
}

/**
 * Builds the decoder graph: of one temporal chunk (inputs `latent_sample` float32
 * `[batch, latent_channels, latent_frames, latent_height, latent_width]` and the
 * `conv_cache.<module path>` caches; outputs `sample` float32
 * `[batch, out_channels, frames, height, width]` and the `conv_cache_out.<module path>` caches),
 * or with `latentFrames` of a whole video (`latent_sample` and `sample` only, with that many
 * latent frames). Returns the ModelProto bytes.
 */
export function buildCogVideoXVaeDecoder(options: BuildCogVideoXVaeDecoderOptions): Uint8Array {
  const config = readCogVideoXVaeDecoderConfig(options.config, options.configPath);
  if (options.latentFrames === undefined) {
    return buildCogVideoXVaeDecoderGraph(config, options.weights, options.dtype).toBytes();
  }
  return buildCogVideoXVideoDecoderGraph(config, options.weights, {
    dtype: options.dtype,
    latentFrames: options.latentFrames,
  }).toBytes();
}

/** The one-chunk graph of {@link buildCogVideoXVaeDecoder}, before encoding (tests read it). */
export function buildCogVideoXVaeDecoderGraph(
  config: CogVideoXVaeDecoderConfig,
  weights: ComponentWeights,
  dtype: ComputeDType = "float32",
): GraphBuilder {
  const b = new GraphBuilder({ name: "vae_decoder", weights, computeDType: dtype });
  const input = b.input("latent_sample", "float32", [
    "batch",
    config.latentChannels,
    "latent_frames",
    "latent_height",
    "latent_width",
  ]);
  const outputs: { value: string; name: string; dims: (number | string)[] }[] = [];
  // The caches are graph inputs and outputs, in float32 like the other inputs and outputs.
  const caches: ConvCaches = {
    sized: false,
    read: (path, dims) =>
      toCompute(b, b.input(`${CONV_CACHE_INPUT_PREFIX}${path}`, "float32", dims)),
    write(path, dims, value) {
      outputs.push({
        value: toFloat32(b, value()),
        name: `${CONV_CACHE_OUTPUT_PREFIX}${path}`,
        dims,
      });
    },
  };
  const sample = b.scope(
    "decoder",
    () => cogVideoXDecoder3D(b, toCompute(b, input), config, caches),
  );
  b.output(toFloat32(b, sample), "sample", "float32", [
    "batch",
    config.outChannels,
    "frames",
    "height",
    "width",
  ]);
  for (const cache of outputs) b.output(cache.value, cache.name, "float32", cache.dims);
  return b;
}

/** Options of {@link buildCogVideoXVideoDecoderGraph}. */
export interface VideoDecoderGraphOptions {
  /** Compute dtype (default float32). */
  dtype?: ComputeDType;
  /** Latent frames of the videos it decodes. */
  latentFrames: number;
  /** Latent frames per chunk (diffusers' `num_latent_frames_batch_size`, default 2). */
  framesPerChunk?: number;
}

/**
 * The whole-video graph of {@link buildCogVideoXVaeDecoder}: diffusers' chunk loop (`_decode`) in
 * the graph. The first chunk (which takes the odd remainder, and has no caches) is decoded in the
 * graph itself; the other chunks, all of `framesPerChunk` frames, by a `Loop` whose body decodes
 * one chunk, its convolution caches carried from iteration to iteration (nothing crosses the
 * session boundary between chunks). The body reads the same initializers as the first chunk (the
 * outer graph's), and ONNX Runtime frees an iteration's activations before the next one. The
 * Loop's scan output `[chunks, batch, channels, frames, height, width]` is put in time order after
 * the first chunk's frames. Each chunk computes exactly what the one-chunk graph computes for it,
 * so both decode a video to the same bits. (Unrolling the loop instead gives the same values, but
 * ONNX Runtime's session creation grows with the square of the nodes: 8 s for 6 tiny chunks.)
 */
export function buildCogVideoXVideoDecoderGraph(
  config: CogVideoXVaeDecoderConfig,
  weights: ComponentWeights,
  options: VideoDecoderGraphOptions,
): GraphBuilder {
  const { latentFrames } = options;
  if (!Number.isSafeInteger(latentFrames) || latentFrames < 1) {
    throw new RangeError(`Expected a positive number of latent frames, got ${latentFrames}`);
  }
  const b = new GraphBuilder({
    name: "vae_video_decoder",
    weights,
    computeDType: options.dtype ?? "float32",
  });
  const input = toCompute(
    b,
    b.input("latent_sample", "float32", [
      "batch",
      config.latentChannels,
      latentFrames,
      "latent_height",
      "latent_width",
    ]),
  );
  const [[, firstEnd], ...rest] = latentFrameChunks(latentFrames, options.framesPerChunk);

  // The first chunk, which hands its caches to the loop.
  const caches = new Map<string, { value: string; dims: (number | string)[] }>();
  const firstCaches: ConvCaches = {
    sized: true,
    read: () => undefined,
    write(path, dims, value) {
      if (rest.length > 0) caches.set(path, { value: value(), dims });
    },
  };
  const first = firstEnd === latentFrames ? input : slice(b, input, 2, 0, firstEnd);
  let sample = b.scope("decoder", () => cogVideoXDecoder3D(b, first, config, firstCaches));

  if (rest.length > 0) {
    const framesPerChunk = rest[0][1] - rest[0][0];
    const body = new GraphBuilder({ name: "vae_video_decoder.chunk", parent: b });
    const iteration = body.input("chunk_loop/iteration", "int64", []);
    const condition = body.input("chunk_loop/condition", "bool", []);
    const carried = new Map<string, string>();
    for (const [path, { dims }] of caches) {
      carried.set(
        path,
        body.input(`chunk_loop/${CONV_CACHE_INPUT_PREFIX}${path}`, b.computeDType, dims),
      );
    }
    const updated = new Map<string, string>();
    const bodyCaches: ConvCaches = {
      sized: true,
      read: (path) => carried.get(path),
      write(path, _dims, value) {
        updated.set(path, value());
      },
    };
    // Latent frames firstEnd + framesPerChunk * iteration onwards.
    const start = body.op("Add", [
      b.int64s([firstEnd]),
      body.op("Mul", [
        body.op("Unsqueeze", [iteration, b.int64s([0])]),
        b.int64s([framesPerChunk]),
      ]),
    ]);
    const end = body.op("Add", [start, b.int64s([framesPerChunk])]);
    const chunk = body.op("Slice", [input, start, end, b.int64s([2])]);
    const chunkSample = body.scope(
      "decoder",
      () => cogVideoXDecoder3D(body, chunk, config, bodyCaches),
    );
    body.output(condition, "chunk_loop/condition_out", "bool", []);
    for (const [path, { dims }] of caches) {
      body.output(
        updated.get(path)!,
        `chunk_loop/${CONV_CACHE_OUTPUT_PREFIX}${path}`,
        b.computeDType,
        dims,
      );
    }
    const frames = decodedFrames(framesPerChunk, config.temporalCompressionRatio);
    body.output(chunkSample, "chunk_loop/sample", b.computeDType, [
      "batch",
      config.outChannels,
      frames,
      "height",
      "width",
    ]);
    const outputs = b.ops(
      "Loop",
      [b.scalar(rest.length, "int64"), "", ...[...caches.values()].map((cache) => cache.value)],
      { body: subgraph(body) },
      { outputs: caches.size + 1 },
    );
    // [chunks, batch, channels, frames, H, W] -> [batch, channels, chunks * frames, H, W].
    const scanned = b.op("Transpose", [outputs[caches.size]], { perm: [1, 2, 0, 3, 4, 5] });
    const size = b.op("Concat", [
      b.int64s([0, 0, -1]),
      b.op("Slice", [b.op("Shape", [scanned]), b.int64s([4]), b.int64s([6])]),
    ], { axis: 0 });
    sample = b.op("Concat", [sample, b.op("Reshape", [scanned, size])], { axis: 2 });
  }

  const frames = decodedFrames(firstEnd, config.temporalCompressionRatio) +
    rest.length *
      (rest.length > 0
        ? decodedFrames(rest[0][1] - rest[0][0], config.temporalCompressionRatio)
        : 0);
  b.output(toFloat32(b, sample), "sample", "float32", [
    "batch",
    config.outChannels,
    frames,
    "height",
    "width",
  ]);
  return b;
}

/**
 * Where a chunk's causal convolutions find the previous chunk's frames and leave theirs: graph
 * inputs and outputs (the one-chunk graph), or values passed from chunk to chunk (the video graph).
 */
interface ConvCaches {
  /** True when a cache read holds kt - 1 frames (never an empty first-chunk input). */
  sized: boolean;
  /** The cache of the convolution at `path` (compute dtype), or undefined for the first chunk. */
  read(path: string, dims: (number | string)[]): string | undefined;
  /** Hands on the updated cache; `value` emits its nodes, called at once and only if it is used. */
  write(path: string, dims: (number | string)[], value: () => string): void;
}

/** Where a module sits in the decoder: how far time and space were upsampled so far. */
interface Stage {
  /** Video frames per latent frame (after the odd first frame). */
  timeScale: number;
  /** Pixels per latent pixel. */
  spaceScale: number;
  /** The chunk's convolution caches (shared by every stage). */
  caches: ConvCaches;
}

/** `CogVideoXDecoder3D.forward`; `sample` is the chunk's latent, also the spatial norms' `zq`. */
function cogVideoXDecoder3D(
  b: GraphBuilder,
  sample: string,
  config: CogVideoXVaeDecoderConfig,
  caches: ConvCaches,
): string {
  const reversed = [...config.blockOutChannels].reverse();
  const groups = config.normNumGroups;
  const temporalCompressLevel = Math.log2(config.temporalCompressionRatio);
  let stage: Stage = { timeScale: 1, spaceScale: 1, caches };

  let hidden = b.scope("conv_in", () => cogVideoXCausalConv3d(b, sample, stage));
  hidden = b.scope(
    "mid_block",
    () => cogVideoXMidBlock3D(b, hidden, sample, stage, { channels: reversed[0], groups }),
  );

  let outputChannel = reversed[0];
  for (let i = 0; i < reversed.length; i++) {
    const prevOutputChannel = outputChannel;
    outputChannel = reversed[i];
    const block = {
      inChannels: prevOutputChannel,
      outChannels: outputChannel,
      numLayers: config.layersPerBlock + 1,
      groups,
      addUpsample: i !== reversed.length - 1,
      compressTime: i < temporalCompressLevel,
    };
    hidden = b.scope(
      "up_blocks",
      () => b.scope(String(i), () => cogVideoXUpBlock3D(b, hidden, sample, stage, block)),
    );
    if (block.addUpsample) {
      stage = {
        timeScale: stage.timeScale * (block.compressTime ? 2 : 1),
        spaceScale: stage.spaceScale * 2,
        caches,
      };
    }
  }

  hidden = b.scope("norm_out", () => cogVideoXSpatialNorm3D(b, hidden, sample, stage, groups));
  hidden = silu(b, hidden);
  return b.scope("conv_out", () => cogVideoXCausalConv3d(b, hidden, stage));
}

/** `CogVideoXMidBlock3D` of the decoder: two resnets with spatial norms. */
function cogVideoXMidBlock3D(
  b: GraphBuilder,
  x: string,
  zq: string,
  stage: Stage,
  options: { channels: number; groups: number },
): string {
  let hidden = x;
  for (let i = 0; i < 2; i++) {
    hidden = b.scope(
      "resnets",
      () =>
        b.scope(String(i), () =>
          cogVideoXResnetBlock3D(b, hidden, zq, stage, {
            inChannels: options.channels,
            outChannels: options.channels,
            groups: options.groups,
          })),
    );
  }
  return hidden;
}

/** `CogVideoXUpBlock3D`: resnets with spatial norms, then the upsampler (but in the last block). */
function cogVideoXUpBlock3D(
  b: GraphBuilder,
  x: string,
  zq: string,
  stage: Stage,
  options: {
    inChannels: number;
    outChannels: number;
    numLayers: number;
    groups: number;
    addUpsample: boolean;
    compressTime: boolean;
  },
): string {
  let hidden = x;
  for (let i = 0; i < options.numLayers; i++) {
    hidden = b.scope(
      "resnets",
      () =>
        b.scope(String(i), () =>
          cogVideoXResnetBlock3D(b, hidden, zq, stage, {
            inChannels: i === 0 ? options.inChannels : options.outChannels,
            outChannels: options.outChannels,
            groups: options.groups,
          })),
    );
  }
  if (options.addUpsample) {
    hidden = b.scope(
      "upsamplers",
      () => b.scope("0", () => cogVideoXUpsample3D(b, hidden, options.compressTime)),
    );
  }
  return hidden;
}

/** `CogVideoXResnetBlock3D` with spatial norms (`zq`), no time embedding, dropout a no-op. */
function cogVideoXResnetBlock3D(
  b: GraphBuilder,
  inputs: string,
  zq: string,
  stage: Stage,
  options: { inChannels: number; outChannels: number; groups: number },
): string {
  let hidden = b.scope("norm1", () => cogVideoXSpatialNorm3D(b, inputs, zq, stage, options.groups));
  hidden = silu(b, hidden);
  hidden = b.scope("conv1", () => cogVideoXCausalConv3d(b, hidden, stage));
  hidden = b.scope("norm2", () => cogVideoXSpatialNorm3D(b, hidden, zq, stage, options.groups));
  hidden = silu(b, hidden);
  hidden = b.scope("conv2", () => cogVideoXCausalConv3d(b, hidden, stage));
  let shortcut = inputs;
  if (options.inChannels !== options.outChannels) {
    // A CogVideoXSafeConv3d with a 1x1x1 kernel (conv_shortcut=False in the decoder).
    // After conv2 (ONNX Runtime would compute it first, and keep it alive throughout).
    shortcut = b.scope("conv_shortcut", () => conv(b, inputs, [0, 0, 0, 0, 0, 0], hidden));
  }
  return b.op("Add", [hidden, shortcut]);
}

/**
 * `CogVideoXSpatialNorm3D`: GroupNorm of `f` (statistics over this chunk alone), modulated by
 * 1x1x1 convolutions of the latent `zq` brought to `f`'s size by nearest interpolation. With an
 * odd number of frames (more than one) diffusers interpolates the first latent frame alone, to
 * `f`'s first frame, and the rest to the rest.
 */
function cogVideoXSpatialNorm3D(
  b: GraphBuilder,
  f: string,
  zq: string,
  stage: Stage,
  groups: number,
): string {
  // diffusers' order: the norm, then each modulation as it is applied, so that fewer values of
  // f's size are alive at once.
  const normF = b.scope("norm_layer", () => groupNorm(b, f, groups, SPATIAL_NORM_EPS));
  let z = zq;
  if (stage.timeScale > 1) {
    // Frame d of f reads latent frame (d + odd * (s - 1)) / s: an odd first frame maps to the
    // first latent frame alone, every later latent frame covers s frames; one frame reads frame 0.
    const s = stage.timeScale;
    const frames = scalarDim(b, f, 2);
    const odd = b.op("Mod", [frames, b.scalar(2, "int64")]);
    const offset = b.op("Mul", [odd, b.scalar(s - 1, "int64")]);
    const d = b.op("Range", [b.scalar(0, "int64"), frames, b.scalar(1, "int64")]);
    const index = b.op("Div", [b.op("Add", [d, offset]), b.scalar(s, "int64")]);
    z = b.op("Gather", [z, index], { axis: 2 });
  }
  if (stage.spaceScale > 1) z = upsampleSpace(b, z, stage.spaceScale);
  // Each modulation waits for the value before it, or ONNX Runtime computes both (they depend
  // on zq alone) before the norm, and four values of f's size are alive instead of two.
  const convY = b.scope("conv_y", () => cogVideoXCausalConv3d(b, z, stage, normF));
  const scaled = b.op("Mul", [normF, convY]);
  const convB = b.scope("conv_b", () => cogVideoXCausalConv3d(b, z, stage, scaled));
  return b.op("Add", [scaled, convB]);
}

/**
 * `nn.GroupNorm` over `[batch, channels, frames, height, width]` with the `weight` and `bias` of
 * the current scope. At 480x720 a group holds 12 million values, and a float32 sum over them in
 * one pass (GroupNormalization's function body, and InstanceNormalization, on the CPU) loses about
 * 1e-3 of the mean; so the statistics are reduced one axis at a time (width, height, frames, the
 * group's channels: sums of at most a few hundred values each, equal counts, so the mean of means
 * is the mean) and the variance is taken after subtracting the mean. In float16 or bfloat16 the
 * statistics and the normalization are computed in float32 (cast up, reduce, cast back), as torch
 * does for half inputs: a 16-bit sum over millions of values would be meaningless. The affine
 * scale and shift then apply in the compute dtype. Exported for its test.
 */
export function groupNorm(b: GraphBuilder, x: string, groups: number, epsilon: number): string {
  const shape = b.op("Shape", [x]);
  const upcast = b.computeDType !== "float32";
  const reshaped = b.op("Reshape", [
    x,
    b.op("Concat", [
      b.op("Slice", [shape, b.int64s([0]), b.int64s([1])]),
      b.int64s([groups, -1]),
      b.op("Slice", [shape, b.int64s([2]), b.int64s([5])]),
    ], { axis: 0 }),
  ]);
  const grouped = upcast ? b.op("Cast", [reshaped], { to: ONNX_DTYPES.float32 }) : reshaped;
  const mean = (value: string) => {
    let reduced = value;
    for (const axis of [5, 4, 3, 2]) {
      reduced = b.op("ReduceMean", [reduced, b.int64s([axis])], { keepdims: 1 });
    }
    return reduced;
  };
  const centered = b.op("Sub", [grouped, mean(grouped)]);
  const variance = mean(b.op("Mul", [centered, centered]));
  const normalized = b.op("Div", [
    centered,
    b.op("Sqrt", [b.op("Add", [variance, b.scalar(epsilon, "float32")])]),
  ]);
  const restored = b.op("Reshape", [
    upcast ? b.op("Cast", [normalized], { to: ONNX_DTYPES[b.computeDType] }) : normalized,
    shape,
  ]);
  // Per-channel affine: [C] -> [C, 1, 1, 1] against [B, C, T, H, W].
  const perChannel = (name: string) => b.op("Unsqueeze", [b.weight(name), b.int64s([1, 2, 3])]);
  return b.op("Add", [b.op("Mul", [restored, perChannel("weight")]), perChannel("bias")]);
}

/**
 * `CogVideoXUpsample3D`: nearest 2x upsampling of every frame, and with `compressTime` of time
 * too, except that an odd first frame stays one frame (and one frame stays one); then a 2D 3x3
 * convolution of each frame.
 */
function cogVideoXUpsample3D(b: GraphBuilder, x: string, compressTime: boolean): string {
  let inputs = x;
  if (compressTime) {
    // 2T - odd frames; frame d reads input frame (d + odd) / 2.
    const frames = scalarDim(b, inputs, 2);
    const odd = b.op("Mod", [frames, b.scalar(2, "int64")]);
    const limit = b.op("Sub", [b.op("Mul", [frames, b.scalar(2, "int64")]), odd]);
    const d = b.op("Range", [b.scalar(0, "int64"), limit, b.scalar(1, "int64")]);
    const index = b.op("Div", [b.op("Add", [d, odd]), b.scalar(2, "int64")]);
    inputs = b.op("Gather", [inputs, index], { axis: 2 });
  }
  inputs = upsampleSpace(b, inputs, 2);
  // The nn.Conv2d over frames as a Conv3d with a 1 x kh x kw kernel (no reshape to b * t frames).
  return b.scope("conv", () => {
    const [, , kh, kw] = b.weightRef("weight").shape;
    const weight = b.op("Unsqueeze", [b.weight("weight"), b.int64s([2])]);
    const ph = (kh - 1) >> 1;
    const pw = (kw - 1) >> 1;
    return b.op("Conv", [inputs, weight, b.weight("bias")], { pads: [0, ph, pw, 0, ph, pw] });
  });
}

/**
 * `CogVideoXCausalConv3d` (pad_mode "first"): a temporal kernel of kt frames sees the cache of
 * the previous chunk, or, for the first chunk (no cache, or an empty one), its first frame
 * repeated; the updated cache is the last kt - 1 frames it saw. Spatial padding is zeros, inside
 * the Conv. The convolution waits for its cache slice, or else for `after` when given.
 */
function cogVideoXCausalConv3d(
  b: GraphBuilder,
  x: string,
  stage: Stage,
  after?: string,
): string {
  const [, inChannels, kt, kh, kw] = b.weightRef("conv.weight").shape;
  let inputs = x;
  let cacheOut: string | undefined;
  if (kt > 1) {
    const path = b.path;
    const space = (axis: "height" | "width") =>
      stage.spaceScale === 1 ? `latent_${axis}` : `${stage.spaceScale}*latent_${axis}`;
    const dims = ["batch", inChannels, CACHE_FRAMES, space("height"), space("width")];
    const cache = stage.caches.read(path, dims);
    const firstFrames = () => new Array(kt - 1).fill(slice(b, x, 2, 0, 1));
    // The first kt - 1 frames of [cache, first frame x (kt - 1)]: the cache when there is one.
    let context: string;
    if (cache === undefined) context = b.op("Concat", firstFrames(), { axis: 2 });
    else if (stage.caches.sized) context = cache;
    else context = slice(b, b.op("Concat", [cache, ...firstFrames()], { axis: 2 }), 2, 0, kt - 1);
    inputs = b.op("Concat", [context, inputs], { axis: 2 });
    const padded = inputs;
    stage.caches.write(path, dims, () => (cacheOut = slice(b, padded, 2, -(kt - 1), TO_END)));
  }
  const pads = [0, kh >> 1, kw >> 1, 0, kh >> 1, kw >> 1];
  return b.scope("conv", () => conv(b, inputs, pads, cacheOut ?? after));
}

/**
 * A zero (shape `[1]`, compute dtype) that ONNX Runtime can compute only after `value`: added to a
 * convolution's bias, it makes the convolution wait for the cache slice of its input. Without it
 * the cache slices, whose only consumers are graph outputs (or the chunk Loop), run at the end of
 * the graph, and every convolution's padded input stays alive until then: 10 GiB at one 240x360
 * tile of 9 frames on the CPU, where the convolutions themselves need about 1 GiB. The zero comes
 * from the value's shape (its frame count times 0), so it is exact whatever the values hold.
 */
function zeroAfter(b: GraphBuilder, value: string): string {
  const frames = b.op("Shape", [value], { start: 2, end: 3 });
  const cast = b.op("Cast", [frames], { to: ONNX_DTYPES[b.computeDType] });
  return b.op("Mul", [cast, b.scalar(0)]);
}

/**
 * The shape of an empty (first-chunk) cache for the cache input declared with `dims`, decoding
 * latents of `latentShape` `[batch, channels, frames, height, width]`.
 */
export function emptyConvCacheShape(
  dims: readonly (number | string)[],
  latentShape: readonly number[],
): number[] {
  return dims.map((d) => {
    if (typeof d === "number") return d;
    if (d === "batch") return latentShape[0];
    if (d === CACHE_FRAMES) return 0;
    const match = /^(?:(\d+)\*)?latent_(height|width)$/.exec(d);
    if (!match) throw new Error(`Unknown dimension "${d}" of a decoder cache input`);
    return Number(match[1] ?? 1) * latentShape[match[2] === "height" ? 3 : 4];
  });
}

/**
 * `nn.Conv3d` under the current scope (`weight`, `bias`); with `after`, it runs only once `after`
 * is computed (see {@link zeroAfter}).
 */
function conv(b: GraphBuilder, x: string, pads: number[], after?: string): string {
  const bias = after === undefined
    ? b.weight("bias")
    : b.op("Add", [b.weight("bias"), zeroAfter(b, after)]);
  return b.op("Conv", [x, b.weight("weight"), bias], { pads });
}

/** `F.interpolate(mode="nearest")` of height and width by an integer factor. */
function upsampleSpace(b: GraphBuilder, x: string, factor: number): string {
  const scales = b.constant("float32", [5], [1, 1, 1, factor, factor]);
  return b.op("Resize", [x, "", scales], {
    mode: "nearest",
    coordinate_transformation_mode: "asymmetric",
    nearest_mode: "floor",
  });
}

/** Dimension `axis` of `x` as an int64 scalar. */
function scalarDim(b: GraphBuilder, x: string, axis: number): string {
  return reshape(b, dim(b, x, axis), []);
}

function toCompute(b: GraphBuilder, x: string): string {
  return b.computeDType === "float32" ? x : b.op("Cast", [x], { to: ONNX_DTYPES[b.computeDType] });
}

function toFloat32(b: GraphBuilder, x: string): string {
  return b.computeDType === "float32" ? x : b.op("Cast", [x], { to: 1 });
}
