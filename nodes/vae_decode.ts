/**
 * vae_decode: latents to video frames in [0, 1], as `CogVideoXPipeline.decode_latents` and the
 * video processor do: permute to channels first, multiply by `1 / scaling_factor`, decode (split
 * as the decode strategies of the VAE's hooks say: per batch element with vae_slicing, in tiles
 * with vae_tiling), then `clamp(x * 0.5 + 0.5, 0, 1)`.
 *
 * A VAE decoder cogflow built (from a downloaded VAE) decodes with its whole-video graph for the
 * latents' number of frames (builders/video_decoder_model.ts): diffusers' temporal chunks all run
 * inside one session run, so a decode is one `run()` per video (per tile, per batch element with
 * the hooks) and the convolution caches never leave the session. That handle's sessions are held
 * for the node (the executor holds the VAE's): under an offload hook they go when it ends. A
 * decoder that takes the caches as inputs but has no build (a one-chunk graph file) runs the chunk
 * loop in JS (diffusion/chunked_vae_decode.ts); an exported ONNX decoder takes all frames at once.
 *
 * @module
 */

import { z } from "zod";
import { defineNode, formatPortType, type InferContext, UserError } from "../engine/mod.ts";
import { chunkedDecode, type ConvCaches } from "../diffusion/mod.ts";
import {
  CONV_CACHE_INPUT_PREFIX,
  CONV_CACHE_OUTPUT_PREFIX,
  emptyConvCacheShape,
} from "../builders/cogvideox_vae_decoder.ts";
import {
  createTensor,
  decodeWithHooks,
  decodingShapesWithHooks,
  estimateDecoding,
  formatShape,
  memoryLimits,
  memoryProblem,
  type ModelHandle,
  type ModelManager,
  permute,
  type Tensor,
} from "../runtime/mod.ts";
import { videoDecoderModel } from "../builders/video_decoder_model.ts";
import { latentsPort, modelOfType, modelPort, videoPort } from "./ports.ts";
import {
  blockOutChannelsOf,
  layersPerBlockOf,
  scalingFactorOf,
  spatialCompressionOf,
  temporalCompressionOf,
} from "./video_geometry.ts";

/** The vae_decode node type. */
export const vaeDecode = defineNode({
  type: "vae_decode",
  version: 1,
  description:
    "Decodes latents into video frames in [0, 1] with the VAE decoder (slicing and tiling by hooks)",
  category: "decoding",
  inputs: {
    model: modelPort("vae").describe(
      "The VAE decoder; vae_slicing and vae_tiling hooks on it change how it decodes",
    ),
    latents: latentsPort().describe(
      "Latents [batch, frames, channels, height, width], from sample",
    ),
  },
  settings: {
    scaling_factor: z.number().positive().optional().describe(
      "Latents are divided by it before decoding (default: the VAE config's scaling_factor, else 1.15258426)",
    ),
  },
  outputs: {
    frames: videoPort().describe("Videos [batch, frames, 3, height, width], float32 in [0, 1]"),
  },
  infer(ctx, inputs) {
    const model = modelOfType(inputs.model);
    const latents = inputs.latents?.shape;
    if (!model || !latents) return;
    const declared = model.signature.inputs[0]?.shape;
    if (!declared || declared.length !== 5) return;
    // The decoder takes [batch, channels, frames, h, w]; latents are [batch, frames, channels, h, w].
    const channelsFirst = [latents[0], latents[2], latents[1], latents[3], latents[4]];
    const mismatch = declared.some((dimension, axis) =>
      axis > 0 && typeof dimension === "number" && typeof channelsFirst[axis] === "number" &&
      dimension !== channelsFirst[axis]
    );
    if (mismatch) {
      const from = ctx.source("latents");
      const decoder = ctx.source("model");
      ctx.error(
        `VAE decoder "${decoder ? `${decoder.node}.${decoder.port}` : model.name}" expects ${
          model.signature.inputs[0].name
        } ${formatShape(declared)} (channels before frames), but "${
          from ? `${from.node}.${from.port}` : "latents"
        }" gives ${
          formatPortType(inputs.latents!)
        } as [batch, frames, channels, height, width] (input "latents" of "${ctx.node}")`,
        { port: "latents" },
      );
      return;
    }
    checkDecodingMemory(ctx, model, latents);
  },
  async run(ctx, { model, latents }, settings) {
    const scale = Math.fround(1 / (settings.scaling_factor ?? scalingFactorOf(model)));
    const z = permute(latents, [0, 2, 1, 3, 4]);
    for (let i = 0; i < z.data.length; i++) z.data[i] = Math.fround(scale * z.data[i]);

    // Progress counts decoder calls: each split a hook makes multiplies them.
    let done = 0;
    let total = 1;
    // On a GPU a built VAE decodes the whole video in one run, its caches staying on the device.
    // On the CPU the chunk loop runs through JS: handing caches over costs only a copy there, and
    // one chunk's activations at a time bound memory (the one-run graph's grow with frames).
    const onCpu = (model.session.executionProviders[0] ?? "cpu") === "cpu";
    const decoder = onCpu ? model : await videoDecoderModel(model, z.shape[2]);
    const decode = async (piece: Tensor<"float32">) => {
      const sample = await runDecoder(ctx.models, decoder, piece, ctx.signal);
      ctx.progress(++done, Math.max(done, total));
      return sample;
    };
    ctx.signal.throwIfAborted();
    // The executor releases the VAE's handle, not this one: the node holds it while it decodes.
    const own = decoder !== model;
    if (own) await ctx.models.retain?.(decoder);
    try {
      const sample = await decodeWithHooks(decoder, z, decode, {
        signal: ctx.signal,
        onPieces: (count) => {
          total *= count;
        },
      });
      return { frames: toFrames(sample) };
    } finally {
      if (own) await ctx.models.release?.(decoder);
    }
  },
});

/** Refuses, before anything runs, a decode that cannot fit the machine or the budget. */
function checkDecodingMemory(
  ctx: InferContext,
  model: ModelHandle,
  latents: readonly (number | string | null)[],
) {
  const known = latents.map((dimension, axis) =>
    typeof dimension === "number" ? dimension : axis === 0 ? 1 : undefined
  );
  if (known.length !== 5 || known.some((dimension) => dimension === undefined)) return;
  const shapes = decodingShapesWithHooks(model, {
    latents: known as number[],
    temporalCompression: temporalCompressionOf(model),
    spatialCompression: spatialCompressionOf(model),
    blockOutChannels: blockOutChannelsOf(model),
    layersPerBlock: layersPerBlockOf(model),
    slicing: false,
  });
  const problem = memoryProblem(estimateDecoding(shapes), memoryLimits(), {
    subject: "Decoding",
    hint: `lower height, width or num_frames, or give fewer prompts${
      shapes.tile ? "" : "; vae_tiling decodes in tiles"
    }`,
  });
  if (problem) ctx.error(problem, { port: "latents" });
}

/**
 * Runs the decoder on `latents` `[batch, channels, frames, h, w]`. A decoder that declares
 * convolution cache inputs (`conv_cache.<module path>`: a built one-chunk graph) decodes in
 * temporal chunks as diffusers' `_decode`, each chunk continuing from the caches the previous one
 * returned; one without (a whole-video graph, {@link videoDecoderModel}, or an exported ONNX
 * decoder) takes all frames in one call.
 */
export async function runDecoder(
  models: ModelManager,
  model: ModelHandle,
  latents: Tensor<"float32">,
  signal: AbortSignal,
): Promise<Tensor<"float32">> {
  const inputName = model.signature.inputs[0]?.name ?? "latent_sample";
  const cacheInputs = model.signature.inputs.filter((input) =>
    input.name.startsWith(CONV_CACHE_INPUT_PREFIX)
  );
  if (cacheInputs.length === 0) {
    const outputs = await models.run(model, { [inputName]: latents }, { signal });
    return decodedSample(model, outputs);
  }
  return await chunkedDecode(latents, async (chunk, caches) => {
    const feeds: Record<string, Tensor> = { [inputName]: chunk };
    for (const input of cacheInputs) {
      const path = input.name.slice(CONV_CACHE_INPUT_PREFIX.length);
      feeds[input.name] = caches?.[path] ??
        createTensor("float32", emptyConvCacheShape(input.shape ?? [], chunk.shape));
    }
    const outputs = await models.run(model, feeds, { signal });
    const next: ConvCaches = {};
    for (const input of cacheInputs) {
      const path = input.name.slice(CONV_CACHE_INPUT_PREFIX.length);
      const cache = outputs[`${CONV_CACHE_OUTPUT_PREFIX}${path}`];
      if (!cache || cache.dtype !== "float32") {
        throw new UserError(
          `VAE decoder "${model.name}" returned no float32 "${CONV_CACHE_OUTPUT_PREFIX}${path}" for its input "${input.name}"`,
        );
      }
      next[path] = cache as Tensor<"float32">;
    }
    return { sample: decodedSample(model, outputs), caches: next };
  }, { signal });
}

function decodedSample(model: ModelHandle, outputs: Record<string, Tensor>): Tensor<"float32"> {
  const sample = outputs[model.signature.outputs[0]?.name ?? "sample"] ?? Object.values(outputs)[0];
  if (!sample || sample.dtype !== "float32" || sample.shape.length !== 5) {
    throw new UserError(
      `VAE decoder "${model.name}" returned no float32 [batch, 3, frames, height, width] video`,
    );
  }
  return sample as Tensor<"float32">;
}

/** `[B, 3, F, H, W]` decoder output to `[B, F, 3, H, W]` frames: `clamp(x * 0.5 + 0.5, 0, 1)`. */
export function toFrames(sample: Tensor<"float32">): Tensor<"float32"> {
  const frames = permute(sample, [0, 2, 1, 3, 4]);
  const data = frames.data;
  for (let i = 0; i < data.length; i++) {
    const value = Math.fround(Math.fround(data[i] * 0.5) + 0.5);
    data[i] = value < 0 ? 0 : value > 1 ? 1 : value;
  }
  return createTensor("float32", frames.shape, data);
}
