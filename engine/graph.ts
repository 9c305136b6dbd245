/**
 * The validated node graph and the plain graph algorithms over it: topological order, cycles,
 * ancestors and consumers.
 *
 * @module
 */

import type { AnyNodeDefinition } from "./define_node.ts";
import type { DocumentPath } from "./diagnostics.ts";
import type { PortType } from "./port_types.ts";

/** One output of one node. */
export interface PortRef {
  /** Node id. */
  node: string;
  /** Output port name. */
  port: string;
}

/** A node of the validated graph. */
export interface GraphNode {
  /** Unique id: the node's key, or `hook[target]` for a hook that wraps several outputs. */
  id: string;
  /** Node type name. */
  type: string;
  /** The type's definition. */
  definition: AnyNodeDefinition;
  /** The module that defined the type. */
  module: string;
  /** Settings after param substitution, path resolution and schema defaults. */
  settings: Record<string, unknown>;
  /** Where each connected input port gets its value (after hooks were applied). */
  inputs: Map<string, PortRef>;
  /** The node's place in the workflow file. */
  path: DocumentPath;
  /** For hook instances: the hook node as written and the output it wraps. */
  hook?: { node: string; wraps: PortRef };
  /** Static types of the outputs, refined at validation. */
  outputTypes: Map<string, PortType>;
}

/** A validated graph: nodes in topological order. */
export interface WorkflowGraph {
  /** Nodes by id, in a topological order (file order where free). */
  nodes: Map<string, GraphNode>;
  /** Ids of the nodes that run when no target is given. */
  outputs: string[];
}

/** Formats a port reference as `node.port`. */
export function formatRef(ref: PortRef): string {
  return `${ref.node}.${ref.port}`;
}

/** The ids of the nodes each node reads from, in port order, without repeats. */
export function dependenciesOf(node: GraphNode): string[] {
  return [...new Set([...node.inputs.values()].map((ref) => ref.node))];
}

/**
 * Orders nodes so that every node comes after the nodes it reads from, keeping the given order
 * where it is free. Returns the order, or a cycle (a list of ids whose last reads from its first).
 * A depth-first search with a stack of its own: a chain of any length fits.
 */
export function topologicalOrder(
  nodes: ReadonlyMap<string, Pick<GraphNode, "inputs">>,
): { order: string[] } | { cycle: string[] } {
  const order: string[] = [];
  const state = new Map<string, "visiting" | "done">();
  // The path being visited, each node with the inputs it has yet to visit.
  const path: { id: string; inputs: Iterator<PortRef> }[] = [];
  const enter = (id: string) => {
    state.set(id, "visiting");
    path.push({ id, inputs: (nodes.get(id)?.inputs.values() ?? [].values())[Symbol.iterator]() });
  };
  for (const root of nodes.keys()) {
    if (state.has(root)) continue;
    enter(root);
    while (path.length > 0) {
      const top = path[path.length - 1];
      const next = top.inputs.next();
      if (next.done) {
        path.pop();
        state.set(top.id, "done");
        order.push(top.id);
        continue;
      }
      const input = next.value.node;
      if (!nodes.has(input)) continue;
      const current = state.get(input);
      if (current === "visiting") {
        const ids = path.map((entry) => entry.id);
        return { cycle: ids.slice(ids.indexOf(input)) };
      }
      if (current === undefined) enter(input);
    }
  }
  return { order };
}

/** The given nodes and every node they depend on, in graph order. */
export function withAncestors(graph: WorkflowGraph, ids: Iterable<string>): string[] {
  const needed = new Set<string>();
  const pending = [...ids];
  while (pending.length > 0) {
    const id = pending.pop()!;
    if (needed.has(id)) continue;
    needed.add(id);
    const node = graph.nodes.get(id);
    if (node) pending.push(...dependenciesOf(node));
  }
  return [...graph.nodes.keys()].filter((id) => needed.has(id));
}

/** For each output port, the ids of the nodes (among `ids`) that read it. */
export function consumersOf(
  graph: WorkflowGraph,
  ids: Iterable<string> = graph.nodes.keys(),
): Map<string, string[]> {
  const consumers = new Map<string, string[]>();
  for (const id of ids) {
    for (const ref of graph.nodes.get(id)!.inputs.values()) {
      const key = formatRef(ref);
      const list = consumers.get(key);
      // A node reading one output through several ports is listed once (its ports come together).
      if (!list) consumers.set(key, [id]);
      else if (list[list.length - 1] !== id) list.push(id);
    }
  }
  return consumers;
}
