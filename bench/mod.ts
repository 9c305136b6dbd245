/**
 * Every benchmark, each in its own process: the engine's overhead (`engine_bench.ts`), session
 * create/release churn (`session_churn.ts`), the pipeline's loop overhead and end-to-end time
 * (`pipeline_bench.ts`), the memory hooks (`memory_bench.ts`, which runs each configuration
 * in a fresh process of its own), graph build and session creation of the components built
 * from the tiny Hugging Face folders (`model_build_bench.ts`), and validation of large generated
 * workflows (`validate_bench.ts`), and the job queue's overhead and throughput (`queue_bench.ts`,
 * with a Redis of its own).
 *
 * ```sh
 * deno task bench                      # full: about 7 minutes on 2 CPUs
 * deno task bench --quick              # small sizes: a smoke run of under a minute
 * deno task bench --only memory        # engine, churn, pipeline, memory; or a memory section:
 * deno task bench --only hooks --only tiling   # hooks, sweep, tiling, cycles
 * ```
 *
 * Prints markdown tables; writes `bench/out/results.md` (with the machine and the date) and each
 * benchmark's JSON under bench/out/, and the charts of the full mode under bench/.
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { formatMachine, loadavg, machineInfo, OUT_DIR, PROJECT_DIR } from "./bench_util.ts";

/** Benchmarks and the memory benchmark's sections, as `--only` takes them. */
export const NAMES = [
  "engine",
  "churn",
  "pipeline",
  "memory",
  "hooks",
  "sweep",
  "tiling",
  "cycles",
  "models",
  "validate",
  "queue",
];

const MEMORY_SECTIONS = ["hooks", "sweep", "tiling", "cycles"];

/** Flags of the benchmark processes: as `deno task bench`'s, writing only under bench/. */
function permissions(): string[] {
  return [
    "--allow-read",
    `--allow-write=${join(PROJECT_DIR, "bench")}`,
    "--allow-env",
    "--allow-run",
    `--allow-ffi=${join(PROJECT_DIR, "node_modules")}`,
    "--allow-sys",
  ];
}

/** Runs a benchmark file in its own process; returns its standard output (markdown). */
async function runBench(file: string, flags: string[], args: string[]): Promise<string> {
  const started = performance.now();
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", `--config=${join(PROJECT_DIR, "deno.json")}`, ...flags, file, ...args],
    cwd: PROJECT_DIR,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  const seconds = ((performance.now() - started) / 1000).toFixed(0);
  if (!output.success) {
    return `${text}\n**${file} failed (exit ${output.code}) after ${seconds} s.**\n`;
  }
  return `${text}\n_${file}: ${seconds} s, load average after ${loadavg()}._\n`;
}

/** Runs the chosen benchmarks; returns the combined markdown. */
export async function runBenchmarks(options: { quick: boolean; only: string[] }): Promise<string> {
  const only = new Set(options.only);
  const wanted = (name: string) =>
    only.size === 0 || only.has(name) ||
    (name === "memory" && MEMORY_SECTIONS.some((section) => only.has(section)));
  const quick = options.quick ? ["--quick"] : [];
  const machine = await machineInfo();
  const parts = [
    `# cogflow benchmarks${options.quick ? " (quick)" : ""}`,
    "",
    `Command: \`deno task bench${options.quick ? " --quick" : ""}${
      options.only.map((name) => ` --only ${name}`).join("")
    }\``,
    "",
    `Machine: ${formatMachine(machine)}`,
    "",
  ];
  const print = (text: string) => {
    console.log(text);
    parts.push(text);
  };
  if (wanted("engine")) {
    const file = join(PROJECT_DIR, "bench", "engine_bench.ts");
    const exists = await Deno.stat(file).then(() => true, () => false);
    print("## Engine overhead (bench/engine_bench.ts)\n");
    print(exists ? await runBench(file, ["-A"], quick) : "_bench/engine_bench.ts is missing._\n");
  }
  if (wanted("churn")) {
    const file = join(PROJECT_DIR, "bench", "session_churn.ts");
    if (await Deno.stat(file).then(() => true, () => false)) {
      print("## Session churn (bench/session_churn.ts)\n");
      print(await runBench(file, ["-A"], options.quick ? ["--cycles", "20"] : []));
    }
  }
  if (wanted("pipeline")) {
    print("## Pipeline (bench/pipeline_bench.ts)\n");
    print(await runBench(join(PROJECT_DIR, "bench", "pipeline_bench.ts"), permissions(), quick));
  }
  if (wanted("memory")) {
    const sections = MEMORY_SECTIONS.filter((section) => only.has(section));
    print("## Memory hooks (bench/memory_bench.ts)\n");
    print(
      await runBench(join(PROJECT_DIR, "bench", "memory_bench.ts"), permissions(), [
        ...quick,
        ...sections.flatMap((section) => ["--only", section]),
      ]),
    );
  }
  if (wanted("models")) {
    print("## Models built from Hugging Face folders (bench/model_build_bench.ts)\n");
    print(await runBench(join(PROJECT_DIR, "bench", "model_build_bench.ts"), ["-A"], quick));
  }
  if (wanted("validate")) {
    print("## Validation of large workflows (bench/validate_bench.ts)\n");
    print(await runBench(join(PROJECT_DIR, "bench", "validate_bench.ts"), permissions(), quick));
  }
  if (wanted("queue")) {
    const file = join(PROJECT_DIR, "bench", "queue_bench.ts");
    const redis = await new Deno.Command("redis-server", { args: ["--version"], stdout: "null" })
      .output().then(() => true, () => false);
    print("## Job queue (bench/queue_bench.ts)\n");
    print(
      redis ? await runBench(file, ["-A"], quick) : "_Skipped: redis-server is not installed._\n",
    );
  }
  const markdown = parts.join("\n");
  await Deno.mkdir(OUT_DIR, { recursive: true });
  await Deno.writeTextFile(
    join(OUT_DIR, `results${options.quick ? ".quick" : ""}.md`),
    `${markdown}\n`,
  );
  return markdown;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { quick: { type: "boolean" }, only: { type: "string", multiple: true } },
  });
  const only = values.only ?? [];
  const unknown = only.filter((name) => !NAMES.includes(name));
  if (unknown.length > 0) {
    console.error(
      `Unknown benchmark ${unknown.map((name) => `"${name}"`).join(", ")}: expected one of ${
        NAMES.join(", ")
      }`,
    );
    Deno.exit(2);
  }
  await runBenchmarks({ quick: values.quick ?? false, only });
}
