import assert from "node:assert/strict";
import { parseRows, renderTable, type ResultRow, targets } from "./render_table.ts";

const GIB = 2 ** 30;

function phases(encode: number, denoise: number, decode: number) {
  return {
    encode: { nvml_bytes: encode * GIB, allocated_bytes: encode * GIB * 0.9 },
    denoise: { nvml_bytes: denoise * GIB, allocated_bytes: denoise * GIB * 0.9 },
    decode: { nvml_bytes: decode * GIB, allocated_bytes: decode * GIB * 0.9 },
  };
}

function row(side: string, config: string, fields: Partial<ResultRow>): ResultRow {
  return {
    side,
    model: "2b",
    config,
    status: "ok",
    layers: 30,
    heads: 30,
    t5_layers: 24,
    weights_bytes: 14 * GIB,
    steps: 3,
    height: 480,
    width: 720,
    frames: 49,
    guidance: 6,
    ...fields,
  };
}

const context = {
  side: "diffusers",
  model: "none",
  config: "context",
  status: "ok",
  phases: { context: { nvml_bytes: 0.5 * GIB } },
};

const rows = [
  context,
  row("diffusers", "all_gpu", {
    step_s: 1.0,
    total_s: 61,
    encode_s: 0.2,
    decode_s: 8,
    phases: phases(14.5, 16.5, 20.5),
    host_peak_bytes: 3 * GIB,
  }),
  row("cogflow", "all_gpu", {
    step_s: 1.04,
    encode_s: 0.5,
    decode_s: 30,
    phases: phases(25.5, 30.5, 30.5),
    host_peak_bytes: 1 * GIB,
  }),
  row("diffusers", "sequential_tiling", {
    step_s: 4,
    phases: phases(1.5, 3.3, 2.5),
    host_peak_bytes: 15 * GIB,
  }),
  row("cogflow", "group_offload_tiling", {
    step_s: 1.08,
    phases: phases(2.5, 3.0, 3.5),
    host_peak_bytes: 2 * GIB,
  }),
  row("cogflow", "model_offload", { status: "timeout", error: "over the limit | of 460 s" }),
];

Deno.test("targets: met where the figures say so", () => {
  const verdicts = targets(rows, "2b");
  assert.equal(verdicts[0].verdict, "met"); // 1.04 <= 1.05
  assert.match(verdicts[0].detail, /1\.04x/);
  // device 3.0 GiB (3.5 - 0.5) <= diffusers' best 2.8 GiB? No: best is sequential_tiling's 3.3 - 0.5.
  assert.equal(verdicts[1].verdict, "not met");
  assert.match(
    verdicts[1].detail,
    /group_offload_tiling: device 3\.00 GiB against diffusers' best 2\.80 GiB \(sequential_tiling\)/,
  );
  assert.equal(verdicts[2].verdict, "not measured"); // one frame count
  assert.match(verdicts[2].detail, /decode 3\.00 GiB \(under 4\.2\)/);
});

Deno.test("targets: every hook met when memory, time and host fit", () => {
  const better = rows.map((r) =>
    r.config === "group_offload_tiling" ? { ...r, phases: phases(2.0, 2.5, 3.0) } : r
  );
  const verdicts = targets(better, "2b");
  assert.equal(verdicts[1].verdict, "met");
  const slow = better.map((r) => r.config === "group_offload_tiling" ? { ...r, step_s: 1.2 } : r);
  assert.equal(targets(slow, "2b")[1].verdict, "not met");
});

Deno.test("targets: decode flat in frame count when two frame counts agree", () => {
  const more = [
    ...rows,
    row("cogflow", "group_offload_tiling", {
      frames: 25,
      step_s: 1.0,
      phases: phases(2.5, 3.0, 3.4),
    }),
  ];
  const verdicts = targets(parseRows(more.map((r) => JSON.stringify(r)).join("\n")), "2b");
  assert.equal(verdicts[2].verdict, "met");
  assert.match(verdicts[2].detail, /flat over 25, 49 frames/);
});

Deno.test("renderTable: both sides per configuration, ratios, failures escaped", () => {
  const markdown = renderTable(rows);
  assert.match(markdown, /### CogVideoX-2b/);
  assert.match(
    markdown,
    /\| all_gpu \| diffusers \| – \| 1\.00 \| 1\.00x \| 0\.20 \| 8\.00 \| 61\.0 \| 14\.00 \/ 16\.00 \/ 20\.00 \| 13\.05 \/ 14\.85 \/ 18\.45 \| 3\.00 \| ok \|/,
  );
  assert.match(markdown, /\| all_gpu \| cogflow \| – \| 1\.04 \| 1\.04x \|/);
  assert.match(markdown, /\| model_offload \| cogflow .*timeout: over the limit \\\| of 460 s \|/);
  assert.ok(markdown.indexOf("| all_gpu | diffusers") < markdown.indexOf("| sequential_tiling"));
  assert.doesNotMatch(markdown, /Partial depth/);
});

Deno.test("renderTable: partial depth scales step times and says so", () => {
  const partial = rows.map((r) => r.config === "context" ? r : { ...r, layers: 3 });
  const markdown = renderTable(partial);
  assert.match(markdown, /Transformer 3 of 30 layers/);
  assert.match(
    markdown,
    /Partial depth: step times marked \\\* are scaled to the full 30 layers \(x 10\.00\)/,
  );
  assert.match(markdown, /\| all_gpu \| diffusers \| – \| 1\.00 \(10\.0\\\*\) \|/);
});

Deno.test("parseRows: the later line for a key wins", () => {
  const text = [
    JSON.stringify(row("cogflow", "all_gpu", { status: "failed" })),
    "not json",
    JSON.stringify(row("cogflow", "all_gpu", { step_s: 2 })),
  ].join("\n");
  const parsed = parseRows(text);
  assert.equal(parsed.length, 1);
  assert.equal(parsed[0].step_s, 2);
});
