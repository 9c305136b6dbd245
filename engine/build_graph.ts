/**
 * From a checked document and resolved params to a validated graph: node types, settings,
 * references, hooks (`wraps:`), cycles, and port types, with every problem reported at once.
 * Each phase is its own module; this one runs them in order.
 *
 * @module
 */

import { type Diagnostic, type DocumentPath, HintBudget } from "./diagnostics.ts";
import { readNodes } from "./build_nodes.ts";
import type { BuildContext, BuildState, PendingNode } from "./build_types.ts";
import { checkDefaultTargets, checkInputs, connectInputs, referenceResolver } from "./connect.ts";
import { expandHooks } from "./expand_hooks.ts";
import { topologicalOrder, type WorkflowGraph } from "./graph.ts";
import type { WorkflowDocument } from "./workflow_document.ts";
import { inferTypes } from "./infer_types.ts";

export type { BuildContext, NodeScope } from "./build_types.ts";
export { inputSchema } from "./infer_types.ts";

/** Builds and checks the graph; returns it only when there were no errors. */
export async function buildGraph(
  document: WorkflowDocument,
  context: BuildContext,
): Promise<{ graph?: WorkflowGraph; diagnostics: Diagnostic[] }> {
  const diagnostics: Diagnostic[] = [];
  const report = (
    path: DocumentPath,
    code: string,
    message: string,
    extra: Partial<Diagnostic> & { key?: boolean } = {},
  ) => {
    const { key, ...rest } = extra;
    diagnostics.push({ code, message, path, position: context.locate(path, { key }), ...rest });
  };
  const hints = context.hints ?? new HintBudget();

  // Read nodes: `when:`, types and settings.
  const { nodes, disabled } = readNodes(document, context, { report, diagnostics, hints });
  const state: BuildState = {
    report,
    declared: new Map(document.nodes.map((node) => [node.id, node])),
    disabled,
    hints,
  };

  // Connect: references, and the default targets.
  const resolveReference = referenceResolver(nodes, state);
  connectInputs(nodes, resolveReference, report);
  checkDefaultTargets(document, nodes, state);

  // Expand hooks, then check what each node reads.
  const { ordered, instancesOfHook } = expandHooks(nodes, resolveReference, state);
  checkInputs(ordered, instancesOfHook, report);

  // Cycles and order.
  const sorted = topologicalOrder(ordered);
  if ("cycle" in sorted) {
    const cycle = sorted.cycle;
    report(
      [...ordered.get(cycle[0])!.path, "in"],
      "cycle",
      `Cycle: ${[...cycle, cycle[0]].join(" -> ")}`,
      { node: cycle[0] },
    );
    return { diagnostics };
  }
  if (diagnostics.length > 0) return { diagnostics };
  const graphNodes = new Map<string, PendingNode>(sorted.order.map((id) => [id, ordered.get(id)!]));

  // Infer types, in order: check each connection, then let the node refine its outputs.
  await inferTypes(graphNodes, report);
  if (diagnostics.length > 0) return { diagnostics };

  const outputs = [...graphNodes.values()].filter((node) => node.definition.output).map((node) =>
    node.id
  );
  const graph: WorkflowGraph = {
    nodes: new Map(
      [...graphNodes].map((
        [id, { declaration: _declaration, settled: _settled, ...node }],
      ) => [id, node]),
    ),
    outputs,
  };
  return { graph, diagnostics };
}
