/**
 * Planning a run: which nodes the requested outputs need, in which order, who reads each output
 * (so values can be freed after their last reader), and each node's content key.
 *
 * @module
 */

import { nodeKey } from "./cache_key.ts";
import { didYouMean, quote, WorkflowError } from "./diagnostics.ts";
import { consumersOf, formatRef, withAncestors, type WorkflowGraph } from "./graph.ts";

/** What a run will do. */
export interface Plan {
  /** The nodes whose outputs were asked for. */
  targets: string[];
  /** Every node to run (targets and their ancestors), in dependency order. */
  order: string[];
  /** For each output read inside the plan (`node.port`), the nodes reading it. */
  consumers: Map<string, string[]>;
  /** Content key of each planned node's result. */
  keys: Map<string, string>;
}

/** Options of {@link planRun}. */
export interface PlanOptions {
  /** Run only these nodes and their ancestors (the CLI's `--only`). */
  only?: readonly string[];
  /** Default targets when `only` is not given (the workflow's `outputs:`). */
  defaultTargets?: readonly string[];
}

/**
 * Plans a run. Targets are `only`, else the workflow's `outputs:`, else its output nodes, else the
 * nodes nothing reads from.
 */
export function planRun(graph: WorkflowGraph, options: PlanOptions = {}): Plan {
  const targets = [...(options.only ?? options.defaultTargets ?? [])];
  if (targets.length === 0) targets.push(...graph.outputs);
  if (targets.length === 0) {
    const read = new Set([...consumersOf(graph).keys()].map((ref) => ref.split(".")[0]));
    targets.push(...[...graph.nodes.keys()].filter((id) => !read.has(id)));
  }
  const unknown = targets.filter((id) => !graph.nodes.has(id));
  if (unknown.length > 0) {
    throw new WorkflowError(unknown.map((id) => ({
      code: "unknown_node",
      message: `Cannot run ${quote(id)}: no such node`,
      hint: didYouMean(id, graph.nodes.keys()),
    })));
  }
  const order = withAncestors(graph, targets);
  const keys = new Map<string, string>();
  for (const id of order) {
    const node = graph.nodes.get(id)!;
    const inputs: Record<string, string> = {};
    for (const [port, ref] of node.inputs) inputs[port] = `${keys.get(ref.node)}.${ref.port}`;
    keys.set(
      id,
      nodeKey({
        type: node.type,
        version: node.definition.version,
        settings: node.settings,
        inputs,
      }),
    );
  }
  return { targets, order, consumers: consumersOf(graph, order), keys };
}

/** The `node.port` keys of a node's outputs. */
export function outputRefs(graph: WorkflowGraph, id: string): string[] {
  const node = graph.nodes.get(id)!;
  return Object.keys(node.definition.outputs).map((port) => formatRef({ node: id, port }));
}
