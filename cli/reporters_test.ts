import assert from "node:assert/strict";
import type { RunEvent } from "../engine/mod.ts";
import {
  estimateRemaining,
  formatDuration,
  formatProviders,
  JsonReporter,
  PlainReporter,
  progressBar,
  streamSink,
  TerminalReporter,
  type TextSink,
} from "./reporters.ts";

/** A sink that keeps what was written. */
function memorySink(): TextSink & { text: string } {
  return {
    text: "",
    write(text) {
      this.text += text;
    },
  };
}

const T = 1_000_000;

/** Terminal escape sequences (colors, cursor movement). */
const ESCAPES = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*[A-Za-z]`, "g");
const ESC = String.fromCharCode(27);

const run: RunEvent[] = [
  { type: "run_start", workflow: "demo", nodes: ["load", "sample"], time: T },
  { type: "node_cached", node: "load", source: "disk", time: T + 1 },
  { type: "node_start", node: "sample", nodeType: "sample", time: T + 2 },
  { type: "node_progress", node: "sample", step: 1, total: 4, time: T + 1002 },
  { type: "node_progress", node: "sample", step: 2, total: 4, time: T + 1500 },
  {
    type: "node_progress",
    node: "sample",
    step: 3,
    total: 4,
    message: "denoising",
    time: T + 3002,
  },
  { type: "node_log", node: "sample", level: "warn", message: "Prompt truncated", time: T + 3003 },
  { type: "node_log", node: "sample", level: "debug", message: "detail", time: T + 3004 },
  { type: "node_progress", node: "sample", step: 4, total: 4, time: T + 4002 },
  { type: "node_end", node: "sample", durationMs: 4000, time: T + 4002 },
  {
    type: "run_end",
    status: "ok",
    durationMs: 4100,
    executed: 1,
    cached: 1,
    files: [],
    time: T + 4100,
  },
];

Deno.test("formatDuration reads as people write durations", () => {
  assert.equal(formatDuration(0), "0 ms");
  assert.equal(formatDuration(849.6), "850 ms");
  assert.equal(formatDuration(3200), "3.2 s");
  assert.equal(formatDuration(59_949), "59.9 s");
  assert.equal(formatDuration(125_000), "2 min 05 s");
});

Deno.test("estimateRemaining extrapolates from the steps done", () => {
  assert.equal(estimateRemaining(1000, 1, 4), 3000);
  assert.equal(estimateRemaining(1000, 0, 4), undefined);
  assert.equal(estimateRemaining(1000, 4, 4), 0);
});

Deno.test("progressBar fills in proportion, within its width", () => {
  assert.equal(progressBar(0.5, 10), "█████░░░░░");
  assert.equal(progressBar(-1, 4), "░░░░");
  assert.equal(progressBar(2, 4), "████");
});

Deno.test("JsonReporter writes one JSON object per line", () => {
  const sink = memorySink();
  const reporter = new JsonReporter(sink);
  for (const event of run) reporter.handle(event);
  reporter.close();
  const lines = sink.text.trimEnd().split("\n");
  assert.equal(lines.length, run.length);
  assert.deepEqual(lines.map((line) => JSON.parse(line)), run);
});

Deno.test("PlainReporter prints one line per event that matters", () => {
  const sink = memorySink();
  const reporter = new PlainReporter(sink, { progressEveryMs: 1000 });
  for (const event of run) reporter.handle(event);
  reporter.close();
  assert.equal(
    sink.text,
    `run demo: 2 nodes
cached load (disk)
start sample (sample)
progress sample 1/4, ETA 3.0 s
progress sample 2/4, ETA 1.5 s
progress sample 3/4, ETA 1.0 s denoising
warn sample: Prompt truncated
progress sample 4/4
done sample in 4.0 s
finished in 4.1 s: 1 ran, 1 cached
`,
  );
});

Deno.test("PlainReporter prints progress at most every quarter or every few seconds", () => {
  const sink = memorySink();
  const reporter = new PlainReporter(sink, { progressEveryMs: 5000 });
  reporter.handle({ type: "node_start", node: "n", nodeType: "t", time: T });
  for (let step = 1; step <= 100; step++) {
    reporter.handle({ type: "node_progress", node: "n", step, total: 100, time: T + step * 10 });
  }
  const steps = sink.text.match(/progress n (\d+)\/100/g)!.map((line) => line.split(" ")[2]);
  assert.deepEqual(steps, ["25/100", "50/100", "75/100", "100/100"]);
});

Deno.test("PlainReporter reports failures and memory", () => {
  const sink = memorySink();
  const reporter = new PlainReporter(sink);
  reporter.handle({ type: "node_error", node: "decode", message: "Out of memory", time: T });
  reporter.handle({
    type: "memory",
    node: "decode",
    rssBytes: 3 * 1024 ** 3,
    rssAnonBytes: 2 * 1024 ** 3,
    rssFileBytes: 1024 ** 3,
    peakBytes: 4 * 1024 ** 3,
    sessions: ["vae"],
    time: T,
  });
  reporter.handle({
    type: "run_end",
    status: "failed",
    durationMs: 10,
    executed: 0,
    cached: 0,
    files: [],
    time: T,
  });
  const lines = sink.text.trimEnd().split("\n");
  assert.equal(lines[0], "error decode: Out of memory");
  assert.match(lines[1], /^memory decode: rss .+ \(anon .+, file .+\), peak .+, sessions: vae$/);
  assert.equal(lines[2], "failed in 10 ms: 0 ran, 0 cached");
});

Deno.test("TerminalReporter redraws a live area and leaves finished lines", () => {
  const sink = memorySink();
  const reporter = new TerminalReporter(sink, { columns: 60 });
  for (const event of run.slice(0, 4)) reporter.handle(event);
  // The live line of the running node is drawn and then cleared by the next print.
  reporter.handle(run[6]);
  for (const event of run.slice(7)) reporter.handle(event);
  reporter.close();
  // Without escape sequences: the lines a person sees scroll by.
  const plain = sink.text.replace(ESCAPES, "");
  assert.ok(plain.startsWith("▶ demo (2 nodes)\n  ↺ load (cached, disk)\n"));
  assert.match(plain, /sample (█|░){20} 1\/4/);
  assert.match(plain, /⚠ sample: Prompt truncated\n/);
  assert.match(plain, /✓ sample 4\.0 s\n/);
  assert.match(plain, /■ finished in 4\.1 s \(1 ran, 1 cached\)\n$/);
  // The live area is erased by moving up and clearing, never by printing blank lines.
  assert.ok(sink.text.includes(`${ESC}[1A${ESC}[0J`));
});

Deno.test("TerminalReporter cuts live lines to the terminal width", () => {
  const sink = memorySink();
  const reporter = new TerminalReporter(sink, { columns: 40 });
  reporter.handle({ type: "run_start", workflow: "w", nodes: ["n"], time: T });
  reporter.handle({
    type: "node_start",
    node: "a_node_with_a_very_long_name_indeed_yes",
    nodeType: "t",
    time: Date.now(),
  });
  reporter.close();
  const live = sink.text.split("\n").find((line) => line.includes("a_node_with"))!;
  assert.ok(live.replace(ESCAPES, "").length <= 39);
});

Deno.test("streamSink writes everything to a stream", () => {
  const chunks: Uint8Array[] = [];
  const sink = streamSink({
    writeSync(data) {
      // Accept at most 3 bytes at a time, as a pipe might.
      chunks.push(data.slice(0, 3));
      return Math.min(3, data.length);
    },
  });
  sink.write("héllo");
  const bytes = new Uint8Array(chunks.flatMap((chunk) => [...chunk]));
  assert.equal(new TextDecoder().decode(bytes), "héllo");
});

Deno.test("messages of nodes are printed with their control characters escaped", () => {
  const event: RunEvent = {
    type: "node_log",
    node: "save",
    level: "warn",
    message: `wrote "out/${ESC}[2Jx\ny.mp4"`,
    time: T,
  };
  const plain = memorySink();
  new PlainReporter(plain).handle(event);
  assert.equal(plain.text, 'warn save: wrote "out/\\x1b[2Jx\\ny.mp4"\n');
  const terminal = memorySink();
  const reporter = new TerminalReporter(terminal);
  reporter.handle(event);
  reporter.close();
  assert.ok(!terminal.text.includes(`${ESC}[2J`), terminal.text);
  assert.ok(terminal.text.includes("\\x1b[2Jx\\ny.mp4"), terminal.text);
});

Deno.test("formatProviders says which provider each model got, fallbacks with their reason", () => {
  const reason = "OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library";
  assert.equal(
    formatProviders([
      { name: "text_encoder", loads: 1, provider: "cuda" },
      { name: "transformer", loads: 2, provider: "cuda" },
      { name: "vae", loads: 1, provider: "cpu", fallbackReason: reason },
      { name: "cached", loads: 0, provider: "cuda" },
    ]),
    `text_encoder, transformer: cuda; vae: cpu (fallback: ${reason})`,
  );
  assert.equal(formatProviders([{ name: "vae", loads: 0, provider: "cpu" }]), "");
});
