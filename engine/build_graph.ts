/**
 * From a checked document and resolved params to a validated graph: node types, settings,
 * references, hooks (`wraps:`), cycles, and port types, with every problem reported at once.
 *
 * @module
 */

import { isAbsolute, resolve } from "node:path";
import { z } from "zod";
import { type AnyNodeDefinition, type InferContext, pathRoleOf } from "./define_node.ts";
import {
  type Diagnostic,
  didYouMean,
  type DocumentPath,
  HintBudget,
  quote,
  type SourcePosition,
  UserError,
} from "./diagnostics.ts";
import {
  formatRef,
  type GraphNode,
  type PortRef,
  topologicalOrder,
  type WorkflowGraph,
} from "./graph.ts";
import {
  connectionProblem,
  formatPortType,
  isOptionalPort,
  type PortType,
  portTypeOf,
} from "./port_types.ts";
import type { PathBases } from "./params.ts";
import type { NodeRegistry } from "./registry.ts";
import { substituteParams } from "./substitute.ts";
import { describe, type NodeDeclaration, type WorkflowDocument } from "./workflow_document.ts";

/** What {@link buildGraph} needs besides the document. */
export interface BuildContext {
  /** Node types, built-ins and the workflow's plugins. */
  registry: NodeRegistry;
  /** Resolved param values. */
  params: ReadonlyMap<string, unknown>;
  /**
   * Where the params set from outside the file came from (`--set seed=42`), by name: a setting
   * such a value does not fit is reported at its origin, not at the file.
   */
  origins?: ReadonlyMap<string, string>;
  /** Bases for relative paths in settings. */
  bases: PathBases;
  /** Shared by the did-you-mean hints of one validation (default: one per build). */
  hints?: HintBudget;
  /** Source positions of document paths. */
  locate: (path: DocumentPath, options?: { key?: boolean }) => SourcePosition | undefined;
  /**
   * Nodes that came from another file (a subworkflow's, by namespaced id) and see that file's
   * params and folder rather than the document's.
   */
  scopes?: ReadonlyMap<string, NodeScope>;
}

/** The params and folders a node's settings are read with. */
export interface NodeScope {
  /** Resolved param values. */
  params: ReadonlyMap<string, unknown>;
  /** The params declared, resolved or not. */
  declaredParams: ReadonlySet<string>;
  /** Where params set from outside came from, by name. */
  origins?: ReadonlyMap<string, string>;
  /** Bases for relative paths in settings. */
  bases: PathBases;
}

interface PendingNode extends GraphNode {
  declaration: NodeDeclaration;
  /** False when the settings could not be parsed: `infer()` gets only valid settings. */
  settled: boolean;
}

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

  const declared = new Map(document.nodes.map((node) => [node.id, node]));
  const hints = context.hints ?? new HintBudget();
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

  // References.
  const resolveReference = (
    reference: string,
    path: DocumentPath,
    from: string,
  ): PortRef | undefined => {
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

  // The default targets must be nodes that exist in this run.
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

  // Hooks: expand each hook into one instance per wrapped output, then reroute consumers.
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

  // References to hooks that became several instances, and required inputs.
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

  // Types, in order: check each connection, then let the node refine its outputs.
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
    await inferTypes(node, graphNodes, inputTypes, report);
  }
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

async function inferTypes(
  node: PendingNode,
  graphNodes: Map<string, PendingNode>,
  inputTypes: Record<string, PortType | undefined>,
  report: (path: DocumentPath, code: string, message: string, extra?: Partial<Diagnostic>) => void,
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

function isEnabled(
  node: NodeDeclaration,
  params: ReadonlyMap<string, unknown>,
  declaredParams: ReadonlySet<string>,
  report: (path: DocumentPath, code: string, message: string, extra?: Partial<Diagnostic>) => void,
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

/** The schema of an input port, fixed or variadic. */
export function inputSchema(definition: AnyNodeDefinition, port: string): z.ZodType {
  const inputs = definition.inputs as Record<string, z.ZodType>;
  return Object.hasOwn(inputs, port) ? inputs[port] : definition.variadicInputs;
}

function declaredOutputTypes(definition: AnyNodeDefinition): Map<string, PortType> {
  return new Map(
    Object.entries(definition.outputs).map((
      [port, schema],
    ) => [port, portTypeOf(schema as z.ZodType)]),
  );
}

function parseSettings(
  declaration: NodeDeclaration,
  definition: AnyNodeDefinition,
  context: BuildContext,
  declaredParams: ReadonlySet<string>,
  report: (
    path: DocumentPath,
    code: string,
    message: string,
    extra?: Partial<Diagnostic> & { key?: boolean },
  ) => void,
  diagnostics: Diagnostic[],
): Record<string, unknown> | undefined {
  const path = ["nodes", declaration.id, "with"];
  const shape = definition.settings as Record<string, z.ZodType>;
  const { value, unknown, used } = substituteParams(declaration.with, context.params);
  for (const reference of unknown) {
    if (declaredParams.has(reference.name)) continue;
    report(
      [...path, ...reference.path],
      "unknown_param",
      reference.name === ""
        ? "Empty param reference `${}`: write `${name}`, or `$$` for a dollar sign"
        : `Unknown param ${quote(reference.name)}`,
      {
        node: declaration.id,
        hint: reference.name === ""
          ? undefined
          : didYouMean(reference.name, declaredParams, context.hints),
      },
    );
  }
  const raw = { ...(value as Record<string, unknown>) };
  let ok = unknown.length === 0;
  for (const key of Object.keys(raw)) {
    // Own keys only: `constructor` or `toString` are not settings.
    if (Object.hasOwn(shape, key)) {
      const role = pathRoleOf(shape[key]);
      if (
        role && typeof raw[key] === "string" && raw[key] !== "" && !isAbsolute(raw[key] as string)
      ) {
        raw[key] = resolve(
          role === "input" ? context.bases.workflowDir : context.bases.cwd,
          raw[key] as string,
        );
      }
      continue;
    }
    ok = false;
    report(
      [...path, key],
      "unknown_setting",
      `Unknown setting ${quote(key)} for node type ${quote(declaration.type)}: ${
        Object.keys(shape).length > 0
          ? `its settings are ${Object.keys(shape).join(", ")}`
          : "it has no settings"
      }`,
      {
        node: declaration.id,
        port: key,
        key: true,
        hint: didYouMean(key, Object.keys(shape), context.hints),
      },
    );
    delete raw[key];
  }
  const result = settingsSchema(definition).safeParse(raw);
  if (!result.success) {
    const unresolved = new Set(unknown.map((reference) => String(reference.path[0])));
    for (const issue of result.error.issues) {
      const key = String(issue.path[0] ?? "");
      // A setting naming an unknown param is reported already; its text is not the value meant.
      if (unresolved.has(key)) continue;
      const setting = issue.path.length > 0
        ? [...path, ...issue.path.map((p) => typeof p === "symbol" ? String(p) : p)]
        : path;
      const given = key in raw ? `, got ${describe(valueAt(raw, issue.path))}` : "";
      const fromOutside = used.find((reference) =>
        context.origins?.has(reference.name) && isPrefix(reference.path, issue.path)
      );
      if (fromOutside) {
        diagnostics.push({
          code: "invalid_param",
          message: `${context.origins!.get(fromOutside.name)}: Param ${quote(fromOutside.name)} ${
            describeIssue(issue, valueAt(raw, issue.path))
          } (setting ${quote(issue.path.join("."))} of node ${quote(declaration.id)})`,
          node: declaration.id,
          port: key,
        });
        continue;
      }
      report(
        setting,
        "invalid_setting",
        `Invalid setting ${quote(issue.path.join("."))} of node ${quote(declaration.id)}: ${
          lowerFirst(issue.message)
        }${issue.code === "invalid_type" ? "" : given}`,
        {
          node: declaration.id,
          port: key,
        },
      );
    }
    return undefined;
  }
  return ok ? result.data : undefined;
}

/** Each node type's settings as one object schema, made once: zod compiles it on first use. */
const settingsSchemas = new WeakMap<AnyNodeDefinition, z.ZodType<Record<string, unknown>>>();

function settingsSchema(definition: AnyNodeDefinition): z.ZodType<Record<string, unknown>> {
  let schema = settingsSchemas.get(definition);
  if (!schema) {
    schema = z.object(definition.settings as Record<string, z.ZodType>);
    settingsSchemas.set(definition, schema);
  }
  return schema;
}

function isPrefix(prefix: DocumentPath, path: readonly PropertyKey[]): boolean {
  return prefix.length <= path.length && prefix.every((part, index) => part === path[index]);
}

/** What a setting's schema says about a value, as the end of a sentence: `must be at most 10`. */
function describeIssue(issue: z.core.$ZodIssue, value: unknown): string {
  switch (issue.code) {
    case "too_big":
      return typeof value === "number" || typeof value === "bigint"
        ? `must be ${
          issue.inclusive === false ? "less than" : "at most"
        } ${issue.maximum}, got ${value}`
        : `is too long: at most ${issue.maximum} allowed`;
    case "too_small":
      return typeof value === "number" || typeof value === "bigint"
        ? `must be ${
          issue.inclusive === false ? "more than" : "at least"
        } ${issue.minimum}, got ${value}`
        : `is too short: at least ${issue.minimum} needed`;
    case "invalid_type":
      return `must be ${issue.expected === "int" ? "an integer" : `a ${issue.expected}`}, got ${
        describe(value)
      }`;
    case "invalid_value":
      return `must be one of ${issue.values.map((item) => describe(item)).join(", ")}, got ${
        describe(value)
      }`;
    default:
      return `is invalid: ${lowerFirst(issue.message)}, got ${describe(value)}`;
  }
}

function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
  let current = value;
  for (const key of path) {
    if (typeof current !== "object" || current === null) return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}
