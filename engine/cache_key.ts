/**
 * Content keys of node results: node type, version, settings and the keys of the node's inputs
 * (ComfyUI's input signature), hashed. Equal keys mean equal results for idempotent nodes.
 *
 * @module
 */

import { createHash } from "node:crypto";

/** JSON text with sorted keys; bigints written as `{"$bigint":"..."}`, undefined fields dropped. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === "number" || typeof value === "boolean") {
    return JSON.stringify(value);
  }
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `{"$bigint":"${value}"}`;
  if (value === undefined) return "null";
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object") {
    const entries = Object.entries(value)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`);
    return `{${entries.join(",")}}`;
  }
  throw new TypeError(`Cannot make a cache key from a ${typeof value}`);
}

/** What identifies a node's result. */
export interface NodeKeyParts {
  /** Node type. */
  type: string;
  /** Node type version. */
  version: number;
  /** Parsed settings. */
  settings: Record<string, unknown>;
  /** For each connected input port, `<upstream key>.<output port>`. */
  inputs: Record<string, string>;
}

/** The hex SHA-256 key of a node's result. */
export function nodeKey(parts: NodeKeyParts): string {
  return createHash("sha256").update(canonicalJson(parts)).digest("hex");
}

/**
 * The key of a result that depends on files: its node key and the size and modification time of
 * each file, so that whatever reads the result is keyed by the files' state too.
 */
export function keyWithFiles(
  key: string,
  files: readonly { path: string; size: number; mtimeMs: number }[],
): string {
  return createHash("sha256").update(`${key}\n${canonicalJson(files)}`).digest("hex");
}
