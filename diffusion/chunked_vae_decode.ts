/**
 * Temporal chunking of the CogVideoX VAE decode, as diffusers' `AutoencoderKLCogVideoX._decode`:
 * the latent frames are decoded two at a time (`num_latent_frames_batch_size`), the first chunk
 * taking the odd remainder too (13 frames: 3, 2, 2, 2, 2, 2), each chunk continuing from the
 * convolution caches the previous one returned, and the decoded chunks are joined along time.
 *
 * This loop runs in JS for a one-chunk decoder graph (its caches cross the session boundary every
 * chunk). A VAE cogflow builds decodes with its whole-video graph instead, which runs the same
 * chunks inside one session run (builders/cogvideox_vae_decoder.ts reads {@link latentFrameChunks}
 * to lay them out).
 *
 * @module
 */

import { allocate, createTensor, type Tensor } from "../runtime/tensor.ts";

/** Convolution caches by module path (`decoder.conv_in`), as one chunk hands them to the next. */
export type ConvCaches = Record<string, Tensor<"float32">>;

/** What decoding one chunk gives. */
export interface DecodedChunk {
  /** The decoded frames `[batch, channels, frames, height, width]`. */
  sample: Tensor<"float32">;
  /** The caches for the next chunk. */
  caches: ConvCaches;
}

/**
 * Decodes one chunk `[batch, channels, frames, h, w]`; `caches` is undefined for the first chunk
 * (diffusers' `conv_cache=None`).
 */
export type RunChunk = (
  chunk: Tensor<"float32">,
  caches: ConvCaches | undefined,
) => Promise<DecodedChunk>;

/** Options of {@link chunkedDecode}. */
export interface ChunkedDecodeOptions {
  /** Latent frames per chunk (diffusers' `num_latent_frames_batch_size`, default 2). */
  framesPerChunk?: number;
  /** Cancels between chunks. */
  signal?: AbortSignal;
  /** Called after each chunk with the chunks done and their number. */
  onChunk?: (done: number, total: number) => void;
}

/**
 * The `[start, end)` latent frame ranges `_decode` decodes together: `max(frames / n, 1)`
 * chunks of `n`, the first one also taking the `frames % n` remainder.
 */
export function latentFrameChunks(frames: number, framesPerChunk = 2): [number, number][] {
  const numBatches = Math.max(Math.floor(frames / framesPerChunk), 1);
  const remainingFrames = frames % framesPerChunk;
  const chunks: [number, number][] = [];
  for (let i = 0; i < numBatches; i++) {
    const startFrame = framesPerChunk * i + (i === 0 ? 0 : remainingFrames);
    const endFrame = framesPerChunk * (i + 1) + remainingFrames;
    chunks.push([startFrame, Math.min(endFrame, frames)]);
  }
  return chunks;
}

/** Video frames the decoder makes of one chunk of `latentFrames` (9 of 3, 8 of 2, 1 of 1). */
export function decodedFrames(latentFrames: number, temporalCompressionRatio: number): number {
  let frames = latentFrames;
  // Each time upsampling doubles the frames, but for an odd first one.
  for (let level = 1; level < temporalCompressionRatio; level *= 2) {
    frames = 2 * frames - (frames % 2);
  }
  return frames;
}

/** Decodes `z` `[batch, channels, frames, h, w]` chunk by chunk, carrying the caches. */
export async function chunkedDecode(
  z: Tensor<"float32">,
  runChunk: RunChunk,
  options: ChunkedDecodeOptions = {},
): Promise<Tensor<"float32">> {
  const chunks = latentFrameChunks(z.shape[2], options.framesPerChunk);
  let caches: ConvCaches | undefined;
  const decoded: Tensor<"float32">[] = [];
  for (const [start, end] of chunks) {
    options.signal?.throwIfAborted();
    const result = await runChunk(sliceFrames(z, start, end), caches);
    decoded.push(result.sample);
    caches = result.caches;
    options.onChunk?.(decoded.length, chunks.length);
  }
  return decoded.length === 1 ? decoded[0] : concatFrames(decoded);
}

/** Frames `start` to `end` (exclusive) of `[batch, channels, frames, ...]`, as a copy. */
export function sliceFrames(
  tensor: Tensor<"float32">,
  start: number,
  end: number,
): Tensor<"float32"> {
  const [batch, channels, frames, ...rest] = tensor.shape;
  const frameSize = rest.reduce((a, b) => a * b, 1);
  const count = end - start;
  const data = allocate("float32", batch * channels * count * frameSize);
  for (let row = 0; row < batch * channels; row++) {
    const from = (row * frames + start) * frameSize;
    data.set(tensor.data.subarray(from, from + count * frameSize), row * count * frameSize);
  }
  return createTensor("float32", [batch, channels, count, ...rest], data);
}

/** Joins `[batch, channels, frames, ...]` tensors along frames (`torch.cat(dim=2)`). */
export function concatFrames(tensors: readonly Tensor<"float32">[]): Tensor<"float32"> {
  const [batch, channels, , ...rest] = tensors[0].shape;
  const trailing = rest.join(",");
  for (const tensor of tensors) {
    if (
      tensor.shape[0] !== batch || tensor.shape[1] !== channels ||
      tensor.shape.slice(3).join(",") !== trailing
    ) {
      throw new RangeError(
        `Cannot join decoded chunks of shapes [${tensor.shape}] and [${tensors[0].shape}]`,
      );
    }
  }
  const frameSize = rest.reduce((a, b) => a * b, 1);
  const frames = tensors.reduce((sum, tensor) => sum + tensor.shape[2], 0);
  const data = allocate("float32", batch * channels * frames * frameSize);
  for (let row = 0; row < batch * channels; row++) {
    let offset = row * frames * frameSize;
    for (const tensor of tensors) {
      const size = tensor.shape[2] * frameSize;
      data.set(tensor.data.subarray(row * size, (row + 1) * size), offset);
      offset += size;
    }
  }
  return createTensor("float32", [batch, channels, frames, ...rest], data);
}
