/**
 * The memory a run needs at once, estimated at validation from the shapes it will make, against
 * the machine's memory. Nodes refuse, before anything runs, what cannot fit, with the numbers.
 *
 * The estimates are of what must be resident at the same time, not of everything a run makes, and
 * they lean low, so that a run that fits is never refused:
 * - tensors are float32, as the nodes compute them;
 * - model weights are left out (offload hooks decide how much of them is resident). A
 *   budget_offload `max_memory` is a budget for the sessions' weights, as the model manager counts
 *   it: budget_offload checks each model against it, and activations are not held to it;
 * - the transformer: one layer's activations at a time, the hidden states and Q, K, V
 *   `[model batch, sequence, inner dim]`, and the attention scores `[model batch, heads, sequence,
 *   sequence]` when the graph computes attention unfused (`MatMul`, `Softmax`, `MatMul`, as
 *   `torch.onnx.export` writes diffusers' attention), `[model batch, heads, chunk, sequence]`
 *   when it attends in chunks of query rows; a fused attention operator (`MultiHeadAttention` on
 *   CUDA) holds no scores. The softmax's copy of the scores is not counted;
 * - the VAE decoder (diffusers' decodes 2 latent frames at a time, the first chunk 3 when their
 *   number is odd): the decoded frames and their channels-last copy; 6.5 values of the widest
 *   full-resolution tensor of the first chunk (`block_out_channels[1]` channels, 9 frames), and
 *   the causal convolutions' caches (each convolution's last 2 input frames) 3 times when there
 *   is more than one chunk (the chunk's inputs, its outputs and the copies between chunks), once
 *   for one chunk; one tile instead of the whole frame with vae_tiling, one video instead of the
 *   batch with vae_slicing. Measured on the CPU at a real 240x360 tile: 6.33 GiB over the start
 *   for one chunk (the estimate: 6.13), 9.57 GiB for 13 latent frames (8.74), with
 *   `bench/vae_video_decoder_memory.ts`.
 *
 * @module
 */

import { decodedFrames, latentFrameChunks } from "../diffusion/chunked_vae_decode.ts";
import { formatBytes } from "./byte_size.ts";

/** One tensor (or group of tensors) that must be resident at once. */
export interface MemoryTerm {
  /** What it is, for messages: `the attention scores`. */
  what: string;
  /** Its shape. */
  shape: number[];
  /** How many tensors of that shape (Q, K and V are 3). */
  count: number;
  /** Bytes in all. */
  bytes: number;
  /** How the estimate was made, for messages: `unfused attention, one layer at a time`. */
  note?: string;
}

/** An estimate: its terms, largest first, and their sum. */
export interface MemoryEstimate {
  /** What is resident at once, largest first. */
  terms: MemoryTerm[];
  /** The sum of the terms. */
  bytes: number;
}

/** Memory a run may use. */
export interface MemoryLimit {
  /** Bytes. */
  bytes: number;
  /** For messages: `this machine's 24.0 GiB of memory`. */
  what: string;
}

/** How attention is computed: scores held at once, or a fused operator that holds none. */
export type AttentionKind = "unfused" | "fused";

/** The transformer dimensions that set its activations. */
export interface TransformerGeometry {
  /** `num_attention_heads`. */
  heads: number;
  /** `attention_head_dim`. */
  headDim: number;
  /** `patch_size`: latent pixels per token along height and width. */
  patchSize: number;
  /** `patch_size_t`: latent frames per token (CogVideoX 1.5), or 1. */
  patchSizeT: number;
}

/** What {@link estimateSampling} needs: shapes validation already knows. */
export interface SamplingShapes {
  /** Latents `[batch, frames, channels, height, width]`. */
  latents: readonly number[];
  /** Text tokens per prompt (`prompt_embeds` `[batch, tokens, width]`). */
  textTokens: number;
  /** Classifier-free guidance: the transformer runs on twice the batch. */
  guidance: boolean;
  /** The transformer's dimensions. */
  transformer: TransformerGeometry;
  /** How the transformer computes attention. */
  attention: AttentionKind;
  /**
   * Unfused attention only: query rows per attention call when the graph attends in chunks
   * (builders/cogvideox_transformer.ts `attentionQueryChunk`; `MultiHeadAttention` on the CPU
   * counts as unfused, see runtime/onnx_attention.ts `attentionKindOf`). Default: the whole
   * sequence.
   */
  attentionQueryChunk?: number;
  /** Steps whose latents are all kept (`keep_step_latents`), or 0. */
  keptSteps?: number;
}

/** What {@link estimateDecoding} needs. */
export interface DecodingShapes {
  /** Latents `[batch, frames, channels, height, width]`. */
  latents: readonly number[];
  /** Frames per latent frame (`temporal_compression_ratio`). */
  temporalCompression: number;
  /** Pixels per latent (`2 ** (len(block_out_channels) - 1)`). */
  spatialCompression: number;
  /** The VAE's `block_out_channels` (the decoder's, from full resolution down). */
  blockOutChannels: readonly number[];
  /** The VAE's `layers_per_block` (the decoder's up blocks have one more resnet). */
  layersPerBlock: number;
  /** vae_slicing: one video at a time. */
  slicing: boolean;
  /** vae_tiling: the tile size in pixels. */
  tile?: { height: number; width: number };
}

const FLOAT32 = 4;
/**
 * Values of the widest full-resolution size alive at once in a decoder chunk, from measurement
 * (about 4 at once by the graph's order; the rest is ONNX Runtime's arena and its copies).
 */
const DECODER_ACTIVATION_COUNT = 6.5;
/** Frames of a causal convolution's cache. */
const CACHE_FRAMES = 2;

/** Bytes of `count` float32 tensors of `shape`. */
export function float32Bytes(shape: readonly number[], count = 1): number {
  return shape.reduce((product, dimension) => product * dimension, FLOAT32 * count);
}

function term(what: string, shape: number[], count = 1, note?: string): MemoryTerm {
  return { what, shape, count, bytes: float32Bytes(shape, count), ...(note ? { note } : {}) };
}

function estimateOf(terms: MemoryTerm[]): MemoryEstimate {
  const kept = terms.filter((item) => item.bytes > 0).sort((a, b) => b.bytes - a.bytes);
  return { terms: kept, bytes: kept.reduce((sum, item) => sum + item.bytes, 0) };
}

/** The transformer's dimensions from its `config.json`, or undefined when they are not there. */
export function transformerGeometryOf(
  config: Record<string, unknown>,
): TransformerGeometry | undefined {
  const positive = (key: string) => {
    const value = config[key];
    return typeof value === "number" && Number.isInteger(value) && value > 0 ? value : undefined;
  };
  const heads = positive("num_attention_heads");
  const headDim = positive("attention_head_dim");
  if (!heads || !headDim) return undefined;
  return {
    heads,
    headDim,
    patchSize: positive("patch_size") ?? 1,
    patchSizeT: positive("patch_size_t") ?? 1,
  };
}

/** Tokens of the transformer's sequence: text tokens, then one per latent patch. */
export function sequenceLength(
  latents: readonly number[],
  textTokens: number,
  transformer: TransformerGeometry,
): number {
  const [, frames, , height, width] = latents;
  const videoTokens = Math.ceil(frames / transformer.patchSizeT) *
    Math.floor(height / transformer.patchSize) * Math.floor(width / transformer.patchSize);
  return textTokens + videoTokens;
}

/** What one denoising step holds at once (see the module documentation). */
export function estimateSampling(shapes: SamplingShapes): MemoryEstimate {
  const { latents, transformer } = shapes;
  const batch = latents[0] * (shapes.guidance ? 2 : 1);
  const sequence = sequenceLength(latents, shapes.textTokens, transformer);
  const inner = transformer.heads * transformer.headDim;
  const modelLatents = [batch, ...latents.slice(1)];
  const terms = [
    term("the latents", [...latents], 2),
    term("the transformer's input and output", modelLatents, 2),
    term("the hidden states, Q, K and V", [batch, sequence, inner], 4, "one layer at a time"),
  ];
  if (shapes.attention === "unfused") {
    const rows = Math.min(sequence, shapes.attentionQueryChunk ?? sequence);
    const chunked = rows < sequence ? `, ${rows} query rows at a time` : "";
    terms.push(
      term(
        "the attention scores",
        [batch, transformer.heads, rows, sequence],
        1,
        `unfused attention, one layer at a time${chunked}`,
      ),
    );
  }
  if (shapes.keptSteps) {
    terms.push(term("the kept step latents", [shapes.keptSteps, ...latents]));
  }
  return estimateOf(terms);
}

/** What decoding holds at once (see the module documentation). */
export function estimateDecoding(shapes: DecodingShapes): MemoryEstimate {
  const [batch, latentFrames, latentChannels, latentHeight, latentWidth] = shapes.latents;
  const frames = (latentFrames - 1) * shapes.temporalCompression + 1;
  const height = latentHeight * shapes.spatialCompression;
  const width = latentWidth * shapes.spatialCompression;
  const callBatch = shapes.slicing ? 1 : batch;
  const tileHeight = shapes.tile ? Math.min(shapes.tile.height, height) : height;
  const tileWidth = shapes.tile ? Math.min(shapes.tile.width, width) : width;
  const chunks = latentFrameChunks(latentFrames);
  const firstFrames = decodedFrames(chunks[0][1], shapes.temporalCompression);
  const channels = shapes.blockOutChannels;
  const widest = Math.max(channels[0] ?? 0, channels[1] ?? 0);
  const note = [
    `${chunks.length} chunk${chunks.length === 1 ? "" : "s"} of latent frames`,
    shapes.tile ? `${tileHeight} x ${tileWidth} tiles` : "",
    shapes.slicing ? "one video at a time" : "",
  ].filter(Boolean).join(", ");
  const cacheValues = convolutionCacheValues(
    channels,
    shapes.layersPerBlock,
    latentChannels,
    tileHeight / shapes.spatialCompression,
    tileWidth / shapes.spatialCompression,
  );
  return estimateOf([
    term("the decoded frames and their copy", [batch, frames, 3, height, width], 2),
    term(
      "the decoder's activations",
      [callBatch, widest, firstFrames, tileHeight, tileWidth],
      DECODER_ACTIVATION_COUNT,
      note,
    ),
    term(
      "the decoder's convolution caches",
      [callBatch, cacheValues],
      chunks.length > 1 ? 3 : 1,
      "the last 2 input frames of each causal convolution",
    ),
  ]);
}

/**
 * Values per video of CogVideoX's decoder convolution caches (2 frames of each 3x3x3
 * convolution's input) for a latent tile of `height` x `width`: `conv_in`, the mid block's 2
 * resnets, `layersPerBlock + 1` resnets per up block (2 convolutions each; space doubles after
 * every up block but the last), `conv_out`.
 */
export function convolutionCacheValues(
  blockOutChannels: readonly number[],
  layersPerBlock: number,
  latentChannels: number,
  height: number,
  width: number,
): number {
  const reversed = [...blockOutChannels].reverse();
  let scale = 1;
  const at = (channels: number) => channels * CACHE_FRAMES * height * scale * width * scale;
  let values = at(latentChannels) + 4 * at(reversed[0]);
  let previous = reversed[0];
  reversed.forEach((channels, i) => {
    for (let r = 0; r <= layersPerBlock; r++) {
      values += at(r === 0 ? previous : channels) + at(channels);
    }
    previous = channels;
    if (i < reversed.length - 1) scale *= 2;
  });
  return values + at(previous);
}

/**
 * The machine's memory: `Deno.systemMemoryInfo()` where the sys permission allows it, else
 * `/proc/meminfo` where it can be read, else undefined (the CLI's child process may do neither).
 */
export function machineMemory(): MemoryLimit | undefined {
  const bytes = systemMemoryTotal() ?? procMemoryTotal();
  return bytes ? { bytes, what: `this machine's ${formatBytes(bytes)} of memory` } : undefined;
}

function systemMemoryTotal(): number | undefined {
  try {
    const state = Deno.permissions.querySync({ name: "sys", kind: "systemMemoryInfo" }).state;
    if (state !== "granted") return undefined;
    const total = Deno.systemMemoryInfo().total;
    return total > 0 ? total : undefined;
  } catch {
    return undefined;
  }
}

function procMemoryTotal(): number | undefined {
  try {
    const state = Deno.permissions.querySync({ name: "read", path: "/proc/meminfo" }).state;
    if (state !== "granted") return undefined;
    const match = /^MemTotal:\s+(\d+)\s+kB/m.exec(Deno.readTextFileSync("/proc/meminfo"));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** The limits a run must fit: the machine's memory where it can be read, else none. */
export function memoryLimits(): MemoryLimit[] {
  const machine = machineMemory();
  return machine ? [machine] : [];
}

/** Options of {@link memoryProblem}. */
export interface MemoryProblemOptions {
  /** Starts the message: `Sampling`, `Decoding`. */
  subject: string;
  /** What to do about it, after the colon: `lower height, width or num_frames`. */
  hint: string;
}

/**
 * Why `estimate` cannot fit the first of `limits` it exceeds, as a message with the numbers, or
 * undefined when it fits them all.
 */
export function memoryProblem(
  estimate: MemoryEstimate,
  limits: readonly MemoryLimit[],
  options: MemoryProblemOptions,
): string | undefined {
  for (const limit of limits) {
    if (estimate.bytes <= limit.bytes) continue;
    const [largest, ...rest] = estimate.terms;
    const restBytes = rest.reduce((sum, item) => sum + item.bytes, 0);
    const others = restBytes > 0 ? ` and ${formatBytes(restBytes)} for the rest` : "";
    return `${options.subject} needs about ${formatBytes(estimate.bytes)} at once: ${
      formatBytes(largest.bytes)
    } for ${describeTerm(largest)}${others}, more than ${limit.what}: ${options.hint}`;
  }
  return undefined;
}

function describeTerm(item: MemoryTerm): string {
  const count = item.count > 1 ? `${item.count} x ` : "";
  const note = item.note ? `, ${item.note}` : "";
  return `${item.what} (${count}[${item.shape.join(", ")}] float32${note})`;
}
