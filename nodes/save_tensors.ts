/**
 * save_tensors: writes any tensors to a `.safetensors` file (or one tensor to `.npy`), losslessly
 * and atomically, under the names of its input ports.
 *
 * @module
 */

import { z } from "zod";
import { defineNode, outputPath, pathPort, tensorPort } from "../engine/mod.ts";
import { encodeNpy } from "../runtime/npy.ts";
import { ifExistsSetting, outputPathProblem, writeOutput } from "../runtime/output_target.ts";
import { encodeSafetensors } from "../runtime/safetensors.ts";

/** The save_tensors node type. */
export const saveTensors = defineNode({
  type: "save_tensors",
  version: 1,
  description: "Saves tensors to .safetensors (by input name) or a single tensor to .npy",
  category: "output",
  inputs: {},
  variadicInputs: tensorPort(),
  settings: {
    path: outputPath(),
    format: z.enum(["auto", "safetensors", "npy"]).default("auto"),
    if_exists: ifExistsSetting,
    metadata: z.record(z.string(), z.string()).default({}),
  },
  outputs: { path: pathPort() },
  output: true,
  async infer(ctx, inputs, settings) {
    const count = Object.keys(inputs).length;
    if (count === 0) {
      ctx.error(
        "save_tensors needs at least one tensor input, e.g. `in: { frames: decode.frames }`",
      );
    }
    if (formatOf(settings.path, settings.format) === "npy" && count > 1) {
      ctx.error(`A .npy file holds one tensor, but ${count} are connected: use .safetensors`, {
        setting: "path",
      });
    }
    const problem = await outputPathProblem(settings.path, settings.if_exists);
    if (problem) ctx.error(problem, { setting: "path" });
  },
  async run(ctx, inputs, { path, format, if_exists, metadata }) {
    const tensors = Object.entries(inputs);
    const bytes = formatOf(path, format) === "npy"
      ? encodeNpy(tensors[0][1])
      : encodeSafetensors(tensors, metadata);
    const written = await writeOutput(
      path,
      if_exists,
      (temporary) => Deno.writeFile(temporary, bytes, { createNew: true }),
      { signal: ctx.signal },
    );
    await ctx.dependsOnFile(written);
    return { path: written };
  },
});

function formatOf(path: string, format: "auto" | "safetensors" | "npy"): "safetensors" | "npy" {
  if (format !== "auto") return format;
  return path.toLowerCase().endsWith(".npy") ? "npy" : "safetensors";
}
