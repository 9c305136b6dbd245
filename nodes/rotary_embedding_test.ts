import assert from "node:assert/strict";
import type { Tensor } from "../runtime/tensor.ts";
import { assertClose, outputsOf, readCase, reference, runYaml } from "../tests/testing.ts";

/** Rotary tables for the latents of the dpm-5b case, with the transformer of `model`. */
function rotaryWorkflow(model: string): string {
  return `
cogflow: 1
name: rotary_embedding_test
nodes:
  pipe: { type: load_pipeline, with: { path: ${model} } }
  latents:
    type: load_tensor
    with: { path: cases/dpm-5b-dynamic-cfg/tensors.safetensors, name: latents_init }
  rotary:
    type: rotary_embedding
    in: { transformer: pipe.transformer, vae: pipe.vae, latents: latents }
`;
}

Deno.test("rotary_embedding gives the 5b transformer diffusers' cos and sin tables", async () => {
  const run = await runYaml(rotaryWorkflow("5b"), { only: ["rotary"] });
  const { cos, sin } = outputsOf(run, "rotary") as { cos: Tensor; sin: Tensor };
  const dpm = await readCase("dpm-5b-dynamic-cfg");
  // 3 latent frames of 4 x 4 patches, 16 values per token.
  assert.deepEqual(cos.shape, [48, 16]);
  assert.deepEqual(sin.shape, [48, 16]);
  assertClose(cos, reference(dpm, "image_rotary_emb_cos"), "cos");
  assertClose(sin, reference(dpm, "image_rotary_emb_sin"), "sin");
});

Deno.test("rotary_embedding outputs nothing for a 2b transformer, which has no rotary inputs", async () => {
  const run = await runYaml(rotaryWorkflow("2b"), { only: ["rotary"] });
  assert.deepEqual(outputsOf(run, "rotary"), { cos: undefined, sin: undefined });
});

Deno.test("rotary_embedding sizes the tables by the latents: one row per video token", async () => {
  const run = await runYaml(
    `
cogflow: 1
name: rotary_embedding_test
nodes:
  pipe: { type: load_pipeline, with: { path: 5b } }
  embeds:
    type: load_tensor
    with: { path: cases/dpm-5b-dynamic-cfg/tensors.safetensors, name: prompt_embeds }
  noise:
    type: noise
    in: { transformer: pipe.transformer, vae: pipe.vae, prompt_embeds: embeds }
    with: { seed: 0, num_frames: 13, height: 48, width: 80 }
  rotary:
    type: rotary_embedding
    in: { transformer: pipe.transformer, vae: pipe.vae, latents: noise.latents }
`,
    { only: ["rotary"] },
  );
  const { cos, sin } = outputsOf(run, "rotary") as { cos: Tensor; sin: Tensor };
  // 4 latent frames of 6 x 10 latents, in patches of 2 x 2: 4 * 3 * 5 tokens.
  assert.deepEqual(cos.shape, [60, 16]);
  assert.deepEqual(sin.shape, [60, 16]);
});
