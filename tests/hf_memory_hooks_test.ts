/**
 * The memory hooks on built models: the tiny Hugging Face pipelines of
 * `tests/fixtures/tiny-cogvideox-hf` run through the CLI with `workflows/tiny.yaml` under
 * `offload=sequential` (the transformer built in parts per block group, the VAE decoder whole),
 * `offload=model` and `offload=budget`, with VAE slicing and tiling, and the text encoder in parts
 * too, and give the frames of `offload=none` bit for bit, within 1e-4 of diffusers' 49 frames.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { readSafetensors } from "../runtime/safetensors.ts";
import type { Tensor } from "../runtime/tensor.ts";
import {
  assertClose,
  assertNoStackTrace,
  HF_FIXTURES,
  pipelineParams,
  readCase,
  reference,
  ROOT,
  runCli,
  setArgs,
  withTempDir,
} from "./testing.ts";

const CASES = { "2b": "ddim-2b-49f", "5b": "dpm-5b-49f-nonsquare" } as const;

/**
 * Runs a case's pipeline with extra params; returns the frames and what the CLI printed.
 * `workflow` edits the text of `workflows/tiny.yaml` first.
 */
async function runWith(
  variant: keyof typeof CASES,
  params: Record<string, unknown>,
  workflow: (text: string) => string = (text) => text,
) {
  const referenceCase = await readCase(CASES[variant], HF_FIXTURES);
  return await withTempDir(async (dir) => {
    const tensorsOut = join(dir, "frames.safetensors");
    const workflowPath = join(dir, "tiny.yaml");
    const text = await Deno.readTextFile(join(ROOT, "workflows", "tiny.yaml"));
    await Deno.writeTextFile(workflowPath, workflow(text));
    const { code, stdout, stderr } = await runCli([
      "run",
      workflowPath,
      "--memory-report",
      ...setArgs({
        ...pipelineParams(referenceCase, HF_FIXTURES),
        max_sequence_length: referenceCase.json.pipeline_args.max_sequence_length,
        output: join(dir, "video.gif"),
        tensors_out: tensorsOut,
        ...params,
      }),
    ]);
    assert.equal(code, 0, stderr);
    assertNoStackTrace(stderr);
    const frames = (await readSafetensors(tensorsOut)).tensors.get("frames");
    assert.ok(frames, "No frames were saved");
    const expected = reference(referenceCase, "frames");
    assert.deepEqual(frames.shape, [1, ...expected.shape]);
    const error = assertClose(frames, expected, `${CASES[variant]} frames`);
    console.log(
      `${variant} ${JSON.stringify(params)}: frames max abs ${error.maxAbs.toExponential(2)}`,
    );
    return { frames, printed: `${stdout}\n${stderr}` };
  });
}

const withoutHooks = new Map<string, Promise<Tensor>>();

/** The frames of `offload=none` (one run per variant, shared by the tests). */
function framesWithoutHooks(variant: keyof typeof CASES): Promise<Tensor> {
  let frames = withoutHooks.get(variant);
  if (!frames) {
    frames = runWith(variant, { offload: "none" }).then((run) => run.frames);
    withoutHooks.set(variant, frames);
  }
  return frames;
}

for (const variant of ["2b", "5b"] as const) {
  Deno.test(`${variant}: offload=none gives diffusers' 49 frames`, async () => {
    await framesWithoutHooks(variant);
  });
}

Deno.test("2b: offload=sequential runs the built transformer in parts, the VAE decoder whole, and gives the frames of offload=none", async () => {
  const { frames, printed } = await runWith("2b", { offload: "sequential" });
  assert.deepEqual(frames.data, (await framesWithoutHooks("2b")).data);
  // Each of the transformer's 4 parts is loaded and run once for each of the 4 steps; after the
  // last step the prefetch may have loaded the prologue once more (for a next call that does not
  // come). (Which parts the memory table saw resident depends on its sampling, so the per-part
  // lines are checked instead.)
  for (
    const part of ["part_00_prologue", "part_01_block_0", "part_02_block_1", "part_03_epilogue"]
  ) {
    const line = new RegExp(`part transformer\\[${part}\\]: (\\d+) loads .*, 4 runs `).exec(
      printed,
    );
    assert.ok(line, `no line for ${part}`);
    const allowed = part === "part_00_prologue" ? [4, 5] : [4];
    assert.ok(allowed.includes(Number(line[1])), `${part}: ${line[1]} loads`);
  }
  assert.match(printed, /part vae\[part_00_whole\]: 1 load /);
  assert.match(printed, /Model "vae": a built VAE decoder runs whole under sequential_offload/);
});

Deno.test("2b and 5b: offload=sequential with stream_weights on (weights as inputs of shared sessions, through ONNX Runtime's C API) for the transformer and the VAE decoder gives diffusers' frames", async () => {
  const setting = "with: { blocks_per_group: $blocks_per_group }";
  const vae = "    type: sequential_offload\n    wraps: [pipe.vae]\n";
  for (const variant of ["2b", "5b"] as const) {
    const { frames, printed } = await runWith(variant, { offload: "sequential" }, (text) => {
      assert.ok(text.includes(setting), "workflows/tiny.yaml changed: update this test");
      assert.ok(text.includes(vae), "workflows/tiny.yaml changed: update this test");
      return text
        .replace(setting, "with: { blocks_per_group: $blocks_per_group, stream_weights: on }")
        .replace(vae, `${vae}    with: { stream_weights: on }\n`);
    });
    // Its frames are checked against diffusers' by runWith; beside offload=none's, they differ
    // by no more than ONNX Runtime's graph optimizations with weights as inputs rather than
    // initializers can move them.
    const none = (await framesWithoutHooks(variant)).data as Float32Array;
    const got = frames.data as Float32Array;
    let maxAbs = 0;
    for (let i = 0; i < none.length; i++) maxAbs = Math.max(maxAbs, Math.abs(none[i] - got[i]));
    assert.ok(maxAbs <= 1e-5, `${variant}: max abs ${maxAbs} from offload=none`);
    assert.match(
      printed,
      /model transformer \(sequential_offload\): 1 load .*weights streamed: 4 sessions/,
    );
    assert.match(printed, /part transformer\[part_03_epilogue\]: 0 loads .*, (\d+) runs /);
    // The VAE decoder, not built in parts, streams as one part.
    assert.match(
      printed,
      /model vae \(sequential_offload\): 1 load .*weights streamed: 1 session,/,
    );
  }
});

Deno.test("5b: offload=sequential with two blocks per part and VAE slicing gives the frames of offload=none", async () => {
  const { frames, printed } = await runWith("5b", {
    offload: "sequential",
    blocks_per_group: 2,
    vae_slicing: true,
  });
  assert.deepEqual(frames.data, (await framesWithoutHooks("5b")).data);
  assert.match(printed, /part transformer\[part_01_blocks_0_1\]: (\d+) loads .*, \1 runs /);
});

Deno.test("2b: the built text encoder under sequential_offload runs in parts and gives the frames of offload=none", async () => {
  const hook = "offload_the_rest:\n    type: model_offload\n    wraps: [pipe.text_encoder]";
  const { frames, printed } = await runWith("2b", { offload: "sequential" }, (text) => {
    assert.ok(text.includes(hook), "workflows/tiny.yaml changed: update this test");
    return text.replace(hook, hook.replace("model_offload", "sequential_offload"));
  });
  assert.deepEqual(frames.data, (await framesWithoutHooks("2b")).data);
  // It ran in parts: each of its 4 parts (prologue, 2 blocks, epilogue) was loaded for each of the
  // 2 prompts (a whole graph loads at most once per prompt). Which parts are resident at a node's
  // memory peak depends on timing, so the report's resident list is not checked.
  const loads = /model text_encoder \(sequential_offload\): (\d+) loads? /.exec(printed);
  assert.ok(loads && Number(loads[1]) >= 8, `text encoder loads: ${loads?.[1]}`);
  assert.match(printed, /part text_encoder\[part_01_block_0\]: 2 loads /);
});

Deno.test("2b: offload=model with VAE tiling (tiles larger than the frames) gives the frames of offload=none", async () => {
  const { frames } = await runWith("2b", { offload: "model", vae_tiling: true });
  assert.deepEqual(frames.data, (await framesWithoutHooks("2b")).data);
});

Deno.test("5b: offload=budget with VAE slicing and tiling gives the frames of offload=none", async () => {
  const { frames } = await runWith("5b", {
    offload: "budget",
    max_memory: "64MiB",
    vae_slicing: true,
    vae_tiling: true,
  });
  assert.deepEqual(frames.data, (await framesWithoutHooks("5b")).data);
});
