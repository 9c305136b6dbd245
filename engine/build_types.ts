/**
 * What the phases of `buildGraph` share: the build's inputs, the nodes being built, and the
 * reporter every phase adds its problems to.
 *
 * @module
 */

import type { Diagnostic, DocumentPath, HintBudget, SourcePosition } from "./diagnostics.ts";
import type { GraphNode } from "./graph.ts";
import type { PathBases } from "./params.ts";
import type { NodeRegistry } from "./registry.ts";
import type { NodeDeclaration } from "./workflow_document.ts";

/** What `buildGraph` needs besides the document. */
export interface BuildContext {
  /** Node types, built-ins and the workflow's plugins. */
  registry: NodeRegistry;
  /** Resolved param values. */
  params: ReadonlyMap<string, unknown>;
  /**
   * Where the params set from outside the file came from (`--set seed=42`), by name: a setting
   * such a value does not fit is reported at its origin, not at the file.
   */
  origins?: ReadonlyMap<string, string>;
  /** Bases for relative paths in settings. */
  bases: PathBases;
  /** Shared by the did-you-mean hints of one validation (default: one per build). */
  hints?: HintBudget;
  /** Source positions of document paths. */
  locate: (path: DocumentPath, options?: { key?: boolean }) => SourcePosition | undefined;
  /**
   * Nodes that came from another file (a subworkflow's, by namespaced id) and see that file's
   * params and folder rather than the document's.
   */
  scopes?: ReadonlyMap<string, NodeScope>;
}

/** The params and folders a node's settings are read with. */
export interface NodeScope {
  /** Resolved param values. */
  params: ReadonlyMap<string, unknown>;
  /** The params declared, resolved or not. */
  declaredParams: ReadonlySet<string>;
  /** Where params set from outside came from, by name. */
  origins?: ReadonlyMap<string, string>;
  /** Bases for relative paths in settings. */
  bases: PathBases;
}

/** A node while the graph is built: a graph node plus what it was read from. */
export interface PendingNode extends GraphNode {
  /** The node as the document declares it. */
  declaration: NodeDeclaration;
  /** False when the settings could not be parsed: `infer()` gets only valid settings. */
  settled: boolean;
}

/** Adds one problem at a document path (`key`: at the key rather than its value). */
export type Report = (
  path: DocumentPath,
  code: string,
  message: string,
  extra?: Partial<Diagnostic> & { key?: boolean },
) => void;

/** What every phase after reading the nodes reads: the declarations and the reporter. */
export interface BuildState {
  /** Adds a problem. */
  report: Report;
  /** Every declared node, switched on or off, by id. */
  declared: ReadonlyMap<string, NodeDeclaration>;
  /** Nodes switched off by their `when:` condition. */
  disabled: ReadonlySet<string>;
  /** Shared by the did-you-mean hints of the build. */
  hints: HintBudget;
}
