/**
 * Reporters turn run events into output: a live progress display for terminals, plain lines for
 * logs and CI, and JSON lines for programs.
 *
 * @module
 */

import { escapeControl, type RunEvent } from "../engine/mod.ts";
import { formatBytes } from "../runtime/byte_size.ts";

/** Something that shows a run's events. */
export interface Reporter {
  /** Handles one event. */
  handle(event: RunEvent): void;
  /** Prints a line of the CLI's own (an interruption notice), keeping any live display intact. */
  note(text: string): void;
  /** Stops timers and leaves the terminal clean. */
  close(): void;
}

/** A place to write text (stderr or stdout). */
export interface TextSink {
  /** Writes text as is. */
  write(text: string): void;
}

/** A sink writing to a Deno stream synchronously. */
export function streamSink(stream: { writeSync(data: Uint8Array): number }): TextSink {
  const encoder = new TextEncoder();
  return {
    write(text) {
      const bytes = encoder.encode(text);
      let written = 0;
      while (written < bytes.length) written += stream.writeSync(bytes.subarray(written));
    },
  };
}

/** Seconds or milliseconds as people read them: `850 ms`, `3.2 s`, `2 min 05 s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return `${minutes} min ${String(seconds).padStart(2, "0")} s`;
}

/** What {@link formatProviders} reads of a model's statistics. */
export interface ModelProvider {
  /** The model's name. */
  name: string;
  /** Sessions created (a model that never loaded, its results all cached, is left out). */
  loads: number;
  /** The provider its sessions got. */
  provider: string;
  /** Why they fell back to the CPU. */
  fallbackReason?: string;
}

/**
 * The provider each model's sessions really got, in one line, models with the same provider (and
 * fallback reason) together: `text_encoder, transformer: cuda; vae: cpu (fallback: <reason>)`;
 * empty when no model loaded.
 */
export function formatProviders(models: readonly ModelProvider[]): string {
  const groups = new Map<string, string[]>();
  for (const model of models) {
    if (model.loads === 0) continue;
    const where = `${model.provider}${
      model.fallbackReason ? ` (fallback: ${model.fallbackReason})` : ""
    }`;
    groups.set(where, [...groups.get(where) ?? [], model.name]);
  }
  return [...groups].map(([where, names]) => `${names.join(", ")}: ${where}`).join("; ");
}

/** Time left from progress so far: `(elapsed / step) * (total - step)`. */
export function estimateRemaining(
  elapsedMs: number,
  step: number,
  total: number,
): number | undefined {
  if (step <= 0 || total <= step) return step >= total ? 0 : undefined;
  return (elapsedMs / step) * (total - step);
}

/** One JSON object per line, for programs. */
export class JsonReporter implements Reporter {
  #sink: TextSink;

  /** Writes to `sink`. */
  constructor(sink: TextSink) {
    this.#sink = sink;
  }

  /** Writes the event as a line of JSON. */
  handle(event: RunEvent): void {
    this.#sink.write(`${JSON.stringify(event)}\n`);
  }

  /** Notes are for people: not written as JSON. */
  note(_text: string): void {}

  /** Nothing to clean up. */
  close(): void {}
}

interface NodeState {
  startedAt: number;
  step?: number;
  total?: number;
  lastPrinted: number;
  lastFraction: number;
}

/** Plain lines, for logs and CI: no cursor movement, progress at most every few seconds. */
export class PlainReporter implements Reporter {
  #sink: TextSink;
  #nodes = new Map<string, NodeState>();
  #progressEveryMs: number;

  /** Writes to `sink`; progress of a node is printed at most every `progressEveryMs`. */
  constructor(sink: TextSink, options: { progressEveryMs?: number } = {}) {
    this.#sink = sink;
    this.#progressEveryMs = options.progressEveryMs ?? 5000;
  }

  /** Prints the event as a line where it matters (control characters escaped: one line each). */
  handle(event: RunEvent): void {
    const line = (text: string) => this.#sink.write(`${escapeControl(text)}\n`);
    switch (event.type) {
      case "run_start":
        line(
          `run ${event.workflow}: ${event.nodes.length} node${event.nodes.length === 1 ? "" : "s"}`,
        );
        break;
      case "node_start":
        this.#nodes.set(event.node, {
          startedAt: event.time,
          lastPrinted: event.time,
          lastFraction: 0,
        });
        line(`start ${event.node} (${event.nodeType})`);
        break;
      case "node_cached":
        line(`cached ${event.node} (${event.source})`);
        break;
      case "node_progress": {
        const state = this.#nodes.get(event.node);
        if (!state) break;
        const fraction = event.total > 0 ? event.step / event.total : 0;
        const due = event.time - state.lastPrinted >= this.#progressEveryMs ||
          fraction - state.lastFraction >= 0.25 || event.step === event.total;
        if (!due) break;
        state.lastPrinted = event.time;
        state.lastFraction = fraction;
        const remaining = estimateRemaining(event.time - state.startedAt, event.step, event.total);
        const eta = remaining !== undefined && event.step < event.total
          ? `, ETA ${formatDuration(remaining)}`
          : "";
        line(
          `progress ${event.node} ${event.step}/${event.total}${eta}${
            event.message ? ` ${event.message}` : ""
          }`,
        );
        break;
      }
      case "node_log":
        if (event.level !== "debug") line(`${event.level} ${event.node}: ${event.message}`);
        break;
      case "node_end":
        line(`done ${event.node} in ${formatDuration(event.durationMs)}`);
        break;
      case "node_error":
        line(`error ${event.node}: ${event.message}`);
        break;
      case "memory":
        line(memoryLine(event));
        break;
      case "run_end":
        line(
          `${event.status === "ok" ? "finished" : event.status} in ${
            formatDuration(event.durationMs)
          }: ${event.executed} ran, ${event.cached} cached`,
        );
        break;
    }
  }

  /** Writes the note as a line. */
  note(text: string): void {
    this.#sink.write(`${text}\n`);
  }

  /** Nothing to clean up. */
  close(): void {}
}

function memoryLine(event: Extract<RunEvent, { type: "memory" }>): string {
  const where = event.node ?? "run";
  const sessions = event.sessions.length > 0 ? event.sessions.join(", ") : "none";
  return `memory ${where}: rss ${formatBytes(event.rssBytes)} (anon ${
    formatBytes(event.rssAnonBytes)
  }, file ${formatBytes(event.rssFileBytes)}), peak ${
    formatBytes(event.peakBytes)
  }, sessions: ${sessions}`;
}

const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/**
 * A live display for terminals: finished nodes as lines, running nodes below with a progress bar,
 * steps and ETA, redrawn several times a second.
 */
export class TerminalReporter implements Reporter {
  #sink: TextSink;
  #running = new Map<string, NodeState & { type: string }>();
  #liveLines = 0;
  #timer?: ReturnType<typeof setInterval>;
  #frame = 0;
  #width: number;

  /** Writes to `sink` (a terminal `columns` wide). */
  constructor(sink: TextSink, options: { columns?: number } = {}) {
    this.#sink = sink;
    this.#width = Math.max(40, options.columns ?? 80);
  }

  /** Updates the display for an event. */
  handle(event: RunEvent): void {
    switch (event.type) {
      case "run_start":
        this.#print(`▶ ${escapeControl(event.workflow)} (${event.nodes.length} nodes)`);
        if (this.#timer === undefined) {
          this.#timer = setInterval(() => this.#redraw(), 120);
          Deno.unrefTimer(this.#timer);
        }
        break;
      case "node_start":
        this.#running.set(event.node, {
          startedAt: event.time,
          lastPrinted: event.time,
          lastFraction: 0,
          type: event.nodeType,
        });
        this.#redraw();
        break;
      case "node_cached":
        this.#print(`  ↺ ${event.node} (cached, ${event.source})`);
        break;
      case "node_progress": {
        const state = this.#running.get(event.node);
        if (state) {
          state.step = event.step;
          state.total = event.total;
        }
        break;
      }
      case "node_log":
        if (event.level !== "debug") {
          this.#print(
            `  ${event.level === "warn" ? "⚠" : "ℹ"} ${event.node}: ${
              escapeControl(event.message)
            }`,
          );
        }
        break;
      case "node_end":
        this.#running.delete(event.node);
        this.#print(`  ✓ ${event.node} ${dim(formatDuration(event.durationMs))}`);
        break;
      case "node_error":
        this.#running.delete(event.node);
        this.#print(`  ✗ ${event.node}: ${escapeControl(event.message)}`);
        break;
      case "memory":
        this.#print(`    ${memoryLine(event)}`);
        break;
      case "run_end":
        this.#running.clear();
        this.#print(
          `${event.status === "ok" ? "■ finished" : `■ ${event.status}`} in ${
            formatDuration(event.durationMs)
          } ${dim(`(${event.executed} ran, ${event.cached} cached)`)}`,
        );
        this.close();
        break;
    }
  }

  /** Prints the note above the live area. */
  note(text: string): void {
    this.#print(escapeControl(text));
  }

  /** Stops redrawing and clears the live area. */
  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#clearLive();
  }

  #print(text: string) {
    this.#clearLive();
    this.#sink.write(`${text}\n`);
    this.#drawLive();
  }

  #redraw() {
    this.#frame++;
    this.#clearLive();
    this.#drawLive();
  }

  #clearLive() {
    if (this.#liveLines > 0) this.#sink.write(`\x1b[${this.#liveLines}A\x1b[0J`);
    this.#liveLines = 0;
  }

  #drawLive() {
    const now = Date.now();
    const lines: string[] = [];
    for (const [node, state] of this.#running) {
      const spinner = SPINNER[this.#frame % SPINNER.length];
      const elapsed = formatDuration(now - state.startedAt);
      if (state.total && state.step !== undefined) {
        const remaining = estimateRemaining(now - state.startedAt, state.step, state.total);
        const eta = remaining !== undefined && state.step < state.total
          ? ` ETA ${formatDuration(remaining)}`
          : "";
        const bar = progressBar(state.step / state.total, 20);
        lines.push(
          `  ${spinner} ${node} ${bar} ${state.step}/${state.total} ${dim(`${elapsed}${eta}`)}`,
        );
      } else {
        lines.push(`  ${spinner} ${node} ${dim(`(${state.type}) ${elapsed}`)}`);
      }
    }
    for (const line of lines) this.#sink.write(`${truncate(line, this.#width)}\n`);
    this.#liveLines = lines.length;
  }
}

/** A bar of `width` cells filled to `fraction`. */
export function progressBar(fraction: number, width: number): string {
  const filled = Math.max(0, Math.min(width, Math.round(fraction * width)));
  return `${"█".repeat(filled)}${"░".repeat(width - filled)}`;
}

function dim(text: string): string {
  return `\x1b[2m${text}\x1b[22m`;
}

function truncate(line: string, width: number): string {
  // Escape sequences take no columns; count only visible characters.
  let visible = 0;
  let result = "";
  for (let i = 0; i < line.length; i++) {
    if (line[i] === "\x1b") {
      const end = line.indexOf("m", i);
      result += line.slice(i, end + 1);
      i = end;
      continue;
    }
    if (visible >= width - 1) break;
    result += line[i];
    visible++;
  }
  return result;
}
