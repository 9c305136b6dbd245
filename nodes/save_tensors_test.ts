import assert from "node:assert/strict";
import { join } from "node:path";
import { readNpy } from "../runtime/npy.ts";
import { readSafetensors } from "../runtime/safetensors.ts";
import type { Tensor } from "../runtime/tensor.ts";
import {
  assertBitEqual,
  fileNames,
  outputsOf,
  readCase,
  reference,
  runFailure,
  runYaml,
  validationErrors,
  withTempDir,
} from "../tests/testing.ts";

/** Saves tensors of the ddim-2b case, each loaded by a load_tensor node named after it. */
function saveWorkflow(names: string[], settings: string): string {
  const loads = names.map((name) =>
    `  ${name}: { type: load_tensor, with: { path: cases/ddim-2b/tensors.safetensors, name: ${name} } }`
  );
  const inputs = names.map((name) => `${name}: ${name}`).join(", ");
  return `
cogflow: 1
name: save_tensors_test
nodes:
${loads.join("\n")}
  save: { type: save_tensors, in: { ${inputs} }, with: ${settings} }
`;
}

Deno.test("save_tensors writes tensors of any dtype to .safetensors under their input names", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "out", "tensors.safetensors");
    const names = ["input_ids", "latents_init", "timesteps"];
    const run = await runYaml(
      saveWorkflow(names, `{ path: "${path}", metadata: { case: ddim-2b } }`),
      { only: ["save"] },
    );
    assert.equal(outputsOf(run, "save").path, path);
    assert.deepEqual(run.result.files, [path]);

    const saved = await readSafetensors(path);
    assert.deepEqual([...saved.tensors.keys()], names);
    assert.deepEqual(saved.metadata, { case: "ddim-2b" });
    const ddim = await readCase("ddim-2b");
    for (const name of names) {
      assertBitEqual(saved.tensors.get(name)!, reference(ddim, name), name);
    }
  });
});

Deno.test("save_tensors writes one tensor to .npy, and load_tensor reads it back", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "latents.npy");
    await runYaml(saveWorkflow(["latents_init"], `{ path: "${path}" }`), { only: ["save"] });
    const ddim = await readCase("ddim-2b");
    assertBitEqual(await readNpy(path), reference(ddim, "latents_init"), "npy");

    const run = await runYaml(
      `
cogflow: 1
name: save_tensors_test
nodes:
  latents: { type: load_tensor, with: { path: "${path}" } }
`,
      { only: ["latents"] },
    );
    const tensor = outputsOf(run, "latents").tensor as Tensor;
    assert.deepEqual(tensor.shape, [1, 3, 4, 8, 8]);
    assertBitEqual(tensor, reference(ddim, "latents_init"), "round trip");
  });
});

Deno.test("save_tensors refuses two tensors for one .npy file, and nothing to save", async () => {
  assert.deepEqual(
    (await validationErrors(saveWorkflow(["input_ids", "timesteps"], "{ path: out.npy }")))
      .map((error) => error.replace(/^.*?nodes\./, "nodes.")),
    ["nodes.save.with.path: A .npy file holds one tensor, but 2 are connected: use .safetensors"],
  );
  const errors = await validationErrors(saveWorkflow([], "{ path: out.safetensors }"));
  assert.deepEqual(errors.map((error) => error.replace(/^.*?nodes\./, "nodes.")), [
    "nodes.save: save_tensors needs at least one tensor input, e.g. `in: { frames: decode.frames }`",
  ]);
});

Deno.test("save_tensors keeps an existing file unless if_exists says otherwise", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "ids.safetensors");
    await runYaml(saveWorkflow(["input_ids"], `{ path: "${path}" }`), { only: ["save"] });
    const failure = await runFailure(saveWorkflow(["timesteps"], `{ path: "${path}" }`));
    assert.equal(
      failure.message,
      `Node "save" (save_tensors) failed: Output "${path}" already exists: set if_exists to "overwrite" or "increment" to write anyway`,
    );
    assert.deepEqual([...(await readSafetensors(path)).tensors.keys()], ["input_ids"]);

    const run = await runYaml(
      saveWorkflow(["timesteps"], `{ path: "${path}", if_exists: increment }`),
      { only: ["save"] },
    );
    assert.equal(outputsOf(run, "save").path, join(dir, "ids-1.safetensors"));
    await runYaml(saveWorkflow(["timesteps"], `{ path: "${path}", if_exists: overwrite }`), {
      only: ["save"],
    });
    assert.deepEqual([...(await readSafetensors(path)).tensors.keys()], ["timesteps"]);
  });
});

Deno.test("save_tensors refuses at validation a path under a file or an existing folder to overwrite", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "notes.txt");
    await Deno.writeTextFile(file, "a file");
    const under = join(file, "ids.safetensors");
    assert.deepEqual(
      (await validationErrors(saveWorkflow(["input_ids"], `{ path: "${under}" }`)))
        .map((error) => error.replace(/^.*?nodes\./, "nodes.")),
      [`nodes.save.with.path: Cannot write output "${under}": "${file}" is a file, not a folder`],
    );
    const folder = join(dir, "ids.safetensors");
    await Deno.mkdir(folder);
    assert.deepEqual(
      (await validationErrors(
        saveWorkflow(["input_ids"], `{ path: "${folder}", if_exists: overwrite }`),
      )).map((error) => error.replace(/^.*?nodes\./, "nodes.")),
      [
        `nodes.save.with.path: Output "${folder}" is an existing folder: choose another path or remove it yourself`,
      ],
    );
    assert.deepEqual(await fileNames(folder), []);
  });
});
