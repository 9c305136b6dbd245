/**
 * Model handles: plain data describing an ONNX model and how to run it. Nodes pass handles along
 * edges; hook nodes return a copy with a hook added; the model manager reads the hooks to decide
 * when sessions exist.
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

/** Keep the session only from just before its first use to just after its last use. */
export interface ModelOffloadHook {
  /** Hook kind. */
  kind: "model_offload";
  /** The hook node. */
  node: string;
  /** Keep the model's bytes in host memory so re-creating the session reads no file. */
  keepInRam: boolean;
}

/** Run the model in parts (embedding, groups of blocks, head), one part resident at a time. */
export interface SequentialOffloadHook {
  /** Hook kind. */
  kind: "sequential_offload";
  /** The hook node. */
  node: string;
  /** Blocks per part (transformer blocks, or a VAE decoder's up blocks). */
  blocksPerGroup: number;
  /** Regular expression finding a block's index in node and weight names (first group). */
  blockPattern?: string;
  /** Load the next part in a second worker while the current one runs. */
  prefetch: boolean;
  /** Whether parts repack their weights when loaded: never (default), always, or by measurement. */
  prepackWeights?: "auto" | "always" | "never";
}

/** Keep sessions while they fit a memory budget, evicting the least recently used. */
export interface BudgetOffloadHook {
  /** Hook kind. */
  kind: "budget_offload";
  /** The hook node: models wrapped by the same node share one budget. */
  node: string;
  /** The budget in bytes. */
  maxMemoryBytes: number;
}

/** Decode one batch element at a time. */
export interface VaeSlicingHook {
  /** Hook kind. */
  kind: "vae_slicing";
  /** The hook node. */
  node: string;
}

/** Decode in spatial tiles, blended as diffusers' `tiled_decode`. */
export interface VaeTilingHook {
  /** Hook kind. */
  kind: "vae_tiling";
  /** The hook node. */
  node: string;
  /** Tile height in pixels. */
  tileSampleMinHeight: number;
  /** Tile width in pixels. */
  tileSampleMinWidth: number;
  /** Overlap of tiles, as a fraction of the tile height. */
  tileOverlapFactorHeight: number;
  /** Overlap of tiles, as a fraction of the tile width. */
  tileOverlapFactorWidth: number;
}

/** Any hook a model handle can carry. */
export type ModelHook =
  | ModelOffloadHook
  | SequentialOffloadHook
  | BudgetOffloadHook
  | VaeSlicingHook
  | VaeTilingHook;

/** The offload hooks: at most one per model. */
export type OffloadHook = ModelOffloadHook | SequentialOffloadHook | BudgetOffloadHook;

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

/** A copy of `model` with `hook` added. */
export function withHook(model: ModelHandle, hook: ModelHook): ModelHandle {
  return { ...model, hooks: [...model.hooks, hook] };
}

/** The model's offload hook, if any. */
export function offloadHookOf(model: ModelHandle): OffloadHook | undefined {
  return model.hooks.find((hook): hook is OffloadHook =>
    hook.kind === "model_offload" || hook.kind === "sequential_offload" ||
    hook.kind === "budget_offload"
  );
}

/** The model's hook of one kind, if any. */
export function hookOf<K extends ModelHook["kind"]>(
  model: ModelHandle,
  kind: K,
): Extract<ModelHook, { kind: K }> | undefined {
  return model.hooks.find((hook) => hook.kind === kind) as
    | Extract<ModelHook, { kind: K }>
    | undefined;
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
