/**
 * sequential_offload: the wrapped model runs as parts (embedding, groups of transformer blocks,
 * head; or a VAE decoder's mid block, up blocks, output layers), one part resident at a time, the
 * next part loading in a second worker while the current one runs (diffusers'
 * `enable_sequential_cpu_offload()`, without its synchronous loading).
 *
 * @module
 */

import { z } from "zod";
import { defineNode } from "../engine/mod.ts";
import {
  DEFAULT_BLOCK_PATTERN,
  defineModelHook,
  type ModelHook,
  NoBlocksError,
  type PartsPlan,
  planSplit,
} from "../runtime/mod.ts";
import { modelOfType, modelPort } from "./ports.ts";

/** The data sequential_offload adds to a model handle: how the model runs in parts. */
export interface SequentialOffloadHook extends ModelHook, PartsPlan {
  /** Hook kind. */
  kind: "sequential_offload";
}

/** Run the model in parts (embedding, groups of blocks, head), one part resident at a time. */
export const sequentialOffloadHook = defineModelHook<SequentialOffloadHook>({
  kind: "sequential_offload",
  session: (hook) => ({
    policy: "sequential_offload",
    releaseAfterLastUse: true,
    parts: {
      blocksPerGroup: hook.blocksPerGroup,
      blockPattern: hook.blockPattern,
      prefetch: hook.prefetch,
      prepackWeights: hook.prepackWeights,
      streamWeights: hook.streamWeights,
    },
  }),
});

/** The sequential_offload node type. */
export const sequentialOffload = defineNode({
  type: "sequential_offload",
  version: 1,
  description:
    "Runs a transformer or VAE decoder in parts, one group of blocks resident at a time (wraps models)",
  category: "memory",
  inputs: { model: modelPort().describe("The transformer or VAE decoder to wrap") },
  settings: {
    blocks_per_group: z.number().int().min(1).default(1).describe(
      "Blocks per part (transformer blocks, or a VAE decoder's up blocks): more is faster, fewer is smaller (default 1)",
    ),
    block_pattern: z.string().optional().describe(
      "Regular expression whose first group is a block's index in node names (default: transformer_blocks and up_blocks)",
    ),
    prefetch: z.boolean().default(true).describe(
      "Load the next part in a second worker while the current one runs (default true)",
    ),
    /**
     * Repack part weights at load. `never` (default): fast loads, the same result every run.
     * `always`: the resident model's kernels, bit for bit, but slow loads. `auto`: switches to
     * packed loads mid-run where the prefetch hides them (many cores, long sequences), so the last
     * bits of the result can depend on timing.
     */
    prepack_weights: z.enum(["never", "always", "auto"]).default("never").describe(
      "Repack part weights at load: never (fast, the same result every run), always (slow) or auto (by timing); default never",
    ),
    /**
     * Weight streaming, for models built from safetensors: the parts' sessions hold no weights;
     * each part's weights are read once into (pinned) host memory and copied to the device for
     * its run, and activations stay on the device between parts. Needs ONNX Runtime's C API
     * (the launcher grants it for workflows with provider cuda).
     */
    stream_weights: z.enum(["auto", "on", "off"]).default("auto").describe(
      "Stream a built model's weights from host memory into parts that hold none, activations kept on the device: auto (default, on a GPU provider), on, or off",
    ),
  },
  outputs: {
    model: modelPort().describe("The same model, run in parts with one part resident at a time"),
  },
  hook: { kind: "offload", input: "model", output: "model" },
  async infer(ctx, inputs, settings) {
    const model = modelOfType(inputs.model);
    // A built model is built in parts by module (builders/built_parts.ts): no pattern to check.
    if (!model || model.build) return { model: inputs.model };
    if (settings.block_pattern !== undefined) {
      try {
        new RegExp(settings.block_pattern);
      } catch (error) {
        ctx.error(`Invalid block_pattern: ${(error as Error).message}`, {
          setting: "block_pattern",
        });
        return;
      }
    }
    try {
      await planSplit(model.path, {
        blockPattern: settings.block_pattern,
        blocksPerGroup: settings.blocks_per_group,
      });
    } catch (error) {
      if (!(error instanceof NoBlocksError)) throw error;
      ctx.error(
        `Cannot run model "${model.name}" in parts: no blocks found with pattern "${error.pattern}"${
          settings.block_pattern === undefined
            ? " (the default: CogVideoX transformer blocks and VAE decoder up blocks)"
            : ""
        }; node names look like ${
          error.nodeNames.slice(0, 3).map((name) => `"${name}"`).join(", ")
        }: set block_pattern`,
        { setting: "block_pattern" },
      );
    }
    return { model: inputs.model };
  },
  run: (ctx, { model }, settings) => ({
    model: sequentialOffloadHook.wrap(model, {
      node: ctx.hook?.node ?? ctx.node,
      blocksPerGroup: settings.blocks_per_group,
      blockPattern: settings.block_pattern ?? DEFAULT_BLOCK_PATTERN,
      prefetch: settings.prefetch,
      prepackWeights: settings.prepack_weights,
      streamWeights: settings.stream_weights,
    }),
  }),
});
