/**
 * What the editor shows of a workflow file: for a variant (`extends:`), the composed workflow,
 * its base chain merged as the engine's loader merges it, each node marked with the file that
 * declared it (`from`) and whether the variant's own file has an entry for it (`own`). A
 * subworkflow node (`type: workflow`) stays one node, its ports the inputs and outputs its file
 * declares. Files read for the view (bases, subworkflows) must lie inside the served folder.
 *
 * @module
 */

import { dirname, relative, resolve } from "node:path";
import { describeText, type EditorGraph, type EditorNode } from "../api/edit.ts";
import { entriesAt } from "../api/yaml_splice.ts";
import { type LayeredData, mergeVariant, singleLayer } from "../engine/extends.ts";
import { WORKFLOW_NODE_TYPE } from "../engine/compose.ts";
import { isRecord, readWorkflowDocument } from "../engine/workflow_document.ts";
import { parseYamlSource } from "../engine/yaml_source.ts";
import { stringify } from "yaml";
import { isInside } from "./security.ts";

/** A port of a subworkflow node, shaped as a node type's port for the page. */
export interface SubworkflowPort {
  /** Name. */
  name: string;
  /** Type as text (a subworkflow's ports take any type). */
  type: string;
  /** Type as data. */
  portType: { kind: string };
  /** True when it need not be connected. */
  optional: boolean;
  /** One line. */
  description?: string;
}

/** A node as the editor shows it. */
export interface ViewNode extends EditorNode {
  /** The file that declared it (relative to the served folder) when not the opened file. */
  from?: string;
  /** True when the opened file has an entry for it (its own node, or its change of a base's). */
  own: boolean;
  /** For `type: workflow`: the subworkflow's file and ports, as a node type. */
  subworkflow?: {
    type: string;
    description: string;
    category: string;
    module: string;
    output: boolean;
    path?: string;
    inputs: SubworkflowPort[];
    settings: never[];
    outputs: SubworkflowPort[];
  };
}

/** The workflow as the editor shows it. */
export interface WorkflowView extends Omit<EditorGraph, "nodes"> {
  /** Nodes: the composed ones for a variant. */
  nodes: ViewNode[];
  /** The base the file extends (relative to the served folder), if any. */
  extends?: string;
}

const MAX_CHAIN = 16;

/** The view of workflow `text` read from `file` (absolute), in the served folder `root`. */
export async function workflowView(
  text: string,
  file: string,
  root: string,
): Promise<WorkflowView> {
  const written = describeText(text);
  const source = parseYamlSource(text, file);
  const data = source.data;
  if (!isRecord(data) || typeof data.extends !== "string" || data.extends === "") {
    return {
      ...written,
      nodes: await Promise.all(
        written.nodes.map(async (node) => ({
          ...node,
          own: true,
          ...(await subworkflowOf(node, dirname(file), root)),
        })),
      ),
    };
  }
  const chain = await readChain(file, data, source.locate, root);
  if (!chain) return { ...written, nodes: written.nodes.map((node) => ({ ...node, own: true })) };
  const { layer, declaredIn } = chain;
  const { document } = readWorkflowDocument({ ...source, data: layer.data, locate: layer.locate });
  if (!document) {
    return { ...written, nodes: written.nodes.map((node) => ({ ...node, own: true })) };
  }
  // The merged document described as written: a text of the merged data would lose positions
  // only, which the editor does not show.
  const ownIds = new Set(isRecord(data.nodes) ? Object.keys(data.nodes) : []);
  const positions = new Map(entriesAt(text, ["ui", "positions"]));
  const merged = describeText(stringify({ ...layer.data, ui: null }));
  const nodes: ViewNode[] = [];
  for (const node of merged.nodes) {
    const origin = declaredIn.get(node.id);
    const position = positions.get(node.id);
    const entry: ViewNode = { ...node, own: ownIds.has(node.id) };
    delete entry.position;
    if (
      Array.isArray(position) && position.length === 2 &&
      position.every((value) => typeof value === "number")
    ) {
      entry.position = [Number(position[0]), Number(position[1])];
    }
    if (origin && origin !== file) entry.from = relative(root, origin);
    Object.assign(
      entry,
      await subworkflowOf(node, layer.nodeDirs.get(node.id) ?? dirname(file), root),
    );
    nodes.push(entry);
  }
  return {
    name: merged.name,
    description: merged.description,
    params: merged.params,
    nodes,
    outputs: merged.outputs,
    plugins: written.plugins,
    extends: relative(root, resolve(dirname(file), data.extends)),
  };
}

/** The variant chain merged, and the file that declared each node; undefined when unreadable. */
async function readChain(
  file: string,
  data: Record<string, unknown>,
  locate: LayeredData["locate"],
  root: string,
  depth = 0,
): Promise<{ layer: LayeredData; declaredIn: Map<string, string> } | undefined> {
  const dir = dirname(file);
  if (typeof data.extends !== "string" || data.extends === "") {
    const layer = singleLayer(file, dir, data, locate);
    const declaredIn = new Map<string, string>();
    for (const id of Object.keys(isRecord(layer.data.nodes) ? layer.data.nodes : {})) {
      declaredIn.set(id, file);
    }
    return { layer, declaredIn };
  }
  if (depth >= MAX_CHAIN) return undefined;
  const basePath = await insideRoot(resolve(dir, data.extends), root);
  if (!basePath) return undefined;
  const baseText = await Deno.readTextFile(basePath).catch(() => undefined);
  if (baseText === undefined) return undefined;
  const baseSource = parseYamlSource(baseText, basePath);
  if (baseSource.errors.length > 0 || !isRecord(baseSource.data)) return undefined;
  const base = await readChain(basePath, baseSource.data, baseSource.locate, root, depth + 1);
  if (!base) return undefined;
  const { layer } = mergeVariant(base.layer, { file, dir, data, locate });
  const declaredIn = new Map(base.declaredIn);
  for (const [id, change] of Object.entries(isRecord(data.nodes) ? data.nodes : {})) {
    // A mapping over a base's node changes it; anything else declares the node here.
    if (
      !(isRecord(base.layer.data.nodes) && isRecord(base.layer.data.nodes[id])) || !isRecord(change)
    ) {
      declaredIn.set(id, file);
    }
  }
  return { layer, declaredIn };
}

/** A subworkflow node's ports from its file (inside the served folder), as a node type. */
async function subworkflowOf(
  node: EditorNode,
  dir: string,
  root: string,
): Promise<Pick<ViewNode, "subworkflow">> {
  if (node.type !== WORKFLOW_NODE_TYPE) return {};
  const given = node.with.path;
  const type: NonNullable<ViewNode["subworkflow"]> = {
    type: WORKFLOW_NODE_TYPE,
    description: "A subworkflow",
    category: "subworkflow",
    module: "workflow",
    output: false,
    inputs: [],
    settings: [],
    outputs: [],
  };
  if (typeof given !== "string") return { subworkflow: type };
  const path = await insideRoot(resolve(dir, given), root);
  const text = path ? await Deno.readTextFile(path).catch(() => undefined) : undefined;
  if (!path || text === undefined) return { subworkflow: type };
  type.path = relative(root, path);
  const { document } = readWorkflowDocument(parseYamlSource(text, path));
  if (!document) return { subworkflow: type };
  type.description = document.description ?? `Subworkflow ${type.path}`;
  const port = (name: string, description?: string): SubworkflowPort => ({
    name,
    type: "any",
    portType: { kind: "any" },
    optional: false,
    ...(description ? { description } : {}),
  });
  for (const [name, declaration] of document.inputs ?? []) {
    type.inputs.push(port(name, declaration.description));
  }
  for (const [name, reference] of document.namedOutputs ?? []) {
    type.outputs.push(port(name, `from ${reference}`));
  }
  return { subworkflow: type };
}

/** The real path when it lies inside the served folder, else undefined. */
async function insideRoot(path: string, root: string): Promise<string | undefined> {
  const real = await Deno.realPath(path).catch(() => undefined);
  return real && isInside(real, root) ? real : undefined;
}
