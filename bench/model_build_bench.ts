/**
 * Models built from Hugging Face folders: for each component of the tiny HF fixtures
 * (tests/fixtures/tiny-cogvideox-hf, 2b and 5b), the time to read the safetensors headers, to
 * build the graph (the process's first build and a second one), to create the CPU session, and
 * the process's resident memory just before and after the session's creation, split into
 * anonymous and file-backed pages (`/proc/self/status`, `/proc/self/smaps_rollup`). Each
 * measurement runs in a fresh process of its own, so components do not share allocations.
 *
 * ```sh
 * deno run -A bench/model_build_bench.ts            # 3 processes per component, medians
 * deno run -A bench/model_build_bench.ts --quick    # 1 process per component
 * ```
 *
 * The real-width counterpart (random-weight components of the real widths, on the GPU machine)
 * is bench/real_width/. Prints a markdown table; writes bench/out/model_build.json.
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { median, PROJECT_DIR, writeResults } from "./bench_util.ts";
import {
  type ComponentKind,
  type ComponentMeasure,
  openComponent,
} from "./real_width/component_measure.ts";

const HF = join(PROJECT_DIR, "tests", "fixtures", "tiny-cogvideox-hf");
const COMPONENTS: [string, ComponentKind][] = [
  ["text_encoder", "text_encoder"],
  ["transformer", "transformer"],
  ["vae", "vae"],
];

/** Measures one component in a fresh process; returns its measurement. */
async function measureInChild(dir: string, kind: ComponentKind): Promise<ComponentMeasure> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--config=${join(PROJECT_DIR, "deno.json")}`,
      "--allow-all",
      join(PROJECT_DIR, "bench", "model_build_bench.ts"),
      "--child",
      JSON.stringify({ dir, kind }),
    ],
    cwd: PROJECT_DIR,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const lines = new TextDecoder().decode(output.stdout).trim().split("\n");
  const last = lines[lines.length - 1];
  if (!output.success || !last?.startsWith("{")) {
    throw new Error(`Measuring ${dir} failed (exit ${output.code}): ${lines.join("\n")}`);
  }
  return JSON.parse(last) as ComponentMeasure;
}

function kib(bytes: number): string {
  return `${(bytes / 1024).toFixed(0)} KiB`;
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)}`;
}

function signedMib(bytes: number): string {
  const value = bytes / 2 ** 20;
  return `${value >= 0 ? "+" : ""}${value.toFixed(1)}`;
}

/** Runs the benchmark; returns the markdown. */
export async function runModelBuildBench(repeats: number): Promise<string> {
  const rows: string[] = [];
  const results: Record<string, ComponentMeasure[]> = {};
  for (const variant of ["2b", "5b"]) {
    for (const [component, kind] of COMPONENTS) {
      const dir = join(HF, variant, component);
      const measures: ComponentMeasure[] = [];
      for (let i = 0; i < repeats; i++) measures.push(await measureInChild(dir, kind));
      results[`${variant}/${component}`] = measures;
      const m = (pick: (measure: ComponentMeasure) => number) => median(measures.map(pick));
      rows.push(
        `| ${variant} | ${component} | ${measures[0].tensors} | ${kib(measures[0].weightBytes)} | ${
          m((x) => x.weightsMs).toFixed(1)
        } | ${m((x) => x.buildMs).toFixed(1)} | ${m((x) => x.rebuildMs).toFixed(1)} | ${
          kib(measures[0].graphBytes)
        } | ${m((x) => x.sessionMs).toFixed(1)} | ${mib(m((x) => x.before.rss))} → ${
          mib(m((x) => x.after.rss))
        } | ${signedMib(m((x) => x.after.rssAnon - x.before.rssAnon))} | ${
          signedMib(m((x) => x.after.rssFile - x.before.rssFile))
        } | ${signedMib(m((x) => x.after.smapsAnonymous - x.before.smapsAnonymous))} |`,
      );
    }
  }
  await writeResults("model_build.json", { repeats, results });
  return [
    `Tiny HF fixtures, CPU provider, one fresh process per measurement, median of ${repeats}. ` +
    "Times in ms; memory in MiB (RSS before → after session creation, and the change of " +
    "RssAnon, RssFile and smaps_rollup Anonymous across it).",
    "",
    "| variant | component | tensors | safetensors | headers ms | build ms | rebuild ms | graph | session ms | RSS MiB | Δ anon | Δ file | Δ smaps anon |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...rows,
  ].join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { quick: { type: "boolean" }, child: { type: "string" } },
  });
  if (values.child) {
    const job = JSON.parse(values.child) as { dir: string; kind: ComponentKind };
    const { session, measure } = await openComponent({ ...job, provider: "cpu", rebuild: true });
    await session.release();
    console.log(JSON.stringify(measure));
  } else {
    console.log(await runModelBuildBench(values.quick ? 1 : 3));
  }
}
