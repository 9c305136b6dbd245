/**
 * Batches: a list of prompts makes a batch of videos in one run, as diffusers accepts a list of
 * prompts, with one negative prompt for all or one per prompt.
 *
 * There is no diffusers reference for a batch of two, but one thing is known: diffusers draws one
 * `randn` of shape `[2, ...]` for the whole batch, and for draws of a multiple of 16 elements a
 * larger draw extends a smaller one (see `tests/fixtures/tiny-cogvideox/rng/README.md`). So the
 * first video of a batch starts from the same noise as a single-prompt run with the same seed, and
 * with DDIM (which draws nothing more) ends at the same video, while the second video differs.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { loadWorkflow, runWorkflow } from "../api/mod.ts";
import { readSafetensors } from "../runtime/safetensors.ts";
import type { Tensor } from "../runtime/tensor.ts";
import {
  assertBitEqual,
  assertClose,
  at,
  fixture,
  readCase,
  reference,
  ROOT,
  rows,
  runCli,
  setArgs,
  tensorError,
  withTempDir,
} from "./testing.ts";

const PROMPT = "a red ball rolls across a table";

Deno.test("two prompts make two videos; the first is the single-prompt video of the same seed", async () => {
  const ddim = await readCase("ddim-2b");
  await withTempDir(async (dir) => {
    const tensorsOut = join(dir, "frames.safetensors");
    const { code, stdout, stderr } = await runCli([
      "run",
      "workflows/tiny.yaml",
      "--quiet",
      ...setArgs({
        prompt: [PROMPT, PROMPT],
        negative_prompt: "",
        seed: 0,
        output: join(dir, "video.mp4"),
        tensors_out: tensorsOut,
      }),
    ]);
    assert.equal(code, 0, stderr);
    const written = ["video-0.mp4", "video-0.sheet.png", "video-1.mp4", "video-1.sheet.png"];
    assert.deepEqual(
      stdout.trim().split("\n").sort(),
      [...written.map((name) => `wrote ${join(dir, name)}`), `wrote ${tensorsOut}`].sort(),
    );
    for (const name of written) assert.ok((await Deno.stat(join(dir, name))).size > 0, name);

    const frames = (await readSafetensors(tensorsOut)).tensors.get("frames")!;
    assert.deepEqual(frames.shape, [2, 9, 3, 64, 64]);
    const first = assertClose(rows(frames, 0), reference(ddim, "frames"), "video 0");
    console.log(
      `batch video 0 vs single-prompt diffusers frames: max abs ${
        first.maxAbs.toExponential(2)
      }, relative ${first.relative.toExponential(2)}`,
    );
    // The same prompt, but the second half of the draw: another video.
    assert.ok(tensorError(rows(frames, 1), rows(frames, 0)).maxAbs > 0.1);
  });
});

Deno.test("a batch draws one noise tensor for all videos, whose first part is the single draw", async () => {
  const ddim = await readCase("ddim-2b");
  await withTempDir(async (dir) => {
    const tensorsOut = join(dir, "intermediates.safetensors");
    const workflow = await loadWorkflow(
      join(ROOT, "tests", "workflows", "parity_intermediates.yaml"),
      { params: { prompt: [PROMPT, PROMPT], tensors_out: tensorsOut } },
    );
    const result = await runWorkflow(workflow, { only: ["save", "noise"] });
    const latents = result.outputs.get("noise")!.latents as Tensor;
    assert.deepEqual(latents.shape, [2, 3, 4, 8, 8]);
    const { tensors } = await readSafetensors(fixture("rng", "torch_randn.safetensors"));
    assertBitEqual(latents, tensors.get("seed0_2x3x4x8x8")!, "batch draw");
    assertBitEqual(rows(latents, 0), reference(ddim, "latents_init"), "first video's noise");

    const saved = (await readSafetensors(tensorsOut)).tensors;
    const stepLatents = saved.get("step_latents")!;
    assert.deepEqual(stepLatents.shape, [4, 2, 3, 4, 8, 8]);
    for (let step = 0; step < 4; step++) {
      assertClose(
        rows(at(stepLatents, step), 0),
        reference(ddim, `latents_step_${step}`),
        `video 0 after step ${step}`,
      );
    }
  });
});

Deno.test("a batch takes one negative prompt per prompt", async () => {
  const dpm = await readCase("dpm-5b-dynamic-cfg");
  const args = dpm.json.pipeline_args;
  await withTempDir(async (dir) => {
    const tensorsOut = join(dir, "intermediates.safetensors");
    const workflow = await loadWorkflow(
      join(ROOT, "tests", "workflows", "parity_intermediates.yaml"),
      {
        params: {
          model: fixture("5b"),
          prompt: [PROMPT, args.prompt],
          negative_prompt: ["", args.negative_prompt],
          scheduler: "dpm",
          seed: 42,
          steps: 2,
          tensors_out: tensorsOut,
        },
      },
    );
    await runWorkflow(workflow);
    const saved = (await readSafetensors(tensorsOut)).tensors;
    assert.deepEqual(saved.get("prompt_embeds")!.shape, [2, 16, 32]);
    assert.deepEqual(saved.get("negative_prompt_embeds")!.shape, [2, 16, 32]);
    assert.deepEqual(saved.get("step_latents")!.shape, [2, 2, 3, 4, 8, 8]);
    // Each prompt is encoded with its own negative prompt: the second pair is the dpm case's.
    assertClose(
      rows(saved.get("negative_prompt_embeds")!, 1),
      reference(dpm, "negative_prompt_embeds"),
      "second negative prompt",
    );
    assertClose(rows(saved.get("prompt_embeds")!, 1), reference(dpm, "prompt_embeds"), "prompt");
  });
});
