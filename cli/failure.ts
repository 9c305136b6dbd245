/**
 * How the CLI prints what went wrong: a workflow's diagnostics (the first
 * {@link MAX_PRINTED_DIAGNOSTICS}, then a count of the rest), and failures as one message. A
 * failure that is the user's to fix never shows a stack trace; an internal error (a bug in cogflow
 * or a plugin) shows its stack only with `COGFLOW_DEBUG=1`. Everything printed has its control
 * characters escaped.
 *
 * @module
 */

import {
  type Diagnostic,
  escapeControl,
  formatDiagnostic,
  NodeFailure,
  UserError,
} from "../engine/mod.ts";

/** Diagnostics printed at most per workflow; the rest are counted. */
export const MAX_PRINTED_DIAGNOSTICS = 50;

/** `error: ...` lines for the first diagnostics, then `... and N more errors`. */
export function formatDiagnostics(
  diagnostics: readonly Diagnostic[],
  limit: number = MAX_PRINTED_DIAGNOSTICS,
): string {
  const lines = diagnostics.slice(0, limit).map((diagnostic) =>
    `error: ${formatDiagnostic(diagnostic)}\n`
  );
  const rest = diagnostics.length - limit;
  if (rest > 0) lines.push(`... and ${rest} more error${rest === 1 ? "" : "s"}\n`);
  return lines.join("");
}

/** `N error(s)`. */
export function countErrors(count: number): string {
  return `${count} error${count === 1 ? "" : "s"}`;
}

/**
 * Errors the user fixes (bad files, bad values, what the operating system refused), printed
 * without a stack trace.
 */
export function isUserFacing(error: unknown): boolean {
  if (error instanceof UserError) return true;
  return Object.values(Deno.errors).some((kind) => error instanceof kind);
}

/** True when `COGFLOW_DEBUG=1` asks for stack traces of internal errors. */
export function debugEnabled(): boolean {
  try {
    return Deno.env.get("COGFLOW_DEBUG") === "1";
  } catch {
    // Not allowed to read it: no debugging output.
    return false;
  }
}

/**
 * A failure as printed: `error: <message>`. When it is not the user's to fix, it is called an
 * internal error, and its stack follows only with `debug`.
 */
export function formatFailure(error: unknown, debug: boolean = debugEnabled()): string {
  const cause = error instanceof NodeFailure ? error.cause : error;
  const message = error instanceof Error ? error.message : String(error);
  if (isUserFacing(cause)) return `error: ${escapeControl(message)}\n`;
  const lines = [`error: internal error: ${escapeControl(message)}`];
  const stack = cause instanceof Error ? cause.stack : undefined;
  if (debug && stack) lines.push(...stack.split("\n").map(escapeControl));
  else lines.push("Run with COGFLOW_DEBUG=1 to print its stack trace.");
  return `${lines.join("\n")}\n`;
}
