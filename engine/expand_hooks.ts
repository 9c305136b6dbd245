/**
 * Expanding hooks (`wraps:`): each hook becomes one instance per output it wraps, chained when a
 * node is wrapped by hooks of several kinds, and the readers of a wrapped output read the last
 * instance of its chain instead.
 *
 * @module
 */

import { type DocumentPath, quote } from "./diagnostics.ts";
import type { BuildState, PendingNode } from "./build_types.ts";
import type { ResolveReference } from "./connect.ts";
import { formatRef, type PortRef } from "./graph.ts";
import { connectionProblem, formatPortType, portTypeOf } from "./port_types.ts";

/** The nodes with their hooks expanded. */
export interface ExpandedHooks {
  /** Every node, hook instances right after the node they wrap (file order where free). */
  ordered: Map<string, PendingNode>;
  /** The ids of each hook's instances, by the hook's id. */
  instancesOfHook: Map<string, string[]>;
}

/**
 * Expands the hooks among `nodes`: removes each hook from `nodes`, reroutes the readers of what
 * it wraps, and returns all nodes in listing order.
 */
export function expandHooks(
  nodes: Map<string, PendingNode>,
  resolveReference: ResolveReference,
  state: BuildState,
): ExpandedHooks {
  const { report, declared, disabled } = state;
  const chains = new Map<string, { ref: PortRef; kinds: Map<string, string> }>();
  const instances: PendingNode[] = [];
  for (const hookNode of [...nodes.values()]) {
    const { declaration, definition } = hookNode;
    if (declaration.wraps.length === 0) continue;
    const wrapsPath = [...hookNode.path, "wraps"];
    if (!definition.hook) {
      report(
        wrapsPath,
        "not_a_hook",
        `Node type ${quote(hookNode.type)} is not a hook and cannot wrap other nodes`,
        { node: hookNode.id },
      );
      continue;
    }
    const hook = definition.hook;
    const accepted = portTypeOf(definition.inputs[hook.input]);
    const targets: { ref: PortRef; label: string; path: DocumentPath }[] = [];
    declaration.wraps.forEach((entry, index) => {
      const path = [...wrapsPath, index];
      const [targetId, port] = entry.split(".");
      if (targetId === hookNode.id) {
        report(path, "hook_wraps_itself", `Hook ${quote(hookNode.id)} cannot wrap itself`, {
          node: hookNode.id,
        });
        return;
      }
      const target = nodes.get(targetId);
      // Hooks earlier in the file are already expanded and gone from `nodes`: ask the declarations.
      if (declared.get(targetId)?.wraps.length && !disabled.has(targetId)) {
        report(
          path,
          "hook_wraps_hook",
          `Hook ${quote(hookNode.id)} cannot wrap ${
            quote(targetId)
          }, which is itself a hook: wrap ${
            declared.get(targetId)!.wraps.map((wrapped) => `${quote(wrapped)}`).join(", ")
          } instead`,
          { node: hookNode.id },
        );
        return;
      }
      if (port !== undefined || !target) {
        const ref = resolveReference(entry, path, hookNode.id);
        if (ref) targets.push({ ref, label: entry, path });
        return;
      }
      const candidates = Object.keys(target.definition.outputs).filter((output) =>
        connectionProblem(target.outputTypes.get(output)!, accepted) === undefined
      );
      if (candidates.length === 0) {
        const offered = [...target.outputTypes].map(([name, type]) =>
          `${name}: ${formatPortType(type)}`
        ).join(", ");
        report(
          path,
          "hook_type_mismatch",
          `Hook ${quote(hookNode.id)} (${hookNode.type}) cannot wrap ${quote(targetId)}: it takes ${
            formatPortType(accepted)
          }, and ${quote(targetId)} gives ${offered}`,
          { node: hookNode.id },
        );
        return;
      }
      for (const output of candidates) {
        targets.push({
          ref: { node: targetId, port: output },
          label: candidates.length > 1 || Object.keys(target.definition.outputs).length > 1
            ? `${targetId}.${output}`
            : targetId,
          path,
        });
      }
    });
    nodes.delete(hookNode.id);
    for (const target of targets) {
      const key = formatRef(target.ref);
      const chain = chains.get(key) ?? { ref: target.ref, kinds: new Map<string, string>() };
      const previous = chain.kinds.get(hook.kind);
      if (previous !== undefined) {
        report(
          target.path,
          "duplicate_hook",
          `${quote(target.label)} is already wrapped by ${
            quote(previous)
          }, another ${hook.kind} hook: a node takes one hook of each kind`,
          { node: hookNode.id },
        );
        continue;
      }
      chain.kinds.set(hook.kind, hookNode.id);
      const id = targets.length === 1 ? hookNode.id : `${hookNode.id}[${target.label}]`;
      const instance: PendingNode = {
        ...hookNode,
        id,
        inputs: new Map([...hookNode.inputs, [hook.input, chain.ref]]),
        hook: { node: hookNode.id, wraps: target.ref },
        outputTypes: new Map(hookNode.outputTypes),
        path: target.path,
      };
      chain.ref = { node: id, port: hook.output };
      chains.set(key, chain);
      instances.push(instance);
    }
  }
  // Each hook's instances, and the instances wrapping each node: looked up, not searched.
  const instancesOfHook = new Map<string, string[]>();
  const instancesWrapping = new Map<string, PendingNode[]>();
  for (const instance of instances) {
    const ofHook = instancesOfHook.get(instance.hook!.node) ?? [];
    ofHook.push(instance.id);
    instancesOfHook.set(instance.hook!.node, ofHook);
    const wrapping = instancesWrapping.get(instance.hook!.wraps.node) ?? [];
    wrapping.push(instance);
    instancesWrapping.set(instance.hook!.wraps.node, wrapping);
  }
  for (const node of nodes.values()) {
    for (const [port, ref] of node.inputs) {
      const chain = chains.get(formatRef(ref));
      if (chain) node.inputs.set(port, chain.ref);
    }
  }
  // Instances go right after the node they wrap, so file order stays readable in listings.
  const ordered = new Map<string, PendingNode>();
  for (const node of nodes.values()) {
    ordered.set(node.id, node);
    for (const instance of instancesWrapping.get(node.id) ?? []) {
      ordered.set(instance.id, instance);
    }
  }
  for (const instance of instances) ordered.set(instance.id, instance);
  return { ordered, instancesOfHook };
}
