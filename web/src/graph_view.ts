/**
 * The workflow as the canvas draws it: one card per node with its ports as handles, an edge per
 * `in:` reference, and a dashed edge from each model a hook wraps to the hook. Nodes without a
 * saved position are laid out in columns by their depth in the graph.
 *
 * @module
 */

import type { Edge, Node } from "@xyflow/react";
import type { EditorGraph, EditorNode, NodeType, Problem } from "./api.ts";

/** What a node card shows. */
export interface CardData extends Record<string, unknown> {
  /** The node as written. */
  node: EditorNode;
  /** Its type, if known. */
  type?: NodeType;
  /** Its problems. */
  problems: Problem[];
  /** Its run state. */
  run?: NodeRunState;
  /** Hooks that wrap it (their ids). */
  wrappedBy: string[];
}

/** A node's progress in the current run. */
export interface NodeRunState {
  /** Where it is. */
  status: "waiting" | "running" | "done" | "cached" | "failed";
  /** Steps done. */
  step?: number;
  /** Steps in all. */
  total?: number;
}

const COLUMN = 300;
const ROW = 40;

/** The node and output port a reference (`node` or `node.output`) names. */
export function resolveReference(
  reference: string,
  nodes: Map<string, EditorNode>,
  types: Map<string, NodeType>,
): { node: string; port: string } | undefined {
  const [node, port] = reference.split(".");
  if (port !== undefined) return { node, port };
  const type = nodes.get(node)?.subworkflow ?? types.get(nodes.get(node)?.type ?? "");
  return type && type.outputs.length > 0 ? { node, port: type.outputs[0].name } : undefined;
}

/** Cards and edges for the canvas. */
export function toFlow(
  graph: EditorGraph,
  types: Map<string, NodeType>,
  problems: Problem[],
  options: { positions: Map<string, { x: number; y: number }>; run: Map<string, NodeRunState> },
): { nodes: Node<CardData>[]; edges: Edge[] } {
  const byId = new Map(graph.nodes.map((node) => [node.id, node]));
  const layout = autoLayout(graph, types);
  const wrappedBy = new Map<string, string[]>();
  for (const node of graph.nodes) {
    for (const entry of node.wraps) {
      const target = entry.split(".")[0];
      wrappedBy.set(target, [...(wrappedBy.get(target) ?? []), node.id]);
    }
  }
  const nodes: Node<CardData>[] = graph.nodes.map((node) => {
    const saved = node.position ? { x: node.position[0], y: node.position[1] } : undefined;
    return {
      id: node.id,
      type: "card",
      position: saved ?? options.positions.get(node.id) ?? layout.get(node.id) ?? { x: 0, y: 0 },
      data: {
        node,
        type: node.subworkflow ?? types.get(node.type),
        problems: problems.filter((problem) => problem.node === node.id),
        run: options.run.get(node.id),
        wrappedBy: wrappedBy.get(node.id) ?? [],
      },
    };
  });
  const edges: Edge[] = [];
  for (const node of graph.nodes) {
    for (const [port, reference] of Object.entries(node.in)) {
      const source = resolveReference(reference, byId, types);
      if (!source || !byId.has(source.node)) continue;
      const failed = problems.some((problem) => problem.node === node.id && problem.port === port);
      edges.push({
        id: `in:${node.id}.${port}`,
        source: source.node,
        sourceHandle: source.port,
        target: node.id,
        targetHandle: port,
        className: failed ? "edge-invalid" : undefined,
        data: { kind: "input" },
      });
    }
    const type = types.get(node.type);
    if (!type?.hook) continue;
    node.wraps.forEach((entry, index) => {
      const [target, port] = entry.split(".");
      const wrapped = byId.get(target);
      if (!wrapped) return;
      const wrappedType = types.get(wrapped.type);
      const sourceHandle = port ?? wrappedType?.outputs[0]?.name;
      edges.push({
        id: `wraps:${node.id}:${index}`,
        source: target,
        sourceHandle,
        target: node.id,
        targetHandle: type.hook!.input,
        className: "edge-wraps",
        deletable: false,
        label: "wraps",
        data: { kind: "wraps" },
      });
    });
  }
  return { nodes, edges };
}

/**
 * Columns by depth (longest path from a node without inputs), rows in file order; hooks in a band
 * below, each under the first node it wraps.
 */
export function autoLayout(
  graph: EditorGraph,
  types: Map<string, NodeType>,
): Map<string, { x: number; y: number }> {
  const isHook = (node: EditorNode) => node.wraps.length > 0;
  const byId = new Map(graph.nodes.map((node) => [node.id, node]));
  const depth = new Map<string, number>();
  const visiting = new Set<string>();
  const depthOf = (id: string): number => {
    if (depth.has(id)) return depth.get(id)!;
    if (visiting.has(id)) return 0;
    visiting.add(id);
    const node = byId.get(id);
    let value = 0;
    for (const reference of Object.values(node?.in ?? {})) {
      const source = byId.get(reference.split(".")[0]);
      if (source && !isHook(source)) value = Math.max(value, depthOf(source.id) + 1);
    }
    visiting.delete(id);
    depth.set(id, value);
    return value;
  };
  const columns = new Map<number, string[]>();
  for (const node of graph.nodes) {
    if (isHook(node)) continue;
    const column = depthOf(node.id);
    columns.set(column, [...(columns.get(column) ?? []), node.id]);
  }
  const positions = new Map<string, { x: number; y: number }>();
  let bottom = 0;
  for (const [column, ids] of columns) {
    let y = 0;
    for (const id of ids) {
      positions.set(id, { x: column * COLUMN, y });
      y += cardHeight(byId.get(id)!, types.get(byId.get(id)!.type)) + ROW;
    }
    bottom = Math.max(bottom, y);
  }
  let x = -Infinity;
  let rowHeight = 0;
  let y = bottom + ROW * 2;
  const width = Math.max(columns.size, 4) * COLUMN;
  for (const node of graph.nodes.filter(isHook)) {
    const target = positions.get(node.wraps[0].split(".")[0]);
    x = Math.max(target?.x ?? 0, x + COLUMN);
    if (x >= width) {
      x = target?.x ?? 0;
      y += rowHeight + ROW;
      rowHeight = 0;
    }
    positions.set(node.id, { x, y });
    rowHeight = Math.max(rowHeight, cardHeight(node, types.get(node.type)));
  }
  return positions;
}

/** About how tall a card is drawn, for the layout. */
function cardHeight(node: EditorNode, type: NodeType | undefined): number {
  const ports = Math.max(type?.inputs.length ?? 0, type?.outputs.length ?? 0);
  const settings = Math.min(Object.keys(node.with).length, 4);
  return 66 + ports * 22 + settings * 18;
}
