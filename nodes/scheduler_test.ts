import assert from "node:assert/strict";
import { join } from "node:path";
import { createSchedulerStepper, type SchedulerSpec } from "../diffusion/scheduler.ts";
import { parseSchedulerConfig } from "../diffusion/scheduler_config.ts";
import { outputsOf, readCase, runYaml, validationErrors, withTempDir } from "../tests/testing.ts";

/** A workflow with one scheduler node configured by `settings`, based on the 2b pipeline's. */
function schedulerWorkflow(settings: string, input = "in: { base: pipe.scheduler }"): string {
  return `
cogflow: 1
name: scheduler_test
nodes:
  pipe: { type: load_pipeline, with: { path: 2b } }
  scheduler:
    type: scheduler
    ${input}
    with: ${settings}
`;
}

async function schedulerSpec(workflow: string): Promise<SchedulerSpec> {
  const run = await runYaml(workflow, { only: ["scheduler"] });
  return outputsOf(run, "scheduler").scheduler as SchedulerSpec;
}

Deno.test("scheduler keeps the pipeline's scheduler, or switches to DPM with its config", async () => {
  const ddim = await schedulerSpec(schedulerWorkflow("{}"));
  assert.equal(ddim.kind, "ddim");
  assert.equal(ddim.config.snr_shift_scale, 3.0);
  assert.equal(ddim.config.timestep_spacing, "trailing");

  // The dpm case builds CogVideoXDPMScheduler from the DDIM config, as `from_config` does.
  const dpmCase = await readCase("dpm-5b-dynamic-cfg");
  const dpm = await schedulerSpec(
    schedulerWorkflow("{ type: dpm, overrides: { snr_shift_scale: 1.0 } }"),
  );
  assert.deepEqual(dpm, {
    kind: "dpm",
    config: parseSchedulerConfig(dpmCase.json.scheduler_config),
  });
  assert.deepEqual(createSchedulerStepper(dpm, 5).timesteps, [999, 799, 599, 399, 199]);
});

Deno.test("scheduler overrides replace values of the config", async () => {
  const spec = await schedulerSpec(
    schedulerWorkflow("{ overrides: { timestep_spacing: leading, steps_offset: 1 } }"),
  );
  assert.equal(spec.config.timestep_spacing, "leading");
  assert.equal(spec.config.steps_offset, 1);
  assert.deepEqual(createSchedulerStepper(spec, 4).timesteps, [751, 501, 251, 1]);
});

Deno.test("scheduler reads a scheduler_config.json file and takes its kind from _class_name", async () => {
  const spec = await schedulerSpec(
    schedulerWorkflow("{ config: 5b/scheduler/scheduler_config.json }", ""),
  );
  assert.equal(spec.kind, "ddim");
  assert.equal(spec.config.snr_shift_scale, 1.0);
});

Deno.test("scheduler overrides with unknown values or keys are validation errors naming the key", async () => {
  const errors = await validationErrors(
    schedulerWorkflow("{ overrides: { beta_schedule: cosine, betas_start: 0.001 } }"),
  );
  assert.deepEqual(errors.map((error) => error.replace(/^.*?nodes\./, "nodes.")), [
    'nodes.scheduler.with.overrides: Invalid scheduler setting "beta_schedule": expected one of "scaled_linear", "linear", got "cosine"',
    'nodes.scheduler.with.overrides: Invalid scheduler setting "betas_start": unknown key: not a setting of the CogVideoX schedulers',
  ]);
});

Deno.test("scheduler needs a base or a config file", async () => {
  const errors = await validationErrors(schedulerWorkflow("{ type: ddim }", ""));
  assert.equal(errors.length, 1);
  assert.match(
    errors[0],
    /A scheduler needs a base \(`in: \{ base: pipe\.scheduler \}`\) or a `config` file$/,
  );
});

Deno.test("scheduler refuses a config file of another scheduler class unless told the type", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "scheduler_config.json");
    await Deno.writeTextFile(path, JSON.stringify({ _class_name: "EulerDiscreteScheduler" }));
    const errors = await validationErrors(schedulerWorkflow(`{ config: "${path}" }`, ""));
    assert.equal(errors.length, 1);
    assert.match(
      errors[0],
      /Unsupported scheduler "EulerDiscreteScheduler" in ".*scheduler_config\.json": set `type: ddim` or `type: dpm`$/,
    );
    const spec = await schedulerSpec(schedulerWorkflow(`{ config: "${path}", type: dpm }`, ""));
    assert.equal(spec.kind, "dpm");
  });
});

Deno.test("scheduler points a bad value in its config file at `config`, naming the file", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "scheduler_config.json");
    await Deno.writeTextFile(
      path,
      JSON.stringify({ _class_name: "CogVideoXDDIMScheduler", num_train_timesteps: 2e9 }),
    );
    const errors = await validationErrors(schedulerWorkflow(`{ config: "${path}" }`, ""));
    assert.deepEqual(errors.map((error) => error.replace(/^.*?nodes\./, "nodes.")), [
      `nodes.scheduler.with.config: Invalid scheduler setting "num_train_timesteps": expected at most 1000000 (real schedules have 1000), got number 2000000000 (in "${path}")`,
    ]);
  });
});
