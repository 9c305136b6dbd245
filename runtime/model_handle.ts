/**
 * Model handles: plain data describing an ONNX model and how to run it. Nodes pass handles along
 * edges; hook nodes return a copy with a hook's data added; what a hook does is looked up by its
 * kind (runtime/model_hooks.ts).
 *
 * @module
 */

import type { OnnxModelInfo } from "./onnx_inspect.ts";

/** Execution providers cogflow knows how to ask ONNX Runtime for. */
export const EXECUTION_PROVIDERS = ["cpu", "cuda"] as const;

/** An execution provider name. */
export type ExecutionProvider = typeof EXECUTION_PROVIDERS[number];

/** How sessions of a model are created. */
export interface SessionSettings {
  /** Providers in order of preference (`["cuda", "cpu"]`); default `["cpu"]`. */
  executionProviders: ExecutionProvider[];
  /** When the first provider cannot be used: fail, or fall back to the CPU with a warning. */
  onUnavailableProvider: "error" | "fallback";
  /** Threads within an operator (0: ONNX Runtime's default). */
  intraOpThreads: number;
  /** Threads across operators (0: ONNX Runtime's default). */
  interOpThreads: number;
  /** ONNX Runtime graph optimizations. */
  graphOptimizationLevel: "disabled" | "basic" | "extended" | "all";
}

/** The defaults of {@link SessionSettings}. */
export const DEFAULT_SESSION_SETTINGS: SessionSettings = {
  executionProviders: ["cpu"],
  onUnavailableProvider: "error",
  intraOpThreads: 0,
  interOpThreads: 0,
  graphOptimizationLevel: "all",
};

/**
 * A hook as a model handle carries it: plain JSON data (handles are cached and compared), its kind
 * naming the behaviour that hook nodes register (runtime/model_hooks.ts).
 */
export interface ModelHook {
  /** The kind: the name its behaviour is registered under. */
  kind: string;
  /** The hook node (as written in the workflow). */
  node: string;
}

/** How cogflow built a model's graph (builders/), so that it can build the model again in parts. */
export interface ModelBuild {
  /** The builder: `cogvideox_transformer`, `cogvideox_vae_decoder` or `t5_encoder`. */
  component: string;
  /** The component's parsed config.json. */
  config: Record<string, unknown>;
  /** Path of that config.json. */
  configPath: string;
  /** The safetensors weight files (shards in index order). */
  weightFiles: string[];
  /** The compute dtype. */
  dtype: "float32" | "float16" | "bfloat16";
  /** Query rows per attention chunk the graph was built with (a CPU transformer), if any. */
  attentionQueryChunk?: number;
}

/** A model, as nodes pass it along. Plain data: it can be cached and compared. */
export interface ModelHandle {
  /** Marks the value as a model handle. */
  kind: "onnx_model";
  /** Display name (`transformer`, `vae`). */
  name: string;
  /** What the model is for: `text_encoder`, `transformer`, `vae` or another role. */
  role: string;
  /** Absolute path of the `.onnx` file. */
  path: string;
  /**
   * The folder the model's external data locations are relative to, when not the model file's
   * own (a graph built from a downloaded component points into the component's weight files).
   */
  externalDataFolder?: string;
  /** For a graph cogflow built from safetensors weights: how (sequential offload builds its parts). */
  build?: ModelBuild;
  /** Bytes on disk, external data included (an estimate of its memory). */
  bytes: number;
  /** Size and modification time of the model files, for cache keys. */
  fingerprint: string;
  /** Declared inputs and outputs. */
  signature: Pick<OnnxModelInfo, "inputs" | "outputs">;
  /** The component's `config.json`, when the model came from a pipeline folder. */
  config: Record<string, unknown>;
  /** How sessions are created. */
  session: SessionSettings;
  /** Hooks added by hook nodes, innermost first. */
  hooks: ModelHook[];
}

/** True for model handles. */
export function isModelHandle(value: unknown): value is ModelHandle {
  return typeof value === "object" && value !== null &&
    (value as { kind?: unknown }).kind === "onnx_model" &&
    typeof (value as { path?: unknown }).path === "string";
}

/** A copy of `model` with `hook` added (outermost). */
export function withHook<H extends ModelHook>(model: ModelHandle, hook: H): ModelHandle {
  return { ...model, hooks: [...model.hooks, hook] };
}

/** The identity of a model's sessions: same file, same session settings. */
export function sessionKey(model: ModelHandle): string {
  const settings = model.session;
  return [
    model.path,
    settings.executionProviders.join("+"),
    settings.onUnavailableProvider,
    settings.intraOpThreads,
    settings.interOpThreads,
    settings.graphOptimizationLevel,
  ].join("|");
}
