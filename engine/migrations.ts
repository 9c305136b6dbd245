/**
 * Node type versions: a workflow file records the versions of the node types it was written for
 * (`node_versions: { sample: 1 }`); loading it migrates each node written for an older version
 * through its type's migrations, or fails saying what changed. A type missing from the record is
 * taken as written for the current version.
 *
 * @module
 */

import type { AnyNodeDefinition, NodeMigration, WrittenNode } from "./define_node.ts";
import { type Diagnostic, type DocumentPath, quote, type SourcePosition } from "./diagnostics.ts";
import type { NodeRegistry } from "./registry.ts";
import type { NodeDeclaration, WorkflowDocument } from "./workflow_document.ts";

/** The result of migrating one node: the node as the current version reads it, or a problem. */
export type MigrationResult =
  | { node: WrittenNode; applied: NodeMigration[] }
  | { problem: string };

/**
 * Migrates a node written for version `written` of `definition` to its current version. The
 * problem, if any, is a sentence naming the versions and what changed.
 */
export function migrateNode(
  definition: AnyNodeDefinition,
  written: number,
  node: WrittenNode,
): MigrationResult {
  if (written > definition.version) {
    return {
      problem: `The workflow was written for version ${written} of node type ${
        quote(definition.type)
      }, newer than this cogflow's version ${definition.version}: update cogflow`,
    };
  }
  const steps = [...(definition.migrations ?? [])]
    .filter((migration) => migration.from >= written && migration.from < definition.version)
    .sort((a, b) => a.from - b.from);
  let current: WrittenNode = { in: { ...node.in }, with: structuredClone(node.with) };
  for (const step of steps) {
    if (!step.migrate) {
      return {
        problem:
          `Node type ${
            quote(definition.type)
          } changed after version ${step.from}: ${step.changes}: this node was written for version ${written} and cannot be migrated by itself: ` +
          `change it by hand and set \`node_versions: { ${definition.type}: ${definition.version} }\``,
      };
    }
    current = step.migrate(current);
  }
  return { node: current, applied: steps };
}

/** One node migrated while loading. */
export interface AppliedMigration {
  /** The node's id. */
  node: string;
  /** Its type. */
  type: string;
  /** The version it was written for. */
  from: number;
  /** The current version. */
  to: number;
}

/**
 * Migrates the document's nodes in place (their `in:` and `with:`), per its `node_versions:`;
 * unknown types are left for validation to report.
 */
export function migrateDocument(
  document: WorkflowDocument,
  registry: NodeRegistry,
  locate: (path: DocumentPath) => SourcePosition | undefined,
): { applied: AppliedMigration[]; diagnostics: Diagnostic[] } {
  const applied: AppliedMigration[] = [];
  const diagnostics: Diagnostic[] = [];
  const versions = document.nodeVersions;
  if (!versions || versions.size === 0) return { applied, diagnostics };
  document.nodes.forEach((declaration: NodeDeclaration, index) => {
    const written = versions.get(declaration.type);
    const definition = registry.get(declaration.type)?.definition;
    if (written === undefined || !definition) return;
    const result = migrateNode(definition, written, {
      in: declaration.in,
      with: declaration.with,
    });
    if ("problem" in result) {
      const path = ["nodes", declaration.id, "type"];
      diagnostics.push({
        code: "node_version",
        message: `Node ${quote(declaration.id)}: ${result.problem}`,
        path,
        position: locate(path),
        node: declaration.id,
      });
      // Its settings are of another version: checking them would only repeat the problem.
      document.nodes[index] = {
        ...declaration,
        malformed: [...(declaration.malformed ?? []), "with"],
      };
      return;
    }
    if (result.applied.length === 0) return;
    document.nodes[index] = { ...declaration, in: result.node.in, with: result.node.with };
    applied.push({
      node: declaration.id,
      type: declaration.type,
      from: written,
      to: definition.version,
    });
  });
  return { applied, diagnostics };
}
