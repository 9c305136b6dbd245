/**
 * Model hooks: what a hook node changes about a model, through a small typed interface that the
 * runtime calls. A hook node adds plain data to a model handle (handles are cached and compared,
 * so the data stays JSON); the behaviour of its kind is defined once, with
 * {@link defineModelHook}, in the hook node's own file, and looked up by kind when the model runs.
 * Built-in hooks and plugins use the same interface. A behaviour contributes any of:
 *
 * - `session`: how the model manager keeps the model's sessions (a {@link SessionPlan}: released
 *   after the last use, created from bytes in RAM, within a budget, run in parts). At most one
 *   hook of a model has one (the first, innermost, counts); hook nodes that set it take the
 *   `offload` hook kind so that a workflow cannot give a model two;
 * - `decode`: how a VAE decode call is split (one video at a time, spatial tiles), around the next
 *   step, and how that changes the memory estimate (`estimateDecoding`);
 * - `call`: middleware around every `models.run(model, feeds)` call of the model, as Hono's:
 *   `(call, next) => next(call.feeds)`.
 *
 * Hooks apply outermost first: the hook added last sees a call first.
 *
 * @example
 * ```ts
 * import { defineModelHook, type ModelHook } from "./model_hooks.ts";
 *
 * interface CallCountHook extends ModelHook {
 *   kind: "call_count";
 * }
 *
 * let calls = 0;
 * export const callCountHook = defineModelHook<CallCountHook>({
 *   kind: "call_count",
 *   call: (call, next) => {
 *     calls++;
 *     return next(call.feeds);
 *   },
 * });
 * // In the hook node's run(): `model: callCountHook.wrap(model, { node: ctx.node })`.
 * ```
 *
 * @module
 */

import { type ModelHandle, type ModelHook, withHook } from "./model_handle.ts";
import type { DecodingShapes } from "./run_estimate.ts";
import type { Tensor } from "./tensor.ts";
import { UserError } from "./user_error.ts";

export type { ModelHook };

/** How the model manager keeps a model's sessions. Without a plan: resident until the run ends. */
export interface SessionPlan {
  /** The policy's name in statistics (`model_offload`). */
  policy: string;
  /** Close the session right after the last node that uses the model (default: at the run's end). */
  releaseAfterLastUse?: boolean;
  /** Keep the model's bytes in host memory and create sessions from them, reading no file. */
  keepInRam?: boolean;
  /** Keep sessions while those of the same group fit `maxBytes`, least recently used out first. */
  budget?: { group: string; maxBytes: number };
  /** Run the model in parts, one part resident at a time (see `sequential_runner.ts`). */
  parts?: PartsPlan;
}

/** How a model runs in parts. */
export interface PartsPlan {
  /** Blocks per part (transformer blocks, or a VAE decoder's up blocks). */
  blocksPerGroup: number;
  /** Regular expression finding a block's index in node and weight names (first group). */
  blockPattern?: string;
  /** Load the next part in a second worker while the current one runs. */
  prefetch: boolean;
  /** Whether parts repack their weights when loaded: never (default), always, or by measurement. */
  prepackWeights?: "auto" | "always" | "never";
  /**
   * Weight streaming of a built model (runtime/streamed_runner.ts): `auto` (default) streams on
   * a GPU provider, `on` also on the CPU, `off` never.
   */
  streamWeights?: "auto" | "on" | "off";
}

/** Runs the model (or the next hook) on feeds. */
export type RunNext = (feeds: Record<string, Tensor>) => Promise<Record<string, Tensor>>;

/** One call of a model, as a call wrapper sees it. */
export interface ModelCall<H extends ModelHook = ModelHook> {
  /** The model called. */
  model: ModelHandle;
  /** This hook's data. */
  hook: H;
  /** The inputs of the call. */
  feeds: Record<string, Tensor>;
  /** Cancels the call. */
  signal?: AbortSignal;
}

/** Decodes latents `[batch, channels, frames, h, w]` into samples (or hands them to the next step). */
export type DecodeNext = (latents: Tensor<"float32">) => Promise<Tensor<"float32">>;

/** One decode call, as a decode strategy sees it. */
export interface DecodeCall<H extends ModelHook = ModelHook> {
  /** The VAE. */
  model: ModelHandle;
  /** This hook's data. */
  hook: H;
  /** Checked between pieces. */
  signal: AbortSignal;
  /** Says that this call is split into `count` calls of `next`, for progress. */
  pieces(count: number): void;
}

/** What a hook kind does: every part is optional. */
export interface ModelHookBehaviour<H extends ModelHook = ModelHook> {
  /** The kind, as the hook data names it. */
  kind: H["kind"];
  /** How the model manager keeps the sessions of the model. */
  session?(hook: H): SessionPlan;
  /** Middleware around each call of the model: call `next` to run it. */
  call?(call: ModelCall<H>, next: RunNext): Promise<Record<string, Tensor>>;
  /** How a VAE decode call is split: call `next` on each piece. */
  decode?(
    latents: Tensor<"float32">,
    next: DecodeNext,
    call: DecodeCall<H>,
  ): Promise<Tensor<"float32">>;
  /** The decode's memory estimate under this hook (as `decode` splits it). */
  estimateDecoding?(shapes: DecodingShapes, hook: H): DecodingShapes;
}

/** A defined hook kind: its behaviour, and the helper hook nodes add its data with. */
export interface ModelHookType<H extends ModelHook = ModelHook> extends ModelHookBehaviour<H> {
  /** A copy of `model` with this hook's data added (plain JSON: handles are cached). */
  wrap(model: ModelHandle, data: Omit<H, "kind">): ModelHandle;
}

// Shared by every copy of this module in the process, as node definitions' brand is.
const REGISTRY_KEY = Symbol.for("cogflow.modelHooks");
const registry: Map<string, ModelHookBehaviour> =
  ((globalThis as Record<symbol, unknown>)[REGISTRY_KEY] ??= new Map()) as Map<
    string,
    ModelHookBehaviour
  >;

/**
 * Defines a hook kind and registers its behaviour, so that the runtime finds it by the kind of
 * the data a hook node adds. Call it at the top level of the hook node's file.
 */
export function defineModelHook<H extends ModelHook>(
  behaviour: ModelHookBehaviour<H>,
): ModelHookType<H> {
  const existing = registry.get(behaviour.kind);
  if (existing && existing !== behaviour) {
    throw new Error(`Model hook "${behaviour.kind}" is defined twice`);
  }
  registry.set(behaviour.kind, behaviour as unknown as ModelHookBehaviour);
  return {
    ...behaviour,
    wrap: (model, data) => withHook(model, { ...data, kind: behaviour.kind } as H),
  };
}

/** The registered behaviour of a hook, or an error naming the hook node. */
export function behaviourOf(hook: ModelHook): ModelHookBehaviour {
  const behaviour = registry.get(hook.kind);
  if (!behaviour) {
    throw new UserError(
      `Unknown model hook "${hook.kind}" of node "${hook.node}": its plugin defines no behaviour for it with defineModelHook`,
    );
  }
  return behaviour;
}

/** The model's hook of one kind, if any. */
export function hookOf<H extends ModelHook>(model: ModelHandle, kind: H["kind"]): H | undefined {
  return model.hooks.find((hook) => hook.kind === kind) as H | undefined;
}

/** How the model's sessions are kept: the plan of its first hook that has one. */
export function sessionPlanOf(model: ModelHandle): SessionPlan | undefined {
  for (const hook of model.hooks) {
    const plan = behaviourOf(hook).session?.(hook);
    if (plan) return plan;
  }
  return undefined;
}

/** Runs a model call through its hooks' call wrappers, outermost first, then `run`. */
export function runWithHooks(
  model: ModelHandle,
  feeds: Record<string, Tensor>,
  run: RunNext,
  signal?: AbortSignal,
): Promise<Record<string, Tensor>> {
  let next = run;
  for (const hook of model.hooks) {
    const wrapper = behaviourOf(hook).call;
    if (!wrapper) continue;
    const inner = next;
    next = (feeds) => wrapper({ model, hook, feeds, signal }, inner);
  }
  return next(feeds);
}

/** Options of {@link decodeWithHooks}. */
export interface DecodeWithHooksOptions {
  /** Checked between pieces. */
  signal: AbortSignal;
  /** Told the number of pieces each split makes (a split counts once per strategy). */
  onPieces?: (count: number) => void;
}

/** Decodes latents through the model's decode strategies, outermost first, then `decode`. */
export function decodeWithHooks(
  model: ModelHandle,
  latents: Tensor<"float32">,
  decode: DecodeNext,
  options: DecodeWithHooksOptions,
): Promise<Tensor<"float32">> {
  let next = decode;
  for (const hook of model.hooks) {
    const strategy = behaviourOf(hook).decode;
    if (!strategy) continue;
    const inner = next;
    let counted = false;
    const pieces = (count: number) => {
      if (counted) return;
      counted = true;
      options.onPieces?.(count);
    };
    next = (latents) => strategy(latents, inner, { model, hook, signal: options.signal, pieces });
  }
  return next(latents);
}

/** The decode's memory estimate shapes as the model's decode strategies change them. */
export function decodingShapesWithHooks(
  model: ModelHandle,
  shapes: DecodingShapes,
): DecodingShapes {
  let result = shapes;
  for (const hook of model.hooks) {
    result = behaviourOf(hook).estimateDecoding?.(result, hook) ?? result;
  }
  return result;
}
