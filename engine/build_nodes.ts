/**
 * The first phase of building a graph: each declared node's `when:` condition, its type, and its
 * settings, read in the scope (params and folders) of the file it came from.
 *
 * @module
 */

import type { z } from "zod";
import type { AnyNodeDefinition } from "./define_node.ts";
import { type Diagnostic, didYouMean, type HintBudget, quote } from "./diagnostics.ts";
import type { BuildContext, NodeScope, PendingNode, Report } from "./build_types.ts";
import { parseSettings } from "./parse_settings.ts";
import { type PortType, portTypeOf } from "./port_types.ts";
import type { NodeDeclaration, WorkflowDocument } from "./workflow_document.ts";

/** Where {@link readNodes} reports. */
export interface ReadNodesReporting {
  /** Adds a problem at a document path. */
  report: Report;
  /** The build's problems, for those reported at their origin rather than at a path. */
  diagnostics: Diagnostic[];
  /** Shared by the did-you-mean hints of the build. */
  hints: HintBudget;
}

/**
 * The nodes switched on, typed and with their settings read (inputs not connected yet), and the
 * ids of those switched off by `when:`.
 */
export function readNodes(
  document: WorkflowDocument,
  context: BuildContext,
  reporting: ReadNodesReporting,
): { nodes: Map<string, PendingNode>; disabled: Set<string> } {
  const { report, diagnostics, hints } = reporting;
  const settingsContext = { ...context, hints };
  // Params declared in the file; one whose value was refused is reported already, not as unknown.
  const declaredParams = new Set(document.params.keys());
  const documentScope: NodeScope = {
    params: context.params,
    declaredParams,
    origins: context.origins,
    bases: context.bases,
  };
  const scopeOf = (id: string): NodeScope => context.scopes?.get(id) ?? documentScope;
  const disabled = new Set<string>();
  for (const node of document.nodes) {
    const scope = scopeOf(node.id);
    if (!isEnabled(node, scope.params, scope.declaredParams, report, hints)) {
      disabled.add(node.id);
    }
  }

  // Types and settings.
  const nodes = new Map<string, PendingNode>();
  for (const declaration of document.nodes) {
    if (disabled.has(declaration.id)) continue;
    const path = ["nodes", declaration.id];
    const registered = context.registry.get(declaration.type);
    if (!registered) {
      report(
        [...path, "type"],
        "unknown_node_type",
        `Unknown node type ${quote(declaration.type)}`,
        {
          node: declaration.id,
          hint: didYouMean(declaration.type, context.registry.types(), hints),
        },
      );
      continue;
    }
    const scope = scopeOf(declaration.id);
    const settings = declaration.malformed?.includes("with") ? undefined : parseSettings(
      declaration,
      registered.definition,
      scope === documentScope ? settingsContext : {
        ...settingsContext,
        params: scope.params,
        origins: scope.origins,
        bases: scope.bases,
      },
      scope.declaredParams,
      report,
      diagnostics,
    );
    nodes.set(declaration.id, {
      id: declaration.id,
      type: declaration.type,
      definition: registered.definition,
      module: registered.module,
      settings: settings ?? {},
      settled: settings !== undefined,
      inputs: new Map(),
      path,
      outputTypes: declaredOutputTypes(registered.definition),
      declaration,
    });
  }
  return { nodes, disabled };
}

function isEnabled(
  node: NodeDeclaration,
  params: ReadonlyMap<string, unknown>,
  declaredParams: ReadonlySet<string>,
  report: Report,
  hints: HintBudget,
): boolean {
  const when = node.when;
  if (!when) return true;
  const path = ["nodes", node.id, "when"];
  if (!params.has(when.param)) {
    if (!declaredParams.has(when.param)) {
      report(path, "unknown_param", `Unknown param ${quote(when.param)} in \`when:\``, {
        node: node.id,
        hint: didYouMean(when.param, declaredParams, hints),
      });
    }
    return true;
  }
  const value = params.get(when.param);
  if (when.kind === "param") {
    // A boolean param switches the node; any other param switches it on when it is set.
    return typeof value === "boolean"
      ? value
      : value !== null && value !== undefined && value !== "";
  }
  return when.values.some((expected) => expected === value);
}

function declaredOutputTypes(definition: AnyNodeDefinition): Map<string, PortType> {
  return new Map(
    Object.entries(definition.outputs).map((
      [port, schema],
    ) => [port, portTypeOf(schema as z.ZodType)]),
  );
}
