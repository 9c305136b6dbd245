/**
 * What every CogVideoX scheduler offers the sampling loop, and the predicted-x0
 * formula they share.
 *
 * Precision: diffusers computes each step's scalar coefficients in float64 (0-dim
 * tensors) and multiplies them into the float32 latents. torch casts such a scalar to
 * float32 first and then rounds every elementwise operation to float32, so
 * `a * x - b * y` is `fround(fround(fround(a) * x) - fround(fround(b) * y))`. The loops
 * here do exactly that: a float32 product or sum of float32 values computed in double
 * and rounded once equals the float32 operation.
 *
 * @module
 */

import type { SchedulerConfig } from "./scheduler_config.ts";

/** Scheduler families: `CogVideoXDDIMScheduler` and `CogVideoXDPMScheduler`. */
export type SchedulerKind = "ddim" | "dpm";

/** What one scheduler step returns. */
export interface SchedulerStepOutput {
  /** The latents for the next step (`prev_sample`). */
  prevSample: Float32Array;
  /** The predicted clean latents of this step (`pred_original_sample`). */
  predOriginalSample: Float32Array;
}

/** The timesteps one scheduler step looks at. */
export interface StepTimesteps {
  /** The current timestep `t`. */
  timestep: number;
  /** `t - num_train_timesteps // N`; below 0 means the final alpha product. */
  prevTimestep: number;
}

/** A scheduler set up for a number of inference steps, stepped once per timestep in order. */
export interface SchedulerStepper {
  /** Which scheduler this is. */
  readonly kind: SchedulerKind;
  /** The timesteps, largest first; the transformer gets `timesteps[i]` at step i. */
  readonly timesteps: readonly number[];
  /** Standard deviation of the initial noise (the latents are `randn * initNoiseSigma`). */
  readonly initNoiseSigma: number;
  /** How many noise tensors step `stepIndex` draws through `drawNoise`. */
  noiseDraws(stepIndex: number): number;
  /**
   * Step `stepIndex` (0, 1, 2, ... in order): from the guided model output and the
   * current latents to the next latents. `drawNoise` must return a fresh standard
   * normal float32 draw of the latent size each call (the same generator as the
   * initial latents); schedulers that need no noise never call it.
   */
  step(
    stepIndex: number,
    modelOutput: Float32Array,
    sample: Float32Array,
    drawNoise?: () => Float32Array,
  ): SchedulerStepOutput;
}

/**
 * `pred_original_sample` of both CogVideoX schedulers for the config's
 * `prediction_type`, with `alphaProdT = alphas_cumprod[t]`:
 *
 * - `epsilon`: `(sample - beta_prod_t ** 0.5 * model_output) / alpha_prod_t ** 0.5`
 * - `sample`: `model_output`
 * - `v_prediction`: `alpha_prod_t ** 0.5 * sample - beta_prod_t ** 0.5 * model_output`
 *
 * `roundScalar` is the schedule's scalar precision (identity for float64).
 */
export function predictOriginalSample(
  predictionType: SchedulerConfig["prediction_type"],
  alphaProdT: number,
  sample: Float32Array,
  modelOutput: Float32Array,
  roundScalar: (x: number) => number = (x) => x,
): Float32Array {
  checkSameLength(sample, modelOutput, "model output");
  const f = Math.fround;
  const betaProdT = roundScalar(1 - alphaProdT);
  const sqrtAlphaProdT = f(roundScalar(Math.sqrt(alphaProdT)));
  const sqrtBetaProdT = f(roundScalar(Math.sqrt(betaProdT)));
  const predOriginalSample = new Float32Array(sample.length);
  switch (predictionType) {
    case "epsilon":
      for (let i = 0; i < sample.length; i++) {
        predOriginalSample[i] = f(sample[i] - f(sqrtBetaProdT * modelOutput[i])) / sqrtAlphaProdT;
      }
      break;
    case "sample":
      predOriginalSample.set(modelOutput);
      break;
    case "v_prediction":
      for (let i = 0; i < sample.length; i++) {
        predOriginalSample[i] = f(sqrtAlphaProdT * sample[i]) - f(sqrtBetaProdT * modelOutput[i]);
      }
      break;
  }
  return predOriginalSample;
}

/** Throws unless `values` has as many elements as `sample`. */
export function checkSameLength(sample: Float32Array, values: Float32Array, what: string): void {
  if (values.length !== sample.length) {
    throw new RangeError(
      `Scheduler ${what} has ${values.length} elements but the sample has ${sample.length}`,
    );
  }
}

/** Throws unless `stepIndex` is a valid index into `timesteps`. */
export function checkStepIndex(stepIndex: number, timesteps: readonly number[]): void {
  if (!Number.isInteger(stepIndex) || stepIndex < 0 || stepIndex >= timesteps.length) {
    throw new RangeError(
      `Invalid scheduler step ${stepIndex}: expected an integer from 0 to ${timesteps.length - 1}`,
    );
  }
}
