/**
 * The `scheduler_config.json` of a CogVideoX pipeline, as read by diffusers'
 * `CogVideoXDDIMScheduler` and `CogVideoXDPMScheduler`.
 *
 * Keys are kept in diffusers' snake_case so a config can be compared with the
 * JSON file key by key. Defaults are those of the schedulers' `__init__`.
 *
 * @module
 */

import { z } from "zod";

/** Beta schedules the CogVideoX schedulers support here. */
export const BETA_SCHEDULES = ["scaled_linear", "linear"] as const;
/** What the transformer predicts. */
export const PREDICTION_TYPES = ["v_prediction", "epsilon", "sample"] as const;
/** How inference timesteps are spread over the training timesteps. */
export const TIMESTEP_SPACINGS = ["linspace", "leading", "trailing"] as const;

/**
 * Keys that diffusers writes into scheduler configs but that do not change what the
 * CogVideoX schedulers compute. They are accepted and dropped.
 */
export const IGNORED_SCHEDULER_KEYS = [
  "_class_name",
  "_diffusers_version",
  "_use_default_values",
  "_name_or_path",
  "sample_max_value",
  "thresholding",
  "dynamic_thresholding_ratio",
] as const;

/**
 * The most training timesteps a config may declare. Real schedules have 1,000; the schedules are
 * arrays of this length, so an absurd value (2e9) would fail only when sampling starts.
 */
export const MAX_TRAIN_TIMESTEPS = 1_000_000;

/** Schema of a CogVideoX scheduler config; unknown keys are an error. */
export const schedulerConfigSchema = z.object({
  /** Number of training timesteps (the length of `alphas_cumprod`). */
  num_train_timesteps: z.number().int().min(1).max(MAX_TRAIN_TIMESTEPS).default(1000),
  /** First beta of the schedule: a noise variance, above 0 and below 1. */
  beta_start: z.number().positive().lt(1).default(0.00085),
  /** Last beta of the schedule, above 0 and below 1. */
  beta_end: z.number().positive().lt(1).default(0.012),
  /** `scaled_linear`: betas are a float64 linspace of square roots, squared; `linear`: a float32 linspace. */
  beta_schedule: z.enum(BETA_SCHEDULES).default("scaled_linear"),
  /** Only `null`: explicit betas are not supported. */
  trained_betas: z.null().optional(),
  /**
   * Accepted for compatibility. The CogVideoX schedulers of diffusers never clip,
   * whatever this says, so neither do these.
   */
  clip_sample: z.boolean().default(true),
  /** Range of the (never applied) clipping. */
  clip_sample_range: z.number().positive().default(1.0),
  /** Whether the alpha product after the last step is 1 (else `alphas_cumprod[0]`). */
  set_alpha_to_one: z.boolean().default(true),
  /** Added to `leading` timesteps (the CogVideoX schedulers ignore it for the other spacings). */
  steps_offset: z.number().int().min(0).max(MAX_TRAIN_TIMESTEPS).default(0),
  /** What the model output is. */
  prediction_type: z.enum(PREDICTION_TYPES).default("epsilon"),
  /** How inference timesteps are chosen. */
  timestep_spacing: z.enum(TIMESTEP_SPACINGS).default("leading"),
  /** Rescale `alphas_cumprod` so that the last timestep has zero signal. */
  rescale_betas_zero_snr: z.boolean().default(false),
  /** SNR shift: `ac / (s + (1 - s) * ac)`; 1 leaves `alphas_cumprod` unchanged. */
  snr_shift_scale: z.number().positive().max(1e6).default(3.0),
}).strict().superRefine((config, ctx) => {
  // A leading timestep past the schedule would fail only at the first step.
  const numTrain = config.num_train_timesteps;
  if (!Number.isInteger(numTrain) || numTrain < 1 || numTrain > MAX_TRAIN_TIMESTEPS) return;
  if (config.steps_offset >= numTrain) {
    ctx.addIssue({
      code: "custom",
      path: ["steps_offset"],
      input: config.steps_offset,
      message:
        `must be below num_train_timesteps (${config.num_train_timesteps}), got ${config.steps_offset}`,
    });
  }
});

/** A validated scheduler config, every key present. */
export type SchedulerConfig = z.output<typeof schedulerConfigSchema>;

/** What a scheduler config may hold before validation (missing keys get defaults). */
export type SchedulerConfigInput = z.input<typeof schedulerConfigSchema>;

/** One problem found in a scheduler config. */
export interface SchedulerConfigIssue {
  /** The offending key (`""` when the config itself is wrong, e.g. not an object). */
  key: string;
  /** Path of the offending value inside the config. */
  path: (string | number)[];
  /** What is wrong, without the key. */
  message: string;
}

/** Thrown by {@link parseSchedulerConfig}; `issues` lists every problem at once. */
export class SchedulerConfigError extends Error {
  /** Every problem found, in key order. */
  readonly issues: SchedulerConfigIssue[];

  /** Makes the error from its issues. */
  constructor(issues: SchedulerConfigIssue[]) {
    const details = issues.map((issue) =>
      issue.key === "" ? issue.message : `"${issue.path.join(".")}": ${issue.message}`
    );
    super(`Invalid scheduler config: ${details.join("; ")}`);
    this.name = "SchedulerConfigError";
    this.issues = issues;
  }
}

/** Result of {@link checkSchedulerConfig}. */
export type SchedulerConfigResult =
  | { ok: true; config: SchedulerConfig }
  | { ok: false; issues: SchedulerConfigIssue[] };

/**
 * Validates a scheduler config (for example the parsed `scheduler_config.json`), with
 * `overrides` applied on top as diffusers' `from_config(config, **overrides)` does.
 * Returns every issue instead of throwing.
 */
export function checkSchedulerConfig(
  config: unknown,
  overrides: Partial<SchedulerConfigInput> = {},
): SchedulerConfigResult {
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    return {
      ok: false,
      issues: [{ key: "", path: [], message: `expected an object, got ${describe(config)}` }],
    };
  }
  const merged: Record<string, unknown> = { ...config, ...overrides };
  for (const key of IGNORED_SCHEDULER_KEYS) delete merged[key];
  const result = schedulerConfigSchema.safeParse(merged, { reportInput: true });
  if (result.success) return { ok: true, config: result.data };
  return { ok: false, issues: result.error.issues.flatMap(toIssues) };
}

/**
 * Validates a scheduler config with optional overrides and returns it typed, with
 * defaults filled in. Throws a {@link SchedulerConfigError} naming every wrong key.
 */
export function parseSchedulerConfig(
  config: unknown,
  overrides: Partial<SchedulerConfigInput> = {},
): SchedulerConfig {
  const result = checkSchedulerConfig(config, overrides);
  if (!result.ok) throw new SchedulerConfigError(result.issues);
  return result.config;
}

function toIssues(issue: z.core.$ZodIssue): SchedulerConfigIssue[] {
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => ({
      key,
      path: [...issue.path, key] as (string | number)[],
      message: "unknown key: not a setting of the CogVideoX schedulers",
    }));
  }
  const path = issue.path as (string | number)[];
  const key = String(path[0] ?? "");
  let message = issue.message;
  if (issue.code === "invalid_value") {
    const allowed = issue.values.map((value) => JSON.stringify(value)).join(", ");
    message = key === "trained_betas"
      ? `only null is supported, got ${describe(issue.input)}`
      : `expected one of ${allowed}, got ${describe(issue.input)}`;
  } else if (issue.code === "invalid_type") {
    const notFinite = typeof issue.input === "number" && !Number.isFinite(issue.input);
    message = key === "trained_betas"
      ? `only null is supported, got ${describe(issue.input)}`
      : notFinite
      ? `expected a finite number, got ${String(issue.input)}`
      : `expected ${issue.expected === "int" ? "an integer" : issue.expected}, got ${
        describe(issue.input)
      }`;
  } else if (issue.code === "too_big" || issue.code === "too_small") {
    message = `expected ${boundText(issue)}, got ${describe(issue.input)}`;
  }
  return [{ key, path, message }];
}

function boundText(issue: z.core.$ZodIssueTooBig | z.core.$ZodIssueTooSmall): string {
  if (issue.code === "too_big") {
    const bound = Number(issue.maximum);
    const sane = issue.path[0] === "num_train_timesteps" || issue.path[0] === "steps_offset"
      ? " (real schedules have 1000)"
      : "";
    return `${issue.inclusive ? "at most" : "below"} ${bound}${sane}`;
  }
  const bound = Number(issue.minimum);
  return bound === 0 && !issue.inclusive
    ? "a positive number"
    : `${issue.inclusive ? "at least" : "above"} ${bound}`;
}

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "object" && value !== null) return "an object";
  return `${typeof value} ${String(value)}`;
}
