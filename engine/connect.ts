/**
 * Connecting a graph: each `in:` reference resolved to an output of a node that runs, the
 * default targets checked, and, once hooks are expanded, every required input found connected.
 *
 * @module
 */

import type { z } from "zod";
import { didYouMean, type DocumentPath, quote } from "./diagnostics.ts";
import type { BuildState, PendingNode, Report } from "./build_types.ts";
import type { PortRef } from "./graph.ts";
import { formatPortType, isOptionalPort, portTypeOf } from "./port_types.ts";
import type { WorkflowDocument } from "./workflow_document.ts";

/** Resolves `node` or `node.output`, written at `path` by node `from`; reports why not. */
export type ResolveReference = (
  reference: string,
  path: DocumentPath,
  from: string,
) => PortRef | undefined;

/** Resolves references against `nodes` as they are at the time of each call. */
export function referenceResolver(
  nodes: ReadonlyMap<string, PendingNode>,
  state: BuildState,
): ResolveReference {
  const { report, declared, disabled, hints } = state;
  return (reference, path, from) => {
    const [nodeId, port, ...rest] = reference.split(".");
    if (rest.length > 0 || nodeId === "") {
      report(
        path,
        "invalid_reference",
        `Invalid reference ${quote(reference)}: expected \`node\` or \`node.output\``,
        { node: from },
      );
      return undefined;
    }
    const target = nodes.get(nodeId);
    if (!target) {
      if (disabled.has(nodeId)) {
        report(
          path,
          "disabled_reference",
          `Node ${quote(nodeId)} is switched off by its \`when:\` condition but ${
            quote(from)
          } uses it`,
          { node: from },
        );
      } else if (!declared.has(nodeId)) {
        report(path, "unknown_node", `Unknown node ${quote(nodeId)}`, {
          node: from,
          hint: didYouMean(nodeId, declared.keys(), hints),
        });
      }
      return undefined;
    }
    const outputs = Object.keys(target.definition.outputs);
    if (port === undefined) {
      if (outputs.length === 1) return { node: nodeId, port: outputs[0] };
      report(
        path,
        "ambiguous_reference",
        `Node ${quote(nodeId)} has several outputs (${outputs.join(", ")}): name one, as ${
          quote(`${nodeId}.${outputs[0]}`)
        }`,
        { node: from },
      );
      return undefined;
    }
    if (!outputs.includes(port)) {
      report(
        path,
        "unknown_output",
        `Node ${quote(nodeId)} (${target.type}) has no output ${quote(port)}: ${
          outputs.length > 0 ? `its outputs are ${outputs.join(", ")}` : "it has no outputs"
        }`,
        {
          node: from,
          hint: didYouMean(port, outputs),
        },
      );
      return undefined;
    }
    return { node: nodeId, port };
  };
}

/** Connects each node's `in:` ports (a hook's wrapped input excepted: `wraps:` gives it). */
export function connectInputs(
  nodes: ReadonlyMap<string, PendingNode>,
  resolveReference: ResolveReference,
  report: Report,
): void {
  for (const node of nodes.values()) {
    const { declaration, definition } = node;
    const ports = Object.keys(definition.inputs);
    for (const [port, reference] of Object.entries(declaration.in)) {
      const path = [...node.path, "in", port];
      if (!ports.includes(port) && !definition.variadicInputs) {
        report(
          path,
          "unknown_input",
          `Node type ${quote(node.type)} has no input ${quote(port)}: ${
            ports.length > 0 ? `its inputs are ${ports.join(", ")}` : "it has no inputs"
          }`,
          {
            node: node.id,
            port,
            key: true,
            hint: didYouMean(port, ports),
          },
        );
        continue;
      }
      if (definition.hook && declaration.wraps.length > 0 && port === definition.hook.input) {
        report(
          path,
          "hook_input_connected",
          `Input ${quote(port)} of hook ${
            quote(node.id)
          } comes from \`wraps:\`: remove it from \`in:\``,
          { node: node.id, port, key: true },
        );
        continue;
      }
      const ref = resolveReference(reference, path, node.id);
      if (ref) node.inputs.set(port, ref);
    }
  }
}

/** Checks that the default targets (`outputs:`) are nodes that exist in this run. */
export function checkDefaultTargets(
  document: WorkflowDocument,
  nodes: ReadonlyMap<string, PendingNode>,
  state: BuildState,
): void {
  const { report, declared, disabled, hints } = state;
  document.outputs?.forEach((id, index) => {
    if (nodes.has(id)) return;
    const path = ["outputs", index];
    if (disabled.has(id)) {
      report(
        path,
        "disabled_reference",
        `Node ${quote(id)} is switched off by its \`when:\` condition but \`outputs:\` names it`,
      );
    } else if (!declared.has(id)) {
      report(path, "unknown_node", `Unknown node ${quote(id)} in \`outputs:\``, {
        hint: didYouMean(id, declared.keys(), hints),
      });
    }
  });
}

/**
 * After hooks are expanded: drops and reports references to a hook that became several
 * instances, and reports required inputs left unconnected.
 */
export function checkInputs(
  ordered: ReadonlyMap<string, PendingNode>,
  instancesOfHook: ReadonlyMap<string, string[]>,
  report: Report,
): void {
  for (const node of ordered.values()) {
    for (const [port, ref] of node.inputs) {
      if (ordered.has(ref.node)) continue;
      const split = instancesOfHook.get(ref.node) ?? [];
      report(
        [...node.path, "in", port],
        "hook_reference",
        `${quote(node.id)} reads hook ${quote(ref.node)}, which wraps several nodes (${
          split.join(", ")
        }): read the wrapped node instead, the hook applies by itself`,
        { node: node.id, port },
      );
      node.inputs.delete(port);
    }
    for (
      const [port, schema] of Object.entries(node.definition.inputs as Record<string, z.ZodType>)
    ) {
      // A port whose reference was written but failed is reported already.
      if (node.inputs.has(port) || isOptionalPort(schema)) continue;
      if (!node.hook && Object.hasOwn(node.declaration.in, port)) continue;
      const malformed = node.declaration.malformed ?? [];
      if (["in", `in.${port}`, "wraps"].some((part) => malformed.includes(part))) continue;
      report(
        [...node.path, "in"],
        "missing_input",
        `Node ${quote(node.id)} (${node.type}) needs input ${quote(port)} (${
          formatPortType(portTypeOf(schema))
        })`,
        { node: node.id, port },
      );
    }
  }
}
