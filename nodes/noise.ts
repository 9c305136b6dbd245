/**
 * noise: the initial latents from a seed, bit-identical to
 * `torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))`, and the generator's
 * state, so that a scheduler that draws more noise (DPM) continues the same stream.
 *
 * @module
 */

import { z } from "zod";
import { defineNode, type InferContext, tensorPort, UserError } from "../engine/mod.ts";
import { float32Bytes, formatBytes } from "../runtime/mod.ts";
import { TorchGenerator } from "../diffusion/mod.ts";
import { generatorPort, latentsPort, modelOfType, modelPort } from "./ports.ts";
import { latentGeometry } from "./video_geometry.ts";

const MAX_SEED = 2n ** 64n - 1n;

/** The seed setting: an integer from 0 to 2^64 - 1 (a number or, above 2^53, a bigint). */
export const seedSetting = z.union([
  z.number().int().min(0),
  z.bigint().min(0n).max(MAX_SEED),
]);

/** The largest height or width in pixels: CogVideoX makes 480 x 720 (1.5: 768 x 1360). */
export const MAX_VIDEO_SIDE = 8192;
/** The most frames a video may have: CogVideoX makes 49 (1.5: 81). */
export const MAX_VIDEO_FRAMES = 1025;

/**
 * Refuses sizes past {@link MAX_VIDEO_SIDE} and {@link MAX_VIDEO_FRAMES}, saying what the decoded
 * frames alone would take. A run's memory estimate refuses smaller sizes that cannot fit, where the
 * machine's memory is known.
 */
function withinVideoBounds(
  ctx: InferContext,
  settings: { num_frames: number; height: number; width: number },
  batch: number,
): boolean {
  const frames = [batch, settings.num_frames, 3, settings.height, settings.width];
  const decoded = `the decoded frames [${frames.join(", ")}] float32 alone would need ${
    formatBytes(float32Bytes(frames))
  }`;
  let ok = true;
  for (const setting of ["height", "width"] as const) {
    if (settings[setting] > MAX_VIDEO_SIDE) {
      ok = false;
      ctx.error(
        `${setting} ${
          settings[setting]
        } is more than the ${MAX_VIDEO_SIDE} pixels cogflow takes (${decoded}): lower it`,
        { setting },
      );
    }
  }
  if (settings.num_frames > MAX_VIDEO_FRAMES) {
    ok = false;
    ctx.error(
      `num_frames ${settings.num_frames} is more than the ${MAX_VIDEO_FRAMES} frames cogflow takes (${decoded}): lower it`,
      { setting: "num_frames" },
    );
  }
  return ok;
}

/** The noise node type. */
export const noise = defineNode({
  type: "noise",
  version: 1,
  description:
    "Initial latents from a seed, as torch.randn with a CPU generator (same seed, same noise)",
  category: "sampling",
  inputs: {
    transformer: modelPort("transformer").describe(
      "The transformer: its config gives the latent channels and patch size",
    ),
    vae: modelPort("vae").describe(
      "The VAE: its compression gives the latent frames, height and width",
    ),
    prompt_embeds: tensorPort({ dtype: "float32", rank: 3 }).describe(
      "Prompt embeddings [batch, tokens, width]: one video per batch row",
    ),
  },
  settings: {
    seed: seedSetting.describe(
      "Seed of the CPU generator, 0 to 2^64 - 1: the same seed gives the same noise as torch.manual_seed",
    ),
    num_frames: z.number().int().min(1).default(49).describe(
      "Video frames, a multiple of the VAE's temporal compression plus 1: 4k + 1 for CogVideoX (default 49)",
    ),
    height: z.number().int().min(1).default(480).describe(
      "Video height in pixels, a multiple of the VAE factor times the patch size, e.g. 16 (default 480)",
    ),
    width: z.number().int().min(1).default(720).describe(
      "Video width in pixels, a multiple of the VAE factor times the patch size, e.g. 16 (default 720)",
    ),
  },
  outputs: {
    latents: latentsPort().describe(
      "Standard normal latents [batch, latent frames, channels, latent height, latent width]",
    ),
    generator: generatorPort().describe(
      "The generator after the draw, for a scheduler that draws more noise (DPM)",
    ),
  },
  infer(ctx, inputs, settings) {
    const batch = inputs.prompt_embeds?.shape?.[0] ?? null;
    if (!withinVideoBounds(ctx, settings, typeof batch === "number" ? batch : 1)) return;
    const transformer = modelOfType(inputs.transformer);
    const vae = modelOfType(inputs.vae);
    if (!transformer || !vae) return;
    const result = latentGeometry(
      { numFrames: settings.num_frames, height: settings.height, width: settings.width },
      transformer,
      vae,
    );
    if (result.problems) {
      for (const problem of result.problems) {
        ctx.error(problem.message, { setting: problem.setting });
      }
      return;
    }
    const { frames, channels, height, width } = result.geometry;
    return {
      latents: {
        kind: "tensor",
        dtype: "float32",
        shape: [batch, frames, channels, height, width],
      },
    };
  },
  run(_ctx, { transformer, vae, prompt_embeds }, settings) {
    const result = latentGeometry(
      { numFrames: settings.num_frames, height: settings.height, width: settings.width },
      transformer,
      vae,
    );
    if (result.problems) {
      throw new UserError(result.problems.map((problem) => problem.message).join("; "));
    }
    const { frames, channels, height, width } = result.geometry;
    const shape = [prompt_embeds.shape[0], frames, channels, height, width];
    const generator = new TorchGenerator(settings.seed);
    // CogVideoX schedulers have init_noise_sigma = 1: the latents are the draw itself.
    const latents = generator.randn(shape);
    return {
      latents,
      generator: { kind: "torch_generator" as const, seed: String(settings.seed), draws: [shape] },
    };
  },
});
