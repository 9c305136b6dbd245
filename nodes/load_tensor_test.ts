import assert from "node:assert/strict";
import { join } from "node:path";
import { parseWorkflow } from "../api/mod.ts";
import type { Tensor } from "../runtime/tensor.ts";
import {
  assertBitEqual,
  FIXTURES,
  outputsOf,
  readCase,
  reference,
  runYaml,
  validationErrors,
  withTempDir,
} from "../tests/testing.ts";

function loadWorkflow(settings: string): string {
  return `
cogflow: 1
name: load_tensor_test
nodes:
  tensor: { type: load_tensor, with: ${settings} }
`;
}

Deno.test("load_tensor reads a tensor by name, its dtype and shape known at validation", async () => {
  const workflow = loadWorkflow(
    "{ path: cases/dpm-5b-dynamic-cfg/tensors.safetensors, name: noise_step_1 }",
  );
  const validated = await parseWorkflow(workflow, { dir: FIXTURES });
  assert.deepEqual(validated.graph.nodes.get("tensor")!.outputTypes.get("tensor"), {
    kind: "tensor",
    dtype: "float32",
    shape: [2, 1, 3, 4, 8, 8],
  });
  const run = await runYaml(workflow, { only: ["tensor"] });
  const dpm = await readCase("dpm-5b-dynamic-cfg");
  assertBitEqual(
    outputsOf(run, "tensor").tensor as Tensor,
    reference(dpm, "noise_step_1"),
    "noise_step_1",
  );
});

Deno.test("load_tensor needs a name for a file of several tensors, and one the file has", async () => {
  const file = "cases/ddim-2b/tensors.safetensors";
  const [several] = await validationErrors(loadWorkflow(`{ path: ${file} }`));
  assert.match(
    several,
    /nodes\.tensor: Node "tensor": ".*ddim-2b\/tensors\.safetensors" holds \d+ tensors \(input_ids, negative_input_ids, .*\): set `name`$/,
  );
  const [unknown] = await validationErrors(loadWorkflow(`{ path: ${file}, name: latents }`));
  assert.match(
    unknown,
    /nodes\.tensor: Node "tensor": ".*ddim-2b\/tensors\.safetensors" has no tensor "latents" \(it has input_ids, .*\)$/,
  );
});

Deno.test("load_tensor of a missing or corrupt file is a validation error", async () => {
  await withTempDir(async (dir) => {
    const corrupt = join(dir, "corrupt.npy");
    await Deno.writeTextFile(corrupt, "not numpy");
    assert.deepEqual(
      (await validationErrors(loadWorkflow(`{ path: "${corrupt}" }`)))
        .map((error) => error.replace(/^.*?nodes\./, "nodes.")),
      [
        `nodes.tensor: Node "tensor": Cannot read a tensor from "${corrupt}": Invalid npy file "${corrupt}": missing the "\\x93NUMPY" magic`,
      ],
    );
    const missing = join(dir, "missing.safetensors");
    const [error] = await validationErrors(loadWorkflow(`{ path: "${missing}" }`));
    assert.ok(
      error.includes(`Node "tensor": Cannot read tensors from "${missing}": `),
      error,
    );
  });
});
