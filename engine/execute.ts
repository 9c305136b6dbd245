/**
 * The executor: runs a planned graph in dependency order (independent branches concurrently, up to
 * a bound), reuses cached results by content key, frees each value after its last reader, reports
 * events, and stops cleanly when aborted.
 *
 * @module
 */

import type { z } from "zod";
import { type ModelManager, NO_MODELS } from "../runtime/model_manager.ts";
import type { NodeContext, NodeLogger } from "./define_node.ts";
import { quote, UserError } from "./diagnostics.ts";
import type { EventListener, RunEvent } from "./events.ts";
import { formatRef, type GraphNode, type WorkflowGraph } from "./graph.ts";
import { type Plan, planRun } from "./plan.ts";
import { portTypeOf } from "./port_types.ts";
import { ReadyQueue } from "./ready_queue.ts";
import { type FileStamp, type ResultCache, stampFile } from "./result_cache.ts";
import { RunCache } from "./run_cache.ts";

/** Options of {@link executeGraph}. */
export interface ExecuteOptions {
  /**
   * The plan to run, made by {@link planRun} for this graph (default: one made from `only` and
   * `defaultTargets`, which are not read when a plan is given).
   */
  plan?: Plan;
  /** Run only these nodes and their ancestors. */
  only?: readonly string[];
  /** Default targets when `only` is not given. */
  defaultTargets?: readonly string[];
  /** Cancels the run at the next step boundary. */
  signal?: AbortSignal;
  /** Receives every event. */
  onEvent?: EventListener;
  /** Caches looked up in order (memory first, then disk); results are kept in all of them. */
  caches?: readonly ResultCache[];
  /** Most nodes running at once (default 4). */
  concurrency?: number;
  /** Owns model sessions for this run. */
  models?: ModelManager;
  /** Folder under which nodes get scratch folders (default: the system's temporary folder). */
  scratchRoot?: string;
  /** Name used in events. */
  workflowName?: string;
}

/** What a finished run returns. */
export interface ExecuteResult {
  /** The plan that ran. */
  plan: Plan;
  /** Outputs of the target nodes, by node id. */
  outputs: Map<string, Record<string, unknown>>;
  /** Nodes that ran. */
  executed: string[];
  /** Nodes served from a cache. */
  cached: string[];
  /** Files written (values of `path` outputs of output nodes). */
  files: string[];
  /** Wall time in milliseconds. */
  durationMs: number;
}

/** A node failed; `node` names it and `cause` is what it threw. */
export class NodeFailure extends Error {
  /** The node id. */
  readonly node: string;

  /** Wraps what a node threw. */
  constructor(node: GraphNode, cause: unknown) {
    const message = cause instanceof Error ? cause.message : String(cause);
    super(`Node ${quote(node.id)} (${node.type}) failed: ${message}`, { cause });
    this.name = "NodeFailure";
    this.node = node.id;
  }
}

/** The run was cancelled (Ctrl-C or an AbortSignal). */
export class RunCancelled extends Error {
  /** Makes the error. */
  constructor() {
    super("Run interrupted");
    this.name = "RunCancelled";
  }
}

/** Runs a validated graph. */
export async function executeGraph(
  graph: WorkflowGraph,
  options: ExecuteOptions = {},
): Promise<ExecuteResult> {
  const started = performance.now();
  const plan = options.plan ??
    planRun(graph, { only: options.only, defaultTargets: options.defaultTargets });
  const models = options.models ?? NO_MODELS;
  const caches = options.caches ?? [];
  const concurrency = Math.max(1, options.concurrency ?? 4);
  const controller = new AbortController();
  const abortFromOutside = () => controller.abort(options.signal?.reason);
  options.signal?.addEventListener("abort", abortFromOutside, { once: true });
  if (options.signal?.aborted) controller.abort(options.signal.reason);
  const emit = (event: RunEvent) => {
    try {
      options.onEvent?.(event);
    } catch {
      // A broken listener must not break the run.
    }
  };

  const values = new Map<string, unknown>();
  const caching = new RunCache(plan, caches);
  const readersLeft = new Map<string, number>();
  for (const [ref, readers] of plan.consumers) readersLeft.set(ref, readers.length);
  const targets = new Set(plan.targets);
  const ready = new ReadyQueue(graph, plan);
  const outputs = new Map<string, Record<string, unknown>>();
  const executed: string[] = [];
  const cached: string[] = [];
  const files: string[] = [];
  const scratch = new ScratchFolders(options.scratchRoot);
  let failure: unknown;

  const release = async (ref: string) => {
    if (!values.has(ref)) return;
    const value = values.get(ref);
    values.delete(ref);
    await models.release?.(value);
  };

  const runOne = async (id: string) => {
    const node = graph.nodes.get(id)!;
    const inputs: Record<string, unknown> = {};
    for (const [port, ref] of node.inputs) inputs[port] = values.get(formatRef(ref));
    const { key, reusable } = caching.keyOf(node);

    const warn = (message: string) =>
      emit({ type: "node_log", node: id, level: "warn", message, time: Date.now() });
    let result = reusable ? await caching.lookUp(key, warn) : undefined;
    if (result) {
      cached.push(id);
      // A cached output node's files are still there, unchanged (their stamps were checked).
      if (node.definition.output) files.push(...pathOutputs(node, result.outputs));
      emit({ type: "node_cached", node: id, source: result.source, time: Date.now() });
    } else {
      emit({ type: "node_start", node: id, nodeType: node.type, time: Date.now() });
      const begin = performance.now();
      const record = { stamps: [] as FileStamp[], cacheable: true };
      const context = createContext(node, controller.signal, emit, scratch, models, record);
      const produced = await runNode(node, context, inputs);
      executed.push(id);
      const nodeFiles = node.definition.output ? pathOutputs(node, produced) : [];
      files.push(...nodeFiles);
      emit({
        type: "node_end",
        node: id,
        durationMs: performance.now() - begin,
        files: nodeFiles.length > 0 ? nodeFiles : undefined,
        time: Date.now(),
      });
      result = { outputs: produced, files: record.stamps, source: "memory" };
      if (!record.cacheable || !reusable) {
        caching.markVolatile(id);
      } else {
        await caching.store(key, produced, record.stamps);
      }
    }
    caching.settle(id, key, result.files);
    for (const [port, value] of Object.entries(result.outputs)) {
      values.set(formatRef({ node: id, port }), value);
      await models.retain?.(value);
    }
    if (targets.has(id)) outputs.set(id, result.outputs);
    // A node reading one output through several ports is still one reader of it.
    for (const key of new Set([...node.inputs.values()].map(formatRef))) {
      const left = (readersLeft.get(key) ?? 1) - 1;
      readersLeft.set(key, left);
      if (left === 0) await release(key);
    }
    for (const port of Object.keys(result.outputs)) {
      const ref = formatRef({ node: id, port });
      if (!readersLeft.get(ref) && !targets.has(id)) await release(ref);
    }
    ready.finished(id);
  };

  emit({
    type: "run_start",
    workflow: options.workflowName ?? "",
    nodes: plan.order,
    time: Date.now(),
  });
  const running = new Map<string, Promise<void>>();
  try {
    while (ready.hasReady() || running.size > 0) {
      while (ready.hasReady() && running.size < concurrency && !controller.signal.aborted) {
        const id = ready.take();
        const task = runOne(id).catch((error) => {
          if (!controller.signal.aborted) {
            failure = error instanceof NodeFailure
              ? error
              : new NodeFailure(graph.nodes.get(id)!, error);
            emit({
              type: "node_error",
              node: id,
              message: (error as Error).message,
              time: Date.now(),
            });
            controller.abort(failure);
          } else if (failure === undefined && options.signal?.aborted !== true) {
            failure = error;
          }
        }).finally(() => running.delete(id));
        running.set(id, task);
      }
      if (running.size === 0) break;
      await Promise.race(running.values());
    }
  } finally {
    options.signal?.removeEventListener("abort", abortFromOutside);
    for (const ref of [...values.keys()]) {
      if (!targets.has(ref.slice(0, ref.lastIndexOf(".")))) await release(ref);
    }
    await models.close?.();
    await scratch.removeAll();
  }
  const durationMs = performance.now() - started;
  const end = (status: "ok" | "failed" | "interrupted") => {
    emit({
      type: "run_end",
      status,
      durationMs,
      executed: executed.length,
      cached: cached.length,
      files,
      time: Date.now(),
    });
  };
  if (failure !== undefined) {
    end("failed");
    throw failure;
  }
  if (controller.signal.aborted) {
    end("interrupted");
    throw new RunCancelled();
  }
  end("ok");
  return { plan, outputs, executed, cached, files, durationMs };
}

/** Checks inputs against their schemas, runs the node, checks what it returned. */
async function runNode(
  node: GraphNode,
  context: NodeContext,
  inputs: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const definition = node.definition;
  const checkedInputs: Record<string, unknown> = {};
  const schemas = definition.inputs as Record<string, z.ZodType>;
  const ports = new Set([...Object.keys(schemas), ...Object.keys(inputs)]);
  for (const port of ports) {
    const schema = Object.hasOwn(schemas, port)
      ? schemas[port]
      : definition.variadicInputs as z.ZodType;
    if (!schema) continue;
    const parsed = schema.safeParse(inputs[port]);
    if (!parsed.success) {
      throw new UserError(
        `Input ${quote(port)} is invalid: ${
          parsed.error.issues.map((issue) => issue.message).join("; ")
        }`,
      );
    }
    checkedInputs[port] = parsed.data;
  }
  context.signal.throwIfAborted();
  const produced = await definition.run(context, checkedInputs, node.settings);
  if (typeof produced !== "object" || produced === null) {
    throw new Error(
      `Node type ${quote(node.type)} returned ${
        produced === null ? "null" : typeof produced
      } instead of its outputs`,
    );
  }
  const declared = definition.outputs as Record<string, z.ZodType>;
  for (const port of Object.keys(produced)) {
    if (!(port in declared)) {
      throw new Error(`Node type ${quote(node.type)} returned an undeclared output ${quote(port)}`);
    }
  }
  const result: Record<string, unknown> = {};
  for (const [port, schema] of Object.entries(declared)) {
    const parsed = schema.safeParse((produced as Record<string, unknown>)[port]);
    if (!parsed.success) {
      throw new Error(
        `Node type ${quote(node.type)} returned an invalid ${quote(port)}: ${
          parsed.error.issues.map((issue) => issue.message).join("; ")
        }`,
      );
    }
    result[port] = parsed.data;
  }
  return result;
}

function createContext(
  node: GraphNode,
  signal: AbortSignal,
  emit: (event: RunEvent) => void,
  scratch: ScratchFolders,
  models: ModelManager,
  record: { stamps: FileStamp[]; cacheable: boolean },
): NodeContext {
  const log = (level: "info" | "warn" | "debug") => (message: string) =>
    emit({ type: "node_log", node: node.id, level, message, time: Date.now() });
  const logger: NodeLogger = { info: log("info"), warn: log("warn"), debug: log("debug") };
  return {
    node: node.id,
    type: node.type,
    hook: node.hook ? { node: node.hook.node, wraps: formatRef(node.hook.wraps) } : undefined,
    signal,
    log: logger,
    models,
    progress(step, total, message) {
      emit({ type: "node_progress", node: node.id, step, total, message, time: Date.now() });
    },
    scratchDir: () => scratch.folderFor(node.id),
    async dependsOnFile(path) {
      record.stamps.push(await stampFile(path));
    },
    uncacheable() {
      record.cacheable = false;
    },
  };
}

function pathOutputs(node: GraphNode, outputs: Record<string, unknown>): string[] {
  const files: string[] = [];
  for (
    const [port, schema] of Object.entries(node.definition.outputs as Record<string, z.ZodType>)
  ) {
    const value = outputs[port];
    const kind = portTypeOf(schema).kind;
    if (kind === "path" && typeof value === "string") files.push(value);
    if (kind === "paths" && Array.isArray(value)) {
      files.push(...value.filter((item) => typeof item === "string"));
    }
  }
  return files;
}

/** Per-node scratch folders, made on first use and removed after the run. */
class ScratchFolders {
  #root?: string;
  #made: string[] = [];
  #parent?: string;

  constructor(parent?: string) {
    this.#parent = parent;
  }

  async folderFor(node: string): Promise<string> {
    if (!this.#root) {
      if (this.#parent) await Deno.mkdir(this.#parent, { recursive: true });
      this.#root = await Deno.makeTempDir({ dir: this.#parent, prefix: "cogflow-run-" });
    }
    const folder = `${this.#root}/${node.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    await Deno.mkdir(folder, { recursive: true });
    this.#made.push(folder);
    return folder;
  }

  async removeAll(): Promise<void> {
    if (this.#root) await Deno.remove(this.#root, { recursive: true }).catch(() => {});
  }
}
