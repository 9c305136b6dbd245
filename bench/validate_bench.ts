/**
 * Validation time on large generated workflows: 1k, 10k, 100k and 200k nodes of built-in node
 * types, read from a file and validated the way `cogflow validate` does (parse, document, params,
 * graph), plus a file of the same size where one node in ten has a mistake. Also: reading only the
 * file's header (params and plugins, what the launcher needs: `readWorkflowHeader`), and the whole
 * command, `deno task cogflow validate FILE` (the launcher, then the CLI in its child process).
 * Times are wall times; CPU times beside them, as other processes may share the CPUs.
 *
 * ```sh
 * deno run -A bench/validate_bench.ts            # 1k, 10k, 100k and 200k nodes
 * deno run -A bench/validate_bench.ts --quick    # 1k and 10k nodes
 * ```
 *
 * The target: linear time, 200k nodes under 30 s on the 2-core VM.
 *
 * @module
 */

import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { loadWorkflow } from "../api/mod.ts";
import { WorkflowError } from "../engine/mod.ts";
import { readWorkflowHeader } from "../engine/workflow_header.ts";
import { FIXTURE_2B, loadavg, OUT_DIR, PROJECT_DIR } from "./bench_util.ts";

/** Options of {@link generateWorkflow}. */
export interface GenerateOptions {
  /** The pipeline folder the workflow loads (default: the tiny 2b fixture). */
  pipeline?: string;
  /** Make every `errorEvery`-th node wrong (in turn an unknown reference and an unknown key). */
  errorEvery?: number;
}

/**
 * Workflow text of `count` nodes: a pipeline, then tokenize nodes reading its tokenizer and a
 * chain of scheduler nodes each reading the one before (a chain as deep as half the file).
 */
export function generateWorkflow(count: number, options: GenerateOptions = {}): string {
  const pipeline = options.pipeline ?? FIXTURE_2B;
  const lines = [
    "cogflow: 1",
    `name: generated-${count}`,
    "nodes:",
    `  pipe: { type: load_pipeline, with: { path: ${JSON.stringify(pipeline)} } }`,
  ];
  let previous = "pipe.scheduler";
  for (let i = 1; i < count; i++) {
    const wrong = options.errorEvery !== undefined && i % options.errorEvery === 0;
    // Mistakes alternate: a reference to an unknown node, and an unknown key.
    const kind = wrong ? ((i / options.errorEvery!) % 2 === 1 ? "reference" : "key") : undefined;
    if (kind === "reference" || (!kind && i % 2 === 1)) {
      const tokenizer = kind ? "pipx.tokenizer" : "pipe.tokenizer";
      lines.push(
        `  t${i}: { type: tokenize, in: { tokenizer: ${tokenizer} }, with: { prompt: "cat ${i}", max_length: 16 } }`,
      );
    } else {
      const settings = kind ? "wiht: { type: ddim }" : "with: { type: ddim }";
      lines.push(`  s${i}: { type: scheduler, in: { base: ${previous} }, ${settings} }`);
      if (!kind) previous = `s${i}`;
    }
  }
  return `${lines.join("\n")}\n`;
}

/** One row of the result table. */
export interface ValidateRow {
  /** Nodes in the file. */
  nodes: number;
  /** File size in bytes. */
  bytes: number;
  /** Validating the valid file in this process: wall and CPU milliseconds. */
  valid: Timing;
  /** Validating the file with mistakes in this process. */
  invalid: Timing;
  /** Diagnostics the file with mistakes gave. */
  errors: number;
  /** Reading the valid file's header only. */
  header: Timing;
  /** `deno task cogflow validate` of the valid file, wall milliseconds (undefined: not run). */
  cliMs?: number;
}

/** Wall and CPU time of one measurement, in milliseconds. */
export interface Timing {
  /** Wall time. */
  wallMs: number;
  /** CPU time of this process (user and system). */
  cpuMs: number;
}

function cpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

async function timed(task: () => Promise<unknown>): Promise<Timing> {
  const wall = performance.now();
  const cpu = cpuMs();
  await task();
  return { wallMs: performance.now() - wall, cpuMs: cpuMs() - cpu };
}

/** Validates a file; returns the number of diagnostics (0 when valid). */
async function validate(file: string): Promise<number> {
  try {
    await loadWorkflow(file);
    return 0;
  } catch (error) {
    if (!(error instanceof WorkflowError)) throw error;
    return error.diagnostics.length;
  }
}

/** Wall time of `deno task cogflow validate FILE`, as a user runs it; checks that it passed. */
async function timeCli(file: string): Promise<number> {
  const started = performance.now();
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "cogflow", "validate", file],
    cwd: PROJECT_DIR,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const ms = performance.now() - started;
  if (!output.success) {
    throw new Error(`cogflow validate failed: ${new TextDecoder().decode(output.stderr)}`);
  }
  return ms;
}

/** Writes the two files of `count` nodes and times their validation. */
export async function measure(
  count: number,
  dir: string,
  options: { cli?: boolean } = {},
): Promise<ValidateRow> {
  const validFile = join(dir, `valid-${count}.yaml`);
  const invalidFile = join(dir, `invalid-${count}.yaml`);
  const text = generateWorkflow(count);
  await Deno.writeTextFile(validFile, text);
  await Deno.writeTextFile(invalidFile, generateWorkflow(count, { errorEvery: 10 }));
  let problems = 0;
  const valid = await timed(async () => problems = await validate(validFile));
  if (problems > 0) throw new Error(`The generated ${count}-node file has errors`);
  let errors = 0;
  const invalid = await timed(async () => errors = await validate(invalidFile));
  const header = await timed(async () =>
    readWorkflowHeader(await Deno.readTextFile(validFile), validFile)
  );
  const cliMs = options.cli ? await timeCli(validFile) : undefined;
  return {
    nodes: count,
    bytes: new TextEncoder().encode(text).byteLength,
    valid,
    invalid,
    errors,
    header,
    cliMs,
  };
}

/** The rows as a markdown table. */
export function formatTable(rows: readonly ValidateRow[]): string {
  const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const timing = (t: Timing) => `${seconds(t.wallMs)} (${seconds(t.cpuMs)})`;
  const lines = [
    "| nodes | file | valid: wall (CPU) | µs/node | 1 in 10 wrong: wall (CPU) | errors | header only: wall (CPU) | `cogflow validate` |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const row of rows) {
    lines.push(
      `| ${row.nodes} | ${(row.bytes / 1024 ** 2).toFixed(1)} MiB | ${timing(row.valid)} | ${
        (row.valid.wallMs * 1000 / row.nodes).toFixed(0)
      } | ${timing(row.invalid)} | ${row.errors} | ${timing(row.header)} | ${
        row.cliMs === undefined ? "-" : seconds(row.cliMs)
      } |`,
    );
  }
  return `${lines.join("\n")}\n`;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { quick: { type: "boolean" }, "no-cli": { type: "boolean" } },
  });
  const dir = join(OUT_DIR, "validate");
  await Deno.mkdir(dir, { recursive: true });
  const sizes = values.quick ? [1_000, 10_000] : [1_000, 10_000, 100_000, 200_000];
  const rows: ValidateRow[] = [];
  for (const count of sizes) {
    rows.push(await measure(count, dir, { cli: !values["no-cli"] }));
    console.error(`${count} nodes done, load average ${loadavg()}`);
  }
  console.log(formatTable(rows));
  const largest = rows[rows.length - 1];
  console.log(
    `${largest.nodes} nodes validated in ${(largest.valid.wallMs / 1000).toFixed(1)} s${
      largest.nodes >= 200_000 && largest.valid.wallMs > 30_000 ? ": OVER TARGET (30 s)" : ""
    }; load average after ${loadavg()}`,
  );
}
