/**
 * How a video's size maps to latents for a CogVideoX pipeline: the VAE's temporal and spatial
 * compression and the transformer's channels and patch size, read from the models' configs, with
 * the errors a user needs when a size does not fit.
 *
 * @module
 */

import type { ModelHandle } from "../runtime/model_handle.ts";

/** A video size in frames and pixels. */
export interface VideoSize {
  /** Frames. */
  numFrames: number;
  /** Height in pixels. */
  height: number;
  /** Width in pixels. */
  width: number;
}

/** The latent grid of a video. */
export interface LatentGeometry {
  /** Latent frames: `(numFrames - 1) / temporalCompression + 1`. */
  frames: number;
  /** Latent channels (the transformer's `in_channels`). */
  channels: number;
  /** Latent height: `height / spatialCompression`. */
  height: number;
  /** Latent width. */
  width: number;
  /** Frames per latent frame (the VAE's `temporal_compression_ratio`). */
  temporalCompression: number;
  /** Pixels per latent (`2 ** (len(block_out_channels) - 1)`). */
  spatialCompression: number;
}

/** The VAE's temporal compression (`temporal_compression_ratio`, 4 for CogVideoX). */
export function temporalCompressionOf(vae: ModelHandle): number {
  const ratio = vae.config.temporal_compression_ratio;
  return typeof ratio === "number" && ratio >= 1 ? ratio : 4;
}

/** The VAE's spatial compression: `2 ** (len(block_out_channels) - 1)`, 8 for CogVideoX. */
export function spatialCompressionOf(vae: ModelHandle): number {
  const channels = vae.config.block_out_channels;
  return Array.isArray(channels) && channels.length > 0 ? 2 ** (channels.length - 1) : 8;
}

/** The VAE's `block_out_channels` (diffusers' default, CogVideoX's, when missing or not numbers). */
export function blockOutChannelsOf(vae: ModelHandle): number[] {
  const channels = vae.config.block_out_channels;
  return Array.isArray(channels) && channels.every((c) => typeof c === "number")
    ? channels
    : [128, 256, 256, 512];
}

/** The VAE's `layers_per_block` (3, CogVideoX's, when missing). */
export function layersPerBlockOf(vae: ModelHandle): number {
  const layers = vae.config.layers_per_block;
  return typeof layers === "number" ? layers : 3;
}

/** The VAE's `scaling_factor` (latents are divided by it before decoding). */
export function scalingFactorOf(vae: ModelHandle): number {
  const factor = vae.config.scaling_factor;
  return typeof factor === "number" && factor > 0 ? factor : 1.15258426;
}

/**
 * The latent grid of a video, or the problems that prevent it (each naming the setting at fault:
 * `num_frames`, `height` or `width`).
 */
export function latentGeometry(
  size: VideoSize,
  transformer: ModelHandle,
  vae: ModelHandle,
): { geometry: LatentGeometry; problems?: undefined } | {
  problems: { setting: string; message: string }[];
} {
  const temporalCompression = temporalCompressionOf(vae);
  const spatialCompression = spatialCompressionOf(vae);
  const patch = typeof transformer.config.patch_size === "number"
    ? transformer.config.patch_size
    : 1;
  const channelsConfig = transformer.config.in_channels;
  const channels = typeof channelsConfig === "number" ? channelsConfig : 16;
  const problems: { setting: string; message: string }[] = [];
  if ((size.numFrames - 1) % temporalCompression !== 0) {
    const lower = Math.floor((size.numFrames - 1) / temporalCompression) * temporalCompression + 1;
    problems.push({
      setting: "num_frames",
      message:
        `num_frames ${size.numFrames} does not fit the VAE's temporal compression ${temporalCompression}: use ${temporalCompression} * k + 1 frames, such as ${lower} or ${
          lower + temporalCompression
        }`,
    });
  }
  const multiple = spatialCompression * patch;
  for (const [setting, value] of [["height", size.height], ["width", size.width]] as const) {
    if (value % multiple !== 0) {
      problems.push({
        setting,
        message:
          `${setting} ${value} is not a multiple of ${multiple} (VAE factor ${spatialCompression} x patch size ${patch})`,
      });
    }
  }
  if (problems.length > 0) return { problems };
  return {
    geometry: {
      frames: (size.numFrames - 1) / temporalCompression + 1,
      channels,
      height: size.height / spatialCompression,
      width: size.width / spatialCompression,
      temporalCompression,
      spatialCompression,
    },
  };
}
