import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { readSafetensors } from "../runtime/safetensors.ts";
import { expectDType } from "../runtime/tensor.ts";
import { classifierFreeGuidance, dynamicGuidanceScale } from "./guidance.ts";
import {
  createSchedulerStepper,
  SCHEDULER_CLASS_NAMES,
  schedulerKindOf,
  type SchedulerSpec,
} from "./scheduler.ts";
import { parseSchedulerConfig } from "./scheduler_config.ts";

const CASES = new URL("../tests/fixtures/tiny-cogvideox/cases/", import.meta.url);

/** README tolerance for latents after each step. */
const TOLERANCE = 1e-4;

for (const name of ["ddim-2b", "dpm-5b-dynamic-cfg"]) {
  Deno.test(`sampling loop of ${name}: spec, guidance and scheduler steps as diffusers runs them`, async () => {
    const caseJson = JSON.parse(await Deno.readTextFile(new URL(`${name}/case.json`, CASES)));
    const { tensors } = await readSafetensors(
      fileURLToPath(new URL(`${name}/tensors.safetensors`, CASES)),
    );
    const reference = (key: string) => expectDType(tensors.get(key)!, "float32", key).data;
    const args = caseJson.pipeline_args;

    const kind = schedulerKindOf(caseJson.scheduler_class);
    assert.ok(kind);
    // A spec is plain data: it survives JSON, e.g. inside a cached workflow plan.
    const spec: SchedulerSpec = JSON.parse(
      JSON.stringify({ kind, config: parseSchedulerConfig(caseJson.scheduler_config) }),
    );
    const scheduler = createSchedulerStepper(spec, args.num_inference_steps);

    let latents: Float32Array = reference("latents_init").map((x) => x * scheduler.initNoiseSigma);
    scheduler.timesteps.forEach((t, i) => {
      const guidance = args.use_dynamic_cfg
        ? dynamicGuidanceScale(args.guidance_scale, t, args.num_inference_steps)
        : args.guidance_scale;
      assert.equal(guidance, caseJson.steps[i].guidance_scale);
      const noisePred = classifierFreeGuidance(reference(`transformer_out_step_${i}`), guidance);
      const draws = kind === "dpm" ? reference(`noise_step_${i}`) : new Float32Array();
      let drawn = 0;
      const drawNoise = () => draws.slice(latents.length * drawn, latents.length * ++drawn);
      latents = scheduler.step(i, noisePred, latents, drawNoise).prevSample;
      let maxDiff = 0;
      reference(`latents_step_${i}`).forEach((x, j) => {
        maxDiff = Math.max(maxDiff, Math.abs(x - latents[j]));
      });
      assert.ok(maxDiff <= TOLERANCE, `latents after step ${i}: max abs diff ${maxDiff}`);
    });
  });
}

Deno.test("scheduler kinds map to diffusers class names and back", () => {
  assert.equal(schedulerKindOf("CogVideoXDDIMScheduler"), "ddim");
  assert.equal(schedulerKindOf("CogVideoXDPMScheduler"), "dpm");
  assert.equal(schedulerKindOf("DDIMScheduler"), undefined);
  assert.equal(SCHEDULER_CLASS_NAMES.dpm, "CogVideoXDPMScheduler");
});

Deno.test("createSchedulerStepper picks the scheduler of the spec", () => {
  const config = parseSchedulerConfig({ timestep_spacing: "trailing" });
  assert.equal(createSchedulerStepper({ kind: "ddim", config }, 4).kind, "ddim");
  assert.equal(createSchedulerStepper({ kind: "dpm", config }, 4).kind, "dpm");
  assert.throws(
    () => createSchedulerStepper({ kind: "euler" } as unknown as SchedulerSpec, 4),
    /Unknown scheduler kind "euler": expected "ddim" or "dpm"/,
  );
});
