/**
 * Validation time on large generated workflows: 1k, 10k, 100k and 200k nodes of built-in node
 * types, read from a file and validated the way `cogflow validate` does (parse, document, params,
 * graph), plus a file of the same size where one node in ten has a mistake.
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
import { parseArgs } from "node:util";
import { loadWorkflow } from "../api/mod.ts";
import { WorkflowError } from "../engine/mod.ts";
import { FIXTURE_2B, OUT_DIR } from "./bench_util.ts";

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
  /** Wall time of validating the valid file, in milliseconds. */
  validMs: number;
  /** Wall time of validating the file with mistakes, in milliseconds. */
  invalidMs: number;
  /** Diagnostics the file with mistakes gave. */
  errors: number;
}

async function timeLoad(file: string): Promise<{ ms: number; errors: number }> {
  const started = performance.now();
  let errors = 0;
  try {
    await loadWorkflow(file);
  } catch (error) {
    if (!(error instanceof WorkflowError)) throw error;
    errors = error.diagnostics.length;
  }
  return { ms: performance.now() - started, errors };
}

/** Writes the two files of `count` nodes and times their validation. */
export async function measure(count: number, dir: string): Promise<ValidateRow> {
  const valid = join(dir, `valid-${count}.yaml`);
  const invalid = join(dir, `invalid-${count}.yaml`);
  const text = generateWorkflow(count);
  await Deno.writeTextFile(valid, text);
  await Deno.writeTextFile(invalid, generateWorkflow(count, { errorEvery: 10 }));
  const good = await timeLoad(valid);
  if (good.errors > 0) throw new Error(`The generated ${count}-node file has errors`);
  const bad = await timeLoad(invalid);
  return {
    nodes: count,
    bytes: new TextEncoder().encode(text).byteLength,
    validMs: good.ms,
    invalidMs: bad.ms,
    errors: bad.errors,
  };
}

/** The rows as a markdown table. */
export function formatTable(rows: readonly ValidateRow[]): string {
  const lines = [
    "| nodes | file | valid file | µs/node | 1 node in 10 wrong | errors | µs/node |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const row of rows) {
    lines.push(
      `| ${row.nodes} | ${(row.bytes / 1024 ** 2).toFixed(1)} MiB | ${
        (row.validMs / 1000).toFixed(2)
      } s | ${(row.validMs * 1000 / row.nodes).toFixed(0)} | ${
        (row.invalidMs / 1000).toFixed(2)
      } s | ${row.errors} | ${(row.invalidMs * 1000 / row.nodes).toFixed(0)} |`,
    );
  }
  return `${lines.join("\n")}\n`;
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { quick: { type: "boolean" } } });
  const dir = join(OUT_DIR, "validate");
  await Deno.mkdir(dir, { recursive: true });
  const sizes = values.quick ? [1_000, 10_000] : [1_000, 10_000, 100_000, 200_000];
  const rows: ValidateRow[] = [];
  for (const count of sizes) rows.push(await measure(count, dir));
  console.log(formatTable(rows));
  const largest = rows[rows.length - 1];
  console.log(
    `${largest.nodes} nodes validated in ${(largest.validMs / 1000).toFixed(1)} s${
      largest.nodes >= 200_000 && largest.validMs > 30_000 ? ": OVER TARGET (30 s)" : ""
    }`,
  );
}
