/**
 * load_pipeline: a CogVideoX pipeline folder (diffusers/Optimum layout, `model_index.json`) with
 * each component as an output, so that a workflow can say `in: { model: pipe.transformer }`.
 *
 * @module
 */

import { join } from "node:path";
import { defineNode, inputPath, UserError } from "../engine/mod.ts";
import { parseSchedulerConfig, SchedulerConfigError } from "../diffusion/scheduler_config.ts";
import { schedulerKindOf, type SchedulerSpec } from "../diffusion/scheduler.ts";
import type { SessionSettings } from "../runtime/model_handle.ts";
import { describeModel, readPipelineFolder } from "../runtime/model_files.ts";
import {
  modelPort,
  modelType,
  schedulerPort,
  type TokenizerHandle,
  tokenizerPort,
} from "./ports.ts";
import { sessionSettingsOf, sessionSettingsShape } from "./session_settings.ts";

/** The load_pipeline node type. */
export const loadPipeline = defineNode({
  type: "load_pipeline",
  version: 1,
  description:
    "Loads a CogVideoX pipeline folder: text encoder, transformer, VAE decoder, tokenizer, scheduler",
  category: "models",
  inputs: {},
  settings: { path: inputPath(), ...sessionSettingsShape },
  outputs: {
    text_encoder: modelPort("text_encoder"),
    transformer: modelPort("transformer"),
    vae: modelPort("vae"),
    tokenizer: tokenizerPort(),
    scheduler: schedulerPort(),
  },
  async infer(_ctx, _inputs, settings) {
    const pipeline = await openPipeline(settings.path, sessionSettingsOf(settings));
    return {
      text_encoder: modelType(pipeline.text_encoder),
      transformer: modelType(pipeline.transformer),
      vae: modelType(pipeline.vae),
      scheduler: { kind: "scheduler", info: pipeline.scheduler },
    };
  },
  async run(ctx, _inputs, settings) {
    const pipeline = await openPipeline(settings.path, sessionSettingsOf(settings));
    for (const model of [pipeline.text_encoder, pipeline.transformer, pipeline.vae]) {
      await ctx.dependsOnFile(model.path);
    }
    await ctx.dependsOnFile(join(settings.path, "scheduler", "scheduler_config.json"));
    await ctx.dependsOnFile(join(pipeline.tokenizer.dir, "tokenizer.json"));
    return pipeline;
  },
});

async function openPipeline(dir: string, session: SessionSettings) {
  const folder = await readPipelineFolder(dir);
  const [text_encoder, transformer, vae] = await Promise.all([
    describeModel(folder.textEncoder, { name: "text_encoder", role: "text_encoder", session }),
    describeModel(folder.transformer, { name: "transformer", role: "transformer", session }),
    describeModel(folder.vaeDecoder, {
      name: "vae",
      role: "vae",
      session,
      config: folder.vaeConfig,
    }),
  ]);
  const className = String(folder.schedulerConfig._class_name ?? "");
  const kind = schedulerKindOf(className);
  if (!kind) {
    throw new UserError(
      `Unsupported scheduler "${className}" in "${
        join(dir, "scheduler", "scheduler_config.json")
      }": expected CogVideoXDDIMScheduler or CogVideoXDPMScheduler`,
    );
  }
  let scheduler: SchedulerSpec;
  try {
    scheduler = { kind, config: parseSchedulerConfig(folder.schedulerConfig) };
  } catch (error) {
    if (!(error instanceof SchedulerConfigError)) throw error;
    throw new UserError(
      `${error.message} (in "${join(dir, "scheduler", "scheduler_config.json")}")`,
    );
  }
  const tokenizerJson = await Deno.stat(join(folder.tokenizer, "tokenizer.json"));
  const tokenizer: TokenizerHandle = {
    kind: "tokenizer",
    dir: folder.tokenizer,
    fingerprint: `${tokenizerJson.size}:${tokenizerJson.mtime?.getTime() ?? 0}`,
  };
  return { text_encoder, transformer, vae, tokenizer, scheduler };
}
