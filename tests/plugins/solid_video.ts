/**
 * A benign plugin for the sandbox tests: a small solid-colour video tensor, for save_video.
 *
 * @module
 */

import { z } from "zod";
import { createTensor, defineNode, tensorPort } from "../../mod.ts";

/** A `[1, frames, 3, height, width]` video of one grey level. */
export const solidVideoNode = defineNode({
  type: "solid_video",
  version: 1,
  description: "Makes a solid-colour video tensor",
  inputs: {},
  settings: {
    frames: z.number().int().positive().default(2),
    size: z.number().int().positive().default(8),
    level: z.number().min(0).max(1).default(0.5),
  },
  outputs: { frames: tensorPort({ dtype: "float32", rank: 5 }) },
  run: (_ctx, _inputs, { frames, size, level }) => {
    const shape = [1, frames, 3, size, size];
    const data = new Float32Array(frames * 3 * size * size).fill(level);
    return { frames: createTensor("float32", shape, data) };
  },
});
