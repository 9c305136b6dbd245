/**
 * sample: the CogVideoX denoising loop, as `CogVideoXPipeline.__call__` runs it: classifier-free
 * guidance with the unconditional rows first, the dynamic guidance scale, DDIM or DPM steps (DPM
 * drawing its noise from the generator that drew the initial latents), progress per step and
 * cancellation between steps.
 *
 * @module
 */

import { dirname } from "node:path";
import { z } from "zod";
import {
  defineNode,
  formatPortType,
  type InferContext,
  type PortType,
  tensorPort,
  UserError,
} from "../engine/mod.ts";
import {
  classifierFreeGuidance,
  cogVideoXPositionalEmbedding,
  createSchedulerStepper,
  dynamicGuidanceScale,
  inferenceTimesteps,
  type SchedulerSpec,
  type SincosTransformerConfig,
  TorchGenerator,
} from "../diffusion/mod.ts";
import {
  concatBatch,
  createTensor,
  estimateSampling,
  formatShape,
  memoryLimits,
  memoryProblem,
  type ModelHandle,
  stack,
  type Tensor,
  transformerGeometryOf,
} from "../runtime/mod.ts";
import { attentionKindOf, scanAttention } from "../runtime/onnx_attention.ts";
import {
  generatorPort,
  type GeneratorState,
  isSchedulerSpec,
  latentsPort,
  modelOfType,
  modelPort,
  schedulerPort,
} from "./ports.ts";

/** Input names of a CogVideoX transformer export. */
const INPUTS = {
  latents: "hidden_states",
  text: "encoder_hidden_states",
  timestep: "timestep",
  cos: "image_rotary_emb_cos",
  sin: "image_rotary_emb_sin",
  pos: "pos_embedding",
};

/** The sample node type. */
export const sample = defineNode({
  type: "sample",
  version: 2,
  description: "Denoises latents with the transformer: classifier-free guidance, DDIM or DPM steps",
  category: "sampling",
  inputs: {
    model: modelPort("transformer").describe(
      "The transformer that predicts the noise at each step",
    ),
    scheduler: schedulerPort().describe("The DDIM or DPM scheduler that steps the latents"),
    latents: latentsPort().describe(
      "Initial latents [batch, frames, channels, height, width], from noise",
    ),
    prompt_embeds: tensorPort({ dtype: "float32", rank: 3 }).describe(
      "Prompt embeddings [batch, tokens, width], from text_encode",
    ),
    negative_prompt_embeds: tensorPort({ dtype: "float32", rank: 3 }).describe(
      "Negative prompt embeddings of the same shape; needed when guidance_scale is above 1",
    ).optional(),
    generator: generatorPort().describe(
      "The noise node's generator, whose stream the DPM scheduler continues (needed for DPM)",
    ).optional(),
    rotary_cos: tensorPort({ dtype: "float32", rank: 2 }).describe(
      "Rotary cosine table from rotary_embedding; needed by transformers with rotary embeddings",
    ).optional(),
    rotary_sin: tensorPort({ dtype: "float32", rank: 2 }).describe(
      "Rotary sine table from rotary_embedding; needed by transformers with rotary embeddings",
    ).optional(),
  },
  settings: {
    steps: z.number().int().min(1).default(50).describe(
      "Denoising steps (default 50), at most the scheduler's num_train_timesteps",
    ),
    guidance_scale: z.number().min(0).default(6).describe(
      "Classifier-free guidance scale; above 1 also runs the negative prompt, doubling the batch (default 6)",
    ),
    use_dynamic_cfg: z.boolean().default(false).describe(
      "Vary the guidance over the steps as diffusers' use_dynamic_cfg, from 1 up to 1 + guidance_scale (default false)",
    ),
    keep_step_latents: z.boolean().default(false).describe(
      "Also output the latents after every step as step_latents, steps times their memory (default false)",
    ),
  },
  outputs: {
    latents: latentsPort().describe("The denoised latents, of the input's shape"),
    step_latents: tensorPort({ dtype: "float32", rank: 6 }).describe(
      "The latents after each step [steps, batch, frames, channels, height, width], with keep_step_latents",
    ).optional(),
    timesteps: tensorPort({ dtype: "int64", rank: 1 }).describe(
      "The timestep of each step [steps], as the transformer got it",
    ),
    guidance: tensorPort({ dtype: "float64", rank: 1 }).describe(
      "The guidance scale of each step [steps] (diffusers' guidance_scale property during the step)",
    ),
  },
  async infer(ctx, inputs, settings) {
    const model = modelOfType(inputs.model);
    const scheduler = isSchedulerSpec(inputs.scheduler?.info) ? inputs.scheduler.info : undefined;
    if (settings.guidance_scale > 1 && !inputs.negative_prompt_embeds) {
      ctx.error(
        `guidance_scale ${settings.guidance_scale} uses classifier-free guidance, which needs negative_prompt_embeds`,
        { port: "negative_prompt_embeds" },
      );
    }
    if (scheduler?.kind === "dpm" && !inputs.generator) {
      ctx.error(
        "The DPM scheduler draws noise at each step: connect the generator of the noise node",
        {
          port: "generator",
        },
      );
    }
    if (scheduler) checkSteps(ctx, scheduler, settings.steps);
    if (model) {
      checkModelInputs(ctx, model, inputs);
      checkRotaryConfig(ctx, model);
      await checkMemory(ctx, model, inputs, settings);
    }
    const latents = inputs.latents?.shape;
    return {
      latents: inputs.latents,
      step_latents: latents
        ? { kind: "tensor", dtype: "float32", shape: [settings.steps, ...latents] }
        : undefined,
      timesteps: { kind: "tensor", dtype: "int64", shape: [settings.steps] },
      guidance: { kind: "tensor", dtype: "float64", shape: [settings.steps] },
    };
  },
  async run(ctx, inputs, settings) {
    const { model, scheduler, prompt_embeds, negative_prompt_embeds } = inputs;
    const stepper = createSchedulerStepper(scheduler, settings.steps);
    const doClassifierFreeGuidance = settings.guidance_scale > 1;
    if (doClassifierFreeGuidance && !negative_prompt_embeds) {
      throw new UserError("Classifier-free guidance needs negative_prompt_embeds");
    }
    const textEmbeds = doClassifierFreeGuidance
      ? concatBatch([negative_prompt_embeds!, prompt_embeds])
      : prompt_embeds;
    const latentShape = inputs.latents.shape;
    let latents: Float32Array = Float32Array.from(inputs.latents.data);
    const drawNoise = noiseSource(inputs.generator, latentShape, scheduler);
    const rotary = rotaryFeeds(model, inputs.rotary_cos, inputs.rotary_sin);
    const positional = positionalEmbeddingFeeds(model, latentShape);
    const modelBatch = latentShape[0] * (doClassifierFreeGuidance ? 2 : 1);
    const stepLatents: Tensor<"float32">[] = [];
    const outputName = model.signature.outputs[0]?.name ?? "sample";
    const total = stepper.timesteps.length;
    const guidances = new Float64Array(total);
    // The same arrays every step: the model's worker keeps them instead of receiving them again.
    const unchanged = new Set([INPUTS.text, ...Object.keys(rotary), ...Object.keys(positional)]);

    for (let index = 0; index < total; index++) {
      ctx.signal.throwIfAborted();
      const t = stepper.timesteps[index];
      const current = createTensor("float32", latentShape, latents);
      const modelInput = doClassifierFreeGuidance ? concatBatch([current, current]) : current;
      const timestep = createTensor(
        "int64",
        [modelBatch],
        new BigInt64Array(modelBatch).fill(BigInt(t)),
      );
      const outputs = await ctx.models.run(model, {
        [INPUTS.latents]: modelInput,
        [INPUTS.text]: textEmbeds,
        [INPUTS.timestep]: timestep,
        ...rotary,
        ...positional,
      }, { signal: ctx.signal, unchanged });
      const prediction = outputs[outputName];
      if (
        !prediction || prediction.dtype !== "float32" ||
        prediction.data.length !== modelInput.data.length
      ) {
        throw new UserError(
          `Model "${model.name}" returned ${
            prediction ? `${prediction.dtype} ${formatShape(prediction.shape)}` : "no output"
          }, expected float32 ${formatShape(modelInput.shape)}`,
        );
      }
      let noisePred = prediction.data as Float32Array;
      guidances[index] = settings.use_dynamic_cfg
        ? dynamicGuidanceScale(settings.guidance_scale, t, settings.steps)
        : settings.guidance_scale;
      if (doClassifierFreeGuidance) noisePred = classifierFreeGuidance(noisePred, guidances[index]);
      latents = stepper.step(index, noisePred, latents, drawNoise).prevSample;
      if (settings.keep_step_latents) {
        stepLatents.push(createTensor("float32", latentShape, latents.slice()));
      }
      ctx.progress(index + 1, total, `t=${t}`);
    }
    return {
      latents: createTensor("float32", latentShape, latents),
      step_latents: settings.keep_step_latents ? stack(stepLatents) : undefined,
      timesteps: createTensor(
        "int64",
        [total],
        BigInt64Array.from(stepper.timesteps, (t) => BigInt(t)),
      ),
      guidance: createTensor("float64", [total], guidances),
    };
  },
});

/** Continues the noise node's generator: seeds it and draws past what was already drawn. */
function noiseSource(
  state: GeneratorState | undefined,
  shape: readonly number[],
  scheduler: SchedulerSpec,
): (() => Float32Array) | undefined {
  if (!state) {
    if (scheduler.kind === "dpm") {
      throw new UserError("The DPM scheduler needs the noise node's generator");
    }
    return undefined;
  }
  let generator: TorchGenerator | undefined;
  return () => {
    if (!generator) {
      generator = new TorchGenerator(BigInt(state.seed));
      for (const drawn of state.draws) generator.randn(drawn);
    }
    return generator.randn(shape).data;
  };
}

function rotaryFeeds(
  model: ModelHandle,
  cos: Tensor<"float32"> | undefined,
  sin: Tensor<"float32"> | undefined,
): Record<string, Tensor> {
  const wanted = model.signature.inputs.some((input) => input.name === INPUTS.cos);
  if (!wanted) return {};
  if (!cos || !sin) {
    throw new UserError(
      `Model "${model.name}" takes rotary embeddings: connect rotary_cos and rotary_sin`,
    );
  }
  return { [INPUTS.cos]: cos, [INPUTS.sin]: sin };
}

/** The sin-cos table of 2b-style transformer graphs that take it as `pos_embedding`. */
function positionalEmbeddingFeeds(
  model: ModelHandle,
  latentShape: readonly number[],
): Record<string, Tensor> {
  if (!model.signature.inputs.some((input) => input.name === INPUTS.pos)) return {};
  const config = model.config;
  // Missing keys take diffusers' defaults, as the graph builder's config reader does.
  const number = (key: string, fallback: number) => {
    const value = config[key] ?? fallback;
    if (typeof value !== "number") {
      throw new UserError(`Model "${model.name}" config has a non-numeric "${key}"`);
    }
    return value;
  };
  const sincosConfig: SincosTransformerConfig = {
    num_attention_heads: number("num_attention_heads", 30),
    attention_head_dim: number("attention_head_dim", 64),
    patch_size: number("patch_size", 2),
    temporal_compression_ratio: number("temporal_compression_ratio", 4),
    spatial_interpolation_scale: number("spatial_interpolation_scale", 1.875),
    temporal_interpolation_scale: number("temporal_interpolation_scale", 1.0),
  };
  return { [INPUTS.pos]: cogVideoXPositionalEmbedding(sincosConfig, latentShape) };
}

/** Checks, before anything runs, that what the workflow feeds the transformer fits what it declares. */
function checkModelInputs(
  ctx: InferContext,
  model: ModelHandle,
  inputs: Record<string, PortType | undefined>,
) {
  const declared = new Map(model.signature.inputs.map((input) => [input.name, input]));
  const source = ctx.source("model");
  const modelName = source ? `"${source.node}.${source.port}"` : `"${model.name}"`;
  for (const name of [INPUTS.latents, INPUTS.text, INPUTS.timestep]) {
    if (!declared.has(name)) {
      ctx.error(
        `Model ${modelName} has no input "${name}" (it takes ${
          [...declared.keys()].join(", ")
        }): is it a CogVideoX transformer?`,
        { port: "model" },
      );
      return;
    }
  }
  const compare = (port: string, inputName: string, skipBatch: boolean) => {
    const given = inputs[port]?.shape;
    const expected = declared.get(inputName)?.shape;
    if (!given || !expected) return;
    const from = ctx.source(port);
    const givenBy = from ? `"${from.node}.${from.port}"` : `"${port}"`;
    const mismatch = given.length !== expected.length ||
      expected.some((dimension, axis) =>
        !(skipBatch && axis === 0) && typeof dimension === "number" &&
        typeof given[axis] === "number" &&
        dimension !== given[axis]
      );
    if (mismatch) {
      ctx.error(
        `Model ${modelName} expects ${inputName} ${formatShape(expected)}, but ${givenBy} gives ${
          formatPortType(inputs[port]!)
        } (input "${port}" of "${ctx.node}")`,
        { port },
      );
    }
  };
  compare("latents", INPUTS.latents, true);
  compare("prompt_embeds", INPUTS.text, true);
  if (declared.has(INPUTS.cos) && (!inputs.rotary_cos || !inputs.rotary_sin)) {
    ctx.error(
      `Model ${modelName} takes rotary embeddings: connect rotary_cos and rotary_sin (a rotary_embedding node)`,
      {
        port: "rotary_cos",
      },
    );
  }
}

/** Refuses step counts the scheduler cannot take, as diffusers' `set_timesteps` would at run time. */
function checkSteps(ctx: InferContext, scheduler: SchedulerSpec, steps: number) {
  const numTrain = scheduler.config.num_train_timesteps;
  if (steps > numTrain) {
    ctx.error(
      `steps ${steps} is more than the scheduler's num_train_timesteps ${numTrain}: use at most ${numTrain} steps`,
      { setting: "steps" },
    );
    return;
  }
  let largest = -1;
  for (const t of inferenceTimesteps(scheduler.config, steps)) largest = Math.max(largest, t);
  if (largest >= numTrain) {
    ctx.error(
      `steps ${steps} with the scheduler's steps_offset ${scheduler.config.steps_offset} reach timestep ${largest}, past its ${numTrain} training timesteps: lower steps or steps_offset`,
      { setting: "steps" },
    );
  }
}

/**
 * Checks that the transformer's model file and its config.json describe one model: the rotary
 * tables are made from the config, and a model file from another pipeline (a 5b transformer in a
 * 2b folder) would otherwise fail in the middle of the run.
 */
function checkRotaryConfig(ctx: InferContext, model: ModelHandle) {
  const declared = model.signature.inputs.find((input) => input.name === INPUTS.cos);
  const shape = declared?.shape ?? ["video_tokens", "head_dim"];
  const config = model.config;
  if (Object.keys(config).length === 0) return;
  const source = ctx.source("model");
  const modelName = source ? `"${source.node}.${source.port}"` : `"${model.name}"`;
  const files = `the model file and config.json in "${
    dirname(model.path)
  }" come from different models`;
  const usesRotary = config.use_rotary_positional_embeddings;
  if (declared && usesRotary !== true) {
    ctx.error(
      `Model ${modelName} takes rotary embeddings (${INPUTS.cos} ${
        formatShape(shape)
      }), but its config.json says use_rotary_positional_embeddings ${
        JSON.stringify(usesRotary ?? null)
      }: ${files}`,
      { port: "model" },
    );
    return;
  }
  if (!declared && usesRotary === true) {
    ctx.error(
      `Model ${modelName} takes no rotary embeddings, but its config.json says use_rotary_positional_embeddings true: ${files}`,
      { port: "model" },
    );
    return;
  }
  const width = declared?.shape?.[1];
  const headDim = config.attention_head_dim;
  if (typeof width === "number" && typeof headDim === "number" && width !== headDim) {
    ctx.error(
      `Model ${modelName} takes rotary tables of width ${width} (${INPUTS.cos} ${
        formatShape(shape)
      }), but its config.json says attention_head_dim ${headDim}: ${files}`,
      { port: "model" },
    );
  }
}

/** Refuses, before anything runs, a denoising step that cannot fit the machine or the budget. */
async function checkMemory(
  ctx: InferContext,
  model: ModelHandle,
  inputs: Record<string, PortType | undefined>,
  settings: { steps: number; guidance_scale: number; keep_step_latents: boolean },
) {
  const latents = inputs.latents?.shape;
  const textTokens = inputs.prompt_embeds?.shape?.[1];
  const geometry = transformerGeometryOf(model.config);
  if (!latents || latents.length !== 5 || typeof textTokens !== "number" || !geometry) return;
  const known = latents.map((dimension, axis) =>
    typeof dimension === "number" ? dimension : axis === 0 ? 1 : undefined
  );
  if (known.some((dimension) => dimension === undefined)) return;
  // On the CPU, MultiHeadAttention counts its probabilities (per query chunk when chunked).
  const attention = attentionKindOf(
    await scanAttention(model.path, model.fingerprint),
    model.session.executionProviders[0] ?? "cpu",
  );
  const estimate = estimateSampling({
    latents: known as number[],
    textTokens,
    guidance: settings.guidance_scale > 1,
    transformer: geometry,
    ...attention,
    keptSteps: settings.keep_step_latents ? settings.steps : 0,
  });
  const problem = memoryProblem(estimate, memoryLimits(), {
    subject: "Sampling",
    hint: settings.keep_step_latents
      ? "lower height, width, num_frames or steps, give fewer prompts, or drop keep_step_latents"
      : "lower height, width or num_frames, or give fewer prompts",
  });
  if (problem) ctx.error(problem, { port: "latents" });
}
