/**
 * load_tensor: one tensor from a `.safetensors` or `.npy` file, with its dtype and shape known at
 * validation time.
 *
 * @module
 */

import { z } from "zod";
import { defineNode, inputPath, tensorPort, UserError } from "../engine/mod.ts";
import { readNpy, readSafetensors, type Tensor } from "../runtime/mod.ts";

/** The load_tensor node type. */
export const loadTensor = defineNode({
  type: "load_tensor",
  version: 1,
  description: "Loads one tensor from a .safetensors file (by name) or a .npy file",
  category: "input",
  inputs: {},
  settings: {
    path: inputPath().describe(
      "The .safetensors or .npy file, told apart by extension (relative to the workflow's folder)",
    ),
    name: z.string().optional().describe(
      "Safetensors only: the tensor's name in the file (default: the file's only tensor)",
    ),
  },
  outputs: { tensor: tensorPort().describe("The tensor, with the dtype and shape of the file") },
  async infer(_ctx, _inputs, { path, name }) {
    const tensor = await readTensor(path, name);
    return { tensor: { kind: "tensor", dtype: tensor.dtype, shape: tensor.shape } };
  },
  async run(ctx, _inputs, { path, name }) {
    const tensor = await readTensor(path, name);
    await ctx.dependsOnFile(path);
    return { tensor };
  },
});

async function readTensor(path: string, name: string | undefined): Promise<Tensor> {
  if (path.toLowerCase().endsWith(".npy")) {
    try {
      return await readNpy(path);
    } catch (error) {
      throw new UserError(`Cannot read a tensor from "${path}": ${(error as Error).message}`);
    }
  }
  let content;
  try {
    content = await readSafetensors(path);
  } catch (error) {
    throw new UserError(`Cannot read tensors from "${path}": ${(error as Error).message}`);
  }
  const names = [...content.tensors.keys()];
  if (name === undefined) {
    if (names.length === 1) return content.tensors.get(names[0])!;
    throw new UserError(
      `"${path}" holds ${names.length} tensors (${names.slice(0, 8).join(", ")}): set \`name\``,
    );
  }
  const tensor = content.tensors.get(name);
  if (!tensor) {
    throw new UserError(
      `"${path}" has no tensor "${name}" (it has ${names.slice(0, 8).join(", ")})`,
    );
  }
  return tensor;
}
