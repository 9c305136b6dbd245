import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { readSafetensors } from "../runtime/safetensors.ts";
import { expectDType, maxAbsDiff } from "../runtime/tensor.ts";
import { createDpmStepper, dpmCoefficients } from "./dpm_scheduler.ts";
import { classifierFreeGuidance } from "./guidance.ts";
import { noiseSchedule } from "./noise_schedule.ts";
import { parseSchedulerConfig } from "./scheduler_config.ts";

const CASE_DIR = new URL(
  "../tests/fixtures/tiny-cogvideox/cases/dpm-5b-dynamic-cfg/",
  import.meta.url,
);
const caseJson = JSON.parse(await Deno.readTextFile(new URL("case.json", CASE_DIR)));
const { tensors } = await readSafetensors(fileURLToPath(new URL("tensors.safetensors", CASE_DIR)));
const config = parseSchedulerConfig(caseJson.scheduler_config);
const numInferenceSteps: number = caseJson.pipeline_args.num_inference_steps;

/** README tolerance for latents after each step. */
const TOLERANCE = 1e-4;

function reference(name: string): Float32Array {
  const tensor = tensors.get(name);
  assert.ok(tensor, `case has no tensor "${name}"`);
  return expectDType(tensor, "float32", name).data;
}

/** Hands out the recorded draws of step i in order, counting them. */
function recordedNoise(stepIndex: number) {
  const draws = reference(`noise_step_${stepIndex}`);
  const size = reference("latents_init").length;
  const source = { calls: 0, draw: () => draws.slice(size * source.calls, size * ++source.calls) };
  return source;
}

Deno.test("dpm-5b: timesteps equal the recorded ones", () => {
  const stepper = createDpmStepper(config, numInferenceSteps);
  const recorded = expectDType(tensors.get("timesteps")!, "int64").data;
  assert.deepEqual(stepper.timesteps, Array.from(recorded, Number));
});

Deno.test("dpm-5b: step scalars use the recorded alpha products, t_back included", () => {
  const schedule = noiseSchedule(config);
  for (const step of caseJson.steps) {
    const c = dpmCoefficients(schedule, {
      timestep: step.t,
      prevTimestep: step.prev_t,
      timestepBack: step.t_back,
    });
    assert.equal(c.alphaProdT, step.alpha_prod_t);
    assert.equal(c.alphaProdTPrev, step.alpha_prod_t_prev);
    assert.equal(c.alphaProdTBack, step.alpha_prod_t_back);
  }
});

Deno.test("dpm: IEEE infinities at zero terminal SNR give the first- and second-order limits", () => {
  const schedule = noiseSchedule(config);
  const first = dpmCoefficients(schedule, { timestep: 999, prevTimestep: 799, timestepBack: null });
  assert.equal(first.lamb, -Infinity);
  assert.equal(first.h, Infinity);
  assert.equal(first.mult1, 0); // exp(-inf) = 0: the sample itself drops out
  assert.equal(first.mult2, -Math.sqrt(first.alphaProdTPrev)); // expm1(-inf) = -1
  assert.equal(first.multNoise, Math.sqrt(1 - first.alphaProdTPrev));
  assert.equal(first.r, null);

  const second = dpmCoefficients(schedule, { timestep: 799, prevTimestep: 599, timestepBack: 999 });
  assert.equal(second.r, Infinity); // h_last = +inf
  assert.deepEqual([second.mult3, second.mult4], [1, 0]); // denoised_d = x0

  const last = dpmCoefficients(schedule, { timestep: 199, prevTimestep: -1, timestepBack: 399 });
  assert.deepEqual([last.lambNext, last.h, last.mult1, last.mult2, last.multNoise], [
    Infinity,
    Infinity,
    0,
    -1,
    0,
  ]);
});

Deno.test("dpm-5b: draws 1, 2, 2, 2, 1 noise tensors and matches diffusers at every step", () => {
  const stepper = createDpmStepper(config, numInferenceSteps);
  let latents = reference("latents_init");
  for (let i = 0; i < numInferenceSteps; i++) {
    const guidance: number = caseJson.steps[i].guidance_scale;
    const noisePred = classifierFreeGuidance(reference(`transformer_out_step_${i}`), guidance);
    assert.ok(maxAbsDiff(noisePred, reference(`noise_pred_step_${i}`)) <= TOLERANCE);
    const noise = recordedNoise(i);
    const { prevSample, predOriginalSample } = stepper.step(i, noisePred, latents, noise.draw);
    assert.equal(noise.calls, caseJson.steps[i].scheduler_noise_draws, `draws at step ${i}`);
    assert.equal(stepper.noiseDraws(i), noise.calls);
    assert.ok(maxAbsDiff(predOriginalSample, reference(`pred_original_step_${i}`)) <= TOLERANCE);
    assert.ok(maxAbsDiff(prevSample, reference(`latents_step_${i}`)) <= TOLERANCE);
    latents = prevSample; // chained: each step runs on our own previous output
  }
});

Deno.test("dpm-5b: the steps are bit-exact (float32 rounding as torch does it)", () => {
  const stepper = createDpmStepper(config, numInferenceSteps);
  let latents = reference("latents_init");
  for (let i = 0; i < numInferenceSteps; i++) {
    const noisePred = classifierFreeGuidance(
      reference(`transformer_out_step_${i}`),
      caseJson.steps[i].guidance_scale,
    );
    const output = stepper.step(i, noisePred, latents, recordedNoise(i).draw);
    assert.deepEqual(output.predOriginalSample, reference(`pred_original_step_${i}`));
    assert.deepEqual(output.prevSample, reference(`latents_step_${i}`), `latents after step ${i}`);
    latents = output.prevSample;
  }
});

Deno.test("a DPM stepper must run in order and needs a noise source", () => {
  const stepper = createDpmStepper(config, 5);
  const latents = new Float32Array(4);
  assert.throws(
    () => stepper.step(0, latents, latents),
    /DPM scheduler step needs drawNoise/,
  );
  assert.throws(
    () => stepper.step(1, latents, latents, () => new Float32Array(4)),
    /DPM scheduler steps must run in order: expected step 0, got 1/,
  );
  assert.throws(
    () => stepper.step(0, latents, latents, () => new Float32Array(3)),
    /Scheduler noise has 3 elements but the sample has 4/,
  );
});
