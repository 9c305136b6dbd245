/**
 * YAML text to plain data, keeping a way back from any path in the data to its line and column.
 *
 * @module
 */

import process from "node:process";
import {
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  type Pair,
  parseDocument,
  type YAMLMap,
} from "yaml";
import { type Diagnostic, type DocumentPath, quote, type SourcePosition } from "./diagnostics.ts";

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

/**
 * Parses YAML text; syntax errors are returned as diagnostics, never thrown. Takes time linear in
 * the text: duplicate keys are found here with a set per mapping, as the `yaml` package's own
 * check compares every key with every other.
 */
export function parseYamlSource(text: string, file: string): YamlSource {
  const lineCounter = new LineCounter();
  const document = withPlainEnv(() =>
    parseDocument(text, {
      lineCounter,
      prettyErrors: false,
      uniqueKeys: false,
      strict: true,
      intAsBigInt: true,
      // Warnings are reported as errors below, not printed by the parser.
      logLevel: "error",
    })
  );
  const position = (offset: number): SourcePosition => {
    const { line, col } = lineCounter.linePos(offset);
    return { file, line, col };
  };
  const seen = new Set<string>();
  // A workflow is strict: what the parser only warns about (an unknown tag, an ambiguous alias)
  // would silently change a value's meaning.
  const errors: Diagnostic[] = [...document.errors, ...document.warnings].map((error) => ({
    code: "yaml_syntax",
    message: error.code === "MULTIPLE_DOCS"
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
  if (errors.length === 0) {
    errors.push(...duplicateKeys(document.contents as Node | null, text, position));
  }
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
  const pairsByKey = new WeakMap<YAMLMap, Map<string, Pair>>();
  const locate = (path: DocumentPath, options: { key?: boolean } = {}) => {
    const root = document.contents as Node | null;
    const range = findRange(root, path, options.key ?? false, pairsByKey);
    return range === undefined ? undefined : position(range);
  };
  return { file, text, data, document, errors, locate };
}

/** The environment variables the `yaml` package reads (to log its tokens and documents). */
const YAML_VARIABLES = ["LOG_TOKENS", "LOG_STREAM"];

/**
 * Runs `parse` with `process.env` a plain object holding only the variables the `yaml` package
 * reads. The package reads `process.env.LOG_TOKENS` for every token, and in Deno each read is a
 * call into the runtime: a third of the time of parsing a large file. Parsing is synchronous, so
 * nothing else sees the swap.
 */
function withPlainEnv<T>(parse: () => T): T {
  const env = process.env;
  const snapshot: Record<string, string> = {};
  for (const name of YAML_VARIABLES) {
    try {
      const value = env[name];
      if (value !== undefined) snapshot[name] = value;
    } catch {
      // Not allowed to read it: the package sees it unset.
    }
  }
  process.env = snapshot;
  try {
    return parse();
  } finally {
    process.env = env;
  }
}

/**
 * Integers are parsed as bigints so that seeds up to 2^64 stay exact; those that fit a double
 * exactly become numbers again. Lists and mappings are changed in place (they are the parser's
 * fresh output) and returned.
 */
export function normalizeIntegers(value: unknown, parents: Set<unknown> = new Set()): unknown {
  if (typeof value === "bigint") {
    return value >= MIN_SAFE && value <= MAX_SAFE ? Number(value) : value;
  }
  if (typeof value !== "object" || value === null) return value;
  // An alias to an enclosing collection (`a: &x [*x]`) makes data that contains itself.
  if (parents.has(value)) throw new Error("an alias refers to a collection that contains it");
  parents.add(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = normalizeIntegers(value[i], parents);
  } else {
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) record[key] = normalizeIntegers(record[key], parents);
  }
  parents.delete(value);
  return value;
}

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** The first line of a library message, without its period, lower case after our colon. */
function firstLine(message: string): string {
  const line = message.split("\n")[0].replace(/\.$/, "");
  return /^[A-Z][a-z]/.test(line) ? line[0].toLowerCase() + line.slice(1) : line;
}

/**
 * Every key written twice in one mapping, at the second one, with the whole key, its path and
 * where it was first written. Walks the tree with a stack of its own: nesting depth is not bounded
 * by the call stack.
 */
function duplicateKeys(
  root: Node | null,
  text: string,
  position: (offset: number) => SourcePosition,
): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  // Collections still to visit, each with the way back to the root (paths are made only to report).
  type Visit = { node: unknown; key: string | number; parent?: Visit };
  const pathOf = (visit: Visit | undefined, last: string): (string | number)[] => {
    const path: (string | number)[] = [last];
    for (let at = visit; at?.parent; at = at.parent) path.unshift(at.key);
    return path;
  };
  const pending: Visit[] = [{ node: root, key: "" }];
  while (pending.length > 0) {
    const visit = pending.pop()!;
    const node = visit.node;
    if (isSeq(node)) {
      node.items.forEach((item, index) => {
        if (isMap(item) || isSeq(item)) pending.push({ node: item, key: index, parent: visit });
      });
      continue;
    }
    if (!isMap(node)) continue;
    const first = new Map<string, number | undefined>();
    for (const item of node.items) {
      const key = keyText(item.key) ?? sourceText(item.key, text);
      if (first.has(key)) {
        const earlier = first.get(key);
        const at = earlier === undefined ? undefined : position(earlier);
        diagnostics.push({
          code: "yaml_syntax",
          message: `Invalid YAML: duplicate key ${quote(key)}${
            at ? ` (first at line ${at.line}, col ${at.col})` : ""
          }`,
          path: pathOf(visit, key),
          position: position(rangeStart(item.key) ?? rangeStart(node) ?? 0),
        });
        continue;
      }
      first.set(key, rangeStart(item.key));
      if (isMap(item.value) || isSeq(item.value)) {
        pending.push({ node: item.value, key, parent: visit });
      }
    }
  }
  return diagnostics.sort((a, b) =>
    a.position!.line - b.position!.line || a.position!.col - b.position!.col
  );
}

/** The text a node was written as (for keys that are collections). */
function sourceText(node: unknown, text: string): string {
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return range ? text.slice(range[0], range[1]) : String(node);
}

/** Start offset of the deepest node found along `path`. */
function findRange(
  root: Node | null,
  path: DocumentPath,
  wantKey: boolean,
  pairsByKey: WeakMap<YAMLMap, Map<string, Pair>>,
): number | undefined {
  let node: unknown = root;
  let found = rangeStart(node);
  for (let i = 0; i < path.length; i++) {
    const segment = path[i];
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = pairsOf(node, pairsByKey).get(String(segment));
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

/** A mapping's pairs by key text (the first of equal keys), indexed on first use. */
function pairsOf(
  node: YAMLMap,
  pairsByKey: WeakMap<YAMLMap, Map<string, Pair>>,
): Map<string, Pair> {
  let pairs = pairsByKey.get(node);
  if (!pairs) {
    pairs = new Map();
    for (const item of node.items) {
      const key = isPair(item) ? keyText(item.key) : undefined;
      if (key !== undefined && !pairs.has(key)) pairs.set(key, item);
    }
    pairsByKey.set(node, pairs);
  }
  return pairs;
}

function keyText(key: unknown): string | undefined {
  return isScalar(key) ? String(key.value) : undefined;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return range ? range[0] : undefined;
}
