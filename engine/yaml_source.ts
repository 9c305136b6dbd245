/**
 * YAML text to plain data, keeping a way back from any path in the data to its line and column.
 *
 * @module
 */

import {
  type Document,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
} from "yaml";
import type { Diagnostic, DocumentPath, SourcePosition } from "./diagnostics.ts";

/** A parsed YAML file: its data and a locator for positions. */
export interface YamlSource {
  /** The file name used in positions. */
  file: string;
  /** The text as read. */
  text: string;
  /** The document's data as plain JavaScript values (undefined when the text did not parse). */
  data: unknown;
  /** The parsed document, comments and positions included (for tools that edit the text). */
  document: Document;
  /** YAML syntax errors, with positions. */
  errors: Diagnostic[];
  /** The position of the value at `path` (or of its key, with `{ key: true }`). */
  locate(path: DocumentPath, options?: { key?: boolean }): SourcePosition | undefined;
}

/** Parses YAML text; syntax errors are returned as diagnostics, never thrown. */
export function parseYamlSource(text: string, file: string): YamlSource {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, {
    lineCounter,
    prettyErrors: false,
    uniqueKeys: true,
    strict: true,
    intAsBigInt: true,
  });
  const position = (offset: number): SourcePosition => {
    const { line, col } = lineCounter.linePos(offset);
    return { file, line, col };
  };
  const errors: Diagnostic[] = document.errors.map((error) => ({
    code: "yaml_syntax",
    message: `Invalid YAML: ${firstLine(error.message)}`,
    position: position(error.pos[0]),
  }));
  let data: unknown = undefined;
  if (errors.length === 0) {
    try {
      data = normalizeIntegers(document.toJS({ maxAliasCount: 100 }));
    } catch (error) {
      errors.push({
        code: "yaml_syntax",
        message: `Invalid YAML: ${firstLine((error as Error).message)}`,
        position: { file, line: 1, col: 1 },
      });
    }
  }
  const locate = (path: DocumentPath, options: { key?: boolean } = {}) => {
    const range = findRange(document.contents as Node | null, path, options.key ?? false);
    return range === undefined ? undefined : position(range);
  };
  return { file, text, data, document, errors, locate };
}

/**
 * Integers are parsed as bigints so that seeds up to 2^64 stay exact; those that fit a double
 * exactly become numbers again.
 */
export function normalizeIntegers(value: unknown): unknown {
  if (typeof value === "bigint") {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : value;
  }
  if (Array.isArray(value)) return value.map(normalizeIntegers);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalizeIntegers(v)]));
  }
  return value;
}

function firstLine(message: string): string {
  return message.split("\n")[0].replace(/\.$/, "");
}

/** Start offset of the deepest node found along `path`. */
function findRange(root: Node | null, path: DocumentPath, wantKey: boolean): number | undefined {
  let node: unknown = root;
  let found = rangeStart(node);
  for (let i = 0; i < path.length; i++) {
    const segment = path[i];
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((item) => isPair(item) && keyText(item.key) === String(segment));
      if (!pair) return found;
      if (last && wantKey) return rangeStart(pair.key) ?? found;
      node = pair.value;
      found = rangeStart(node) ?? rangeStart(pair.key) ?? found;
    } else if (isSeq(node) && typeof segment === "number") {
      node = node.items[segment];
      if (node === undefined) return found;
      found = rangeStart(node) ?? found;
    } else {
      return found;
    }
  }
  return found;
}

function keyText(key: unknown): string | undefined {
  return isScalar(key) ? String(key.value) : undefined;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return range ? range[0] : undefined;
}
