/**
 * Renders the GPU table (bench/RESULTS.md) from the JSON lines of `run_table.sh`
 * (`gpu_table.jsonl`: one line per side, model and configuration): cogflow and diffusers side by
 * side per configuration, step times against diffusers' all-on-GPU step, device memory per phase
 * (NVML used minus the CUDA-context baseline, and torch's allocated figure for diffusers), host
 * peak, and the issue's targets marked met or not met.
 *
 * ```sh
 * deno run -A bench/gpu/render_table.ts gpu_table.jsonl [more.jsonl...] [--out table.md]
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";

/** One phase of a result line. */
export interface PhaseRow {
  /** Seconds. */
  seconds?: number;
  /** NVML used minus the idle device, bytes. */
  nvml_bytes?: number | null;
  /** torch.cuda.max_memory_allocated (diffusers only). */
  allocated_bytes?: number;
  /** Host tree peak in the phase (cogflow). */
  host_bytes?: number | null;
}

/** One line of gpu_table.jsonl (the fields the table reads). */
export interface ResultRow {
  /** "diffusers" or "cogflow". */
  side: string;
  /** "2b", "5b", or "none" for the context baseline. */
  model: string;
  /** Configuration name. */
  config: string;
  /** "ok", "failed", "oom", "timeout", "crashed". */
  status: string;
  /** Error text, when not ok. */
  error?: string;
  /** Transformer layers in the folder. */
  layers?: number | null;
  /** Transformer heads (30: 2b, 48: 5b). */
  heads?: number | null;
  /** Text encoder layers. */
  t5_layers?: number | null;
  /** Bytes of the folder's weights. */
  weights_bytes?: number;
  /** Steps run. */
  steps?: number;
  /** Video size. */
  height?: number;
  /** Video size. */
  width?: number;
  /** Frames. */
  frames?: number;
  /** Guidance scale. */
  guidance?: number;
  /** Compute dtype. */
  dtype?: string;
  /** Median step seconds after the first. */
  step_s?: number | null;
  /** Text encode seconds. */
  encode_s?: number | null;
  /** VAE decode seconds. */
  decode_s?: number | null;
  /** Phases by name (encode, denoise, decode; context for the baseline). */
  phases?: Record<string, PhaseRow>;
  /** Peak NVML used minus idle over the whole run. */
  nvml_run_peak_bytes?: number | null;
  /** Wall seconds of the whole process (start-up, load, run). */
  total_s?: number | null;
  /** Peak host resident memory (diffusers: ru_maxrss; cogflow: the process tree's sum). */
  host_peak_bytes?: number | null;
}

/** The transformer's real depth, by its heads. */
const FULL_LAYERS: Record<number, number> = { 30: 30, 48: 42 };
/** Table order; other configurations follow in the order they appear. */
const CONFIG_ORDER = [
  "all_gpu",
  "model_offload",
  "model_offload_tiling",
  "sequential_tiling",
  "group_offload_tiling",
];
/** cogflow configurations with every hook on (offload in parts, slicing, tiling). */
const ALL_HOOKS = ["group_offload_tiling", "sequential_tiling", "low_memory"];
/** diffusers' best device memory for CogVideoX-2b as documented (sequential offload, tiling). */
export const DIFFUSERS_BEST_2B_BYTES = 3.8 * 2 ** 30;
/** The VAE decode target. */
export const DECODE_TARGET_BYTES = 4.2 * 2 ** 30;
const PHASES = ["encode", "denoise", "decode"] as const;

/** Parses JSON lines; later lines for the same side, model, configuration and frames win. */
export function parseRows(text: string): ResultRow[] {
  const byKey = new Map<string, ResultRow>();
  for (const line of text.split("\n")) {
    if (!line.trim().startsWith("{")) continue;
    const row = JSON.parse(line) as ResultRow;
    byKey.set(`${row.side}|${row.model}|${row.config}|${row.frames ?? ""}`, row);
  }
  return [...byKey.values()];
}

const GIB = 2 ** 30;

function gib(bytes: number | null | undefined): string {
  return bytes === null || bytes === undefined ? "–" : (bytes / GIB).toFixed(2);
}

function secs(value: number | null | undefined): string {
  if (value === null || value === undefined) return "–";
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

/** The CUDA-context baseline (NVML) from the context line, or 0 without one. */
export function contextBytes(rows: readonly ResultRow[]): number {
  const row = rows.find((r) => r.config === "context" && r.status === "ok");
  return row?.phases?.context?.nvml_bytes ?? row?.nvml_run_peak_bytes ?? 0;
}

/** A phase's device figure: NVML used minus idle minus the context baseline, or null. */
export function deviceBytes(row: ResultRow, phase: string, context: number): number | null {
  const value = row.phases?.[phase]?.nvml_bytes;
  return value === null || value === undefined ? null : Math.max(0, value - context);
}

/** The largest device figure over the three phases, or null. */
export function peakDeviceBytes(row: ResultRow, context: number): number | null {
  const values = PHASES.map((p) => deviceBytes(row, p, context)).filter((v) => v !== null);
  return values.length === 0 ? null : Math.max(...(values as number[]));
}

/** A target's verdict with the figures behind it. */
export interface Verdict {
  /** What the target asks. */
  target: string;
  /** "met", "not met" or "not measured". */
  verdict: "met" | "not met" | "not measured";
  /** The figures. */
  detail: string;
}

function find(rows: readonly ResultRow[], side: string, model: string, config: string) {
  return rows.find((r) =>
    r.side === side && r.model === model && r.config === config && r.status === "ok"
  );
}

/** The issue's targets for one model. */
export function targets(rows: readonly ResultRow[], model: string): Verdict[] {
  const context = contextBytes(rows);
  const verdicts: Verdict[] = [];
  const diffusersAll = find(rows, "diffusers", model, "all_gpu");
  const cogflowAll = find(rows, "cogflow", model, "all_gpu");
  const reference = diffusersAll?.step_s ?? null;

  if (reference && cogflowAll?.step_s) {
    const ratio = cogflowAll.step_s / reference;
    verdicts.push({
      target: "all-on-GPU step time <= 1.05x diffusers'",
      verdict: ratio <= 1.05 ? "met" : "not met",
      detail: `${secs(cogflowAll.step_s)} s against ${secs(reference)} s: ${ratio.toFixed(2)}x`,
    });
  } else {
    verdicts.push({
      target: "all-on-GPU step time <= 1.05x diffusers'",
      verdict: "not measured",
      detail: "an all_gpu result is missing",
    });
  }

  const diffusersPeaks = rows
    .filter((r) => r.side === "diffusers" && r.model === model && r.status === "ok")
    .map((r) => ({ config: r.config, bytes: peakDeviceBytes(r, context) }))
    .filter((r) => r.bytes !== null) as { config: string; bytes: number }[];
  const best = diffusersPeaks.sort((a, b) => a.bytes - b.bytes)[0];
  const bestBytes = best?.bytes ?? (model === "2b" ? DIFFUSERS_BEST_2B_BYTES : null);
  const bestText = best
    ? `diffusers' best ${gib(best.bytes)} GiB (${best.config})`
    : model === "2b"
    ? "diffusers' documented 3.8 GiB"
    : "no diffusers figure";
  const candidates = ALL_HOOKS.map((config) => find(rows, "cogflow", model, config))
    .filter((r) => r !== undefined) as ResultRow[];
  const checks = candidates.map((row) => {
    const device = peakDeviceBytes(row, context);
    const ratio = reference && row.step_s ? row.step_s / reference : null;
    const host = row.host_peak_bytes ?? null;
    const weights = row.weights_bytes ?? null;
    const parts = {
      device: device !== null && bestBytes !== null ? device <= bestBytes : null,
      time: ratio !== null ? ratio <= 1.1 : null,
      host: host !== null && weights !== null ? host <= weights : null,
    };
    return { row, device, ratio, host, weights, parts };
  });
  const allMet = (c: (typeof checks)[number]) => Object.values(c.parts).every((v) => v === true);
  const chosen = checks.find(allMet) ??
    [...checks].sort((a, b) => (a.device ?? Infinity) - (b.device ?? Infinity))[0];
  if (chosen) {
    const { row, device, ratio, host, weights, parts } = chosen;
    const measured = Object.values(parts).every((v) => v !== null);
    verdicts.push({
      target:
        "every hook on: device memory <= diffusers' best at <= 1.1x diffusers' all-on-GPU step, host memory <= the weights",
      verdict: allMet(chosen) ? "met" : measured ? "not met" : "not measured",
      detail: `cogflow ${row.config}: device ${gib(device)} GiB against ${bestText}; step ${
        ratio === null ? "–" : `${ratio.toFixed(2)}x`
      }; host ${gib(host)} GiB against weights ${gib(weights)} GiB`,
    });
  } else {
    verdicts.push({
      target: "every hook on: device memory, step time and host memory",
      verdict: "not measured",
      detail: "no cogflow result with every hook on",
    });
  }

  const tiled = rows.filter((r) =>
    r.side === "cogflow" && r.model === model && r.status === "ok" && r.config.includes("tiling")
  );
  const decodes = tiled
    .map((r) => ({ row: r, bytes: deviceBytes(r, "decode", context) }))
    .filter((d) => d.bytes !== null) as { row: ResultRow; bytes: number }[];
  const at49 = decodes.filter((d) => d.row.frames === 49);
  const lowest = (at49.length > 0 ? at49 : decodes).sort((a, b) => a.bytes - b.bytes)[0];
  if (lowest) {
    const frameCounts = decodes.filter((d) => d.row.config === lowest.row.config);
    const counts = new Set(frameCounts.map((d) => d.row.frames ?? 0).sort((a, b) => a - b));
    const spread = Math.max(...frameCounts.map((d) => d.bytes)) /
      Math.max(1, Math.min(...frameCounts.map((d) => d.bytes)));
    const flat = counts.size > 1 ? (spread <= 1.1 ? "flat" : "not flat") : null;
    const under = lowest.bytes < DECODE_TARGET_BYTES;
    verdicts.push({
      target: "VAE decode of 49 frames flat in frame count and < 4.2 GiB",
      verdict: !under || flat === "not flat" ? "not met" : flat === null ? "not measured" : "met",
      detail: `cogflow ${lowest.row.config}: decode ${gib(lowest.bytes)} GiB (${
        under ? "under" : "over"
      } 4.2); ${
        flat === null
          ? "one frame count only, flatness not measured"
          : `${flat} over ${[...counts].join(", ")} frames`
      }`,
    });
  } else {
    verdicts.push({
      target: "VAE decode of 49 frames flat in frame count and < 4.2 GiB",
      verdict: "not measured",
      detail: "no cogflow result with tiling and a decode figure",
    });
  }
  return verdicts;
}

/** The markdown for all models in `rows`. */
export function renderTable(rows: readonly ResultRow[]): string {
  const context = contextBytes(rows);
  const models = [...new Set(rows.filter((r) => r.config !== "context").map((r) => r.model))]
    .sort();
  const out: string[] = [];
  for (const model of models) {
    const modelRows = rows.filter((r) => r.model === model);
    const sample = modelRows.find((r) => r.layers) ?? modelRows[0];
    const full = sample.heads ? FULL_LAYERS[sample.heads] : undefined;
    const partial = full !== undefined && sample.layers !== undefined && sample.layers !== null &&
      sample.layers < full;
    const t5Partial = sample.t5_layers !== undefined && sample.t5_layers !== null &&
      sample.t5_layers < 24;
    const reference = find(rows, "diffusers", model, "all_gpu")?.step_s ?? null;
    out.push(`### CogVideoX-${model}`, "");
    out.push(
      `Transformer ${sample.layers ?? "?"} of ${full ?? "?"} layers, text encoder ${
        sample.t5_layers ?? "?"
      } of 24, random weights; ${sample.height}x${sample.width}x${sample.frames}, guidance ${sample.guidance}, ${sample.steps} steps (step: median after the first). Device: NVML used minus the idle device and the CUDA context (${
        gib(context)
      } GiB), peak per phase; torch: max_memory_allocated per phase (diffusers). Host: peak resident (diffusers: the process; cogflow: the process tree). cogflow's encode and decode seconds include creating that model's session (diffusers loads before); wall: the whole process.`,
      "",
    );
    if (partial) {
      out.push(
        `Partial depth: step times marked \\* are scaled to the full ${full} layers (x ${
          (full / sample.layers!).toFixed(2)
        }); memory figures are as measured (the missing layers' weights are not in them).`,
        "",
      );
    }
    if (t5Partial) {
      out.push(
        `Text encoder at ${sample.t5_layers} of 24 layers: encode times and memory as measured.`,
        "",
      );
    }
    out.push(
      "| configuration | side | dtype | step s | x diffusers all-GPU | encode s | decode s | wall s | device GiB encode / denoise / decode | torch GiB encode / denoise / decode | host peak GiB | status |",
      "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    );
    const configs = [...new Set(modelRows.map((r) => r.config))].sort((a, b) => {
      const rank = (c: string) => CONFIG_ORDER.includes(c) ? CONFIG_ORDER.indexOf(c) : 99;
      return rank(a) - rank(b);
    });
    for (const config of configs) {
      for (const side of ["diffusers", "cogflow"]) {
        const row = modelRows.find((r) => r.side === side && r.config === config);
        if (!row) continue;
        const ok = row.status === "ok";
        const step = row.step_s ?? null;
        const scaled = partial && step !== null && full && row.layers
          ? `${secs(step)} (${secs((step * full) / row.layers)}\\*)`
          : secs(step);
        const ratio = reference && step !== null ? `${(step / reference).toFixed(2)}x` : "–";
        const device = PHASES.map((p) => gib(deviceBytes(row, p, context))).join(" / ");
        const torch = side === "diffusers"
          ? PHASES.map((p) => gib(row.phases?.[p]?.allocated_bytes)).join(" / ")
          : "–";
        const status = ok
          ? "ok"
          : `${row.status}: ${(row.error ?? "").split("\n")[0].slice(0, 80)}`;
        out.push(
          `| ${config} | ${side} | ${row.dtype ?? "–"} | ${scaled} | ${ratio} | ${
            secs(row.encode_s)
          } | ${secs(row.decode_s)} | ${secs(row.total_s)} | ${device} | ${torch} | ${
            gib(row.host_peak_bytes)
          } | ${status.replaceAll("|", "\\|")} |`,
        );
      }
    }
    out.push("", "| target | verdict | figures |", "| --- | --- | --- |");
    for (const verdict of targets(rows, model)) {
      out.push(`| ${verdict.target} | **${verdict.verdict}** | ${verdict.detail} |`);
    }
    out.push("");
  }
  return out.join("\n");
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: { out: { type: "string" } },
  });
  if (positionals.length === 0) {
    console.error("Usage: render_table.ts gpu_table.jsonl [more.jsonl...] [--out table.md]");
    Deno.exit(2);
  }
  const text = positionals.map((path) => Deno.readTextFileSync(path)).join("\n");
  const markdown = renderTable(parseRows(text));
  if (values.out) Deno.writeTextFileSync(values.out, markdown);
  else console.log(markdown);
}
