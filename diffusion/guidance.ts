/**
 * Classifier-free guidance as `CogVideoXPipeline` applies it, including the dynamic
 * guidance scale (`use_dynamic_cfg`).
 *
 * @module
 */

/**
 * `uncond + g * (cond - uncond)` over the two halves of a CFG batch: the first half of
 * `modelOutput` is the unconditional prediction (negative prompt), the second the
 * conditional one. Rounded as torch does in float32 (`g` cast to float32 first).
 */
export function classifierFreeGuidance(
  modelOutput: Float32Array,
  guidanceScale: number,
): Float32Array {
  if (modelOutput.length % 2 !== 0) {
    throw new RangeError(
      `Cannot split a model output of ${modelOutput.length} elements into unconditional and conditional halves`,
    );
  }
  const half = modelOutput.length / 2;
  const f = Math.fround;
  const g = f(guidanceScale);
  const guided = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const uncond = modelOutput[i];
    const cond = modelOutput[half + i];
    guided[i] = uncond + f(g * f(cond - uncond));
  }
  return guided;
}

/**
 * The dynamic guidance scale of `CogVideoXPipeline` (`use_dynamic_cfg=True`) at
 * timestep value `timestep` (999, 799, ..., not the step index), in float64:
 *
 * `1 + guidanceScale * ((1 - cos(pi * ((N - t) / N) ** 5)) / 2)`
 *
 * The cosine argument reaches about 1e12, so one ulp in the fifth power moves the
 * cosine by up to about 1e-4: the power must round as Python's `**` does. That is the C
 * library's `pow`, which V8's `Math.pow` calls too (bit-equal to glibc 2.36 on all
 * 100,000 pairs N = 1..100, t = 0..999). glibc's `pow` is not always correctly rounded:
 * on 72 of those pairs an exactly rounded power is one ulp off it, moving the guidance by
 * up to 2e-6 relative, so exact rounding would be the wrong target. `Math.cos` can be one
 * ulp off glibc's `cos`, which moves the guidance by at most 4e-16 relative.
 */
export function dynamicGuidanceScale(
  guidanceScale: number,
  timestep: number,
  numInferenceSteps: number,
): number {
  return dynamicGuidanceTerms(guidanceScale, timestep, numInferenceSteps).guidance;
}

/** Every intermediate of {@link dynamicGuidanceScale}, named as in the fixtures' `case.json`. */
export interface DynamicGuidanceTerms {
  /** `(N - t) / N`. */
  base: number;
  /** `base ** 5`, rounded as the C library's `pow` rounds it. */
  pow5: number;
  /** `pi * pow5`. */
  arg: number;
  /** `cos(arg)`. */
  cos: number;
  /** `1 + guidance_scale * ((1 - cos) / 2)`. */
  guidance: number;
}

/** {@link dynamicGuidanceScale} with its intermediates, for checking them one by one. */
export function dynamicGuidanceTerms(
  guidanceScale: number,
  timestep: number,
  numInferenceSteps: number,
): DynamicGuidanceTerms {
  const base = (numInferenceSteps - timestep) / numInferenceSteps;
  const pow5 = Math.pow(base, 5);
  const arg = Math.PI * pow5;
  const cos = Math.cos(arg);
  const guidance = 1 + guidanceScale * ((1 - cos) / 2);
  return { base, pow5, arg, cos, guidance };
}
