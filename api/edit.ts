/**
 * The edit API: a workflow file as an editable document. Add, remove and rename nodes, connect and
 * disconnect ports (type-checked), set settings and params, move nodes, validate and save. The YAML
 * text stays the source of truth: each edit splices only the lines it must, comments and layout
 * kept, and saving an untouched document writes back the same bytes.
 *
 * Node positions for editors live in an optional top-level `ui:` block
 * (`ui: { positions: { node_id: [x, y] } }`) that the engine ignores.
 *
 * @example
 * ```ts
 * import { openWorkflowEditor } from "./mod.ts";
 *
 * const editor = await openWorkflowEditor("workflows/tiny.yaml");
 * editor.setSetting("sample", "steps", 8);
 * editor.connect("noise.latents", "sample.latents");
 * console.log(await editor.validate());
 * await editor.save();
 * ```
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import {
  connectionProblem,
  describeNodeType,
  type Diagnostic,
  importPlugin,
  type NodeRegistry,
  type NodeTypeDescription,
  type ParamDeclaration,
  parseWorkflow,
  PluginError,
  quote,
  readWorkflowDocument,
  WorkflowError,
} from "../engine/mod.ts";
import { ID_PATTERN } from "../engine/workflow_document.ts";
import { parseYamlSource } from "../engine/yaml_source.ts";
import { UserError } from "../runtime/user_error.ts";
import { builtinRegistry } from "./mod.ts";
import { deleteAt, entriesAt, renameKeyAt, setAt, valueAt } from "./yaml_splice.ts";

/** An edit refused because it would make the workflow wrong (the message says why). */
export class EditError extends UserError {
  /** Makes an edit error. */
  constructor(message: string, options: { node?: string } = {}) {
    super(message, options);
    this.name = "EditError";
  }
}

/** One edit, as data (what editors send and keep in their undo history). */
export type EditOperation =
  | {
    op: "add_node";
    id: string;
    type: string;
    settings?: Record<string, unknown>;
    position?: [number, number];
  }
  | { op: "remove_node"; id: string }
  | { op: "rename_node"; id: string; to: string }
  | { op: "connect"; from: string; to: string }
  | { op: "disconnect"; to: string }
  | { op: "set_setting"; node: string; name: string; value?: unknown }
  | { op: "set_param"; name: string; value: unknown }
  | { op: "move_node"; id: string; position: [number, number] };

/** Options of {@link openWorkflowEditor} and {@link WorkflowEditor}. */
export interface EditorOptions {
  /** Node types (default: the built-ins). */
  registry?: NodeRegistry;
  /** Load the workflow's plugins for type checks and validation (default false). */
  allowPlugins?: boolean;
  /** The file name used in messages (default: the path). */
  file?: string;
}

/** A node as written in the file, with its position in the editor. */
export interface EditorNode {
  /** The node's id. */
  id: string;
  /** Its type name. */
  type: string;
  /** Inputs: port name to `node` or `node.output`. */
  in: Record<string, string>;
  /** Settings as written (literals and `$param` references). */
  with: Record<string, unknown>;
  /** For hooks: what it wraps. */
  wraps: string[];
  /** The node's `when:` as written, if any. */
  when?: unknown;
  /** A note for people. */
  description?: string;
  /** Where the editor shows it (`ui.positions`), if saved. */
  position?: [number, number];
}

/** The workflow as an editor shows it: declarations as written, not yet validated. */
export interface EditorGraph {
  /** Workflow name. */
  name: string;
  /** What it does. */
  description?: string;
  /** Params, by name. */
  params: Record<string, Omit<ParamDeclaration, "default"> & { default?: unknown }>;
  /** Nodes in file order. */
  nodes: EditorNode[];
  /** The default targets (`outputs:`), if written. */
  outputs?: string[];
  /** Plugin modules, as written. */
  plugins: string[];
}

/** Opens a workflow file for editing. */
export async function openWorkflowEditor(
  path: string,
  options: EditorOptions = {},
): Promise<WorkflowEditor> {
  const text = await Deno.readTextFile(path);
  const editor = new WorkflowEditor(text, { ...options, path });
  await editor.loadTypes();
  return editor;
}

/** A workflow's YAML text with edit operations on it. */
export class WorkflowEditor {
  /** The text as opened (or as last saved). */
  original: string;
  /** The current text. */
  text: string;
  /** The file it was opened from, if any. */
  readonly path?: string;
  #options: EditorOptions;
  #registry?: NodeRegistry;
  #pluginProblems: Diagnostic[] = [];

  /** Makes an editor of YAML text; call {@link loadTypes} before type-checked edits. */
  constructor(text: string, options: EditorOptions & { path?: string } = {}) {
    this.original = text;
    this.text = text;
    this.path = options.path;
    this.#options = options;
  }

  /** True when the text differs from the one opened or last saved. */
  get changed(): boolean {
    return this.text !== this.original;
  }

  /** Loads the node types: the registry given (or the built-ins) and, if allowed, plugins. */
  async loadTypes(): Promise<NodeRegistry> {
    const registry = (this.#options.registry ?? await builtinRegistry()).clone();
    this.#pluginProblems = [];
    const plugins = readDocument(this.text).plugins;
    for (const [index, specifier] of plugins.entries()) {
      if (!this.#options.allowPlugins) {
        this.#pluginProblems.push({
          code: "plugins_not_allowed",
          message: `Plugin ${quote(specifier)} was not loaded: plugins load only when allowed`,
          path: ["plugins", index],
        });
        continue;
      }
      try {
        const exports = await importPlugin(specifier, { baseDir: this.#dir() });
        registry.registerModule(exports, `plugin ${quote(specifier)}`);
      } catch (error) {
        if (!(error instanceof PluginError)) throw error;
        this.#pluginProblems.push({
          code: "plugin_error",
          message: error.message,
          path: ["plugins", index],
        });
      }
    }
    this.#registry = registry;
    return registry;
  }

  /** The node types this workflow may use, described as `cogflow nodes --json` does. */
  nodeTypes(): NodeTypeDescription[] {
    return this.#types().list().map((entry) => describeNodeType(entry.definition, entry.module));
  }

  /** The nodes, params and positions as written. */
  graph(): EditorGraph {
    return describeText(this.text);
  }

  /** Applies one operation (see {@link EditOperation}). */
  apply(operation: EditOperation): void {
    switch (operation.op) {
      case "add_node":
        return this.addNode(operation.id, operation.type, operation);
      case "remove_node":
        return this.removeNode(operation.id);
      case "rename_node":
        return this.renameNode(operation.id, operation.to);
      case "connect":
        return this.connect(operation.from, operation.to);
      case "disconnect":
        return this.disconnect(operation.to);
      case "set_setting":
        return this.setSetting(operation.node, operation.name, operation.value);
      case "set_param":
        return this.setParam(operation.name, operation.value);
      case "move_node":
        return this.moveNode(operation.id, operation.position);
      default:
        throw new EditError(
          `Unknown edit operation ${quote(String((operation as { op?: unknown }).op))}`,
        );
    }
  }

  /** Adds a node of `type` (settings and a position optional). */
  addNode(
    id: string,
    type: string,
    options: { settings?: Record<string, unknown>; position?: [number, number] } = {},
  ): void {
    if (!ID_PATTERN.test(id)) {
      throw new EditError(
        `Invalid node id ${
          quote(id)
        }: use letters, digits, "_" and "-", starting with a letter or "_"`,
      );
    }
    if (this.#node(id, false)) throw new EditError(`Node ${quote(id)} exists already`);
    if (!this.#types().get(type)) throw new EditError(`Unknown node type ${quote(type)}`);
    const value: Record<string, unknown> = { type };
    if (options.settings && Object.keys(options.settings).length > 0) {
      value.with = options.settings;
    }
    this.text = setAt(this.text, ["nodes", id], value, { blockLevels: 1 });
    if (options.position) this.moveNode(id, options.position);
  }

  /** Removes a node, the inputs that read it, and its place in `wraps:`, `outputs:` and `ui:`. */
  removeNode(id: string): void {
    this.#node(id);
    for (const node of this.graph().nodes) {
      for (const [port, reference] of Object.entries(node.in)) {
        if (referencedNode(reference) === id) this.disconnect(`${node.id}.${port}`);
      }
      this.#removeListItems(["nodes", node.id, "wraps"], id);
    }
    this.#removeListItems(["outputs"], id);
    this.text = deleteAt(this.text, ["ui", "positions", id], { prune: 2 });
    this.text = deleteAt(this.text, ["nodes", id]);
  }

  /** Renames a node, and every reference to it: `in:`, `wraps:`, `outputs:` and `ui:`. */
  renameNode(id: string, to: string): void {
    this.#node(id);
    if (id === to) return;
    if (!ID_PATTERN.test(to)) {
      throw new EditError(
        `Invalid node id ${
          quote(to)
        }: use letters, digits, "_" and "-", starting with a letter or "_"`,
      );
    }
    if (this.#node(to, false)) throw new EditError(`Node ${quote(to)} exists already`);
    const renamed = (reference: string) =>
      referencedNode(reference) === id ? to + reference.slice(id.length) : reference;
    for (const node of this.graph().nodes) {
      for (const [port, reference] of Object.entries(node.in)) {
        if (renamed(reference) !== reference) {
          this.text = setAt(this.text, ["nodes", node.id, "in", port], renamed(reference));
        }
      }
      node.wraps.forEach((entry, index) => {
        if (renamed(entry) !== entry) {
          this.text = setAt(this.text, ["nodes", node.id, "wraps", index], renamed(entry));
        }
      });
    }
    const outputs = valueAt(this.text, ["outputs"]);
    if (Array.isArray(outputs)) {
      outputs.forEach((entry, index) => {
        if (entry === id) this.text = setAt(this.text, ["outputs", index], to);
      });
    }
    this.text = renameKeyAt(this.text, ["ui", "positions", id], to);
    this.text = renameKeyAt(this.text, ["nodes", id], to);
  }

  /**
   * Connects output `from` (`node` or `node.output`) to input `to` (`node.input`), replacing what
   * fed that input. Refused, with the reason, when the types do not fit or it would make a cycle.
   */
  connect(from: string, to: string): void {
    const problem = this.connectionProblem(from, to);
    if (problem) throw new EditError(problem);
    const [toNode, toPort] = splitPort(to);
    this.text = setAt(this.text, ["nodes", toNode, "in", toPort], this.#sourceReference(from));
  }

  /** Why `from` cannot feed `to`, or undefined when it can. */
  connectionProblem(from: string, to: string): string | undefined {
    const [fromId, fromPortGiven] = from.split(".");
    const [toId, toPort] = splitPort(to);
    const cannot = `Cannot connect ${quote(from)} to ${quote(to)}`;
    const source = this.#node(fromId, false);
    if (!source) return `${cannot}: unknown node ${quote(fromId)}`;
    const target = this.#node(toId, false);
    if (!target) return `${cannot}: unknown node ${quote(toId)}`;
    const sourceType = this.#typeOf(source.type);
    const targetType = this.#typeOf(target.type);
    if (!sourceType) return `${cannot}: unknown node type ${quote(source.type)}`;
    if (!targetType) return `${cannot}: unknown node type ${quote(target.type)}`;
    const outputs = sourceType.outputs;
    const fromPort = fromPortGiven ?? (outputs.length === 1 ? outputs[0].name : undefined);
    if (fromPort === undefined) {
      return `${cannot}: node ${quote(fromId)} has several outputs (${
        outputs.map((port) => port.name).join(", ")
      }): name one`;
    }
    const output = outputs.find((port) => port.name === fromPort);
    if (!output) {
      return `${cannot}: node type ${quote(source.type)} has no output ${quote(fromPort)}`;
    }
    const input = targetType.inputs.find((port) => port.name === toPort) ??
      targetType.variadicInputs;
    if (!input) {
      return `${cannot}: node type ${quote(target.type)} has no input ${quote(toPort)}`;
    }
    if (targetType.hook && target.wraps.length > 0 && toPort === targetType.hook.input) {
      return `${cannot}: input ${quote(toPort)} of hook ${quote(toId)} comes from \`wraps:\``;
    }
    if (fromId === toId || this.#dependsOn(fromId, toId)) {
      return `${cannot}: it would make a cycle`;
    }
    const problem = connectionProblem(output.portType, input.portType);
    return problem ? `${cannot}: ${problem}` : undefined;
  }

  /** Disconnects input `to` (`node.input`). */
  disconnect(to: string): void {
    const [node, port] = splitPort(to);
    this.#node(node);
    this.text = deleteAt(this.text, ["nodes", node, "in", port], { prune: 1 });
  }

  /** Sets a node's setting (a literal, or a `$param` reference); `undefined` removes it. */
  setSetting(node: string, name: string, value: unknown): void {
    const declared = this.#node(node);
    const type = this.#typeOf(declared.type);
    if (type && !type.settings.some((setting) => setting.name === name)) {
      throw new EditError(
        `Unknown setting ${quote(name)} for node type ${quote(declared.type)}: ${
          type.settings.length > 0
            ? `its settings are ${type.settings.map((setting) => setting.name).join(", ")}`
            : "it has no settings"
        }`,
        { node },
      );
    }
    this.text = value === undefined
      ? deleteAt(this.text, ["nodes", node, "with", name], { prune: 1 })
      : setAt(this.text, ["nodes", node, "with", name], value);
  }

  /** Sets a param's default value. */
  setParam(name: string, value: unknown): void {
    if (valueAt(this.text, ["params", name]) === undefined) {
      throw new EditError(`Unknown param ${quote(name)}`);
    }
    this.text = setAt(this.text, ["params", name, "default"], value);
  }

  /** Saves where the editor shows a node (`ui.positions`), as whole numbers. */
  moveNode(id: string, position: [number, number]): void {
    this.#node(id);
    const [x, y] = position.map((value) => {
      if (!Number.isFinite(value)) throw new EditError(`Invalid position of node ${quote(id)}`);
      return Math.round(value);
    });
    this.text = setAt(this.text, ["ui", "positions", id], [x, y], { blockLevels: 2 });
  }

  /** Validates the current text as `cogflow validate` does; returns every problem (none: valid). */
  async validate(options: { params?: Record<string, unknown> } = {}): Promise<Diagnostic[]> {
    const file = this.#options.file ?? this.path ?? "<workflow>";
    let text = this.text;
    // Plugins that may not load are left out (and said so): validation would import them.
    if (!this.#options.allowPlugins && readDocument(text).plugins.length > 0) {
      text = deleteAt(text, ["plugins"]);
    }
    try {
      await parseWorkflow(text, {
        registry: this.#options.allowPlugins
          ? this.#options.registry ?? await builtinRegistry()
          : this.#types(),
        file,
        dir: this.#dir(),
        params: options.params,
      });
      return [...this.#pluginProblems];
    } catch (error) {
      if (!(error instanceof WorkflowError)) throw error;
      return [...this.#pluginProblems, ...error.diagnostics];
    }
  }

  /** Writes the text to `path` (default: the file opened), atomically. */
  async save(path: string | undefined = this.path): Promise<void> {
    if (path === undefined) throw new EditError("Nothing to save to: the editor has no file");
    // A temporary beside the file, renamed over it: a reader never sees half a workflow.
    const temporary = `${path}.cogflow-save-${crypto.randomUUID().slice(0, 8)}`;
    try {
      const mode = await Deno.stat(path).then((info) => info.mode ?? undefined, () => undefined);
      await Deno.writeTextFile(temporary, this.text, { createNew: true, mode });
      await Deno.rename(temporary, path);
    } catch (error) {
      await Deno.remove(temporary).catch(() => {});
      throw error;
    }
    this.original = this.text;
  }

  #dir(): string {
    return this.path ? dirname(resolve(this.path)) : Deno.cwd();
  }

  #types(): NodeRegistry {
    if (!this.#registry) throw new Error("Call loadTypes() before type-checked edits");
    return this.#registry;
  }

  #typeOf(type: string): NodeTypeDescription | undefined {
    const entry = this.#types().get(type);
    return entry ? describeNodeType(entry.definition, entry.module) : undefined;
  }

  #node(id: string, required?: true): EditorNode;
  #node(id: string, required: false): EditorNode | undefined;
  #node(id: string, required = true): EditorNode | undefined {
    const node = this.graph().nodes.find((node) => node.id === id);
    if (!node && required) throw new EditError(`Unknown node ${quote(id)}`);
    return node;
  }

  /** The reference to write in `in:`: `node` alone when the node has one output. */
  #sourceReference(from: string): string {
    const [id, port] = from.split(".");
    const type = this.#typeOf(this.#node(id).type);
    return port !== undefined && type?.outputs.length === 1 ? id : from;
  }

  /** True when `node` reads `ancestor`, directly or through other nodes (or wraps it). */
  #dependsOn(node: string, ancestor: string): boolean {
    const nodes = new Map(this.graph().nodes.map((entry) => [entry.id, entry]));
    const seen = new Set<string>();
    const pending = [node];
    while (pending.length > 0) {
      const id = pending.pop()!;
      if (id === ancestor) return true;
      if (seen.has(id)) continue;
      seen.add(id);
      const entry = nodes.get(id);
      if (!entry) continue;
      for (const reference of [...Object.values(entry.in), ...entry.wraps]) {
        pending.push(referencedNode(reference));
      }
    }
    return false;
  }

  #removeListItems(path: (string | number)[], id: string): void {
    const list = valueAt(this.text, path);
    if (!Array.isArray(list)) return;
    for (let index = list.length - 1; index >= 0; index--) {
      if (typeof list[index] === "string" && referencedNode(list[index]) === id) {
        this.text = deleteAt(this.text, [...path, index]);
      }
    }
    if (list.every((entry) => typeof entry === "string" && referencedNode(entry) === id)) {
      this.text = deleteAt(this.text, path);
    }
  }
}

/** Applies operations to YAML text in order; returns the new text (throws {@link EditError}). */
export async function applyEdits(
  text: string,
  operations: readonly EditOperation[],
  options: EditorOptions & { path?: string } = {},
): Promise<WorkflowEditor> {
  const editor = new WorkflowEditor(text, options);
  await editor.loadTypes();
  for (const operation of operations) editor.apply(operation);
  return editor;
}

/** The nodes, params and positions of workflow text, as written (for editors). */
export function describeText(text: string): EditorGraph {
  const document = readDocument(text);
  const positions = new Map(entriesAt(text, ["ui", "positions"]));
  const raw = new Map(entriesAt(text, ["nodes"]));
  const params: EditorGraph["params"] = {};
  for (const [name, declaration] of document.params) {
    params[name] = jsonSafe(declaration) as EditorGraph["params"][string];
  }
  return {
    name: document.name,
    description: document.description,
    params,
    nodes: document.nodes.map((node) => {
      const position = positions.get(node.id);
      const written = raw.get(node.id) as Record<string, unknown> | undefined;
      const entry: EditorNode = {
        id: node.id,
        type: node.type,
        in: { ...node.in },
        with: jsonSafe(node.with) as Record<string, unknown>,
        wraps: [...node.wraps],
      };
      if (written?.when !== undefined) entry.when = jsonSafe(written.when);
      if (node.description) entry.description = node.description;
      if (
        Array.isArray(position) && position.length === 2 &&
        position.every((value) => typeof value === "number" || typeof value === "bigint")
      ) {
        entry.position = [Number(position[0]), Number(position[1])];
      }
      return entry;
    }),
    outputs: document.outputs,
    plugins: document.plugins,
  };
}

/** The node (and port) a diagnostic belongs to, from its fields or its path. */
export function diagnosticPlace(diagnostic: Diagnostic): { node?: string; port?: string } {
  const path = diagnostic.path ?? [];
  const node = diagnostic.node ?? (path[0] === "nodes" ? String(path[1] ?? "") : undefined);
  const port = diagnostic.port ??
    (path[0] === "nodes" && (path[2] === "in" || path[2] === "with") && path[3] !== undefined
      ? String(path[3])
      : undefined);
  // Hook instances are named `hook[target]`: they belong to the hook's node.
  return { node: node?.replace(/\[.*\]$/, "") || undefined, port };
}

function readDocument(text: string) {
  const source = parseYamlSource(text, "<workflow>");
  const { document } = readWorkflowDocument(source);
  if (!document) {
    return {
      name: "",
      description: undefined,
      params: new Map(),
      plugins: [],
      outputs: undefined,
      nodes: [],
    } as unknown as NonNullable<typeof document>;
  }
  return document;
}

function referencedNode(reference: string): string {
  return reference.split(".")[0];
}

function splitPort(reference: string): [string, string] {
  const [node, port, ...rest] = reference.split(".");
  if (!node || !port || rest.length > 0) {
    throw new EditError(`Invalid input ${quote(reference)}: expected \`node.input\``);
  }
  return [node, port];
}

/** Big integers (seeds past 2^53) as text, so that the value survives JSON. */
function jsonSafe(value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (Array.isArray(value)) return value.map(jsonSafe);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, jsonSafe(item)]));
  }
  return value;
}
