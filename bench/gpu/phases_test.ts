import assert from "node:assert/strict";
import type { RunEvent } from "../../engine/events.ts";
import { idleBytes, parseSamples } from "./gpu_samples.ts";
import { medianStepMs, parseEventLines, peakIn, runPhases } from "./phases.ts";

const events: RunEvent[] = [
  { type: "run_start", workflow: "w", nodes: [], time: 0 },
  { type: "node_start", node: "encode", nodeType: "text_encode", time: 100 },
  { type: "node_end", node: "encode", durationMs: 400, time: 500 },
  { type: "node_start", node: "core/sample", nodeType: "sample", time: 600 },
  { type: "node_progress", node: "core/sample", step: 1, total: 3, time: 2600 },
  { type: "node_progress", node: "core/sample", step: 2, total: 3, time: 3600 },
  { type: "node_progress", node: "core/sample", step: 3, total: 3, time: 4800 },
  { type: "node_end", node: "core/sample", durationMs: 4200, time: 4800 },
  { type: "node_start", node: "decode", nodeType: "vae_decode", time: 4900 },
  { type: "node_progress", node: "decode", step: 1, total: 1, time: 6000 },
  { type: "node_error", node: "decode", message: "out of memory", time: 6100 },
  {
    type: "run_end",
    status: "failed",
    durationMs: 6200,
    executed: 3,
    cached: 0,
    files: [],
    time: 6200,
  },
];

Deno.test("runPhases: windows by node type, step times from the sample node's progress", () => {
  const phases = runPhases(events);
  assert.deepEqual(phases.windows.encode, {
    node: "encode",
    startMs: 100,
    endMs: 500,
    ended: true,
  });
  assert.deepEqual(phases.windows.denoise, {
    node: "core/sample",
    startMs: 600,
    endMs: 4800,
    ended: true,
  });
  // decode failed: its window runs to the last event, not ended
  assert.deepEqual(phases.windows.decode, {
    node: "decode",
    startMs: 4900,
    endMs: 6200,
    ended: false,
  });
  assert.deepEqual(phases.stepMs, [2000, 1000, 1200]);
  assert.equal(phases.status, "failed");
  assert.deepEqual(phases.errors, ["decode: out of memory"]);
  assert.equal(phases.nodeMs.encode, 400);
});

Deno.test("medianStepMs: the steps after the first", () => {
  assert.equal(medianStepMs([2000, 1000, 1200]), 1100);
  assert.equal(medianStepMs([2000, 1000, 1200, 900]), 1000);
  assert.equal(medianStepMs([2000]), 2000);
  assert.equal(medianStepMs([]), null);
});

Deno.test("parseEventLines: skips text and a line cut short", () => {
  const text = `Task cogflow\n${JSON.stringify(events[1])}\n{"type":"node_end","no`;
  assert.deepEqual(parseEventLines(text), [events[1]]);
});

Deno.test("peakIn and idleBytes: samples inside a window, the idle device before the run", () => {
  const samples = [[10, 500], [20, 700], [30, 9000], [40, 600]] as const;
  assert.equal(peakIn(samples, 15, 35), 9000);
  assert.equal(peakIn(samples, 31, 35), null);
  assert.equal(idleBytes(samples, 25), 500);
  assert.equal(idleBytes(samples, 0), 500);
  assert.equal(idleBytes([], 0), null);
});

Deno.test("parseSamples: source, samples, and no NVML", () => {
  assert.deepEqual(parseSamples("# source nvml\n1000,5\n1020,7\n"), {
    source: "nvml",
    samples: [[1000, 5], [1020, 7]],
  });
  assert.deepEqual(parseSamples("# unavailable: no libnvidia-ml\n"), {
    source: null,
    unavailable: "no libnvidia-ml",
    samples: [],
  });
});
