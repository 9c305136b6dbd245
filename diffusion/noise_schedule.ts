/**
 * The noise schedule of the CogVideoX schedulers: betas, `alphasCumprod` and the
 * inference timesteps, computed as diffusers does in `__init__` and `set_timesteps`
 * of `CogVideoXDDIMScheduler` / `CogVideoXDPMScheduler` (the two share this code).
 *
 * diffusers keeps these in torch tensors: float64 for the `scaled_linear` schedule
 * and float32 for `linear`. The float32 case is reproduced by rounding every
 * operation with `Math.fround`; see {@link NoiseSchedule.roundScalar}.
 *
 * @module
 */

import type { SchedulerConfig } from "./scheduler_config.ts";

/** `alphasCumprod` and what is derived from it, for one scheduler config. */
export interface NoiseSchedule {
  /** Beta of each training timestep. */
  betas: Float64Array;
  /** `1 - betas`. */
  alphas: Float64Array;
  /** Cumulative product of `alphas`, SNR-shifted and, if configured, rescaled to zero terminal SNR. */
  alphasCumprod: Float64Array;
  /** Alpha product used once the previous timestep is below 0. */
  finalAlphaCumprod: number;
  /**
   * Rounds a scalar to the precision diffusers computes the schedule's scalars in:
   * the identity for float64 (`scaled_linear`), `Math.fround` for float32 (`linear`).
   */
  roundScalar: (x: number) => number;
}

/**
 * `torch.linspace(start, end, steps)` on the CPU: the first half counts up from
 * `start`, the second half down from `end`. With `round = Math.fround` it is the
 * float32 linspace (start, end and every operation rounded to float32).
 */
export function torchLinspace(
  start: number,
  end: number,
  steps: number,
  round: (x: number) => number = (x) => x,
): number[] {
  if (steps === 0) return [];
  const first = round(start);
  if (steps === 1) return [first];
  const last = round(end);
  const step = round(round(last - first) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  const values: number[] = [];
  for (let idx = 0; idx < steps; idx++) {
    values.push(
      idx < halfway
        ? round(first + round(step * idx))
        : round(last - round(step * (steps - idx - 1))),
    );
  }
  return values;
}

/**
 * Betas of the config's `beta_schedule`: `scaled_linear` is
 * `linspace(beta_start ** 0.5, beta_end ** 0.5) ** 2` in float64, `linear` is
 * `linspace(beta_start, beta_end)` in float32.
 */
export function betasFor(config: SchedulerConfig): Float64Array {
  const steps = config.num_train_timesteps;
  if (config.beta_schedule === "scaled_linear") {
    // Python's `beta ** 0.5` is C `pow`, which Math.pow calls too (not always equal to sqrt).
    const roots = torchLinspace(
      Math.pow(config.beta_start, 0.5),
      Math.pow(config.beta_end, 0.5),
      steps,
    );
    return Float64Array.from(roots, (root) => root * root);
  }
  return Float64Array.from(torchLinspace(config.beta_start, config.beta_end, steps, Math.fround));
}

/**
 * `rescale_zero_terminal_snr` of diffusers (Algorithm 1 of arXiv:2305.08891) on
 * `alphasCumprod`: shifts `sqrt(alphasCumprod)` so the last is 0 and scales it so
 * the first is unchanged. Returns a new array.
 */
export function rescaleZeroTerminalSnr(
  alphasCumprod: Float64Array,
  round: (x: number) => number = (x) => x,
): Float64Array {
  const alphasBarSqrt = alphasCumprod.map((alphaBar) => round(Math.sqrt(alphaBar)));
  const alphasBarSqrt0 = alphasBarSqrt[0];
  const alphasBarSqrtT = alphasBarSqrt[alphasBarSqrt.length - 1];
  const scale = round(alphasBarSqrt0 / round(alphasBarSqrt0 - alphasBarSqrtT));
  return alphasBarSqrt.map((value) => {
    const shifted = round(round(value - alphasBarSqrtT) * scale);
    return round(shifted * shifted);
  });
}

/** Computes the schedule of a config, as the CogVideoX schedulers' `__init__` does. */
export function noiseSchedule(config: SchedulerConfig): NoiseSchedule {
  const roundScalar = config.beta_schedule === "linear" ? Math.fround : (x: number) => x;
  const round = roundScalar;
  const betas = betasFor(config);
  const alphas = betas.map((beta) => round(1.0 - beta));
  // torch's CPU cumprod accumulates float32 in double and stores each partial product rounded.
  let cumulative = 1;
  let alphasCumprod: Float64Array = alphas.map((alpha) => {
    cumulative *= alpha;
    return round(cumulative);
  });
  const shift = config.snr_shift_scale;
  const oneMinusShift = round(1 - shift);
  alphasCumprod = alphasCumprod.map((alphaBar) =>
    round(alphaBar / round(round(shift) + round(oneMinusShift * alphaBar)))
  );
  if (config.rescale_betas_zero_snr) alphasCumprod = rescaleZeroTerminalSnr(alphasCumprod, round);
  const finalAlphaCumprod = config.set_alpha_to_one ? 1.0 : alphasCumprod[0];
  return { betas, alphas, alphasCumprod, finalAlphaCumprod, roundScalar };
}

/**
 * The timestep before `timestep` inside a step: `t - num_train_timesteps // N`.
 * This is not always the next entry of the timestep list.
 */
export function previousTimestep(
  timestep: number,
  numTrainTimesteps: number,
  numInferenceSteps: number,
): number {
  return timestep - Math.floor(numTrainTimesteps / numInferenceSteps);
}

/**
 * `alphas_cumprod[timestep]` as torch indexes it: a negative timestep counts from the
 * end (only `trailing` spacing with some N, e.g. 61, produces the timestep -1).
 */
export function alphaProdAt(schedule: NoiseSchedule, timestep: number): number {
  const value = schedule.alphasCumprod.at(timestep);
  if (value === undefined) {
    throw new RangeError(
      `Timestep ${timestep} is outside the ${schedule.alphasCumprod.length} training timesteps`,
    );
  }
  return value;
}

/** The alpha product of a previous timestep: `alphas_cumprod[t]`, or the final one below 0. */
export function alphaProdPrevAt(schedule: NoiseSchedule, prevTimestep: number): number {
  return prevTimestep >= 0 ? alphaProdAt(schedule, prevTimestep) : schedule.finalAlphaCumprod;
}

/**
 * Inference timesteps for `numInferenceSteps`, largest first, exactly as
 * `set_timesteps` of the CogVideoX schedulers computes them with numpy:
 *
 * - `linspace`: `round(linspace(0, T - 1, N))`, reversed;
 * - `leading`: `arange(N) * (T // N)`, reversed, plus `steps_offset`;
 * - `trailing`: `round(arange(T, 0, -T / N)) - 1` (`steps_offset` is not added).
 *
 * Rounding is numpy's (half to even) of numpy's floating-point values, so for example
 * `linspace` with N = 27 gives 499 (not 500) and `trailing` with N = 61 gives 62
 * timesteps, the last one -1, as diffusers does.
 */
export function inferenceTimesteps(config: SchedulerConfig, numInferenceSteps: number): number[] {
  const numTrain = config.num_train_timesteps;
  if (!Number.isInteger(numInferenceSteps) || numInferenceSteps < 1) {
    throw new RangeError(
      `Invalid number of inference steps ${numInferenceSteps}: expected an integer >= 1`,
    );
  }
  if (numInferenceSteps > numTrain) {
    throw new RangeError(
      `Invalid number of inference steps ${numInferenceSteps}: at most num_train_timesteps (${numTrain})`,
    );
  }
  switch (config.timestep_spacing) {
    case "linspace":
      return numpyLinspace(0, numTrain - 1, numInferenceSteps).map(roundHalfEven).reverse();
    case "leading": {
      const stepRatio = Math.floor(numTrain / numInferenceSteps);
      const timesteps: number[] = [];
      for (let i = numInferenceSteps - 1; i >= 0; i--) {
        timesteps.push(i * stepRatio + config.steps_offset);
      }
      return timesteps;
    }
    case "trailing": {
      const stepRatio = numTrain / numInferenceSteps;
      return numpyArange(numTrain, 0, -stepRatio).map((value) => roundHalfEven(value) - 1);
    }
  }
}

/** Python's `round` / numpy's `rint` on a float: nearest integer, ties to even. */
export function roundHalfEven(x: number): number {
  const nearest = Math.round(x);
  // Math.round sends ties up; a tie that landed on an odd integer goes down instead.
  if (nearest - x === 0.5 && nearest % 2 !== 0) return nearest - 1;
  return nearest + 0; // no -0
}

/** `np.linspace(start, stop, num)`: `i * step + start`, with the last value exactly `stop`. */
function numpyLinspace(start: number, stop: number, num: number): number[] {
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  const values: number[] = [];
  for (let i = 0; i < num; i++) values.push(i * step + start);
  values[num - 1] = stop;
  return values;
}

/**
 * `np.arange(start, stop, step)` for floats: the length is `ceil((stop - start) / step)`;
 * numpy stores `start` and `start + step`, then fills `start + i * delta` where `delta`
 * is the difference of those two stored values.
 */
function numpyArange(start: number, stop: number, step: number): number[] {
  const length = Math.max(0, Math.ceil((stop - start) / step));
  const values: number[] = [];
  if (length === 0) return values;
  values.push(start);
  if (length === 1) return values;
  const next = start + step;
  values.push(next);
  const delta = next - start;
  for (let i = 2; i < length; i++) values.push(start + i * delta);
  return values;
}
