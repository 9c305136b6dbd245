/**
 * Drawing a validated graph as Mermaid or Graphviz DOT text, hooks included: a hook instance is
 * drawn between the node it wraps and that node's readers, with a dashed "wraps" edge.
 *
 * @module
 */

import type { GraphNode, WorkflowGraph } from "./graph.ts";

/** Mermaid flowchart text of a graph. */
export function toMermaid(graph: WorkflowGraph): string {
  const lines = ["flowchart TD"];
  const ids = mermaidIds(graph);
  for (const node of graph.nodes.values()) {
    const label = escapeMermaid(nodeLabel(node));
    lines.push(
      node.hook ? `  ${ids.get(node.id)}{{"${label}"}}` : `  ${ids.get(node.id)}["${label}"]`,
    );
  }
  for (const node of graph.nodes.values()) {
    for (const [port, ref] of node.inputs) {
      const label = ref.port === port ? port : `${ref.port} → ${port}`;
      // The edge into a hook from the output it wraps is dotted, as in DOT.
      const arrow = node.hook && port === node.definition.hook?.input ? "-.->" : "-->";
      lines.push(`  ${ids.get(ref.node)} ${arrow}|${escapeMermaid(label)}| ${ids.get(node.id)}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

/** Graphviz DOT text of a graph. */
export function toDot(graph: WorkflowGraph): string {
  const lines = [
    "digraph workflow {",
    "  rankdir=TB;",
    '  node [shape=box, fontname="Helvetica"];',
  ];
  for (const node of graph.nodes.values()) {
    const shape = node.hook
      ? ", shape=hexagon, style=dashed"
      : node.definition.output
      ? ", style=bold"
      : "";
    lines.push(`  ${quoteDot(node.id)} [label=${quoteDot(nodeLabel(node))}${shape}];`);
  }
  for (const node of graph.nodes.values()) {
    for (const [port, ref] of node.inputs) {
      const label = ref.port === port ? port : `${ref.port} → ${port}`;
      const style = node.hook && port === node.definition.hook?.input ? ", style=dashed" : "";
      lines.push(
        `  ${quoteDot(ref.node)} -> ${quoteDot(node.id)} [label=${quoteDot(label)}${style}];`,
      );
    }
  }
  lines.push("}");
  return `${lines.join("\n")}\n`;
}

/** `id (type)`, and for hooks `id (type, wraps node.port)`. */
export function nodeLabel(node: GraphNode): string {
  if (node.hook) {
    return `${node.id} (${node.type}, wraps ${node.hook.wraps.node}.${node.hook.wraps.port})`;
  }
  return `${node.id} (${node.type})`;
}

/**
 * Mermaid ids: node ids where Mermaid takes them as they are; others (`hook[target]`, `a-b`, the
 * keyword `end`) made safe, never equal to another node's id.
 */
function mermaidIds(graph: WorkflowGraph): Map<string, string> {
  const plain = (id: string) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(id) && id.toLowerCase() !== "end";
  const used = new Set([...graph.nodes.keys()].filter(plain));
  const ids = new Map<string, string>();
  for (const id of graph.nodes.keys()) {
    if (plain(id)) {
      ids.set(id, id);
      continue;
    }
    let safe = `n_${id.replace(/[^A-Za-z0-9_]/g, "_")}`;
    while (used.has(safe)) safe += "_";
    used.add(safe);
    ids.set(id, safe);
  }
  return ids;
}

function escapeMermaid(text: string): string {
  return text.replace(/"/g, "#quot;").replace(/\|/g, "#124;");
}

function quoteDot(text: string): string {
  return `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}
