/**
 * What the CLI's commands share: exit codes, output streams, usage errors, common options.
 *
 * @module
 */

import { streamSink, type TextSink } from "./reporters.ts";

/** Exit codes. */
export const EXIT = { ok: 0, failed: 1, invalid: 2, interrupted: 130 } as const;

/** Where the CLI writes: injectable for tests. */
export interface CliIo {
  /** Results (written files, graphs, JSON). */
  stdout: TextSink;
  /** Progress and errors. */
  stderr: TextSink;
  /** Whether stderr is a terminal (live progress display). */
  stderrIsTerminal: boolean;
  /** Terminal width. */
  columns: number;
}

/** The process's stdout and stderr. */
export function processIo(): CliIo {
  let columns = 80;
  try {
    columns = Deno.consoleSize().columns;
  } catch {
    // Not a terminal.
  }
  return {
    stdout: streamSink(Deno.stdout),
    stderr: streamSink(Deno.stderr),
    stderrIsTerminal: Deno.stderr.isTerminal(),
    columns,
  };
}

/** Thrown for bad command-line usage; exits with 2 after printing the message. */
export class UsageError extends Error {}

/** Options shared by commands that load a workflow. */
export const WORKFLOW_OPTIONS = {
  set: { type: "string", multiple: true },
  "allow-remote-plugins": { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;
