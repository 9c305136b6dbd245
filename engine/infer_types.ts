/**
 * Port types, in dependency order: each connection checked against the input's type, then each
 * node's `infer()` refining its output types from its inputs' types and its settings.
 *
 * @module
 */

import type { z } from "zod";
import type { AnyNodeDefinition, InferContext } from "./define_node.ts";
import { quote, UserError } from "./diagnostics.ts";
import type { PendingNode, Report } from "./build_types.ts";
import { formatRef } from "./graph.ts";
import { connectionProblem, type PortType, portTypeOf } from "./port_types.ts";

/**
 * Checks the connections and refines output types, node by node; `graphNodes` must be in
 * dependency order. Problems are reported.
 */
export async function inferTypes(
  graphNodes: Map<string, PendingNode>,
  report: Report,
): Promise<void> {
  for (const node of graphNodes.values()) {
    const inputTypes: Record<string, PortType | undefined> = {};
    let connected = true;
    for (const [port, ref] of node.inputs) {
      const from = graphNodes.get(ref.node)!.outputTypes.get(ref.port)!;
      const to = portTypeOf(inputSchema(node.definition, port));
      const problem = connectionProblem(from, to);
      if (problem) {
        connected = false;
        if (node.hook && port === node.definition.hook!.input) {
          report(
            node.path,
            "hook_type_mismatch",
            `Hook ${quote(node.hook.node)} (${node.type}) cannot wrap ${
              quote(
                formatRef(node.hook.wraps),
              )
            }: ${problem}`,
            { node: node.id, port },
          );
        } else {
          report(
            [...node.path, "in", port],
            "type_mismatch",
            `Cannot connect ${quote(formatRef(ref))} to ${quote(`${node.id}.${port}`)}: ${problem}`,
            { node: node.id, port },
          );
        }
      }
      inputTypes[port] = from;
    }
    if (!connected || !node.definition.infer || !node.settled) continue;
    await refineOutputs(node, graphNodes, inputTypes, report);
  }
}

/** Lets a node's `infer()` refine its output types; what it throws as a user error is reported. */
async function refineOutputs(
  node: PendingNode,
  graphNodes: Map<string, PendingNode>,
  inputTypes: Record<string, PortType | undefined>,
  report: Report,
) {
  const context: InferContext = {
    node: node.id,
    error(message, options = {}) {
      const path = options.setting
        ? [...node.path, "with", options.setting]
        : options.port
        ? [...node.path, "in", options.port]
        : node.path;
      report(path, "invalid_node", message, {
        node: node.id,
        port: options.port ?? options.setting,
        hint: options.hint,
      });
    },
    source(port) {
      const ref = node.inputs.get(port);
      return ref ? { ...ref } : undefined;
    },
  };
  try {
    const refined = await node.definition.infer!(context, inputTypes, node.settings);
    for (const [port, type] of Object.entries(refined ?? {})) {
      if (type && node.outputTypes.has(port)) node.outputTypes.set(port, type as PortType);
    }
  } catch (error) {
    if (
      !(error instanceof UserError) && !(error instanceof Deno.errors.NotFound) &&
      !(error instanceof Deno.errors.PermissionDenied)
    ) {
      throw error;
    }
    report(node.path, "invalid_node", `Node ${quote(node.id)}: ${error.message}`, {
      node: node.id,
    });
  }
  // Keep the graph's view of the declared types for nodes reading this one.
  graphNodes.set(node.id, node);
}

/** The schema of an input port, fixed or variadic. */
export function inputSchema(definition: AnyNodeDefinition, port: string): z.ZodType {
  const inputs = definition.inputs as Record<string, z.ZodType>;
  return Object.hasOwn(inputs, port) ? inputs[port] : definition.variadicInputs;
}
