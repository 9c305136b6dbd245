/**
 * `cogflow run`: load, run with a reporter, print the files written. Ctrl-C cancels at the next
 * step boundary and exits with 130.
 *
 * @module
 */

import { dirname, join, relative } from "node:path";
import { parseArgs } from "node:util";
import { describeWorkflowParams, loadWorkflow, type RunResult, runWorkflow } from "../api/mod.ts";
import { memoryChartSvg } from "../media/memory_chart.ts";
import { writeFileAtomic } from "../runtime/atomic_file.ts";
import { formatBytes, parseByteSize } from "../runtime/byte_size.ts";
import {
  escapeControl,
  NodeFailure,
  quote,
  RunCancelled,
  type RunEvent,
  WorkflowError,
} from "../engine/mod.ts";
import { formatParamSources } from "./library_commands.ts";

import { RUN_HELP } from "./help.ts";
import { type CliIo, EXIT, UsageError, WORKFLOW_OPTIONS } from "./common.ts";
import { formatFailure } from "./failure.ts";
import {
  formatDuration,
  formatProviders,
  JsonReporter,
  PlainReporter,
  type Reporter,
  TerminalReporter,
} from "./reporters.ts";

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
      params: { type: "string", multiple: true },
      "print-params": { type: "boolean" },
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
      `Invalid --cache-size ${quote(values["cache-size"])}: expected a size like 10GiB or 500MB`,
    );
  }
  const concurrency = values.concurrency === undefined ? undefined : Number(values.concurrency);
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1)) {
    throw new UsageError(
      `Invalid --concurrency ${quote(values.concurrency)}: expected a whole number >= 1`,
    );
  }

  if (values["print-params"]) {
    const { params, diagnostics } = await describeWorkflowParams(positionals[0], {
      set: values.set ?? [],
      paramsFiles: values.params ?? [],
      allowRemotePlugins: values["allow-remote-plugins"],
    });
    io.stdout.write(formatParamSources(params));
    if (diagnostics.length === 0) return EXIT.ok;
    throw new WorkflowError(diagnostics);
  }
  const workflow = await loadWorkflow(positionals[0], {
    set: values.set ?? [],
    paramsFiles: values.params ?? [],
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
  let runEnd: Extract<RunEvent, { type: "run_end" }> | undefined;
  try {
    const result = await runWorkflow(workflow, {
      only: values.only,
      signal: controller.signal,
      onEvent: (event: RunEvent) => {
        // With --json, the run's last line says which provider each model got: held until then.
        if (values.json && event.type === "run_end") runEnd = event;
        else reporter?.handle(event);
      },
      cacheDir: values.cache,
      cacheMaxBytes,
      concurrency,
      memoryReport: values["memory-report"],
    });
    const files = [...result.files];
    if (result.memory) {
      const chart = await writeMemoryReport(workflow.document.name, result, io, !values.json);
      files.push(chart);
    }
    if (runEnd) {
      reporter?.handle({ ...runEnd, models: modelSummaries(result) } as RunEvent);
      runEnd = undefined;
    }
    const providers = formatProviders(result.models);
    if (!values.json && !values.quiet && providers) {
      io.stderr.write(`providers: ${escapeControl(providers)}\n`);
    }
    if (!values.json) {
      for (const file of files) io.stdout.write(`wrote ${displayPath(file)}\n`);
    }
    return EXIT.ok;
  } catch (error) {
    if (runEnd) reporter?.handle(runEnd);
    reporter?.close();
    if (error instanceof RunCancelled) {
      if (!values.json) io.stderr.write("Interrupted\n");
      return EXIT.interrupted;
    }
    if (error instanceof NodeFailure) {
      io.stderr.write(formatFailure(error));
      return EXIT.failed;
    }
    throw error;
  } finally {
    reporter?.close();
    if (listening) Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}

/**
 * What `--json` adds to the `run_end` event as `models`: for each model, the provider its sessions
 * really got (with the fallback reason), loads, runs and times.
 */
function modelSummaries(result: RunResult) {
  return result.models.map((model) => ({
    name: model.name,
    provider: model.provider,
    ...(model.fallbackReason ? { fallbackReason: model.fallbackReason } : {}),
    policy: model.policy,
    loads: model.loads,
    loadMs: model.loadMs,
    runs: model.runs,
    runMs: model.runMs,
    residentBytes: model.residentBytes,
  }));
}

/**
 * Prints each node's time, peak memory and resident sessions, and writes the memory timeline chart
 * beside the run's first output (or in `out/`); returns the chart's path.
 */
async function writeMemoryReport(
  name: string,
  result: RunResult,
  io: CliIo,
  print: boolean,
): Promise<string> {
  const memory = result.memory!;
  if (print) {
    const rows = memory.spans.map((span) => {
      const during = memory.samples.filter((sample) =>
        sample.t >= span.start && sample.t <= span.end
      );
      const sessions = [...new Set(during.flatMap((sample) => sample.sessions))];
      return [
        span.node,
        formatDuration(span.end - span.start),
        formatBytes(span.peak),
        sessions.join(", ") || "none",
      ];
    });
    const peak = Math.max(...memory.samples.map((sample) => sample.peak));
    io.stderr.write(
      formatTable(["node", "time", "peak rss", "sessions resident during the node"], rows),
    );
    io.stderr.write(`process peak: ${formatBytes(peak)}\n`);
    for (const model of result.models) {
      io.stderr.write(
        `model ${model.name} (${model.policy}): ${model.loads} load${
          model.loads === 1 ? "" : "s"
        } in ${formatDuration(model.loadMs)}, ${model.runs} run${model.runs === 1 ? "" : "s"} in ${
          formatDuration(model.runMs)
        }, ~${formatBytes(model.residentBytes)} resident, on ${escapeControl(model.provider)}${
          model.fallbackReason ? ` (fallback: ${escapeControl(model.fallbackReason)})` : ""
        }${
          model.streamed
            ? `, weights streamed: ${model.streamed.sessions} session${
              model.streamed.sessions === 1 ? "" : "s"
            }, ${formatBytes(model.streamed.hostBytes)} in host memory${
              model.streamed.unpinned
                ? ` (not pinned: ${escapeControl(model.streamed.unpinned)})`
                : ""
            }`
            : ""
        }${
          model.nativeFallback && model.provider !== "cpu"
            ? ` (through onnxruntime-node: ONNX Runtime's C API failed: ${
              escapeControl(model.nativeFallback)
            })`
            : ""
        }\n`,
      );
      for (const part of model.partStats ?? []) {
        io.stderr.write(
          `  part ${model.name}[${escapeControl(part.name)}]: ${part.loads} load${
            part.loads === 1 ? "" : "s"
          } in ${formatDuration(part.loadMs)}, ${part.runs} run${part.runs === 1 ? "" : "s"} in ${
            formatDuration(part.runMs)
          }, waited ${formatDuration(part.waitMs)} for loads\n`,
        );
      }
    }
  }
  const dir = result.files.length > 0 ? dirname(result.files[0]) : join(Deno.cwd(), "out");
  const path = join(dir, `${name}.memory.svg`);
  await writeFileAtomic(
    path,
    new TextEncoder().encode(memoryChartSvg({ title: `cogflow ${name}: memory`, ...memory })),
    { overwrite: true },
  );
  return path;
}

/** A plain text table with aligned columns. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column].length))
  );
  const line = (cells: string[]) =>
    cells.map((cell, column) => cell.padEnd(widths[column])).join("  ").trimEnd();
  return [line(header), line(widths.map((width) => "-".repeat(width))), ...rows.map(line)].join(
    "\n",
  ) + "\n";
}

function addInterruptListener(listener: () => void): boolean {
  try {
    Deno.addSignalListener("SIGINT", listener);
    return true;
  } catch {
    return false;
  }
}

/** A path as printed: relative to the current folder when inside it, control characters escaped. */
function displayPath(path: string): string {
  const fromHere = relative(Deno.cwd(), path);
  return escapeControl(fromHere.startsWith("..") ? path : fromHere);
}
