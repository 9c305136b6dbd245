import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { readSafetensors } from "../runtime/safetensors.ts";
import { expectDType, maxAbsDiff } from "../runtime/tensor.ts";
import { createDdimStepper, ddimCoefficients } from "./ddim_scheduler.ts";
import { classifierFreeGuidance } from "./guidance.ts";
import { noiseSchedule } from "./noise_schedule.ts";
import { parseSchedulerConfig } from "./scheduler_config.ts";

const CASE_DIR = new URL("../tests/fixtures/tiny-cogvideox/cases/ddim-2b/", import.meta.url);
const caseJson = JSON.parse(await Deno.readTextFile(new URL("case.json", CASE_DIR)));
const { tensors } = await readSafetensors(fileURLToPath(new URL("tensors.safetensors", CASE_DIR)));
const config = parseSchedulerConfig(caseJson.scheduler_config);
const numInferenceSteps: number = caseJson.pipeline_args.num_inference_steps;
const guidanceScale: number = caseJson.pipeline_args.guidance_scale;

/** README tolerance for latents after each step. */
const TOLERANCE = 1e-4;

function reference(name: string): Float32Array {
  const tensor = tensors.get(name);
  assert.ok(tensor, `case has no tensor "${name}"`);
  return expectDType(tensor, "float32", name).data;
}

Deno.test("ddim-2b: timesteps equal the recorded ones", () => {
  const stepper = createDdimStepper(config, numInferenceSteps);
  const recorded = expectDType(tensors.get("timesteps")!, "int64").data;
  assert.deepEqual(stepper.timesteps, Array.from(recorded, Number));
  assert.equal(stepper.initNoiseSigma, 1);
});

Deno.test("ddim-2b: step scalars use the recorded alpha products", () => {
  const schedule = noiseSchedule(config);
  for (const step of caseJson.steps) {
    const coefficients = ddimCoefficients(schedule, {
      timestep: step.t,
      prevTimestep: step.prev_t,
    });
    assert.equal(coefficients.alphaProdT, step.alpha_prod_t);
    assert.equal(coefficients.alphaProdTPrev, step.alpha_prod_t_prev);
  }
  // Last step: alpha_prod_t_prev = 1, so a_t = 0 and b_t = 1: the result is x0.
  const last = ddimCoefficients(schedule, { timestep: 249, prevTimestep: -1 });
  assert.deepEqual([last.aT, last.bT], [0, 1]);
});

Deno.test("ddim-2b: guided prediction, x0 and latents of every step match diffusers", () => {
  const stepper = createDdimStepper(config, numInferenceSteps);
  let latents = reference("latents_init");
  for (let i = 0; i < numInferenceSteps; i++) {
    const noisePred = classifierFreeGuidance(reference(`transformer_out_step_${i}`), guidanceScale);
    assert.ok(maxAbsDiff(noisePred, reference(`noise_pred_step_${i}`)) <= TOLERANCE);
    assert.equal(stepper.noiseDraws(i), 0);
    const { prevSample, predOriginalSample } = stepper.step(i, noisePred, latents, () => {
      throw new Error("DDIM draws no noise");
    });
    assert.ok(maxAbsDiff(predOriginalSample, reference(`pred_original_step_${i}`)) <= TOLERANCE);
    assert.ok(maxAbsDiff(prevSample, reference(`latents_step_${i}`)) <= TOLERANCE);
    latents = prevSample; // chained: each step runs on our own previous output
  }
});

Deno.test("ddim-2b: the steps are bit-exact (float32 rounding as torch does it)", () => {
  const stepper = createDdimStepper(config, numInferenceSteps);
  let latents = reference("latents_init");
  for (let i = 0; i < numInferenceSteps; i++) {
    const noisePred = classifierFreeGuidance(reference(`transformer_out_step_${i}`), guidanceScale);
    const { prevSample } = stepper.step(i, noisePred, latents);
    assert.deepEqual(prevSample, reference(`latents_step_${i}`), `latents after step ${i}`);
    latents = prevSample;
  }
});

Deno.test("a DDIM step with a wrong-sized model output is an error", () => {
  const stepper = createDdimStepper(config, 4);
  assert.throws(
    () => stepper.step(0, new Float32Array(3), new Float32Array(4)),
    /Scheduler model output has 3 elements but the sample has 4/,
  );
  assert.throws(
    () => stepper.step(4, new Float32Array(4), new Float32Array(4)),
    /Invalid scheduler step 4/,
  );
});
