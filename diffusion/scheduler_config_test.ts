import assert from "node:assert/strict";
import {
  checkSchedulerConfig,
  parseSchedulerConfig,
  SchedulerConfigError,
} from "./scheduler_config.ts";

const FIXTURE_CONFIG = new URL(
  "../tests/fixtures/tiny-cogvideox/2b/scheduler/scheduler_config.json",
  import.meta.url,
);

Deno.test("parses the fixture's scheduler_config.json, dropping diffusers' bookkeeping keys", async () => {
  const raw = JSON.parse(await Deno.readTextFile(FIXTURE_CONFIG));
  const config = parseSchedulerConfig(raw);
  assert.deepEqual(config, {
    num_train_timesteps: 1000,
    beta_start: 0.00085,
    beta_end: 0.012,
    beta_schedule: "scaled_linear",
    trained_betas: null,
    clip_sample: false,
    clip_sample_range: 1.0,
    set_alpha_to_one: true,
    steps_offset: 0,
    prediction_type: "v_prediction",
    timestep_spacing: "trailing",
    rescale_betas_zero_snr: true,
    snr_shift_scale: 3.0,
  });
});

Deno.test("missing keys get the defaults of diffusers' CogVideoX schedulers", () => {
  const config = parseSchedulerConfig({});
  assert.equal(config.beta_schedule, "scaled_linear");
  assert.equal(config.prediction_type, "epsilon");
  assert.equal(config.timestep_spacing, "leading");
  assert.equal(config.snr_shift_scale, 3.0);
  assert.equal(config.rescale_betas_zero_snr, false);
  assert.equal(config.clip_sample, true);
});

Deno.test("overrides replace config values, as from_config(config, **overrides) does", () => {
  const config = parseSchedulerConfig(
    { timestep_spacing: "leading", snr_shift_scale: 3.0 },
    { timestep_spacing: "trailing", snr_shift_scale: 1.0 },
  );
  assert.equal(config.timestep_spacing, "trailing");
  assert.equal(config.snr_shift_scale, 1.0);
});

Deno.test("an unknown beta_schedule names the key and the allowed values", () => {
  assert.throws(
    () => parseSchedulerConfig({ beta_schedule: "cosine" }),
    (error: unknown) => {
      assert.ok(error instanceof SchedulerConfigError);
      assert.deepEqual(error.issues, [{
        key: "beta_schedule",
        path: ["beta_schedule"],
        message: 'expected one of "scaled_linear", "linear", got "cosine"',
      }]);
      assert.equal(
        error.message,
        'Invalid scheduler config: "beta_schedule": expected one of "scaled_linear", "linear", got "cosine"',
      );
      return true;
    },
  );
});

Deno.test("every problem is reported at once, each with its key", () => {
  const result = checkSchedulerConfig({
    _class_name: "CogVideoXDDIMScheduler",
    timestep_spacing: "foo",
    prediction_type: "flow",
    num_train_timesteps: 999.5,
    set_alpha_to_one: "yes",
    trained_betas: [0.1, 0.2],
    beta_shift: 2,
  });
  assert.equal(result.ok, false);
  if (result.ok) return;
  const byKey = Object.fromEntries(result.issues.map((issue) => [issue.key, issue.message]));
  assert.deepEqual(byKey, {
    timestep_spacing: 'expected one of "linspace", "leading", "trailing", got "foo"',
    prediction_type: 'expected one of "v_prediction", "epsilon", "sample", got "flow"',
    num_train_timesteps: "expected an integer, got number 999.5",
    set_alpha_to_one: 'expected boolean, got "yes"',
    trained_betas: "only null is supported, got an array",
    beta_shift: "unknown key: not a setting of the CogVideoX schedulers",
  });
});

Deno.test("a config that is not an object is rejected as a whole", () => {
  const result = checkSchedulerConfig("scheduler_config.json");
  assert.deepEqual(result, {
    ok: false,
    issues: [{ key: "", path: [], message: 'expected an object, got "scheduler_config.json"' }],
  });
  assert.throws(() => parseSchedulerConfig(null), /Invalid scheduler config: expected an object/);
});

Deno.test("numbers past sane bounds are refused with the bound, not at the first step", () => {
  const result = checkSchedulerConfig({
    num_train_timesteps: 2e9,
    beta_start: Number.NaN,
    beta_end: 1,
    snr_shift_scale: Infinity,
  });
  assert.equal(result.ok, false);
  if (result.ok) return;
  const byKey = Object.fromEntries(result.issues.map((issue) => [issue.key, issue.message]));
  assert.deepEqual(byKey, {
    num_train_timesteps:
      "expected at most 1000000 (real schedules have 1000), got number 2000000000",
    beta_start: "expected a finite number, got NaN",
    beta_end: "expected below 1, got number 1",
    snr_shift_scale: "expected a finite number, got Infinity",
  });
});

Deno.test("a steps_offset that leaves the schedule is refused", () => {
  const result = checkSchedulerConfig({ num_train_timesteps: 1000, steps_offset: 1000 });
  assert.deepEqual(result, {
    ok: false,
    issues: [{
      key: "steps_offset",
      path: ["steps_offset"],
      message: "must be below num_train_timesteps (1000), got 1000",
    }],
  });
});
