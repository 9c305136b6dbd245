/**
 * The library API for programs: load a workflow with the built-in node types, run it with caches,
 * a model manager and events, and keep results across runs with a {@link Runner}.
 *
 * @module
 */

import {
  DiskCache,
  type EventListener,
  executeGraph,
  type ExecuteResult,
  loadWorkflow as loadWithRegistry,
  type LoadWorkflowOptions,
  MemoryCache,
  NodeRegistry,
  parseWorkflow as parseWithRegistry,
  type ResultCache,
  type Workflow,
} from "../engine/mod.ts";
import type { ModelManager } from "../runtime/model_manager.ts";
import { OnnxModelManager } from "../runtime/onnx_model_manager.ts";
import { join } from "node:path";

let builtins: Promise<NodeRegistry> | undefined;

/** A registry holding the built-in node types of `nodes/` (registered as a plugin module). */
export function builtinRegistry(): Promise<NodeRegistry> {
  builtins ??= import("../nodes/mod.ts").then((module) => {
    const registry = new NodeRegistry();
    registry.registerModule(module, "cogflow built-in nodes");
    return registry;
  });
  return builtins.then((registry) => registry.clone());
}

/** Options of {@link loadWorkflow}: as the engine's, with the registry optional. */
export type OpenWorkflowOptions = Omit<LoadWorkflowOptions, "registry"> & {
  registry?: NodeRegistry;
};

/** Loads and validates a workflow file with the built-in node types (and its plugins). */
export async function loadWorkflow(
  file: string,
  options: OpenWorkflowOptions = {},
): Promise<Workflow> {
  return loadWithRegistry(file, {
    ...options,
    registry: options.registry ?? await builtinRegistry(),
  });
}

/** Validates workflow text with the built-in node types (and its plugins). */
export async function parseWorkflow(
  text: string,
  options: OpenWorkflowOptions & { file?: string; dir?: string } = {},
): Promise<Workflow> {
  return parseWithRegistry(text, {
    ...options,
    registry: options.registry ?? await builtinRegistry(),
  });
}

/** Options of {@link runWorkflow}. */
export interface RunWorkflowOptions {
  /** Run only these nodes and their ancestors. */
  only?: readonly string[];
  /** Cancels the run at the next step boundary. */
  signal?: AbortSignal;
  /** Receives every event. */
  onEvent?: EventListener;
  /** Keep serializable results in this folder across runs. */
  cacheDir?: string;
  /** Size limit of the cache folder in bytes (default 10 GiB). */
  cacheMaxBytes?: number;
  /** An in-process cache to look up first (a {@link Runner} passes its own). */
  memoryCache?: MemoryCache;
  /** Most nodes running at once (default 4). */
  concurrency?: number;
  /** The model manager; default: a new one for this run. */
  models?: ModelManager;
  /** Folder for nodes' scratch files (default: the system's temporary folder). */
  scratchRoot?: string;
  /** Folder where models split for sequential offload are kept (default `.cache/split`). */
  splitCacheDir?: string;
}

/** Runs a loaded workflow. Throws `NodeFailure` when a node fails, `RunCancelled` when aborted. */
export function runWorkflow(
  workflow: Workflow,
  options: RunWorkflowOptions = {},
): Promise<ExecuteResult> {
  const caches: ResultCache[] = [];
  if (options.memoryCache) caches.push(options.memoryCache);
  if (options.cacheDir) {
    caches.push(new DiskCache(options.cacheDir, { maxBytes: options.cacheMaxBytes }));
  }
  return executeGraph(workflow.graph, {
    only: options.only,
    defaultTargets: workflow.document.outputs,
    signal: options.signal,
    onEvent: options.onEvent,
    caches,
    concurrency: options.concurrency,
    models: options.models ?? new OnnxModelManager({
      splitCacheDir: options.splitCacheDir ?? join(Deno.cwd(), ".cache", "split"),
      onWarning: (message) =>
        options.onEvent?.({
          type: "node_log",
          node: "models",
          level: "warn",
          message,
          time: Date.now(),
        }),
    }),
    scratchRoot: options.scratchRoot,
    workflowName: workflow.document.name,
  });
}

/**
 * Runs workflows one after another in one process, keeping results in memory: re-running with
 * only the seed changed runs only what depends on the seed.
 */
export class Runner {
  /** The in-process result cache. */
  readonly cache: MemoryCache;

  /** Makes a runner whose cache holds at most `maxBytes` (default 2 GiB). */
  constructor(options: { maxBytes?: number } = {}) {
    this.cache = new MemoryCache(options.maxBytes);
  }

  /** Runs a workflow, looking up and keeping results in this runner's cache. */
  run(
    workflow: Workflow,
    options: Omit<RunWorkflowOptions, "memoryCache"> = {},
  ): Promise<ExecuteResult> {
    return runWorkflow(workflow, { ...options, memoryCache: this.cache });
  }
}
