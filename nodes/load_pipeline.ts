/**
 * load_pipeline: a CogVideoX pipeline folder (diffusers/Optimum layout, `model_index.json`) with
 * each component as an output, so that a workflow can say `in: { model: pipe.transformer }`.
 *
 * @module
 */

import { join } from "node:path";
import { z } from "zod";
import { defineNode, inputPath, UserError } from "../engine/mod.ts";
import { parseSchedulerConfig, SchedulerConfigError } from "../diffusion/scheduler_config.ts";
import { schedulerKindOf, type SchedulerSpec } from "../diffusion/scheduler.ts";
import type { SessionSettings } from "../runtime/model_handle.ts";
import { resolveModelFolder } from "../runtime/hf_cache.ts";
import { type ComponentSource, readPipelineFolder } from "../runtime/pipeline_folder.ts";
import { componentModel } from "../builders/component_model.ts";
import type { GraphBuilderFunction } from "../builders/built_model.ts";
import type { ComputeDType } from "../builders/onnx_graph.ts";
import {
  buildCogVideoXTransformer,
  buildCogVideoXVaeDecoder,
  buildT5Encoder,
} from "../builders/mod.ts";
import { CPU_ATTENTION_QUERY_CHUNK } from "../builders/cogvideox_transformer.ts";
import { describeTokenizerFolder } from "./load_tokenizer.ts";
import { modelPort, modelType, schedulerPort, tokenizerPort } from "./ports.ts";
import { sessionSettingsOf, sessionSettingsShape } from "./session_settings.ts";

/** The load_pipeline node type. */
export const loadPipeline = defineNode({
  type: "load_pipeline",
  version: 1,
  description:
    "Loads a CogVideoX pipeline folder: text encoder, transformer, VAE decoder, tokenizer, scheduler",
  category: "models",
  inputs: {},
  settings: {
    // A pipeline folder (diffusers layout with safetensors, or with ONNX files), a Hugging Face
    // cache folder (models--org--name), or a model id in the local Hugging Face cache.
    path: inputPath().describe(
      "A pipeline folder with model_index.json, a Hugging Face cache folder (models--org--name) or a cached model id",
    ),
    revision: z.string().min(1).optional().describe(
      "Hugging Face cache only: the branch, tag or commit to use (default: main, else the newest snapshot)",
    ),
    dtype: z.enum(["float32", "float16", "bfloat16"]).default("float32").describe(
      "What built graphs compute in: float32 on the CPU; float16 or bfloat16 on a GPU (the T5 text encoder stays in float32 for float16)",
    ),
    ...sessionSettingsShape,
  },
  outputs: {
    text_encoder: modelPort("text_encoder").describe("The T5 text encoder (text_encoder/)"),
    transformer: modelPort("transformer").describe(
      "The CogVideoX transformer that predicts the noise (transformer/)",
    ),
    vae: modelPort("vae").describe("The VAE decoder that turns latents into frames (vae/)"),
    tokenizer: tokenizerPort().describe(
      "The tokenizer folder (tokenizer/: tokenizer.json or spiece.model)",
    ),
    scheduler: schedulerPort().describe(
      "The DDIM or DPM scheduler with its config (scheduler/scheduler_config.json)",
    ),
  },
  async infer(ctx, _inputs, settings) {
    if (settings.dtype === "bfloat16" && (settings.providers[0] ?? "cpu") === "cpu") {
      ctx.error(
        'dtype "bfloat16" needs a GPU provider: ONNX Runtime\'s CPU provider has no bfloat16 kernels',
        {
          setting: "dtype",
          hint:
            "use dtype: float32 on the CPU, or providers: [cuda]; in the library workflows --set dtype=float32 or --set provider=cuda",
        },
      );
      return;
    }
    const pipeline = await openPipeline(settings.path, sessionSettingsOf(settings), settings);
    return {
      text_encoder: modelType(pipeline.text_encoder),
      transformer: modelType(pipeline.transformer),
      vae: modelType(pipeline.vae),
      scheduler: { kind: "scheduler", info: pipeline.scheduler },
    };
  },
  async run(ctx, _inputs, settings) {
    const { schedulerPath, ...pipeline } = await openPipeline(
      settings.path,
      sessionSettingsOf(settings),
      settings,
    );
    for (const model of [pipeline.text_encoder, pipeline.transformer, pipeline.vae]) {
      await ctx.dependsOnFile(model.path);
    }
    await ctx.dependsOnFile(schedulerPath);
    for (const file of pipeline.tokenizer.files ?? []) await ctx.dependsOnFile(file);
    const built = [pipeline.text_encoder, pipeline.transformer, pipeline.vae].some((model) =>
      model.build?.dtype === "float16"
    );
    if (built && (settings.providers[0] ?? "cpu") === "cpu") {
      ctx.log.warn(
        'dtype "float16" on the CPU: ONNX Runtime\'s CPU provider runs float16 matrix products about 8x slower than float32 (use dtype: float32 on the CPU)',
      );
    }
    return pipeline;
  },
});

async function openPipeline(
  path: string,
  session: SessionSettings,
  options: { revision?: string; dtype: ComputeDType },
) {
  const { folder: dir } = await resolveModelFolder(path, { revision: options.revision });
  const folder = await readPipelineFolder(dir);
  const component = (name: string, source: ComponentSource, build: GraphBuilderFunction) =>
    componentModel(source, {
      name,
      role: name,
      session,
      build,
      dtype: componentDType(name, options.dtype),
      // ONNX Runtime's CPU attention may hold [batch, heads, queries, sequence] probabilities (when
      // its flash path is off): the transformer attends in chunks of query rows there.
      attentionQueryChunk:
        name === "transformer" && (session.executionProviders[0] ?? "cpu") === "cpu"
          ? CPU_ATTENTION_QUERY_CHUNK
          : undefined,
    });
  const [text_encoder, transformer, vae] = await Promise.all([
    component("text_encoder", folder.textEncoder, buildT5Encoder),
    component("transformer", folder.transformer, buildCogVideoXTransformer),
    component("vae", folder.vae, buildCogVideoXVaeDecoder),
  ]);
  const schedulerPath = join(dir, "scheduler", "scheduler_config.json");
  const className = String(folder.schedulerConfig._class_name ?? "");
  const kind = schedulerKindOf(className);
  if (!kind) {
    throw new UserError(
      `Unsupported scheduler "${className}" in "${schedulerPath}": expected CogVideoXDDIMScheduler or CogVideoXDPMScheduler`,
    );
  }
  let scheduler: SchedulerSpec;
  try {
    scheduler = { kind, config: parseSchedulerConfig(folder.schedulerConfig) };
  } catch (error) {
    if (!(error instanceof SchedulerConfigError)) throw error;
    throw new UserError(`${error.message} (in "${schedulerPath}")`);
  }
  const tokenizer = await describeTokenizerFolder(folder.tokenizer);
  return { text_encoder, transformer, vae, tokenizer, scheduler, schedulerPath };
}

/**
 * The dtype a component's graph computes in for the pipeline's `dtype`. T5 overflows in float16
 * (a property of the model): it stays in float32 then. The VAE's Conv, Resize and Pad have no
 * bfloat16 kernels in ONNX Runtime: it computes in float16 for bfloat16.
 */
export function componentDType(component: string, dtype: ComputeDType): ComputeDType {
  if (component === "text_encoder" && dtype === "float16") return "float32";
  if (component === "vae" && dtype === "bfloat16") return "float16";
  return dtype;
}
