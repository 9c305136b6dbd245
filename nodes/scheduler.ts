/**
 * scheduler: a CogVideoX scheduler (DDIM or DPM) from a pipeline's scheduler or a
 * `scheduler_config.json`, with overrides written in the workflow.
 *
 * @module
 */

import { z } from "zod";
import { defineNode, inputPath, type PortType, UserError } from "../engine/mod.ts";
import {
  checkSchedulerConfig,
  type SchedulerConfigInput,
  type SchedulerConfigIssue,
} from "../diffusion/scheduler_config.ts";
import { schedulerKindOf, type SchedulerSpec } from "../diffusion/scheduler.ts";
import { readJsonObject } from "../runtime/model_files.ts";
import { isSchedulerSpec, schedulerPort } from "./ports.ts";

/** The scheduler node type. */
export const scheduler = defineNode({
  type: "scheduler",
  version: 1,
  description:
    "Configures CogVideoXDDIMScheduler or CogVideoXDPMScheduler, with overrides of its config",
  category: "sampling",
  inputs: {
    base: schedulerPort().describe(
      "A scheduler to start from, e.g. load_pipeline's: its kind and config",
    ).optional(),
  },
  settings: {
    type: z.enum(["auto", "ddim", "dpm"]).default("auto").describe(
      "CogVideoXDDIMScheduler or CogVideoXDPMScheduler; auto: the config's class, else the base's, else ddim (default auto)",
    ),
    config: inputPath().describe(
      "A scheduler_config.json to use instead of the base's config (relative to the workflow's folder)",
    ).optional(),
    overrides: z.record(z.string(), z.unknown()).default({}).describe(
      "Config keys to change, e.g. { timestep_spacing: trailing, snr_shift_scale: 1 } (default none)",
    ),
  },
  outputs: { scheduler: schedulerPort().describe("The scheduler kind and its checked config") },
  async infer(ctx, inputs, settings) {
    const base = isSchedulerSpec(inputs.base?.info) ? inputs.base.info : undefined;
    if (!inputs.base && !settings.config) {
      ctx.error("A scheduler needs a base (`in: { base: pipe.scheduler }`) or a `config` file", {
        setting: "config",
      });
      return;
    }
    if (inputs.base && !base) return;
    const result = await configure(base, settings);
    if (result.issues) {
      for (const issue of result.issues) {
        // Point at where the value came from: an override, the config file or the base scheduler.
        const overridden = Object.hasOwn(settings.overrides, issue.key);
        const from = overridden ? "" : settings.config ? ` (in "${settings.config}")` : "";
        const place = overridden || !inputs.base || settings.config
          ? { setting: overridden ? "overrides" : "config" }
          : { port: "base" };
        ctx.error(`Invalid scheduler setting "${issue.key}": ${issue.message}${from}`, place);
      }
      return;
    }
    const type: PortType = { kind: "scheduler", info: result.spec };
    return { scheduler: type };
  },
  async run(_ctx, { base }, settings) {
    const result = await configure(base, settings);
    if (result.issues) {
      throw new UserError(
        result.issues.map((issue) => `Invalid scheduler setting "${issue.key}": ${issue.message}`)
          .join("; "),
      );
    }
    return { scheduler: result.spec };
  },
});

async function configure(
  base: SchedulerSpec | undefined,
  settings: { type: "auto" | "ddim" | "dpm"; config?: string; overrides: Record<string, unknown> },
): Promise<{ spec: SchedulerSpec; issues?: undefined } | { issues: SchedulerConfigIssue[] }> {
  let raw: Record<string, unknown> = { ...(base?.config ?? {}) };
  let kind = base?.kind;
  if (settings.config) {
    raw = await readJsonObject(settings.config);
    const className = String(raw._class_name ?? "");
    kind = schedulerKindOf(className) ?? kind;
    if (!kind && settings.type === "auto") {
      throw new UserError(
        `Unsupported scheduler "${className}" in "${settings.config}": set \`type: ddim\` or \`type: dpm\``,
      );
    }
  }
  const checked = checkSchedulerConfig(raw, settings.overrides as Partial<SchedulerConfigInput>);
  if (!checked.ok) return { issues: checked.issues };
  const chosen = settings.type === "auto" ? kind ?? "ddim" : settings.type;
  return { spec: { kind: chosen, config: checked.config } };
}
