/**
 * The library API for programs: load a workflow with the built-in node types, run it with caches,
 * a model manager and events, and keep results across runs with a {@link Runner}.
 *
 * @module
 */

import {
  describeParams,
  type Diagnostic,
  DiskCache,
  type EventListener,
  executeGraph,
  type ExecuteResult,
  loadWorkflow as loadWithRegistry,
  type LoadWorkflowOptions,
  MemoryCache,
  NodeRegistry,
  type ParamSource,
  parseWorkflow as parseWithRegistry,
  type ResultCache,
  type RunEvent,
  type Workflow,
} from "../engine/mod.ts";
import type { ModelManager } from "../runtime/model_manager.ts";
import { type ModelStats, OnnxModelManager } from "../runtime/onnx_model_manager.ts";
import { MemoryMonitor, type MemorySample, type NodeSpan } from "../runtime/memory_monitor.ts";
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

/**
 * Every param of a workflow file (and of its bases and subworkflows) with its effective value and
 * where it came from, without validating the graph.
 */
export async function describeWorkflowParams(
  file: string,
  options: OpenWorkflowOptions = {},
): Promise<{ params: ParamSource[]; diagnostics: Diagnostic[] }> {
  return describeParams(file, {
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
  /** Sample memory during the run: `memory` events after each node, and a timeline. */
  memoryReport?: boolean;
}

/** What a run returns: the executor's result, model statistics, and the memory timeline. */
export interface RunResult extends ExecuteResult {
  /** Per-model session statistics (loads, run time, resident size), when the default manager ran. */
  models: ModelStats[];
  /** The memory timeline, with `memoryReport`. */
  memory?: { samples: readonly MemorySample[]; spans: readonly NodeSpan[] };
}

/** Runs a loaded workflow. Throws `NodeFailure` when a node fails, `RunCancelled` when aborted. */
export async function runWorkflow(
  workflow: Workflow,
  options: RunWorkflowOptions = {},
): Promise<RunResult> {
  const caches: ResultCache[] = [];
  if (options.memoryCache) caches.push(options.memoryCache);
  if (options.cacheDir) {
    caches.push(new DiskCache(options.cacheDir, { maxBytes: options.cacheMaxBytes }));
  }
  const emit = (event: RunEvent) => options.onEvent?.(event);
  const manager = options.models ? undefined : new OnnxModelManager({
    splitCacheDir: options.splitCacheDir ?? join(Deno.cwd(), ".cache", "split"),
    onWarning: (message) =>
      emit({ type: "node_log", node: "models", level: "warn", message, time: Date.now() }),
  });
  const models = options.models ?? manager!;
  const monitor = options.memoryReport
    ? new MemoryMonitor({ sessions: () => models.residentSessions?.() ?? [] })
    : undefined;
  const onEvent = monitor ? memoryReporting(monitor, emit) : options.onEvent;
  try {
    const result = await executeGraph(workflow.graph, {
      only: options.only,
      defaultTargets: workflow.document.outputs,
      signal: options.signal,
      onEvent,
      caches,
      concurrency: options.concurrency,
      models,
      scratchRoot: options.scratchRoot,
      workflowName: workflow.document.name,
    });
    return {
      ...result,
      models: manager?.stats() ?? [],
      memory: monitor ? { samples: monitor.samples, spans: monitor.spans } : undefined,
    };
  } finally {
    monitor?.stop();
  }
}

/** Wraps an event listener so that each node's end also reports memory (`memory` events). */
function memoryReporting(monitor: MemoryMonitor, emit: (event: RunEvent) => void): EventListener {
  return (event) => {
    if (event.type === "node_start") monitor.nodeStarted(event.node);
    emit(event);
    if (event.type === "node_end" || event.type === "node_cached") {
      const span = monitor.nodeEnded(event.node);
      const now = monitor.samples[monitor.samples.length - 1];
      emit({
        type: "memory",
        node: event.node,
        rssBytes: now.rss,
        rssAnonBytes: now.rssAnon,
        rssFileBytes: now.rssFile,
        peakBytes: span.peak,
        sessions: now.sessions,
        time: Date.now(),
      });
    }
  };
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
  ): Promise<RunResult> {
    return runWorkflow(workflow, { ...options, memoryCache: this.cache });
  }
}
