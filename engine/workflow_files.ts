/**
 * What a workflow reads besides itself, found without building it (for the launcher's
 * permissions): its header with its variants merged (`extends:`, params field by field, the
 * bases' plugins), and the files of its bases and subworkflows. The nodes are read only when the
 * file has subworkflow nodes (`type: workflow`); a subworkflow whose path is a param is not found.
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import { type LayeredData, mergeVariant, singleLayer } from "./extends.ts";
import { isRecord, readWorkflowDocument, type WorkflowDocument } from "./workflow_document.ts";
import { textWithoutNodes } from "./workflow_header.ts";
import { parseYamlSource } from "./yaml_source.ts";

/** A workflow's merged header and the other files it reads. */
export interface WorkflowFiles {
  /** The header (nodes empty), variants merged; undefined when the file is not a workflow. */
  document?: WorkflowDocument;
  /** The absolute paths of its bases and subworkflows (and theirs), each once. */
  files: string[];
}

/** The type of subworkflow nodes (as `compose.ts` expands them). */
const WORKFLOW_NODE_TYPE = "workflow";
const SUBWORKFLOW = new RegExp(`\\btype:\\s*["']?${WORKFLOW_NODE_TYPE}\\b`);

/** Reads the header of the workflow `file` (its text given) and finds the files it reads. */
export async function readWorkflowFiles(file: string, text: string): Promise<WorkflowFiles> {
  const files: string[] = [];
  const path = resolve(file);
  const layer = await readLayer(path, text, [path], files);
  if (!layer) return { files };
  const source = parseYamlSource("", file);
  const { document } = readWorkflowDocument({ ...source, data: layer.data });
  return { document: document ? { ...document, nodes: [] } : undefined, files };
}

async function readLayer(
  path: string,
  text: string,
  chain: string[],
  files: string[],
): Promise<LayeredData | undefined> {
  const withNodes = SUBWORKFLOW.test(text);
  const header = withNodes ? text : textWithoutNodes(text) ?? text;
  const source = parseYamlSource(header, path);
  if (source.errors.length > 0 || !isRecord(source.data)) return undefined;
  const data = source.data;
  const dir = dirname(path);
  let layer = singleLayer(path, dir, data, source.locate);
  if (typeof data.extends === "string" && data.extends !== "") {
    const base = await readIncluded(resolve(dir, data.extends), chain, files);
    if (base) layer = mergeVariant(base, { file: path, dir, data, locate: source.locate }).layer;
  }
  if (withNodes && isRecord(layer.data.nodes)) {
    for (const [id, node] of Object.entries(layer.data.nodes)) {
      if (!isRecord(node) || node.type !== WORKFLOW_NODE_TYPE || !isRecord(node.with)) continue;
      const childPath = node.with.path;
      if (typeof childPath !== "string" || childPath === "" || childPath.includes("$")) continue;
      await readIncluded(resolve(layer.nodeDirs.get(id) ?? dir, childPath), chain, files);
    }
  }
  return layer;
}

async function readIncluded(
  path: string,
  chain: string[],
  files: string[],
): Promise<LayeredData | undefined> {
  if (chain.includes(path)) return undefined;
  if (!files.includes(path)) files.push(path);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
  return readLayer(path, text, [...chain, path], files);
}
