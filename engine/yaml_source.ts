/**
 * YAML text to plain data, keeping a way back from any path in the data to its line and column.
 *
 * @module
 */

import { isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";
import type { Diagnostic, DocumentPath, SourcePosition } from "./diagnostics.ts";

/**
 * A parsed YAML document of the npm `yaml` package (its `Document` class), comments and source
 * positions included; tools that edit the text import the package's types to use it.
 */
export interface YamlDocument {
  /** The document as YAML text again, comments kept. */
  toString(): string;
}

/** A parsed YAML file: its data and a locator for positions. */
export interface YamlSource {
  /** The file name used in positions. */
  file: string;
  /** The text as read. */
  text: string;
  /** The document's data as plain JavaScript values (undefined when the text did not parse). */
  data: unknown;
  /** The parsed document, comments and positions included (for tools that edit the text). */
  document: YamlDocument;
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
    // Warnings are reported as errors below, not printed by the parser.
    logLevel: "error",
  });
  const position = (offset: number): SourcePosition => {
    const { line, col } = lineCounter.linePos(offset);
    return { file, line, col };
  };
  const seen = new Set<string>();
  // A workflow is strict: what the parser only warns about (an unknown tag, an ambiguous alias)
  // would silently change a value's meaning.
  const errors: Diagnostic[] = [...document.errors, ...document.warnings].map((error) => ({
    code: "yaml_syntax",
    message: error.code === "DUPLICATE_KEY"
      ? `Invalid YAML: duplicate key ${JSON.stringify(text.slice(error.pos[0], error.pos[1]))}`
      : error.code === "MULTIPLE_DOCS"
      ? "Invalid YAML: a workflow is one document, but `---` starts another"
      : `Invalid YAML: ${firstLine(error.message)}`,
    position: position(error.pos[0]),
  })).filter((error) => {
    // The parser may report one problem several times at one place.
    const text = `${error.position.line}:${error.position.col}: ${error.message}`;
    if (seen.has(text)) return false;
    seen.add(text);
    return true;
  });
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
export function normalizeIntegers(value: unknown, parents: Set<unknown> = new Set()): unknown {
  if (typeof value === "bigint") {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : value;
  }
  if (typeof value !== "object" || value === null) return value;
  // An alias to an enclosing collection (`a: &x [*x]`) makes data that contains itself.
  if (parents.has(value)) throw new Error("an alias refers to a collection that contains it");
  parents.add(value);
  const result = Array.isArray(value)
    ? value.map((item) => normalizeIntegers(item, parents))
    : Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, normalizeIntegers(v, parents)]),
    );
  parents.delete(value);
  return result;
}

/** The first line of a library message, without its period, lower case after our colon. */
function firstLine(message: string): string {
  const line = message.split("\n")[0].replace(/\.$/, "");
  return /^[A-Z][a-z]/.test(line) ? line[0].toLowerCase() + line.slice(1) : line;
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
