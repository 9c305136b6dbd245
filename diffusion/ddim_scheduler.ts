/**
 * `CogVideoXDDIMScheduler` of diffusers: deterministic DDIM steps (eta is ignored
 * there, so no noise is ever drawn).
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

/** The scalars of one DDIM step, named as in diffusers' `step`. */
export interface DdimCoefficients {
  /** `alphas_cumprod[timestep]`. */
  alphaProdT: number;
  /** `alphas_cumprod[prev_timestep]`, or the final alpha product below 0. */
  alphaProdTPrev: number;
  /** `((1 - alpha_prod_t_prev) / (1 - alpha_prod_t)) ** 0.5`: weight of the sample. */
  aT: number;
  /** `alpha_prod_t_prev ** 0.5 - alpha_prod_t ** 0.5 * a_t`: weight of the predicted x0. */
  bT: number;
}

/** The DDIM step scalars for a timestep and its previous timestep. */
export function ddimCoefficients(
  schedule: NoiseSchedule,
  { timestep, prevTimestep }: StepTimesteps,
): DdimCoefficients {
  const round = schedule.roundScalar;
  const alphaProdT = alphaProdAt(schedule, timestep);
  const alphaProdTPrev = alphaProdPrevAt(schedule, prevTimestep);
  const aT = round(Math.sqrt(round(round(1 - alphaProdTPrev) / round(1 - alphaProdT))));
  const bT = round(round(Math.sqrt(alphaProdTPrev)) - round(round(Math.sqrt(alphaProdT)) * aT));
  return { alphaProdT, alphaProdTPrev, aT, bT };
}

/**
 * One DDIM step: `pred_original_sample` from the model output, then
 * `prev_sample = a_t * sample + b_t * pred_original_sample`.
 */
function ddimStep(
  config: SchedulerConfig,
  schedule: NoiseSchedule,
  coefficients: DdimCoefficients,
  modelOutput: Float32Array,
  sample: Float32Array,
): SchedulerStepOutput {
  const predOriginalSample = predictOriginalSample(
    config.prediction_type,
    coefficients.alphaProdT,
    sample,
    modelOutput,
    schedule.roundScalar,
  );
  const f = Math.fround;
  const aT = f(coefficients.aT);
  const bT = f(coefficients.bT);
  const prevSample = new Float32Array(sample.length);
  for (let i = 0; i < sample.length; i++) {
    prevSample[i] = f(aT * sample[i]) + f(bT * predOriginalSample[i]);
  }
  return { prevSample, predOriginalSample };
}

/** A `CogVideoXDDIMScheduler` after `set_timesteps(numInferenceSteps)`. */
export function createDdimStepper(
  config: SchedulerConfig,
  numInferenceSteps: number,
): SchedulerStepper {
  const schedule = noiseSchedule(config);
  const timesteps = inferenceTimesteps(config, numInferenceSteps);
  return {
    kind: "ddim",
    timesteps,
    initNoiseSigma: 1.0,
    noiseDraws(stepIndex: number): number {
      checkStepIndex(stepIndex, timesteps);
      return 0;
    },
    step(stepIndex: number, modelOutput: Float32Array, sample: Float32Array): SchedulerStepOutput {
      checkStepIndex(stepIndex, timesteps);
      checkSameLength(sample, modelOutput, "model output");
      const timestep = timesteps[stepIndex];
      const prevTimestep = previousTimestep(
        timestep,
        config.num_train_timesteps,
        numInferenceSteps,
      );
      const coefficients = ddimCoefficients(schedule, { timestep, prevTimestep });
      return ddimStep(config, schedule, coefficients, modelOutput, sample);
    },
  };
}
