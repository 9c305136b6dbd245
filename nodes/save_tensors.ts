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
  variadicInputs: tensorPort().describe(
    "A tensor to save, stored under the name of its input port (any name)",
  ),
  settings: {
    path: outputPath().describe(
      "The file to write: .safetensors, or .npy for one tensor (relative to the current folder)",
    ),
    format: z.enum(["auto", "safetensors", "npy"]).default("auto").describe(
      "File format; auto: npy for a path ending in .npy, else safetensors (default auto)",
    ),
    if_exists: ifExistsSetting.describe(
      "When the file exists: error refuses, overwrite replaces it, increment writes the first free of name-1, name-2, ... (default error)",
    ),
    metadata: z.record(z.string(), z.string()).default({}).describe(
      "Text keys and values for the safetensors header (default none)",
    ),
  },
  outputs: { path: pathPort().describe("The absolute path of the file written") },
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
