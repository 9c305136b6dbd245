/**
 * `cogflow upgrade`: rewrites a workflow file written for older node type versions as its
 * types' migrations say, splicing only what changes (a renamed setting keeps its line, its value
 * and its comment), and records the current versions in `node_versions:`.
 *
 * @module
 */

import { parseDocument } from "yaml";
import { canonicalJson, migrateNode, type NodeRegistry, quote } from "../engine/mod.ts";
import { deleteAt, renameKeyAt, setAt } from "./yaml_splice.ts";

/** What {@link upgradeWorkflowText} did. */
export interface UpgradeResult {
  /** The new text (the same text when nothing changed). */
  text: string;
  /** One line per change (`node "n" (scaled): version 1 to 2`). */
  changes: string[];
  /** Nodes that cannot be migrated by themselves, with what changed. */
  problems: string[];
}

/**
 * Migrates every node the file's `node_versions:` says is older than its type in `registry`.
 * Node types missing from the record, or unknown, are left as they are.
 */
export function upgradeWorkflowText(text: string, registry: NodeRegistry): UpgradeResult {
  const data = parseDocument(text, { intAsBigInt: false, uniqueKeys: false }).toJS() as unknown;
  const result: UpgradeResult = { text, changes: [], problems: [] };
  if (!isRecord(data) || !isRecord(data.node_versions) || !isRecord(data.nodes)) return result;
  const versions = data.node_versions;
  const upgraded = new Set<string>();
  for (const [id, node] of Object.entries(data.nodes)) {
    if (!isRecord(node) || typeof node.type !== "string") continue;
    const written = versions[node.type];
    const definition = registry.get(node.type)?.definition;
    if (typeof written !== "number" || !definition || written >= definition.version) continue;
    const before = {
      in: isRecord(node.in) ? node.in as Record<string, string> : {},
      with: isRecord(node.with) ? node.with : {},
    };
    const migrated = migrateNode(definition, written, before);
    if ("problem" in migrated) {
      result.problems.push(`Node ${quote(id)}: ${migrated.problem}`);
      continue;
    }
    upgraded.add(node.type);
    for (const part of ["in", "with"] as const) {
      result.text = spliceChanges(
        result.text,
        ["nodes", id, part],
        before[part],
        migrated.node[part],
      );
    }
    result.changes.push(
      `node ${quote(id)} (${node.type}): version ${written} to ${definition.version}`,
    );
  }
  if (result.problems.length > 0) return { ...result, text };
  for (const type of upgraded) {
    result.text = setAt(
      result.text,
      ["node_versions", type],
      registry.get(type)!.definition.version,
    );
  }
  return result;
}

/** Edits the mapping at `path` from `before` to `after`: renames, sets and deletes keys. */
function spliceChanges(
  text: string,
  path: (string | number)[],
  before: Record<string, unknown>,
  after: Record<string, unknown>,
): string {
  const removed = Object.keys(before).filter((key) => !Object.hasOwn(after, key));
  const added = Object.keys(after).filter((key) => !Object.hasOwn(before, key));
  for (const key of removed) {
    // A key that reappears under another name with its value is a rename: its line stays.
    const renamed = added.find((other) =>
      canonicalJson(after[other]) === canonicalJson(before[key])
    );
    if (renamed !== undefined) {
      text = renameKeyAt(text, [...path, key], renamed);
      added.splice(added.indexOf(renamed), 1);
    } else {
      text = deleteAt(text, [...path, key]);
    }
  }
  for (const [key, value] of Object.entries(after)) {
    const changed = !Object.hasOwn(before, key) ||
      canonicalJson(before[key]) !== canonicalJson(value);
    if (changed && (added.includes(key) || Object.hasOwn(before, key))) {
      text = setAt(text, [...path, key], value);
    }
  }
  return text;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
