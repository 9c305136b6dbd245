import assert from "node:assert/strict";
import { join } from "node:path";
import { parseWorkflow } from "../api/mod.ts";
import { encodeSafetensors, readSafetensors } from "../runtime/safetensors.ts";
import { createTensor, type Tensor } from "../runtime/tensor.ts";
import {
  assertBitEqual,
  fixture,
  FIXTURES,
  outputsOf,
  runYaml,
  validationErrors,
  withTempDir,
} from "../tests/testing.ts";
import type { GeneratorState } from "./ports.ts";

/** A workflow drawing initial latents with `settings`, for the prompt embeddings in a file. */
function noiseWorkflow(embeds: string, model: string, settings: string): string {
  return `
cogflow: 1
name: noise_test
nodes:
  pipe: { type: load_pipeline, with: { path: ${model} } }
  embeds: { type: load_tensor, with: { path: "${embeds}", name: prompt_embeds } }
  noise:
    type: noise
    in: { transformer: pipe.transformer, vae: pipe.vae, prompt_embeds: embeds }
    with: ${settings}
`;
}

/** Writes zero prompt embeddings `[batch, 16, 32]` (the noise node reads only the batch). */
async function writeEmbeds(dir: string, batch: number): Promise<string> {
  const path = join(dir, `embeds_${batch}.safetensors`);
  const embeds = createTensor("float32", [batch, 16, 32]);
  await Deno.writeFile(path, encodeSafetensors([["prompt_embeds", embeds]]));
  return path;
}

async function torchRandn(name: string): Promise<Tensor> {
  const { tensors } = await readSafetensors(fixture("rng", "torch_randn.safetensors"));
  return tensors.get(name)!;
}

Deno.test("noise draws torch.randn of the latent shape from the seed, and hands on the generator", async () => {
  await withTempDir(async (dir) => {
    const run = await runYaml(
      noiseWorkflow(
        await writeEmbeds(dir, 1),
        "2b",
        "{ seed: 42, num_frames: 9, height: 64, width: 64 }",
      ),
      { only: ["noise"] },
    );
    const { latents, generator } = outputsOf(run, "noise");
    assertBitEqual(latents as Tensor, await torchRandn("seed42_1x3x4x8x8"), "latents");
    assert.deepEqual((latents as Tensor).shape, [1, 3, 4, 8, 8]);
    assert.deepEqual(generator as GeneratorState, {
      kind: "torch_generator",
      seed: "42",
      draws: [[1, 3, 4, 8, 8]],
    });
  });
});

Deno.test("noise uses only the low 32 bits of a seed, as torch does", async () => {
  await withTempDir(async (dir) => {
    const run = await runYaml(
      noiseWorkflow(
        await writeEmbeds(dir, 1),
        "2b",
        "{ seed: 1099511627781, num_frames: 9, height: 64, width: 64 }",
      ),
      { only: ["noise"] },
    );
    const { latents } = outputsOf(run, "noise");
    assertBitEqual(latents as Tensor, await torchRandn("seed1099511627781_1x3x4x8x8"), "latents");
  });
});

Deno.test("noise takes its shape from num_frames, height, width and the batch of prompt_embeds", async () => {
  await withTempDir(async (dir) => {
    // The 5b transformer takes any latent size: 13 frames of 48 x 80 are 4 latent frames of 6 x 10.
    const workflow = noiseWorkflow(
      await writeEmbeds(dir, 2),
      "5b",
      "{ seed: 0, num_frames: 13, height: 48, width: 80 }",
    );
    const validated = await parseWorkflow(workflow, { dir: FIXTURES });
    assert.deepEqual(
      validated.graph.nodes.get("noise")!.outputTypes.get("latents")?.shape,
      [2, 4, 4, 6, 10],
    );
    const run = await runYaml(workflow, { only: ["noise"] });
    const latents = outputsOf(run, "noise").latents as Tensor;
    assert.deepEqual(latents.shape, [2, 4, 4, 6, 10]);
  });
});

Deno.test("noise refuses sizes the VAE and the patch size cannot take, naming each setting", async () => {
  const errors = await validationErrors(
    noiseWorkflow(
      "cases/ddim-2b/tensors.safetensors",
      "2b",
      "{ seed: 0, num_frames: 10, height: 60, width: 72 }",
    ),
  );
  assert.deepEqual(errors.map((error) => error.replace(/^.*?nodes\./, "nodes.")), [
    "nodes.noise.with.num_frames: num_frames 10 does not fit the VAE's temporal compression 4: use 4 * k + 1 frames, such as 9 or 13",
    "nodes.noise.with.height: height 60 is not a multiple of 16 (VAE factor 8 x patch size 2)",
    "nodes.noise.with.width: width 72 is not a multiple of 16 (VAE factor 8 x patch size 2)",
  ]);
});
