import assert from "node:assert/strict";
import {
  alphaProdPrevAt,
  betasFor,
  inferenceTimesteps,
  noiseSchedule,
  previousTimestep,
  rescaleZeroTerminalSnr,
  roundHalfEven,
  torchLinspace,
} from "./noise_schedule.ts";
import { parseSchedulerConfig, type SchedulerConfig } from "./scheduler_config.ts";

const CASES = new URL("../tests/fixtures/tiny-cogvideox/cases/", import.meta.url);

interface CaseStep {
  t: number;
  prev_t: number;
  alpha_prod_t: number;
  alpha_prod_t_prev: number;
  t_back?: number | null;
  alpha_prod_t_back?: number | null;
}

async function readCase(name: string) {
  const json = JSON.parse(await Deno.readTextFile(new URL(`${name}/case.json`, CASES)));
  return {
    config: parseSchedulerConfig(json.scheduler_config),
    steps: json.steps as CaseStep[],
    numInferenceSteps: json.pipeline_args.num_inference_steps as number,
  };
}

const cogVideoX = (overrides: Partial<SchedulerConfig> = {}) =>
  parseSchedulerConfig({
    beta_schedule: "scaled_linear",
    prediction_type: "v_prediction",
    rescale_betas_zero_snr: true,
    timestep_spacing: "trailing",
    snr_shift_scale: 1.0,
    ...overrides,
  });

for (const name of ["ddim-2b", "dpm-5b-dynamic-cfg"]) {
  Deno.test(`alphasCumprod equals the float64 values diffusers used in ${name}`, async () => {
    const { config, steps, numInferenceSteps } = await readCase(name);
    const schedule = noiseSchedule(config);
    for (const step of steps) {
      assert.equal(
        schedule.alphasCumprod[step.t],
        step.alpha_prod_t,
        `alpha_prod_t at t=${step.t}`,
      );
      assert.equal(
        previousTimestep(step.t, config.num_train_timesteps, numInferenceSteps),
        step.prev_t,
      );
      assert.equal(alphaProdPrevAt(schedule, step.prev_t), step.alpha_prod_t_prev);
      if (step.t_back !== undefined && step.t_back !== null) {
        assert.equal(schedule.alphasCumprod[step.t_back], step.alpha_prod_t_back);
      }
    }
  });
}

Deno.test("zero terminal SNR: the last alpha product is exactly 0, the first is kept", () => {
  const { alphasCumprod } = noiseSchedule(cogVideoX({ snr_shift_scale: 3.0 }));
  assert.equal(alphasCumprod[999], 0);
  const unscaled = noiseSchedule(
    cogVideoX({ snr_shift_scale: 3.0, rescale_betas_zero_snr: false }),
  ).alphasCumprod;
  assert.ok(Math.abs(alphasCumprod[0] - unscaled[0]) < 1e-15);
  for (let t = 1; t < 1000; t++) assert.ok(alphasCumprod[t] < alphasCumprod[t - 1]);
});

Deno.test("the SNR shift divides by s + (1 - s) * alphaBar; s = 1 changes nothing", () => {
  const plain = noiseSchedule(cogVideoX({ rescale_betas_zero_snr: false }));
  const shifted = noiseSchedule(
    cogVideoX({ rescale_betas_zero_snr: false, snr_shift_scale: 3.0 }),
  );
  let cumulative = 1;
  plain.betas.forEach((beta, t) => {
    cumulative *= 1 - beta;
    assert.equal(plain.alphasCumprod[t], cumulative);
    assert.equal(shifted.alphasCumprod[t], cumulative / (3 + (1 - 3) * cumulative));
  });
});

Deno.test("scaled_linear betas are squares of a float64 linspace of square roots", () => {
  const betas = betasFor(cogVideoX());
  assert.equal(betas.length, 1000);
  const [start, end] = [0.00085 ** 0.5, 0.012 ** 0.5];
  assert.equal(betas[0], start * start);
  assert.equal(betas[999], end * end);
  const step = (end - start) / 999;
  assert.equal(betas[100], (start + step * 100) ** 2);
  assert.equal(betas[900], (end - step * 99) ** 2);
});

Deno.test("the linear schedule is float32 throughout, as torch computes it", () => {
  const schedule = noiseSchedule(cogVideoX({ beta_schedule: "linear", beta_end: 0.02 }));
  assert.equal(schedule.betas[0], Math.fround(0.00085));
  assert.equal(schedule.betas[999], Math.fround(0.02));
  for (const values of [schedule.betas, schedule.alphas, schedule.alphasCumprod]) {
    for (const value of values) assert.equal(value, Math.fround(value));
  }
  assert.equal(schedule.alphasCumprod[999], 0);
  assert.equal(schedule.roundScalar(0.1), Math.fround(0.1));
});

Deno.test("rescaleZeroTerminalSnr shifts and scales sqrt(alphaBar)", () => {
  const rescaled = rescaleZeroTerminalSnr(Float64Array.from([0.81, 0.25, 0.01]));
  // sqrt: 0.9, 0.5, 0.1 -> minus 0.1, times 0.9 / 0.8 -> 0.9, 0.45, 0; squared
  assert.ok(Math.abs(rescaled[0] - 0.81) < 1e-15);
  assert.ok(Math.abs(rescaled[1] - 0.2025) < 1e-15);
  assert.equal(rescaled[2], 0);
});

Deno.test("finalAlphaCumprod is 1 with set_alpha_to_one, else alphas_cumprod[0]", () => {
  assert.equal(noiseSchedule(cogVideoX()).finalAlphaCumprod, 1);
  const schedule = noiseSchedule(cogVideoX({ set_alpha_to_one: false }));
  assert.equal(schedule.finalAlphaCumprod, schedule.alphasCumprod[0]);
  assert.equal(alphaProdPrevAt(schedule, -1), schedule.alphasCumprod[0]);
});

Deno.test("torchLinspace counts up from start in its first half and down from end in its second", () => {
  assert.deepEqual(torchLinspace(0, 3, 4), [0, 1, 2, 3]);
  assert.deepEqual(torchLinspace(5, 7, 1), [5]);
  assert.deepEqual(torchLinspace(0, 1, 0), []);
  const values = torchLinspace(0, 3.2, 5, Math.fround);
  const step = Math.fround(Math.fround(3.2) / 4);
  assert.deepEqual(values, [
    0,
    step,
    Math.fround(2 * step),
    Math.fround(Math.fround(3.2) - step),
    Math.fround(3.2),
  ]);
});

Deno.test("roundHalfEven rounds ties to the even neighbour, like Python and numpy", () => {
  assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6].map(roundHalfEven), [
    0,
    2,
    2,
    0,
    -2,
    2,
    3,
  ]);
});

Deno.test("trailing timesteps of the README: N = 4 and N = 5", () => {
  assert.deepEqual(inferenceTimesteps(cogVideoX(), 4), [999, 749, 499, 249]);
  assert.deepEqual(inferenceTimesteps(cogVideoX(), 5), [999, 799, 599, 399, 199]);
  assert.equal(previousTimestep(999, 1000, 3), 666); // 1000 // 3 = 333, not the next entry 666
  assert.deepEqual(inferenceTimesteps(cogVideoX(), 3), [999, 666, 332]);
});

/** `round(p / q)` of a non-negative rational, ties to even, in exact integer arithmetic. */
function roundRational(p: number, q: number): number {
  const quotient = Math.floor(p / q);
  const twiceRemainder = 2 * (p - quotient * q);
  if (twiceRemainder > q) return quotient + 1;
  if (twiceRemainder < q) return quotient;
  return quotient % 2 === 0 ? quotient : quotient + 1;
}

// Where numpy's floating-point linspace/arange lands just below a tie that the exact
// formula rounds up (checked against numpy 2.4 for N = 1..1000).
const NUMPY_EXCEPTIONS: Record<string, Record<number, Record<number, number>>> = {
  linspace: { 27: { 500: 499 }, 31: { 500: 499 }, 47: { 500: 499 }, 53: { 500: 499 } },
  trailing: { 48: { 937: 936, 687: 686, 437: 436, 187: 186 } },
};

Deno.test("timesteps for N = 1..60 equal the exact formulas, except where numpy rounds", () => {
  for (const spacing of ["linspace", "leading", "trailing"] as const) {
    const config = cogVideoX({ timestep_spacing: spacing, steps_offset: 1 });
    for (let n = 1; n <= 60; n++) {
      const exact: number[] = [];
      for (let i = n - 1; i >= 0; i--) {
        if (spacing === "linspace") exact.push(n === 1 ? 0 : roundRational(i * 999, n - 1));
        if (spacing === "leading") exact.push(i * Math.floor(1000 / n) + 1);
      }
      if (spacing === "trailing") {
        for (let i = 0; i < n; i++) exact.push(roundRational(1000 * (n - i), n) - 1);
      }
      const exceptions = NUMPY_EXCEPTIONS[spacing]?.[n] ?? {};
      const expected = exact.map((t) => exceptions[t] ?? t);
      assert.deepEqual(inferenceTimesteps(config, n), expected, `${spacing}, N = ${n}`);
    }
  }
});

Deno.test("trailing with N = 61 gives 62 timesteps ending in -1, as numpy's arange does", () => {
  const timesteps = inferenceTimesteps(cogVideoX(), 61);
  assert.equal(timesteps.length, 62);
  assert.deepEqual(timesteps.slice(-3), [32, 15, -1]);
  assert.equal(noiseSchedule(cogVideoX()).alphasCumprod.at(-1), 0);
});

Deno.test("invalid numbers of inference steps are errors", () => {
  assert.throws(() => inferenceTimesteps(cogVideoX(), 0), /Invalid number of inference steps 0/);
  assert.throws(() => inferenceTimesteps(cogVideoX(), 2.5), /expected an integer >= 1/);
  assert.throws(
    () => inferenceTimesteps(cogVideoX(), 1001),
    /at most num_train_timesteps \(1000\)/,
  );
});
