/**
 * `CogVideoXDPMScheduler` of diffusers: a DPM-Solver++(2M)-style SDE step in
 * `lambda = log(sqrt(alpha / (1 - alpha)))`, first order on the first step and when the
 * previous timestep is below 0, second order (with the previous step's x0) otherwise.
 * Every step adds noise, whatever `eta` is: one draw per step, plus a second draw for
 * the second-order update, so 5 steps draw 1, 2, 2, 2, 1 tensors.
 *
 * With zero terminal SNR the first step has `alpha_prod_t = 0`: `lambda = -inf`,
 * `h = +inf`, and the next step's `r = h_last / h` is `+inf`. The formulas rely on IEEE
 * arithmetic for these (`exp(-inf) = 0`, `expm1(-inf) = -1`, `1 / inf = 0`), as torch
 * does.
 *
 * @module
 */

import type { SchedulerConfig } from "./scheduler_config.ts";
import {
  alphaProdAt,
  alphaProdPrevAt,
  inferenceTimesteps,
  type NoiseSchedule,
  noiseSchedule,
  previousTimestep,
} from "./noise_schedule.ts";
import {
  checkSameLength,
  checkStepIndex,
  predictOriginalSample,
  type SchedulerStepOutput,
  type SchedulerStepper,
  type StepTimesteps,
} from "./scheduler_step.ts";

/** The scalars of one DPM step, named as in diffusers' `get_variables` and `get_mult`. */
export interface DpmCoefficients {
  /** `alphas_cumprod[timestep]`. */
  alphaProdT: number;
  /** `alphas_cumprod[prev_timestep]`, or the final alpha product below 0. */
  alphaProdTPrev: number;
  /** `alphas_cumprod[timestep_back]` (the previous list entry), or null on the first step. */
  alphaProdTBack: number | null;
  /** `lambda` at this timestep. */
  lamb: number;
  /** `lambda` at the previous timestep. */
  lambNext: number;
  /** `lamb_next - lamb`. */
  h: number;
  /** `h_last / h`, or null on the first step. */
  r: number | null;
  /** Weight of the sample: `((1 - a_prev) / (1 - a_t)) ** 0.5 * exp(-h)`. */
  mult1: number;
  /** Minus the weight of x0: `expm1(-2 h) * a_prev ** 0.5`. */
  mult2: number;
  /** `1 + 1 / (2 r)`, or null on the first step. */
  mult3: number | null;
  /** `1 / (2 r)`, or null on the first step. */
  mult4: number | null;
  /** Weight of the noise: `(1 - a_prev) ** 0.5 * (1 - exp(-2 h)) ** 0.5`. */
  multNoise: number;
}

/** The timesteps one DPM step looks at. */
export interface DpmStepTimesteps extends StepTimesteps {
  /** The timestep of the previous step (`timesteps[i - 1]`), null on the first step. */
  timestepBack: number | null;
}

/** The DPM step scalars for a timestep, its previous timestep and the last step's timestep. */
export function dpmCoefficients(
  schedule: NoiseSchedule,
  { timestep, prevTimestep, timestepBack }: DpmStepTimesteps,
): DpmCoefficients {
  const round = schedule.roundScalar;
  const alphaProdT = alphaProdAt(schedule, timestep);
  const alphaProdTPrev = alphaProdPrevAt(schedule, prevTimestep);
  const alphaProdTBack = timestepBack === null ? null : alphaProdAt(schedule, timestepBack);
  const lambdaOf = (alpha: number) =>
    round(Math.log(round(Math.sqrt(round(alpha / round(1 - alpha))))));

  // get_variables
  const lamb = lambdaOf(alphaProdT);
  const lambNext = lambdaOf(alphaProdTPrev);
  const h = round(lambNext - lamb);
  let r: number | null = null;
  if (alphaProdTBack !== null) {
    const lambPrevious = lambdaOf(alphaProdTBack);
    const hLast = round(lamb - lambPrevious);
    r = round(hLast / h);
  }

  // get_mult
  const mult1 = round(
    round(Math.sqrt(round(round(1 - alphaProdTPrev) / round(1 - alphaProdT)))) *
      round(Math.exp(-h)),
  );
  const mult2 = round(round(Math.expm1(round(-2 * h))) * round(Math.sqrt(alphaProdTPrev)));
  const mult3 = r === null ? null : round(1 + round(1 / round(2 * r)));
  const mult4 = r === null ? null : round(1 / round(2 * r));
  const multNoise = round(
    round(Math.sqrt(round(1 - alphaProdTPrev))) *
      round(Math.sqrt(round(1 - round(Math.exp(round(-2 * h)))))),
  );
  return {
    alphaProdT,
    alphaProdTPrev,
    alphaProdTBack,
    lamb,
    lambNext,
    h,
    r,
    mult1,
    mult2,
    mult3,
    mult4,
    multNoise,
  };
}

/** State a DPM stepper keeps between steps. */
interface DpmState {
  /** x0 predicted by the previous step (null before the first step). */
  oldPredOriginalSample: Float32Array | null;
}

/**
 * One DPM step as diffusers' `CogVideoXDPMScheduler.step`:
 *
 * 1. `pred_original_sample` from the model output;
 * 2. draw noise; `prev_sample = mult1 * sample - mult2 * x0 + mult_noise * noise`;
 * 3. unless this is the first step or `prevTimestep < 0`: `denoised_d = mult3 * x0 -
 *    mult4 * old_x0`, draw noise again, and `prev_sample = mult1 * sample - mult2 *
 *    denoised_d + mult_noise * noise`.
 *
 * `state.oldPredOriginalSample` is read, then replaced by this step's x0.
 */
function dpmStep(
  config: SchedulerConfig,
  schedule: NoiseSchedule,
  coefficients: DpmCoefficients,
  prevTimestep: number,
  state: DpmState,
  modelOutput: Float32Array,
  sample: Float32Array,
  drawNoise: () => Float32Array,
): SchedulerStepOutput {
  const predOriginalSample = predictOriginalSample(
    config.prediction_type,
    coefficients.alphaProdT,
    sample,
    modelOutput,
    schedule.roundScalar,
  );
  const f = Math.fround;
  const mult1 = f(coefficients.mult1);
  const mult2 = f(coefficients.mult2);
  const multNoise = f(coefficients.multNoise);
  const n = sample.length;

  const noise = drawNoise();
  checkSameLength(sample, noise, "noise");
  let prevSample = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    prevSample[i] = f(f(mult1 * sample[i]) - f(mult2 * predOriginalSample[i])) +
      f(multNoise * noise[i]);
  }

  const old = state.oldPredOriginalSample;
  state.oldPredOriginalSample = predOriginalSample;
  if (old === null || prevTimestep < 0) return { prevSample, predOriginalSample };

  if (coefficients.mult3 === null || coefficients.mult4 === null) {
    throw new Error("DPM step has a previous x0 but no timestep_back");
  }
  checkSameLength(sample, old, "previous x0");
  const mult3 = f(coefficients.mult3);
  const mult4 = f(coefficients.mult4);
  const denoisedD = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    denoisedD[i] = f(mult3 * predOriginalSample[i]) - f(mult4 * old[i]);
  }
  const secondNoise = drawNoise();
  checkSameLength(sample, secondNoise, "noise");
  prevSample = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    prevSample[i] = f(f(mult1 * sample[i]) - f(mult2 * denoisedD[i])) +
      f(multNoise * secondNoise[i]);
  }
  return { prevSample, predOriginalSample };
}

/** A `CogVideoXDPMScheduler` after `set_timesteps(numInferenceSteps)`. */
export function createDpmStepper(
  config: SchedulerConfig,
  numInferenceSteps: number,
): SchedulerStepper {
  const schedule = noiseSchedule(config);
  const timesteps = inferenceTimesteps(config, numInferenceSteps);
  const state: DpmState = { oldPredOriginalSample: null };
  let nextStepIndex = 0;
  const prevTimestepAt = (stepIndex: number) =>
    previousTimestep(timesteps[stepIndex], config.num_train_timesteps, numInferenceSteps);

  return {
    kind: "dpm",
    timesteps,
    initNoiseSigma: 1.0,
    noiseDraws(stepIndex: number): number {
      checkStepIndex(stepIndex, timesteps);
      return stepIndex === 0 || prevTimestepAt(stepIndex) < 0 ? 1 : 2;
    },
    step(
      stepIndex: number,
      modelOutput: Float32Array,
      sample: Float32Array,
      drawNoise?: () => Float32Array,
    ): SchedulerStepOutput {
      checkStepIndex(stepIndex, timesteps);
      if (stepIndex !== nextStepIndex) {
        throw new Error(
          `DPM scheduler steps must run in order: expected step ${nextStepIndex}, got ${stepIndex}`,
        );
      }
      if (drawNoise === undefined) {
        throw new Error("DPM scheduler step needs drawNoise: every step adds noise");
      }
      checkSameLength(sample, modelOutput, "model output");
      const prevTimestep = prevTimestepAt(stepIndex);
      const timestepBack = stepIndex > 0 ? timesteps[stepIndex - 1] : null;
      const coefficients = dpmCoefficients(schedule, {
        timestep: timesteps[stepIndex],
        prevTimestep,
        timestepBack,
      });
      const output = dpmStep(
        config,
        schedule,
        coefficients,
        prevTimestep,
        state,
        modelOutput,
        sample,
        drawNoise,
      );
      nextStepIndex++;
      return output;
    },
  };
}
