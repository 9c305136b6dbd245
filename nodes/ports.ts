/**
 * Port types of the built-in nodes: model handles, tokenizers, schedulers, random generators and
 * videos. Plugins use them to connect to the built-in nodes.
 *
 * @module
 */

import type { SchedulerSpec } from "../diffusion/scheduler.ts";
import { type PortSchema, type PortType, tensorPort, valuePort } from "../engine/mod.ts";
import { isModelHandle, type ModelHandle } from "../runtime/model_handle.ts";
import type { Tensor } from "../runtime/tensor.ts";

/** A model handle port; `role` narrows what connects (`vae`, `transformer`, `text_encoder`). */
export function modelPort(role?: string): PortSchema<ModelHandle> {
  return valuePort<ModelHandle>("model", isModelHandle, { role });
}

/** The static type of a model handle: its role, and the handle itself for `infer()` to read. */
export function modelType(model: ModelHandle): PortType {
  return { kind: "model", role: model.role, info: model };
}

/** The model handle a static type carries, if validation has read it. */
export function modelOfType(type: PortType | undefined): ModelHandle | undefined {
  return isModelHandle(type?.info) ? type.info : undefined;
}

/** A tokenizer folder, as plain data (made by `describeTokenizerFolder` of load_tokenizer.ts). */
export interface TokenizerHandle {
  /** Marks the value. */
  kind: "tokenizer";
  /** The folder with `tokenizer.json`, or with `spiece.model` and no `tokenizer.json`. */
  dir: string;
  /** Name, size and modification time of each file in `files`, for caches. */
  fingerprint: string;
  /** The files a load reads, for a node's file dependencies; absent in older handles. */
  files?: string[];
}

/** True for tokenizer handles. */
export function isTokenizerHandle(value: unknown): value is TokenizerHandle {
  return typeof value === "object" && value !== null &&
    (value as { kind?: unknown }).kind === "tokenizer" &&
    typeof (value as { dir?: unknown }).dir === "string";
}

/** A tokenizer port. */
export function tokenizerPort(): PortSchema<TokenizerHandle> {
  return valuePort<TokenizerHandle>("tokenizer", isTokenizerHandle);
}

/** True for scheduler specs. */
export function isSchedulerSpec(value: unknown): value is SchedulerSpec {
  const spec = value as Partial<SchedulerSpec> | null;
  return typeof spec === "object" && spec !== null &&
    (spec.kind === "ddim" || spec.kind === "dpm") &&
    typeof spec.config === "object" && spec.config !== null;
}

/** A scheduler port (a scheduler kind and its config). */
export function schedulerPort(): PortSchema<SchedulerSpec> {
  return valuePort<SchedulerSpec>("scheduler", isSchedulerSpec);
}

/**
 * The state of a `torch.Generator("cpu")` as plain data: its seed and the shapes drawn so far.
 * A node continues the stream by seeding a generator and drawing the same shapes again.
 */
export interface GeneratorState {
  /** Marks the value. */
  kind: "torch_generator";
  /** The seed, as decimal text (seeds go up to 2^64). */
  seed: string;
  /** Shapes already drawn from it, in order. */
  draws: number[][];
}

/** True for generator states. */
export function isGeneratorState(value: unknown): value is GeneratorState {
  const state = value as Partial<GeneratorState> | null;
  return typeof state === "object" && state !== null && state.kind === "torch_generator" &&
    typeof state.seed === "string" && Array.isArray(state.draws);
}

/** A random generator port. */
export function generatorPort(): PortSchema<GeneratorState> {
  return valuePort<GeneratorState>("generator", isGeneratorState);
}

/** Latents `[batch, latent frames, channels, height, width]`, float32. */
export function latentsPort(): PortSchema<Tensor<"float32">> {
  return tensorPort({ dtype: "float32", rank: 5 });
}

/** Videos `[batch, frames, 3, height, width]`, float32 in [0, 1]. */
export function videoPort(): PortSchema<Tensor<"float32">> {
  return tensorPort({ dtype: "float32", rank: 5 });
}
