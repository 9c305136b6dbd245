/**
 * Diagnostics: user-facing errors that name the place (file:line:col, the path in the
 * document, the node and port) and never carry a stack trace.
 *
 * @module
 */

import { escapeControl, quote } from "../runtime/quote.ts";

export { UserError } from "../runtime/user_error.ts";
export { escapeControl, quote } from "../runtime/quote.ts";

/** A path in a workflow document, e.g. `["nodes", "sample", "with", "steps"]`. */
export type DocumentPath = readonly (string | number)[];

/** Where a diagnostic points to in a source file (1-based line and column). */
export interface SourcePosition {
  /** The file, as the user named it. */
  file: string;
  /** 1-based line. */
  line: number;
  /** 1-based column. */
  col: number;
}

/** One problem found in a workflow, with everything needed to find and fix it. */
export interface Diagnostic {
  /** A stable machine-readable code, e.g. `unknown_node_type`. */
  code: string;
  /** Sentence-case message without a trailing period. */
  message: string;
  /** The path in the document the problem is about. */
  path?: DocumentPath;
  /** The source position of that path, when the workflow came from a file. */
  position?: SourcePosition;
  /** The node the problem is about. */
  node?: string;
  /** The port or setting of that node. */
  port?: string;
  /** A suggestion, e.g. `did you mean "transformer"?`. */
  hint?: string;
}

/** Formats a document path as `nodes.sample.with.steps` (`prompts[0]` for indices). */
export function formatPath(path: DocumentPath): string {
  let text = "";
  for (const part of path) {
    if (typeof part === "number") text += `[${part}]`;
    else text += text === "" ? part : `.${part}`;
  }
  return text;
}

/**
 * Formats a diagnostic as one line: `file:line:col: path: message (hint)`. Control characters
 * (in a file name, a key, a message a plugin wrote) are escaped, so the line is one line and
 * cannot repaint the terminal.
 */
export function formatDiagnostic(diagnostic: Diagnostic): string {
  const parts: string[] = [];
  if (diagnostic.position) {
    const { file, line, col } = diagnostic.position;
    parts.push(`${file}:${line}:${col}`);
  }
  if (diagnostic.path && diagnostic.path.length > 0) parts.push(formatPath(diagnostic.path));
  parts.push(diagnostic.hint ? `${diagnostic.message} (${diagnostic.hint})` : diagnostic.message);
  return escapeControl(parts.join(": "));
}

/** Thrown when a workflow is invalid: carries every diagnostic found, not just the first. */
export class WorkflowError extends Error {
  /** Every problem found. */
  readonly diagnostics: readonly Diagnostic[];

  /** Makes an error from one or more diagnostics. */
  constructor(diagnostics: readonly Diagnostic[]) {
    super(diagnostics.map(formatDiagnostic).join("\n"));
    this.name = "WorkflowError";
    this.diagnostics = diagnostics;
  }
}

/**
 * Edit distance between two strings (optimal string alignment): insertions, deletions,
 * substitutions and swaps of two neighbours each count one, so `valeu` is one edit from `value`.
 */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = [Array.from({ length: b.length + 1 }, (_, j) => j)];
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min(rows[i - 1][j] + 1, row[j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        row[j] = Math.min(row[j], rows[i - 2][j - 2] + 1);
      }
    }
    rows.push(row);
  }
  return rows[a.length][b.length];
}

/**
 * Most candidates a did-you-mean hint compares a name with: among more (the ids of a huge
 * workflow), no hint is given, so that each hint costs bounded time.
 */
export const MAX_HINT_CANDIDATES = 2_000;

/**
 * A bound on the comparisons the did-you-mean hints of one validation make together, so that a
 * file with many mistakes is not checked in quadratic time: when it is spent, no more hints.
 */
export class HintBudget {
  /** Comparisons left. */
  left: number;

  /** Allows `comparisons` comparisons in all (default 500,000: well under a second). */
  constructor(comparisons = 500_000) {
    this.left = comparisons;
  }
}

/**
 * The candidate closest to `name`, if it is close enough to be a likely typo. Gives up (no match)
 * among more than {@link MAX_HINT_CANDIDATES} candidates, or when `budget` is spent.
 */
export function closestMatch(
  name: string,
  candidates: Iterable<string>,
  budget?: HintBudget,
): string | undefined {
  const lower = name.toLowerCase();
  const list: string[] = [];
  for (const candidate of candidates) {
    if (list.length === MAX_HINT_CANDIDATES) return undefined;
    list.push(candidate);
  }
  if (budget) {
    if (budget.left < list.length) return undefined;
    budget.left -= list.length;
  }
  // An abbreviation (`int` for `integer`) is a likelier intent than a short word a few edits away.
  if (lower.length >= 3) {
    const prefixed = list.filter((candidate) => candidate.toLowerCase().startsWith(lower));
    if (prefixed.length === 1) return prefixed[0];
  }
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of list) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  // About one edit per three letters, and never a name with nothing in common (`d` for `a`).
  const limit = Math.min(Math.max(1, Math.floor(name.length / 3)), name.length - 1);
  return bestDistance <= limit ? best : undefined;
}

/** A `did you mean "x"?` hint, or undefined when nothing is close (see {@link closestMatch}). */
export function didYouMean(
  name: string,
  candidates: Iterable<string>,
  budget?: HintBudget,
): string | undefined {
  const match = closestMatch(name, candidates, budget);
  return match === undefined ? undefined : `did you mean ${quote(match)}?`;
}
