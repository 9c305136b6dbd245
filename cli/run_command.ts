/**
 * `cogflow run`: load, run with a reporter, print the files written. Ctrl-C cancels at the next
 * step boundary and exits with 130.
 *
 * @module
 */

import { relative } from "node:path";
import { parseArgs } from "node:util";
import { loadWorkflow, runWorkflow } from "../api/mod.ts";
import { NodeFailure, RunCancelled, type RunEvent, UserError } from "../engine/mod.ts";
import { parseByteSize } from "../runtime/byte_size.ts";
import { RUN_HELP } from "./help.ts";
import { type CliIo, EXIT, UsageError, WORKFLOW_OPTIONS } from "./common.ts";
import { JsonReporter, PlainReporter, type Reporter, TerminalReporter } from "./reporters.ts";

/** Runs `cogflow run` with its arguments; returns the exit code. */
export async function runCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: {
      ...WORKFLOW_OPTIONS,
      only: { type: "string", multiple: true },
      cache: { type: "string" },
      "cache-size": { type: "string" },
      json: { type: "boolean" },
      plain: { type: "boolean" },
      quiet: { type: "boolean", short: "q" },
      "memory-report": { type: "boolean" },
      concurrency: { type: "string" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    io.stdout.write(RUN_HELP);
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError("run needs exactly one workflow file");
  const cacheMaxBytes = values["cache-size"] === undefined
    ? undefined
    : parseByteSize(values["cache-size"]);
  if (values["cache-size"] !== undefined && cacheMaxBytes === undefined) {
    throw new UsageError(
      `Invalid --cache-size "${values["cache-size"]}": expected a size like 10GiB or 500MB`,
    );
  }
  const concurrency = values.concurrency === undefined ? undefined : Number(values.concurrency);
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1)) {
    throw new UsageError(
      `Invalid --concurrency "${values.concurrency}": expected a whole number >= 1`,
    );
  }

  const workflow = await loadWorkflow(positionals[0], {
    set: values.set ?? [],
    allowRemotePlugins: values["allow-remote-plugins"],
  });

  const reporter: Reporter | undefined = values.json
    ? new JsonReporter(io.stdout)
    : values.quiet
    ? undefined
    : io.stderrIsTerminal && !values.plain
    ? new TerminalReporter(io.stderr, { columns: io.columns })
    : new PlainReporter(io.stderr);

  const controller = new AbortController();
  let interrupts = 0;
  const onInterrupt = () => {
    interrupts++;
    if (interrupts > 1) Deno.exit(EXIT.interrupted);
    if (!values.json) {
      io.stderr.write("\nInterrupting: stopping at the next step (Ctrl-C again to force)\n");
    }
    controller.abort(new RunCancelled());
  };
  const listening = addInterruptListener(onInterrupt);
  try {
    const result = await runWorkflow(workflow, {
      only: values.only,
      signal: controller.signal,
      onEvent: (event: RunEvent) => reporter?.handle(event),
      cacheDir: values.cache,
      cacheMaxBytes,
      concurrency,
    });
    if (!values.json) {
      for (const file of result.files) io.stdout.write(`wrote ${displayPath(file)}\n`);
    }
    return EXIT.ok;
  } catch (error) {
    reporter?.close();
    if (error instanceof RunCancelled) {
      if (!values.json) io.stderr.write("Interrupted\n");
      return EXIT.interrupted;
    }
    if (error instanceof NodeFailure) {
      io.stderr.write(`error: ${error.message}\n`);
      if (!isUserFacing(error.cause) && error.cause instanceof Error && error.cause.stack) {
        io.stderr.write(`${error.cause.stack}\n`);
      }
      return EXIT.failed;
    }
    throw error;
  } finally {
    reporter?.close();
    if (listening) Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}

function addInterruptListener(listener: () => void): boolean {
  try {
    Deno.addSignalListener("SIGINT", listener);
    return true;
  } catch {
    return false;
  }
}

/** Errors the user fixes (bad files, bad values), printed without a stack trace. */
export function isUserFacing(error: unknown): boolean {
  return error instanceof UserError ||
    error instanceof Deno.errors.NotFound ||
    error instanceof Deno.errors.PermissionDenied ||
    error instanceof Deno.errors.AlreadyExists ||
    error instanceof Deno.errors.NotCapable;
}

function displayPath(path: string): string {
  const fromHere = relative(Deno.cwd(), path);
  return fromHere.startsWith("..") ? path : fromHere;
}
