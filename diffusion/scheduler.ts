/**
 * Schedulers as plain data: a {@link SchedulerSpec} names the scheduler and holds its
 * validated config, and {@link createSchedulerStepper} turns it into the stepper the
 * sampling loop drives.
 *
 * @module
 */

import type { SchedulerConfig } from "./scheduler_config.ts";
import { createDdimStepper } from "./ddim_scheduler.ts";
import { createDpmStepper } from "./dpm_scheduler.ts";
import type { SchedulerKind, SchedulerStepper } from "./scheduler_step.ts";

export type { SchedulerKind, SchedulerStepOutput, SchedulerStepper } from "./scheduler_step.ts";

/** A scheduler and its config; JSON-serializable. */
export interface SchedulerSpec {
  /** `ddim` (`CogVideoXDDIMScheduler`) or `dpm` (`CogVideoXDPMScheduler`). */
  kind: SchedulerKind;
  /** The validated config (see `parseSchedulerConfig`). */
  config: SchedulerConfig;
}

/** diffusers class name of each scheduler kind. */
export const SCHEDULER_CLASS_NAMES: Readonly<Record<SchedulerKind, string>> = {
  ddim: "CogVideoXDDIMScheduler",
  dpm: "CogVideoXDPMScheduler",
};

/** The kind of a diffusers scheduler class name (`_class_name`), or undefined if unsupported. */
export function schedulerKindOf(className: string): SchedulerKind | undefined {
  for (const [kind, name] of Object.entries(SCHEDULER_CLASS_NAMES)) {
    if (name === className) return kind as SchedulerKind;
  }
  return undefined;
}

/** The scheduler of `spec`, set up for `numInferenceSteps` (diffusers' `set_timesteps`). */
export function createSchedulerStepper(
  spec: SchedulerSpec,
  numInferenceSteps: number,
): SchedulerStepper {
  switch (spec.kind) {
    case "ddim":
      return createDdimStepper(spec.config, numInferenceSteps);
    case "dpm":
      return createDpmStepper(spec.config, numInferenceSteps);
    default:
      throw new Error(
        `Unknown scheduler kind "${(spec as { kind: unknown }).kind}": expected "ddim" or "dpm"`,
      );
  }
}
