import assert from "node:assert/strict";
import { RunCancelled, type RunEvent } from "../engine/mod.ts";
import type { Tensor } from "../runtime/tensor.ts";
import {
  assertClose,
  outputsOf,
  readCase,
  reference,
  rows,
  runYaml,
  validationErrors,
} from "../tests/testing.ts";

/** Where the sample node's inputs come from in {@link sampleWorkflow}, unless told otherwise. */
const CASE_INPUTS: Record<string, string | null> = {
  model: "pipe.transformer",
  scheduler: "pipe.scheduler",
  latents: "latents",
  prompt_embeds: "embeds",
  negative_prompt_embeds: "negative_embeds",
};

/**
 * The ddim-2b case's sampling loop, from its recorded embeddings and initial noise. `inputs`
 * rewires (or, with null, disconnects) inputs of the sample node; `nodes` adds nodes.
 */
function sampleWorkflow(
  options: { settings?: string; inputs?: Record<string, string | null>; nodes?: string } = {},
): string {
  const { settings = "{ steps: 4, guidance_scale: 6, keep_step_latents: true }" } = options;
  const inputs = Object.entries({ ...CASE_INPUTS, ...options.inputs })
    .flatMap(([port, ref]) => ref === null ? [] : [`      ${port}: ${ref}`]);
  return `
cogflow: 1
name: sample_test
nodes:
  pipe: { type: load_pipeline, with: { path: 2b } }
  embeds:
    type: load_tensor
    with: { path: cases/ddim-2b/tensors.safetensors, name: prompt_embeds }
  negative_embeds:
    type: load_tensor
    with: { path: cases/ddim-2b/tensors.safetensors, name: negative_prompt_embeds }
  latents:
    type: load_tensor
    with: { path: cases/ddim-2b/tensors.safetensors, name: latents_init }
  sample:
    type: sample
    in:
${inputs.join("\n")}
    with: ${settings}
${options.nodes ?? ""}`;
}

function progressOf(events: readonly RunEvent[], node: string) {
  return events.flatMap((event) =>
    event.type === "node_progress" && event.node === node
      ? [{ step: event.step, total: event.total, message: event.message }]
      : []
  );
}

Deno.test("sample runs the pipeline's DDIM loop and keeps the latents after each step", async () => {
  const run = await runYaml(sampleWorkflow(), { only: ["sample"] });
  const outputs = outputsOf(run, "sample");
  const ddim = await readCase("ddim-2b");
  const stepLatents = outputs.step_latents as Tensor;
  assert.deepEqual(stepLatents.shape, [4, 1, 3, 4, 8, 8]);
  for (let step = 0; step < 4; step++) {
    assertClose(rows(stepLatents, step), reference(ddim, `latents_step_${step}`), `step ${step}`);
  }
  assert.deepEqual((outputs.latents as Tensor).data, rows(stepLatents, 3).data);
  assert.deepEqual(
    Array.from((outputs.timesteps as Tensor).data as BigInt64Array, Number),
    [999, 749, 499, 249],
  );
  assert.deepEqual(Array.from((outputs.guidance as Tensor).data as Float64Array), [6, 6, 6, 6]);
});

Deno.test("sample reports progress after each step, with the timestep", async () => {
  const run = await runYaml(sampleWorkflow({ settings: "{ steps: 4, guidance_scale: 6 }" }), {
    only: ["sample"],
  });
  assert.deepEqual(progressOf(run.events, "sample"), [
    { step: 1, total: 4, message: "t=999" },
    { step: 2, total: 4, message: "t=749" },
    { step: 3, total: 4, message: "t=499" },
    { step: 4, total: 4, message: "t=249" },
  ]);
  // Without keep_step_latents, only the final latents are kept.
  assert.equal(outputsOf(run, "sample").step_latents, undefined);
});

Deno.test("sample stops between steps when the run is cancelled", async () => {
  const controller = new AbortController();
  const events: RunEvent[] = [];
  const error = await runYaml(sampleWorkflow({ settings: "{ steps: 4, guidance_scale: 6 }" }), {
    only: ["sample"],
    signal: controller.signal,
    onEvent(event) {
      events.push(event);
      if (event.type === "node_progress" && event.node === "sample" && event.step === 2) {
        controller.abort();
      }
    },
  }).then(() => undefined, (error) => error);
  assert.ok(error instanceof RunCancelled, `Expected RunCancelled, got ${error}`);
  assert.deepEqual(progressOf(events, "sample").map((progress) => progress.step), [1, 2]);
  const end = events.at(-1);
  assert.equal(end?.type === "run_end" && end.status, "interrupted");
});

Deno.test("sample with guidance needs negative embeddings, and DPM needs the noise node's generator", async () => {
  const errors = await validationErrors(sampleWorkflow({
    settings: "{ steps: 4, guidance_scale: 6 }",
    inputs: { scheduler: "dpm.scheduler", negative_prompt_embeds: null },
    nodes: "  dpm: { type: scheduler, in: { base: pipe.scheduler }, with: { type: dpm } }",
  }));
  assert.deepEqual(errors.map((error) => error.replace(/^.*?nodes\./, "nodes.")), [
    "nodes.sample.in.negative_prompt_embeds: guidance_scale 6 uses classifier-free guidance, which needs negative_prompt_embeds",
    "nodes.sample.in.generator: The DPM scheduler draws noise at each step: connect the generator of the noise node",
  ]);
});

Deno.test("sample refuses latents the transformer cannot take, naming both nodes and shapes", async () => {
  // The 2b transformer's positional embedding is fixed to 3 latent frames of 8 x 8.
  const errors = await validationErrors(sampleWorkflow({
    inputs: { latents: "wide.latents" },
    nodes: `
  wide:
    type: noise
    in: { transformer: pipe.transformer, vae: pipe.vae, prompt_embeds: embeds }
    with: { seed: 0, num_frames: 9, height: 96, width: 96 }`,
  }));
  assert.deepEqual(errors.map((error) => error.replace(/^.*?nodes\./, "nodes.")), [
    'nodes.sample.in.latents: Model "pipe.transformer" expects hidden_states [batch, 3, 4, 8, 8], but "wide.latents" gives tensor<float32, [1, 3, 4, 12, 12]> (input "latents" of "sample")',
  ]);
});

Deno.test("sample refuses steps the scheduler cannot take before anything runs", async () => {
  // Leading spacing: timesteps (N - 1) * (1000 // N) + steps_offset must stay below 1000.
  const errors = await validationErrors(sampleWorkflow({
    settings: "{ steps: 4, guidance_scale: 6 }",
    inputs: { scheduler: "offset.scheduler" },
    nodes: `
  offset:
    type: scheduler
    in: { base: pipe.scheduler }
    with: { overrides: { timestep_spacing: leading, steps_offset: 300 } }`,
  }));
  assert.deepEqual(errors.map((error) => error.replace(/^.*?nodes\./, "nodes.")), [
    "nodes.sample.with.steps: steps 4 with the scheduler's steps_offset 300 reach timestep 1050, past its 1000 training timesteps: lower steps or steps_offset",
  ]);
  const tooMany = await validationErrors(sampleWorkflow({ settings: "{ steps: 1001 }" }));
  assert.deepEqual(tooMany.map((error) => error.replace(/^.*?nodes\./, "nodes.")), [
    "nodes.sample.with.steps: steps 1001 is more than the scheduler's num_train_timesteps 1000: use at most 1000 steps",
  ]);
});
