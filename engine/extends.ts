/**
 * Variants: `extends: base.yaml` merges a base workflow's data with the variant's, before the
 * document is read, so that the result is checked as one workflow. The variant overrides params
 * (field by field), the settings and inputs of named nodes (key by key), replaces `wraps:`,
 * `when:` and the rest, adds nodes, and removes nodes listed in `remove:`. Every path of the
 * merged data still points at the file that wrote it.
 *
 * @module
 */

import { isAbsolute, resolve } from "node:path";
import type { Diagnostic, DocumentPath, SourcePosition } from "./diagnostics.ts";
import { quote } from "./diagnostics.ts";
import { describe, isRecord } from "./workflow_document.ts";

/** Finds the source position of a path in the data. */
export type Locate = (
  path: DocumentPath,
  options?: { key?: boolean },
) => SourcePosition | undefined;

/** Workflow data read from one file, or merged from a chain of variants. */
export interface LayeredData {
  /** The file that wrote the top layer (the variant). */
  file: string;
  /** Its folder. */
  dir: string;
  /** The (merged) data. */
  data: Record<string, unknown>;
  /** Positions of paths of the merged data, each in the file that wrote it. */
  locate: Locate;
  /** The folder of the file that declared each node, by id (for relative paths in settings). */
  nodeDirs: Map<string, string>;
  /** Nodes removed by a variant's `remove:`, with where each was removed. */
  removed: Map<string, SourcePosition | undefined>;
}

/** Keys of the variant that are not merged into the result. */
const VARIANT_ONLY = new Set(["extends", "remove"]);

/** One file's data as a layer without a base. */
export function singleLayer(
  file: string,
  dir: string,
  data: Record<string, unknown>,
  locate: Locate,
): LayeredData {
  const nodeDirs = new Map<string, string>();
  if (isRecord(data.nodes)) { for (const id of Object.keys(data.nodes)) nodeDirs.set(id, dir); }
  const copy = { ...data };
  delete copy.extends;
  delete copy.remove;
  return { file, dir, data: copy, locate, nodeDirs, removed: new Map() };
}

/**
 * Merges a variant (its own data and locator) over a base; returns the merged layer and the
 * problems of the variant's `remove:` and of node entries that cannot be merged.
 */
export function mergeVariant(
  base: LayeredData,
  variant: { file: string; dir: string; data: Record<string, unknown>; locate: Locate },
): { layer: LayeredData; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const report = (path: DocumentPath, code: string, message: string) =>
    diagnostics.push({ code, message, path, position: variant.locate(path) });
  const data: Record<string, unknown> = { ...base.data };
  for (const [key, value] of Object.entries(variant.data)) {
    if (VARIANT_ONLY.has(key)) continue;
    if (key === "params" || key === "inputs") {
      data[key] = mergeFields(base.data[key], value);
    } else if (key === "nodes") {
      continue;
    } else if (key === "plugins") {
      // The base's plugins are found from the base's folder.
      data.plugins = [...absolutePlugins(base.data.plugins, base.dir), ...asList(value)];
    } else if (key === "node_versions") {
      data[key] = isRecord(base.data[key]) && isRecord(value)
        ? { ...base.data[key] as Record<string, unknown>, ...value }
        : value;
    } else {
      data[key] = value;
    }
  }
  if (!("plugins" in variant.data) && base.data.plugins !== undefined) {
    data.plugins = absolutePlugins(base.data.plugins, base.dir);
  }
  absoluteDefaults(data, base, variant);

  const nodeDirs = new Map(base.nodeDirs);
  const nodes: Record<string, unknown> = isRecord(base.data.nodes) ? { ...base.data.nodes } : {};
  if (variant.data.nodes !== undefined && variant.data.nodes !== null) {
    if (!isRecord(variant.data.nodes)) {
      report(
        ["nodes"],
        "invalid_type",
        `\`nodes\` must map node ids to nodes or to changes of the base's nodes, got ${
          describe(variant.data.nodes)
        }`,
      );
    } else {
      for (const [id, change] of Object.entries(variant.data.nodes)) {
        const existing = nodes[id];
        if (isRecord(existing) && isRecord(change)) {
          nodes[id] = mergeNode(existing, change);
        } else {
          nodes[id] = change;
          nodeDirs.set(id, variant.dir);
        }
      }
    }
  }
  const removed = new Map(base.removed);
  const remove = variant.data.remove;
  if (remove !== undefined && remove !== null) {
    const ids = typeof remove === "string" ? [remove] : remove;
    if (!Array.isArray(ids)) {
      report(
        ["remove"],
        "invalid_type",
        `\`remove\` must be a list of node ids, got ${describe(remove)}`,
      );
    } else {
      ids.forEach((id, index) => {
        const path = typeof remove === "string" ? ["remove"] : ["remove", index];
        if (typeof id !== "string" || !Object.hasOwn(nodes, id)) {
          report(
            path,
            "unknown_node",
            `Cannot remove ${
              typeof id === "string" ? quote(id) : describe(id)
            }: the base workflow has no such node`,
          );
          return;
        }
        delete nodes[id];
        nodeDirs.delete(id);
        removed.set(id, variant.locate(path));
      });
    }
  }
  data.nodes = nodes;
  const locate: Locate = (path, options) =>
    depthIn(variant.data, path) >= depthIn(base.data, path)
      ? variant.locate(path, options)
      : base.locate(path, options);
  return {
    layer: { file: variant.file, dir: variant.dir, data, locate, nodeDirs, removed },
    diagnostics,
  };
}

/** A base node changed by a variant: settings and inputs key by key, the rest replaced. */
function mergeNode(
  base: Record<string, unknown>,
  change: Record<string, unknown>,
): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(change)) {
    if ((key === "with" || key === "in") && isRecord(base[key]) && isRecord(value)) {
      merged[key] = { ...base[key] as Record<string, unknown>, ...value };
    } else if (value === null && (key === "when" || key === "wraps" || key === "description")) {
      // `when: null` in a variant makes the node unconditional again.
      delete merged[key];
    } else {
      merged[key] = value;
    }
  }
  return merged;
}

/** Mappings of declarations (params, inputs) merged entry by entry, each field by field. */
function mergeFields(base: unknown, change: unknown): unknown {
  if (!isRecord(base) || !isRecord(change)) return change;
  const merged: Record<string, unknown> = { ...base };
  for (const [name, value] of Object.entries(change)) {
    merged[name] = isRecord(merged[name]) && isRecord(value)
      ? { ...merged[name] as Record<string, unknown>, ...value }
      : value;
  }
  return merged;
}

/** The base's relative plugin paths made absolute against its folder. */
function absolutePlugins(plugins: unknown, dir: string): unknown[] {
  return asList(plugins).map((plugin) =>
    typeof plugin === "string" && !/^[a-z][a-z0-9+.-]*:/i.test(plugin) && !isAbsolute(plugin)
      ? resolve(dir, plugin)
      : plugin
  );
}

function asList(value: unknown): unknown[] {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}

/**
 * A relative default of a `path` param written by the base is relative to the base's folder:
 * made absolute here, as the merged document's defaults are read against the variant's folder.
 */
function absoluteDefaults(
  data: Record<string, unknown>,
  base: LayeredData,
  variant: { data: Record<string, unknown> },
) {
  if (!isRecord(data.params)) return;
  const variantParams = isRecord(variant.data.params) ? variant.data.params : {};
  const params: Record<string, unknown> = { ...data.params };
  for (const [name, declaration] of Object.entries(params)) {
    if (!isRecord(declaration) || typeof declaration.default !== "string") continue;
    const own = variantParams[name];
    if (isRecord(own) && "default" in own) continue;
    const types = Array.isArray(declaration.type) ? declaration.type : [declaration.type];
    if (!types.includes("path") || isAbsolute(declaration.default)) continue;
    params[name] = { ...declaration, default: resolve(base.dir, declaration.default) };
  }
  data.params = params;
}

/** How many leading parts of `path` exist in `data`. */
function depthIn(data: unknown, path: DocumentPath): number {
  let node = data;
  let depth = 0;
  for (const part of path) {
    if (Array.isArray(node) && typeof part === "number" && part < node.length) {
      node = node[part];
    } else if (isRecord(node) && Object.hasOwn(node, String(part))) {
      node = node[String(part)];
    } else {
      return depth;
    }
    depth++;
  }
  return depth;
}
