/**
 * Minimal text edits of YAML: set, insert, delete and rename at a path by splicing the text at the
 * ranges the `yaml` package's parser gives, so that every line an edit does not touch keeps its
 * bytes, comments and layout.
 *
 * @module
 */

import {
  isMap,
  isPair,
  isScalar,
  isSeq,
  type Node,
  type Pair,
  parseDocument,
  stringify,
  type YAMLMap,
  type YAMLSeq,
} from "yaml";

/** A path of keys and indices from the document's root. */
export type YamlPath = readonly (string | number)[];

type Range = [number, number, number];

/** A value as one line of YAML flow text: `{ a: 1, b: [x, y] }`, `"a: b"`, `$model`. */
export function flowText(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(flowText).join(", ")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value).map(([key, item]) =>
      `${flowKey(key)}: ${flowText(item)}`
    );
    return entries.length === 0 ? "{}" : `{ ${entries.join(", ")} }`;
  }
  if (value === undefined) return "null";
  const text = stringify(value, { lineWidth: 0 }).trimEnd();
  // Plain text that would end a flow collection early is quoted.
  return typeof value === "string" && /[,[\]{}#]/.test(text) && !/^["']/.test(text)
    ? JSON.stringify(value)
    : text;
}

function flowKey(key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? key : JSON.stringify(key);
}

/** The parsed node at `path`, or undefined. */
export function nodeAt(text: string, path: YamlPath): Node | undefined {
  return walk(parse(text), path)?.node ?? undefined;
}

/** The plain value at `path` of YAML text, or undefined. */
export function valueAt(text: string, path: YamlPath): unknown {
  const node = nodeAt(text, path);
  return node === undefined || node === null ? undefined : (node as { toJSON(): unknown }).toJSON();
}

/** Options of {@link setAt}. */
export interface SetOptions {
  /** Levels of mappings written as indented blocks rather than `{ flow }` (default 0). */
  blockLevels?: number;
}

/**
 * Sets the value at `path`, replacing the old value's text, or inserting the key (and the missing
 * mappings above it) after the last key of its mapping.
 */
export function setAt(
  text: string,
  path: YamlPath,
  value: unknown,
  options: SetOptions = {},
): string {
  const blockLevels = options.blockLevels ?? 0;
  const document = parse(text);
  for (let depth = path.length; depth >= 1; depth--) {
    const parent = walk(document, path.slice(0, depth - 1));
    if (!parent || !parent.node) continue;
    const key = path[depth - 1];
    if (isMap(parent.node)) {
      const pair = pairOf(parent.node, String(key));
      if (pair && depth === path.length) return replaceValue(text, pair, value, blockLevels);
      if (pair) {
        // An existing key with no mapping under it (`with:` alone): write the mapping there.
        if (pair.value === null || (isScalar(pair.value) && pair.value.value === null)) {
          return replaceValue(text, pair, nest(path.slice(depth), value), blockLevels);
        }
        continue;
      }
      return insertPair(
        text,
        parent.node,
        String(key),
        nest(path.slice(depth), value),
        blockLevels,
      );
    }
    if (isSeq(parent.node) && typeof key === "number" && depth === path.length) {
      const item = parent.node.items[key] as Node | undefined;
      if (item && (item as { range?: Range }).range) {
        const range = (item as { range: Range }).range;
        return splice(text, range[0], range[1], flowText(value));
      }
    }
    throw new Error(`Cannot set ${path.join(".")}: its parent is not a mapping`);
  }
  throw new Error(`Cannot set ${path.join(".")}`);
}

/** Renames the key at `path` (the last segment) to `to`, keeping its value. */
export function renameKeyAt(text: string, path: YamlPath, to: string): string {
  const parent = walk(parse(text), path.slice(0, -1));
  if (!parent || !isMap(parent.node)) return text;
  const pair = pairOf(parent.node, String(path[path.length - 1]));
  const range = (pair?.key as { range?: Range } | null)?.range;
  return range ? splice(text, range[0], range[1], flowKey(to)) : text;
}

/**
 * Deletes the pair (or the list item) at `path`. With `prune`, a mapping the deletion leaves empty
 * goes too, up to `prune` levels above.
 */
export function deleteAt(text: string, path: YamlPath, options: { prune?: number } = {}): string {
  const document = parse(text);
  const parent = walk(document, path.slice(0, -1));
  if (!parent) return text;
  const key = path[path.length - 1];
  if (isMap(parent.node)) {
    const pair = pairOf(parent.node, String(key));
    if (!pair) return text;
    if (parent.node.items.length === 1 && (options.prune ?? 0) > 0 && path.length > 1) {
      return deleteAt(text, path.slice(0, -1), { prune: options.prune! - 1 });
    }
    return deleteItem(text, parent.node, pair);
  }
  if (isSeq(parent.node) && typeof key === "number") {
    const item = parent.node.items[key];
    return item === undefined ? text : deleteItem(text, parent.node, item as Node);
  }
  return text;
}

/** Each pair of the mapping at `path`, as [key, plain value], in file order. */
export function entriesAt(text: string, path: YamlPath): [string, unknown][] {
  const node = nodeAt(text, path);
  if (!isMap(node)) return [];
  return node.items.map((pair) => [
    String(isScalar(pair.key) ? pair.key.value : pair.key),
    pair.value === null ? null : (pair.value as { toJSON(): unknown }).toJSON(),
  ]);
}

function parse(text: string) {
  return parseDocument(text, { uniqueKeys: false, intAsBigInt: true, keepSourceTokens: false });
}

/** The node at `path` (null for a key without a value). */
function walk(
  document: ReturnType<typeof parse>,
  path: YamlPath,
): { node: Node | null } | undefined {
  let node = document.contents as Node | null;
  for (const segment of path) {
    if (isMap(node)) {
      const pair = pairOf(node, String(segment));
      if (!pair) return undefined;
      node = pair.value as Node | null;
    } else if (isSeq(node) && typeof segment === "number") {
      node = (node.items[segment] as Node | undefined) ?? null;
      if (node === null) return undefined;
    } else {
      return undefined;
    }
  }
  return { node };
}

function pairOf(map: YAMLMap, key: string): Pair | undefined {
  return map.items.find((pair) =>
    isPair(pair) && isScalar(pair.key) && String(pair.key.value) === key
  );
}

/** `value` under the keys of `path`: `nest(["a", "b"], 1)` is `{ a: { b: 1 } }`. */
function nest(path: YamlPath, value: unknown): unknown {
  return path.reduceRight<unknown>((inner, key) => ({ [String(key)]: inner }), value);
}

function splice(text: string, start: number, end: number, insert: string): string {
  return text.slice(0, start) + insert + text.slice(end);
}

function lineStart(text: string, offset: number): number {
  return text.lastIndexOf("\n", offset - 1) + 1;
}

/** The offset just past the end of the line holding `offset` (past its newline, if any). */
function lineEnd(text: string, offset: number): number {
  const newline = text.indexOf("\n", offset);
  return newline === -1 ? text.length : newline + 1;
}

function columnOf(text: string, offset: number): number {
  return offset - lineStart(text, offset);
}

function replaceValue(text: string, pair: Pair, value: unknown, blockLevels: number): string {
  const keyRange = (pair.key as { range: Range }).range;
  const node = pair.value as (Node & { range?: Range }) | null;
  const keyIndent = columnOf(text, keyRange[0]);
  // A block collection is replaced by a flow one on the key's line: a one-line value.
  if (!node?.range || node.range[0] === node.range[1]) {
    const colon = text.indexOf(":", keyRange[1]);
    const end = node?.range ? node.range[1] : colon + 1;
    return splice(
      text,
      colon + 1,
      Math.max(end, colon + 1),
      valueSuffix(value, keyIndent, blockLevels),
    );
  }
  if ((isMap(node) || isSeq(node)) && !node.flow) {
    const colon = text.indexOf(":", keyRange[1]);
    // Up to the end of the block's last line, without its newline.
    const end = node.range[1] > 0 && text[node.range[1] - 1] === "\n"
      ? node.range[1] - 1
      : node.range[1];
    return splice(text, colon + 1, end, valueSuffix(value, keyIndent, blockLevels));
  }
  return splice(text, node.range[0], node.range[1], flowText(value));
}

/**
 * A value for after `key:`: flow text, or, for `blockLevels` levels of mappings, an indented block.
 */
function render(value: unknown, keyIndent: number, blockLevels: number): string {
  if (blockLevels <= 0 || !isPlainObject(value) || Object.keys(value).length === 0) {
    return flowText(value);
  }
  const inner = " ".repeat(keyIndent + 2);
  return Object.entries(value).map(([key, item]) => {
    const rendered = render(item, keyIndent + 2, blockLevels - 1);
    return `\n${inner}${flowKey(key)}:${rendered.startsWith("\n") ? rendered : ` ${rendered}`}`;
  }).join("");
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function insertPair(
  text: string,
  map: YAMLMap,
  key: string,
  value: unknown,
  blockLevels: number,
): string {
  const range = (map as { range?: Range }).range;
  if (map.flow && range) {
    const close = text.lastIndexOf("}", range[1]);
    let before = close;
    while (before > 0 && /\s/.test(text[before - 1])) before--;
    const empty = text[before - 1] === "{";
    const entry = `${flowKey(key)}: ${flowText(value)}`;
    return empty
      ? splice(text, before, close, ` ${entry} `)
      : splice(text, before, before, `, ${entry}`);
  }
  const last = map.items[map.items.length - 1] as Pair | undefined;
  if (!last || !range) {
    // An empty document: the key starts it.
    const prefix = text === "" || text.endsWith("\n") ? text : `${text}\n`;
    return `${prefix}${flowKey(key)}:${valueSuffix(value, 0, blockLevels)}\n`;
  }
  const indent = columnOf(text, (map.items[0].key as { range: Range }).range[0]);
  const end = pairEnd(text, last);
  const line = `${" ".repeat(indent)}${flowKey(key)}:${valueSuffix(value, indent, blockLevels)}\n`;
  const needsNewline = end === text.length && !text.endsWith("\n");
  return splice(text, end, end, needsNewline ? `\n${line}` : line);
}

function valueSuffix(value: unknown, indent: number, blockLevels: number): string {
  const rendered = render(value, indent, blockLevels);
  return rendered.startsWith("\n") ? rendered : ` ${rendered}`;
}

/** Past the last line of a block pair (its value's last line, with its comment and newline). */
function pairEnd(text: string, pair: Pair): number {
  const node = pair.value as (Node & { range?: Range }) | null;
  const keyRange = (pair.key as { range: Range }).range;
  const valueEnd = node?.range ? node.range[1] : keyRange[2];
  return lineEnd(text, Math.max(valueEnd - 1, keyRange[1]));
}

function deleteItem(text: string, parent: YAMLMap | YAMLSeq, item: Pair | Node): string {
  const isPairItem = isPair(item);
  const start = isPairItem
    ? (item.key as { range: Range }).range[0]
    : (item as { range: Range }).range[0];
  if (parent.flow) {
    const node = isPairItem
      ? item.value as (Node & { range?: Range }) | null
      : item as Node & { range?: Range };
    const end = node?.range
      ? node.range[1]
      : (item as Pair).key && ((item as Pair).key as { range: Range }).range[1];
    const index = (parent.items as unknown[]).indexOf(item);
    if (parent.items.length === 1) {
      const open = text.lastIndexOf(isMap(parent) ? "{" : "[", start);
      const close = text.indexOf(isMap(parent) ? "}" : "]", end as number);
      return splice(text, open + 1, close, "");
    }
    if (index < parent.items.length - 1) {
      // Up to the next item.
      const next = parent.items[index + 1] as Pair | Node;
      const nextStart = isPair(next)
        ? (next.key as { range: Range }).range[0]
        : (next as { range: Range }).range[0];
      return splice(text, start, nextStart, "");
    }
    // The last item: from the comma before it.
    const comma = text.lastIndexOf(",", start);
    return splice(text, comma, end as number, "");
  }
  // Block: whole lines, from the key's line to the value's last line.
  const from = lineStart(text, start);
  const to = isPairItem
    ? pairEnd(text, item)
    : lineEnd(text, Math.max((item as { range: Range }).range[1] - 1, start));
  return splice(text, from, to, "");
}
