/**
 * Composing a workflow from its files: the variant chain (`extends:`), the document, params,
 * plugins, node migrations, and subworkflows (`type: workflow` nodes), each expanded into the
 * including graph under its node's id (`core/sample`). The result is one flat document whose
 * every node still points at the file and line that wrote it, and sees its own file's params.
 *
 * @module
 */

import { dirname, isAbsolute, relative, resolve } from "node:path";
import type { NodeScope } from "./build_graph.ts";
import { type Diagnostic, type DocumentPath, quote, type SourcePosition } from "./diagnostics.ts";
import { type LayeredData, type Locate, mergeVariant, singleLayer } from "./extends.ts";
import { type AppliedMigration, migrateDocument } from "./migrations.ts";
import { type ParamOverride, resolveParams } from "./params.ts";
import { importPlugin, type NodeRegistry, PluginError } from "./registry.ts";
import { referencedParams, substituteParams } from "./substitute.ts";
import {
  describe,
  isRecord,
  type NodeDeclaration,
  type ParamDeclaration,
  readWorkflowDocument,
  type WorkflowDocument,
} from "./workflow_document.ts";
import { parseYamlSource, type YamlSource } from "./yaml_source.ts";

/** The node type that includes a subworkflow. */
export const WORKFLOW_NODE_TYPE = "workflow";

/** Options of {@link composeWorkflow}. */
export interface ComposeOptions {
  /** Node types; the plugins of every file read are registered into it. */
  registry: NodeRegistry;
  /** Base of paths given from outside the files. */
  cwd: string;
  /** Param values from outside (`--set`, `--params`); `core/steps` sets subworkflow `core`'s. */
  overrides: ReadonlyMap<string, ParamOverride>;
  /** Allow remote plugins. */
  allowRemotePlugins?: boolean;
}

/** A param's effective value and where it came from (`cogflow run --print-params`). */
export interface ParamSource {
  /** The param's name; a subworkflow's are namespaced (`core/steps`). */
  name: string;
  /** Its declaration. */
  declaration: ParamDeclaration;
  /** Whether it has a value (a param without default, left unset, has none). */
  set: boolean;
  /** The value, when set. */
  value?: unknown;
  /** Where the value came from: `default`, `--set seed=3`, `params file p.yaml`, `node "core"`. */
  origin: string;
  /** Where that was written, when in a file. */
  position?: SourcePosition;
}

/** A workflow read from all its files, ready to build. */
export interface ComposedWorkflow {
  /** The root file's source, its locator finding every path in the file that wrote it. */
  source: YamlSource;
  /** The flat document (subworkflows expanded, variants merged); undefined if unreadable. */
  document?: WorkflowDocument;
  /** The root's resolved params. */
  params: Map<string, unknown>;
  /** Where the root's params set from outside came from. */
  origins: Map<string, string>;
  /** The scope of each node that does not read the root file's params or folder. */
  scopes: Map<string, NodeScope>;
  /** Every file read, absolute, root first. */
  files: string[];
  /** Every param's value and origin, root first, then each subworkflow's. */
  paramSources: ParamSource[];
  /** Nodes migrated from older node type versions. */
  migrations: AppliedMigration[];
  /** Every problem found. */
  diagnostics: Diagnostic[];
}

interface Shared extends ComposeOptions {
  loadedPlugins: Set<string>;
  files: string[];
  paramSources: ParamSource[];
  migrations: AppliedMigration[];
  tagged: WeakSet<Diagnostic>;
}

interface Level {
  text: string;
  /** The file name used in positions. */
  file: string;
  /** Absolute path (for the chain of inclusion). */
  path: string;
  dir: string;
  chain: string[];
  overrides: ReadonlyMap<string, ParamOverride>;
  /** The id of the node including this file (`core`, `core/inner`), empty for the root. */
  namespace: string;
  /** Params left without a value because the including workflow's param they take is unset. */
  inheritedMissing: ReadonlySet<string>;
}

interface LevelResult {
  source?: YamlSource;
  document?: WorkflowDocument;
  locate: Locate;
  scopes: Map<string, NodeScope>;
  params: Map<string, unknown>;
  origins: Map<string, string>;
  diagnostics: Diagnostic[];
}

/**
 * Composes a workflow from its text and the files it names. `file` names it in messages, `dir`
 * is its folder. Never throws for problems in the files: they are in `diagnostics`.
 */
export async function composeWorkflow(
  text: string,
  file: string,
  dir: string,
  options: ComposeOptions,
): Promise<ComposedWorkflow> {
  const shared: Shared = {
    ...options,
    loadedPlugins: new Set(),
    files: [],
    paramSources: [],
    migrations: [],
    tagged: new WeakSet(),
  };
  const path = resolve(dir, file.includes("/") ? basenameOf(file) : file);
  const result = await composeLevel({
    text,
    file,
    path,
    dir,
    chain: [],
    overrides: options.overrides,
    namespace: "",
    inheritedMissing: new Set(),
  }, shared);
  return {
    source: result.source ?? parseYamlSource(text, file),
    document: result.document,
    params: result.params,
    origins: result.origins,
    scopes: result.scopes,
    files: shared.files,
    paramSources: shared.paramSources,
    migrations: shared.migrations,
    diagnostics: result.diagnostics,
  };
}

function basenameOf(file: string): string {
  return file.slice(file.lastIndexOf("/") + 1);
}

async function composeLevel(level: Level, shared: Shared): Promise<LevelResult> {
  const diagnostics: Diagnostic[] = [];
  const failed = (source?: YamlSource): LevelResult => ({
    source,
    locate: source?.locate ?? (() => undefined),
    scopes: new Map(),
    params: new Map(),
    origins: new Map(),
    diagnostics,
  });
  shared.files.push(level.path);
  const source = parseYamlSource(level.text, level.file);
  if (source.errors.length > 0) {
    diagnostics.push(...source.errors);
    return failed(source);
  }

  // Variants.
  let layer: LayeredData | undefined;
  if (isRecord(source.data)) {
    layer = await readLayers(source, level, shared, diagnostics);
    if (!layer) return failed(source);
  }
  const merged: YamlSource = layer ? { ...source, data: layer.data, locate: layer.locate } : source;
  const locateOwn = merged.locate;
  const { document, diagnostics: documentProblems } = readWorkflowDocument(merged);
  diagnostics.push(...documentProblems);
  if (!document) return failed(merged);
  if (layer && layer.removed.size > 0) {
    dropRemovedReferences(document, layer, locateOwn, diagnostics);
  }

  // Params: this file's own; those named `node/param` go to subworkflow `node`.
  const own = new Map<string, ParamOverride>();
  const forChildren = new Map<string, Map<string, ParamOverride>>();
  for (const [name, override] of level.overrides) {
    const slash = name.indexOf("/");
    if (slash < 0) {
      own.set(name, override);
      continue;
    }
    const head = name.slice(0, slash);
    const list = forChildren.get(head) ?? new Map<string, ParamOverride>();
    list.set(name.slice(slash + 1), override);
    forChildren.set(head, list);
  }
  const bases = { workflowDir: level.dir, cwd: shared.cwd };
  const resolved = resolveParams(document.params, own, bases, locateOwn);
  const missing = new Set<string>();
  for (const diagnostic of resolved.diagnostics) {
    if (diagnostic.code === "missing_param") {
      const name = String(diagnostic.path?.[1]);
      missing.add(name);
      if (level.inheritedMissing.has(name)) continue;
    }
    diagnostics.push(diagnostic);
  }
  const params = resolved.values;
  const origins = new Map<string, string>();
  for (const [name, override] of own) if (params.has(name)) origins.set(name, override.origin);
  for (const [name, declaration] of document.params) {
    const override = own.get(name);
    const fullName = level.namespace ? `${level.namespace}/${name}` : name;
    const set = params.has(name);
    shared.paramSources.push({
      name: fullName,
      declaration,
      set,
      ...(set ? { value: params.get(name) } : {}),
      origin: override && set
        ? override.origin
        : set
        ? "default"
        : level.inheritedMissing.has(name)
        ? "not set (the including workflow's param is not set)"
        : "not set (required)",
      position: override && set
        ? override.position
        : locateOwn(set ? ["params", name, "default"] : ["params", name]),
    });
  }

  // Plugins, then migrations (a plugin's node types may have some).
  for (const [index, specifier] of document.plugins.entries()) {
    const key = /^[a-z][a-z0-9+.-]*:/i.test(specifier) || isAbsolute(specifier)
      ? specifier
      : resolve(level.dir, specifier);
    if (shared.loadedPlugins.has(key)) continue;
    shared.loadedPlugins.add(key);
    try {
      const exports = await importPlugin(specifier, {
        baseDir: level.dir,
        allowRemote: shared.allowRemotePlugins,
      });
      shared.registry.registerModule(exports, `plugin ${quote(specifier)}`);
    } catch (error) {
      if (!(error instanceof PluginError)) throw error;
      diagnostics.push({
        code: "plugin_error",
        message: error.message,
        path: ["plugins", index],
        position: locateOwn(["plugins", index]),
      });
    }
  }
  const migrated = migrateDocument(document, shared.registry, locateOwn);
  diagnostics.push(...migrated.diagnostics);
  shared.migrations.push(...migrated.applied.map((applied) => ({
    ...applied,
    node: level.namespace ? `${level.namespace}/${applied.node}` : applied.node,
  })));

  // Scopes: a subworkflow's nodes all have one; the root's only those from a base elsewhere.
  const levelScope: NodeScope = {
    params,
    declaredParams: new Set(document.params.keys()),
    origins,
    bases,
  };
  const scopes = new Map<string, NodeScope>();
  for (const node of document.nodes) {
    const nodeDir = layer?.nodeDirs.get(node.id) ?? level.dir;
    if (nodeDir !== level.dir) {
      scopes.set(node.id, { ...levelScope, bases: { workflowDir: nodeDir, cwd: shared.cwd } });
    } else if (level.namespace !== "") {
      scopes.set(node.id, levelScope);
    }
  }

  // Subworkflows.
  const children = new Map<string, ChildWorkflow>();
  const dropped = new Set<string>();
  for (const declaration of document.nodes) {
    if (declaration.type !== WORKFLOW_NODE_TYPE) continue;
    const child = await includeChild(declaration, {
      level,
      shared,
      params,
      missing,
      declared: levelScope.declaredParams,
      locate: locateOwn,
      nodeDir: layer?.nodeDirs.get(declaration.id) ?? level.dir,
      overrides: forChildren.get(declaration.id) ?? new Map(),
      diagnostics,
    });
    if (child) children.set(declaration.id, child);
    else dropped.add(declaration.id);
  }
  for (const [head, overrides] of forChildren) {
    if (children.has(head) || dropped.has(head)) continue;
    for (const [rest, override] of overrides) {
      diagnostics.push({
        code: "unknown_param",
        message: `${override.origin}: Unknown param ${quote(`${head}/${rest}`)}: ${
          level.namespace ? `subworkflow ${quote(level.namespace)}` : "this workflow"
        } has no subworkflow node ${quote(head)}`,
        ...(override.position ? { position: override.position } : {}),
      });
    }
  }

  const rewrite = (reference: string, path: DocumentPath, node?: string): string | undefined =>
    rewriteReference(reference, path, { children, dropped, locate: locateOwn, diagnostics, node });
  // Without subworkflow nodes, nothing is rewritten (a large file is not copied node by node).
  const composite = children.size > 0 || dropped.size > 0;
  const nodes: NodeDeclaration[] = composite ? [] : document.nodes;
  for (const declaration of composite ? document.nodes : []) {
    const path = ["nodes", declaration.id];
    const inputs: Record<string, string> = {};
    const malformed = [...(declaration.malformed ?? [])];
    for (const [port, reference] of Object.entries(declaration.in)) {
      const rewritten = rewrite(reference, [...path, "in", port], declaration.id);
      if (rewritten !== undefined) inputs[port] = rewritten;
      else malformed.push(`in.${port}`);
    }
    const wraps = declaration.wraps.flatMap((entry, index) =>
      rewrite(entry, [...path, "wraps", index], declaration.id) ?? []
    );
    const child = children.get(declaration.id);
    if (!child) {
      if (dropped.has(declaration.id)) continue;
      nodes.push({
        ...declaration,
        in: inputs,
        wraps,
        ...(malformed.length > 0 ? { malformed } : {}),
      });
      continue;
    }
    nodes.push(...child.expand(inputs, malformed, diagnostics));
    for (const [id, scope] of child.scopes) scopes.set(`${declaration.id}/${id}`, scope);
  }
  const outputs = document.outputs?.flatMap((id, index) => {
    const child = children.get(id);
    if (child) return [...new Set([...child.outputs.values()].map((ref) => ref.split(".")[0]))];
    return rewrite(id, ["outputs", index]) ?? [];
  });
  let namedOutputs: Map<string, string> | undefined;
  if (document.namedOutputs) {
    namedOutputs = new Map();
    for (const [name, reference] of document.namedOutputs) {
      const rewritten = rewrite(reference, ["outputs", name]);
      if (rewritten !== undefined) namedOutputs.set(name, rewritten);
    }
  }

  const locate: Locate = (path, options) => {
    if (path[0] === "nodes" && typeof path[1] === "string") {
      const slash = path[1].indexOf("/");
      const child = slash > 0 ? children.get(path[1].slice(0, slash)) : undefined;
      if (child) {
        return child.locate(["nodes", path[1].slice(slash + 1), ...path.slice(2)], options);
      }
    }
    return locateOwn(path, options);
  };
  return {
    source: { ...merged, locate },
    document: {
      ...document,
      nodes,
      outputs,
      ...(namedOutputs ? { namedOutputs } : {}),
    },
    locate,
    scopes,
    params,
    origins,
    diagnostics,
  };
}

/** The variant chain of a file, merged; undefined when a base cannot be read. */
async function readLayers(
  source: YamlSource,
  level: Pick<Level, "file" | "path" | "dir" | "chain">,
  shared: Shared,
  diagnostics: Diagnostic[],
): Promise<LayeredData | undefined> {
  const data = source.data as Record<string, unknown>;
  const own = singleLayer(level.file, level.dir, data, source.locate);
  if (data.extends === undefined || data.extends === null) return own;
  const at = (code: string, message: string) =>
    diagnostics.push({ code, message, path: ["extends"], position: source.locate(["extends"]) });
  if (typeof data.extends !== "string" || data.extends === "") {
    at(
      "invalid_type",
      `\`extends\` must be the path of a base workflow, got ${describe(data.extends)}`,
    );
    return undefined;
  }
  const basePath = resolve(level.dir, data.extends);
  const chain = [...level.chain, level.path];
  if (chain.includes(basePath)) {
    at(
      "recursive_workflow",
      `Recursive inclusion: ${
        [...chain, basePath].map((file) => displayName(file, shared)).join(" -> ")
      }`,
    );
    return undefined;
  }
  const text = await readText(basePath);
  if (typeof text !== "string") {
    at("unreadable_file", `Cannot read base workflow ${quote(data.extends)}: ${text.error}`);
    return undefined;
  }
  shared.files.push(basePath);
  const baseSource = parseYamlSource(text, displayName(basePath, shared));
  if (baseSource.errors.length > 0) {
    diagnostics.push(...baseSource.errors);
    return undefined;
  }
  if (!isRecord(baseSource.data)) {
    at("not_a_workflow", `Base workflow ${quote(data.extends)} is not a workflow mapping`);
    return undefined;
  }
  const base = await readLayers(
    baseSource,
    {
      file: baseSource.file,
      path: basePath,
      dir: dirname(basePath),
      chain,
    },
    shared,
    diagnostics,
  );
  if (!base) return undefined;
  const { layer, diagnostics: mergeProblems } = mergeVariant(base, {
    file: level.file,
    dir: level.dir,
    data,
    locate: source.locate,
  });
  diagnostics.push(...mergeProblems);
  return layer;
}

/** References to nodes a variant removed: reported, and taken out so they are not reported again. */
function dropRemovedReferences(
  document: WorkflowDocument,
  layer: LayeredData,
  locate: Locate,
  diagnostics: Diagnostic[],
) {
  const removedAt = (reference: string) => {
    const id = reference.split(".")[0];
    return layer.removed.has(id) ? id : undefined;
  };
  const report = (path: DocumentPath, id: string, user: string, node?: string) => {
    const where = layer.removed.get(id);
    diagnostics.push({
      code: "removed_reference",
      message: `Node ${quote(id)} is removed by the variant's \`remove:\`${
        where ? ` (${where.file}:${where.line}:${where.col})` : ""
      } but ${user} uses it`,
      path,
      position: locate(path),
      ...(node ? { node } : {}),
    });
  };
  document.nodes = document.nodes.map((node) => {
    const path = ["nodes", node.id];
    const inputs: Record<string, string> = {};
    const malformed = [...(node.malformed ?? [])];
    for (const [port, reference] of Object.entries(node.in)) {
      const id = removedAt(reference);
      if (id === undefined) inputs[port] = reference;
      else {
        report([...path, "in", port], id, quote(node.id), node.id);
        malformed.push(`in.${port}`);
      }
    }
    const wraps = node.wraps.filter((entry, index) => {
      const id = removedAt(entry);
      if (id !== undefined) report([...path, "wraps", index], id, quote(node.id), node.id);
      return id === undefined;
    });
    return { ...node, in: inputs, wraps, ...(malformed.length > 0 ? { malformed } : {}) };
  });
  document.outputs = document.outputs?.filter((entry, index) => {
    const id = removedAt(entry);
    if (id !== undefined) report(["outputs", index], id, "`outputs:`");
    return id === undefined;
  });
}

interface ChildWorkflow {
  /** Output name to the flat reference (`core/decode.frames`). */
  outputs: Map<string, string>;
  locate: Locate;
  scopes: Map<string, NodeScope>;
  /** The child's nodes under the including node's id, its inputs wired from `inputs`. */
  expand(
    inputs: Record<string, string>,
    malformed: string[],
    diagnostics: Diagnostic[],
  ): NodeDeclaration[];
}

interface IncludeContext {
  level: Level;
  shared: Shared;
  params: ReadonlyMap<string, unknown>;
  missing: ReadonlySet<string>;
  declared: ReadonlySet<string>;
  locate: Locate;
  nodeDir: string;
  overrides: ReadonlyMap<string, ParamOverride>;
  diagnostics: Diagnostic[];
}

const INCLUDE_SETTINGS = ["path", "params"];

/** Reads and composes the subworkflow a `workflow` node names; undefined when it cannot. */
async function includeChild(
  declaration: NodeDeclaration,
  context: IncludeContext,
): Promise<ChildWorkflow | undefined> {
  const { level, shared, locate, diagnostics } = context;
  const id = declaration.id;
  const namespace = level.namespace ? `${level.namespace}/${id}` : id;
  const path = ["nodes", id];
  const report = (at: DocumentPath, code: string, message: string) =>
    diagnostics.push({ code, message, path: at, position: locate(at), node: namespace });
  if (declaration.wraps.length > 0) {
    report([...path, "wraps"], "not_a_hook", `Subworkflow node ${quote(id)} cannot wrap nodes`);
  }
  for (const key of Object.keys(declaration.with)) {
    if (INCLUDE_SETTINGS.includes(key)) continue;
    report(
      [...path, "with", key],
      "unknown_setting",
      `Unknown setting ${quote(key)} for a subworkflow node: its settings are path, params`,
    );
  }
  if (declaration.when && !whenHolds(declaration, context.params)) return undefined;
  const written = substituteParams(declaration.with.path, context.params);
  const childFile = written.value;
  if (typeof childFile !== "string" || childFile === "" || childFile.includes("$")) {
    report(
      [...path, "with", "path"],
      "invalid_setting",
      `Subworkflow node ${
        quote(id)
      } needs \`with: { path: file.yaml }\`: the subworkflow's file, got ${describe(childFile)}`,
    );
    return undefined;
  }
  const childPath = resolve(context.nodeDir, childFile);
  const chain = [...level.chain, level.path];
  if (chain.includes(childPath)) {
    report(
      [...path, "with", "path"],
      "recursive_workflow",
      `Recursive inclusion: ${
        [...chain, childPath].map((file) => displayName(file, shared)).join(" -> ")
      }`,
    );
    return undefined;
  }
  const text = await readText(childPath);
  if (typeof text !== "string") {
    report(
      [...path, "with", "path"],
      "unreadable_file",
      `Cannot read subworkflow ${quote(childFile)} of node ${quote(id)}: ${text.error}`,
    );
    return undefined;
  }

  // The including node's `params:` (in this file's params), then values set from outside.
  const overrides = new Map<string, ParamOverride>();
  const inheritedMissing = new Set<string>();
  const given = declaration.with.params;
  if (given !== undefined && given !== null && !isRecord(given)) {
    report(
      [...path, "with", "params"],
      "invalid_setting",
      `\`params\` of subworkflow node ${quote(id)} must map its params to values, got ${
        describe(given)
      }`,
    );
  } else if (isRecord(given)) {
    for (const [name, raw] of Object.entries(given)) {
      const at = [...path, "with", "params", name];
      const references = [...referencedParams(raw)];
      const unknown = references.filter((reference) => !context.declared.has(reference));
      for (const reference of unknown) {
        report(at, "unknown_param", `Unknown param ${quote(reference)}`);
      }
      if (unknown.length > 0) continue;
      if (references.some((reference) => context.missing.has(reference))) {
        inheritedMissing.add(name);
        continue;
      }
      overrides.set(name, {
        value: substituteParams(raw, context.params).value,
        origin: `node ${quote(namespace)}`,
        position: locate(at),
        base: context.nodeDir,
      });
    }
  }
  for (const [name, override] of context.overrides) overrides.set(name, override);

  const result = await composeLevel({
    text,
    file: displayName(childPath, shared),
    path: childPath,
    dir: dirname(childPath),
    chain,
    overrides,
    namespace,
    inheritedMissing,
  }, shared);
  const includedAt = locate(path, { key: true });
  for (const diagnostic of result.diagnostics) {
    if (!shared.tagged.has(diagnostic)) {
      diagnostic.message += includedNote(namespace, includedAt);
      shared.tagged.add(diagnostic);
    }
    diagnostics.push(diagnostic);
  }
  const document = result.document;
  if (!document) return undefined;
  const inputs = document.inputs ?? new Map();
  for (const port of Object.keys(declaration.in)) {
    if (inputs.has(port)) continue;
    report(
      [...path, "in", port],
      "unknown_input",
      `Subworkflow ${quote(childFile)} has no input ${quote(port)}: ${
        inputs.size > 0 ? `its inputs are ${[...inputs.keys()].join(", ")}` : "it has no inputs"
      }`,
    );
  }
  const outputs = new Map<string, string>();
  for (const [name, reference] of document.namedOutputs ?? []) {
    outputs.set(name, `${id}/${reference}`);
  }
  return {
    outputs,
    locate: result.locate,
    scopes: result.scopes,
    expand(given, malformed, problems) {
      const needed = new Set<string>();
      const nodes = document.nodes.map((node) => {
        const wired: Record<string, string> = {};
        const broken = [...(node.malformed ?? [])];
        for (const [port, reference] of Object.entries(node.in)) {
          const [head, name] = reference.split(".");
          if (head === "inputs" && inputs.has(name)) {
            if (given[name] !== undefined) wired[port] = given[name];
            else {
              broken.push(`in.${port}`);
              needed.add(name);
            }
          } else {
            wired[port] = `${id}/${reference}`;
          }
        }
        return {
          ...node,
          id: `${id}/${node.id}`,
          in: wired,
          wraps: node.wraps.map((entry) => `${id}/${entry}`),
          ...(broken.length > 0 ? { malformed: broken } : {}),
        };
      });
      for (const name of needed) {
        if (malformed.includes(`in.${name}`) || malformed.includes("in")) continue;
        problems.push({
          code: "missing_input",
          message: `Subworkflow node ${quote(id)} needs input ${quote(name)}${
            inputs.get(name)?.description ? ` (${inputs.get(name)!.description})` : ""
          }`,
          path: [...path, "in"],
          position: locate([...path, "in"]),
          node: namespace,
          port: name,
        });
      }
      return nodes;
    },
  };
}

/** A reference of this file rewritten where it names a subworkflow node's output. */
function rewriteReference(
  reference: string,
  path: DocumentPath,
  context: {
    children: ReadonlyMap<string, ChildWorkflow>;
    dropped: ReadonlySet<string>;
    locate: Locate;
    diagnostics: Diagnostic[];
    node?: string;
  },
): string | undefined {
  const [head, port, ...rest] = reference.split(".");
  if (context.dropped.has(head)) return undefined;
  const child = context.children.get(head);
  if (!child || rest.length > 0) return reference;
  const names = [...child.outputs.keys()];
  const report = (code: string, message: string) =>
    context.diagnostics.push({
      code,
      message,
      path,
      position: context.locate(path),
      ...(context.node ? { node: context.node } : {}),
    });
  if (port === undefined) {
    if (names.length === 1) return child.outputs.get(names[0]);
    report(
      names.length === 0 ? "unknown_output" : "ambiguous_reference",
      names.length === 0
        ? `Subworkflow node ${
          quote(head)
        } has no outputs: its file declares no \`outputs:\` mapping`
        : `Subworkflow node ${quote(head)} has several outputs (${
          names.join(", ")
        }): name one, as ${quote(`${head}.${names[0]}`)}`,
    );
    return undefined;
  }
  const target = child.outputs.get(port);
  if (target !== undefined) return target;
  report(
    "unknown_output",
    `Subworkflow node ${quote(head)} has no output ${quote(port)}: ${
      names.length > 0 ? `its outputs are ${names.join(", ")}` : "it has no outputs"
    }`,
  );
  return undefined;
}

/** ` (included by node "core" at file:line:col)`, for problems found inside a subworkflow. */
export function includedNote(node: string, position: SourcePosition | undefined): string {
  return ` (in subworkflow node ${quote(node)}${
    position ? ` at ${position.file}:${position.line}:${position.col}` : ""
  })`;
}

/**
 * Notes on problems the graph found in subworkflow nodes (namespaced ids): each names the
 * including node and where it is.
 */
export function noteIncludingNodes(diagnostics: readonly Diagnostic[], locate: Locate): void {
  for (const diagnostic of diagnostics) {
    const id = diagnostic.node ??
      (diagnostic.path?.[0] === "nodes" ? String(diagnostic.path[1]) : undefined);
    if (id === undefined) continue;
    const bare = id.replace(/\[.*$/, "");
    const slash = bare.lastIndexOf("/");
    if (slash < 0) continue;
    const including = bare.slice(0, slash);
    // Ids as the subworkflow's file writes them.
    const local = (text: string) => text.replaceAll(`"${including}/`, '"');
    diagnostic.message = local(diagnostic.message) +
      includedNote(including, locate(["nodes", including], { key: true }));
    if (diagnostic.hint) diagnostic.hint = local(diagnostic.hint);
  }
}

function whenHolds(node: NodeDeclaration, params: ReadonlyMap<string, unknown>): boolean {
  const when = node.when!;
  if (!params.has(when.param)) return true;
  const value = params.get(when.param);
  if (when.kind === "param") {
    return typeof value === "boolean"
      ? value
      : value !== null && value !== undefined && value !== "";
  }
  return when.values.some((expected) => expected === value);
}

async function readText(path: string): Promise<string | { error: string }> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    const message = error instanceof Deno.errors.NotFound
      ? `no file ${quote(path)}`
      : (error as Error).message.split("\n")[0];
    return { error: message };
  }
}

/** A file as named in messages: relative to the current folder when inside it. */
function displayName(path: string, shared: { cwd: string }): string {
  const fromHere = relative(shared.cwd, path);
  return fromHere.startsWith("..") || isAbsolute(fromHere) ? path : fromHere;
}
