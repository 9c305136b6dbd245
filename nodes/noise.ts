/**
 * noise: the initial latents from a seed, bit-identical to
 * `torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))`, and the generator's
 * state, so that a scheduler that draws more noise (DPM) continues the same stream.
 *
 * @module
 */

import { z } from "zod";
import { defineNode, tensorPort, UserError } from "../engine/mod.ts";
import { TorchGenerator } from "../diffusion/torch_generator.ts";
import { generatorPort, latentsPort, modelOfType, modelPort } from "./ports.ts";
import { latentGeometry } from "./video_geometry.ts";

const MAX_SEED = 2n ** 64n - 1n;

/** The seed setting: an integer from 0 to 2^64 - 1 (a number or, above 2^53, a bigint). */
export const seedSetting = z.union([
  z.number().int().min(0),
  z.bigint().min(0n).max(MAX_SEED),
]);

/** The noise node type. */
export const noise = defineNode({
  type: "noise",
  version: 1,
  description:
    "Initial latents from a seed, as torch.randn with a CPU generator (same seed, same noise)",
  category: "sampling",
  inputs: {
    transformer: modelPort("transformer"),
    vae: modelPort("vae"),
    prompt_embeds: tensorPort({ dtype: "float32", rank: 3 }),
  },
  settings: {
    seed: seedSetting,
    num_frames: z.number().int().min(1).default(49),
    height: z.number().int().min(1).default(480),
    width: z.number().int().min(1).default(720),
  },
  outputs: { latents: latentsPort(), generator: generatorPort() },
  infer(ctx, inputs, settings) {
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
    const batch = inputs.prompt_embeds?.shape?.[0] ?? null;
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
