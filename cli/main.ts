/**
 * The command line: `cogflow run | validate | graph | nodes`. Returns an exit code: 0 done,
 * 1 failed while running, 2 invalid workflow or usage, 130 interrupted.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { builtinRegistry, loadWorkflow } from "../api/mod.ts";
import {
  describeNodeType,
  escapeControl,
  importPlugin,
  PluginError,
  quote,
  toDot,
  toMermaid,
  WorkflowError,
} from "../engine/mod.ts";
import { GRAPH_HELP, MAIN_HELP, NODES_HELP, VALIDATE_HELP } from "./help.ts";
import { type CliIo, EXIT, processIo, UsageError, WORKFLOW_OPTIONS } from "./common.ts";
import { countErrors, formatDiagnostics, formatFailure } from "./failure.ts";
import { formatNodeType } from "./format_node_type.ts";
import { runCommand } from "./run_command.ts";
import { initCommand, listCommand, showCommand, upgradeCommand } from "./library_commands.ts";
import { ARGS_FROM_STDIN, commandLine } from "./child_args.ts";
import { confineOnnxRuntime } from "../runtime/session_client.ts";

/** Runs the CLI with `args`; returns the exit code. */
export async function main(args: readonly string[], io: CliIo = processIo()): Promise<number> {
  try {
    // Under the launcher, before any plugin loads: ONNX Runtime loads only in the session host's
    // workers, which check what each session may read (runtime/session_client.ts).
    if (args.length === 1 && args[0] === ARGS_FROM_STDIN) confineOnnxRuntime();
    // The launcher passes the command line on stdin (see child_args.ts).
    const [command, ...rest] = await commandLine(args);
    switch (command) {
      case "run":
        return await runCommand(rest, io);
      case "validate":
        return await validateCommand(rest, io);
      case "graph":
        return await graphCommand(rest, io);
      case "nodes":
        return await nodesCommand(rest, io);
      case "list":
        return await listCommand(rest, io);
      case "show":
        return await showCommand(rest, io);
      case "init":
        return await initCommand(rest, io);
      case "upgrade":
        return await upgradeCommand(rest, io);
      // The editor's server loads only for `serve`.
      case "serve":
        return await (await import("../server/serve_command.ts")).serveCommand(rest, io);
      // The queue's packages (BullMQ, ioredis) load only for the queue's commands.
      case "submit":
      case "worker":
      case "queue":
        return await (await import("../queue/commands.ts")).runQueueCommand(command, rest, io);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        io.stdout.write(MAIN_HELP);
        return command === undefined ? EXIT.invalid : EXIT.ok;
      default:
        throw new UsageError(
          `Unknown command ${quote(command)}: ` +
            "expected run, validate, graph, nodes, list, show, init, upgrade, submit, worker or queue",
        );
    }
  } catch (error) {
    return reportFailure(error, io);
  }
}

/**
 * Prints an error the way its kind deserves (never a stack trace, unless `COGFLOW_DEBUG=1` and the
 * error is an internal one); returns the exit code.
 */
export function reportFailure(error: unknown, io: CliIo): number {
  if (error instanceof WorkflowError) {
    io.stderr.write(formatDiagnostics(error.diagnostics));
    io.stderr.write(`${countErrors(error.diagnostics.length)}\n`);
    return EXIT.invalid;
  }
  if (error instanceof UsageError || isParseArgsError(error)) {
    io.stderr.write(
      `error: ${escapeControl((error as Error).message)}\nRun "cogflow --help" for usage.\n`,
    );
    return EXIT.invalid;
  }
  if (error instanceof PluginError) {
    io.stderr.write(`error: ${escapeControl(error.message)}\n`);
    return EXIT.invalid;
  }
  io.stderr.write(formatFailure(error));
  return EXIT.failed;
}

function isParseArgsError(error: unknown): boolean {
  const code = (error as { code?: string })?.code ?? "";
  return code.startsWith("ERR_PARSE_ARGS");
}

async function validateCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: {
      ...WORKFLOW_OPTIONS,
      json: { type: "boolean" },
      params: { type: "string", multiple: true },
      strict: { type: "boolean" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    io.stdout.write(VALIDATE_HELP);
    return EXIT.ok;
  }
  if (positionals.length === 0) throw new UsageError("validate needs at least one workflow file");
  const results: {
    file: string;
    ok: boolean;
    nodes?: number;
    needs?: string[];
    errors?: unknown[];
  }[] = [];
  for (const file of positionals) {
    try {
      // A library file leaves some params to the user: it is valid, and says what it needs.
      const workflow = await loadWorkflow(file, {
        set: values.set ?? [],
        paramsFiles: values.params ?? [],
        allowRemotePlugins: values["allow-remote-plugins"],
        allowMissingParams: !values.strict,
      });
      const needs = (workflow.missingParams ?? []).map((diagnostic) =>
        String(diagnostic.path?.[1])
      );
      results.push({
        file,
        ok: true,
        nodes: workflow.graph.nodes.size,
        ...(needs.length > 0 ? { needs } : {}),
      });
      if (!values.json) {
        io.stdout.write(
          `${escapeControl(file)}: ok (${workflow.graph.nodes.size} nodes)${
            needs.length > 0
              ? `; to run it, set ${escapeControl(needs.join(", "))} (--set name=value)`
              : ""
          }\n`,
        );
      }
    } catch (error) {
      if (!(error instanceof WorkflowError)) throw error;
      results.push({ file, ok: false, errors: [...error.diagnostics] });
      if (!values.json) {
        io.stderr.write(formatDiagnostics(error.diagnostics));
        io.stdout.write(`${escapeControl(file)}: ${countErrors(error.diagnostics.length)}\n`);
      }
    }
  }
  if (values.json) io.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  return results.every((result) => result.ok) ? EXIT.ok : EXIT.invalid;
}

async function graphCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: {
      ...WORKFLOW_OPTIONS,
      format: { type: "string", default: "mermaid" },
      params: { type: "string", multiple: true },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    io.stdout.write(GRAPH_HELP);
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError("graph needs exactly one workflow file");
  if (values.format !== "mermaid" && values.format !== "dot") {
    throw new UsageError(`Unknown graph format ${quote(values.format)}: expected mermaid or dot`);
  }
  const workflow = await loadWorkflow(positionals[0], {
    set: values.set ?? [],
    paramsFiles: values.params ?? [],
    allowRemotePlugins: values["allow-remote-plugins"],
  });
  io.stdout.write(values.format === "dot" ? toDot(workflow.graph) : toMermaid(workflow.graph));
  return EXIT.ok;
}

async function nodesCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args: [...args],
    options: {
      json: { type: "boolean" },
      plugin: { type: "string", multiple: true },
      "allow-remote-plugins": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    io.stdout.write(NODES_HELP);
    return EXIT.ok;
  }
  const registry = await builtinRegistry();
  for (const plugin of values.plugin ?? []) {
    const exports = await importPlugin(plugin, {
      baseDir: Deno.cwd(),
      allowRemote: values["allow-remote-plugins"],
    });
    registry.registerModule(exports, `plugin ${quote(plugin)}`);
  }
  const descriptions = registry.list().map((entry) =>
    describeNodeType(entry.definition, entry.module)
  );
  if (values.json) {
    io.stdout.write(`${JSON.stringify(descriptions, null, 2)}\n`);
  } else {
    io.stdout.write(descriptions.map(formatNodeType).join("\n"));
  }
  return EXIT.ok;
}
