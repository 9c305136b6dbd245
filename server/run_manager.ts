/**
 * Runs for the editor: each run is `cogflow run <file> --json --memory-report` in a child process
 * through the CLI's launcher, so a workflow runs with the launcher's sandbox (scoped files, no
 * network) whoever wrote it, and the server stays responsive. The child's JSON events are kept and
 * handed to listeners (the page's event stream); Cancel sends the child Ctrl-C.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { RunEvent } from "../engine/events.ts";

/** What the server adds to the engine's events: the child's exit. */
export interface RunExitEvent {
  /** Event type. */
  type: "run_exit";
  /** `ok`, `failed`, `invalid` (the workflow did not validate) or `cancelled`. */
  status: "ok" | "failed" | "invalid" | "cancelled";
  /** The child's exit code. */
  code: number;
  /** What the child said on stderr when it failed (its last lines). */
  message?: string;
  /** Files the run wrote, the memory chart included. */
  files: string[];
  /** Milliseconds since the epoch. */
  time: number;
}

/** An event of a run as the page sees it. */
export type ServerRunEvent = RunEvent | RunExitEvent;

/** One run. */
export interface Run {
  /** Its id. */
  id: string;
  /** The workflow file (absolute). */
  file: string;
  /** Events so far. */
  events: ServerRunEvent[];
  /** True once the child has exited. */
  done: boolean;
  /** Files written (absolute paths). */
  files: Set<string>;
}

/** Options of {@link RunManager}. */
export interface RunManagerOptions {
  /** The folder runs start in (relative outputs land under it). */
  cwd: string;
  /** The Deno executable (default: this one). */
  deno?: string;
  /** Runs kept (oldest finished ones are forgotten first; default 20). */
  keep?: number;
}

const PROJECT_DIR = dirname(dirname(fileURLToPath(import.meta.url)));

/** Starts, follows and cancels runs. */
export class RunManager {
  #runs = new Map<string, Run>();
  #listeners = new Map<string, Set<(event: ServerRunEvent) => void>>();
  #children = new Map<string, Deno.ChildProcess>();
  #cancelled = new Set<string>();
  #options: RunManagerOptions;

  /** Makes a manager whose runs start in `options.cwd`. */
  constructor(options: RunManagerOptions) {
    this.#options = options;
  }

  /** The run of `id`, if known. */
  get(id: string): Run | undefined {
    return this.#runs.get(id);
  }

  /** True when a file was written by one of the runs. */
  wrote(path: string): boolean {
    for (const run of this.#runs.values()) if (run.files.has(path)) return true;
    return false;
  }

  /** Starts a run of `file` with `set` values (`key=value`); returns it. */
  start(file: string, set: readonly string[] = []): Run {
    this.#forgetOld();
    const id = crypto.randomUUID();
    const run: Run = { id, file, events: [], done: false, files: new Set() };
    this.#runs.set(id, run);
    const args = [
      "run",
      "--allow-read",
      "--allow-env",
      "--allow-run",
      `--config=${join(PROJECT_DIR, "deno.json")}`,
      join(PROJECT_DIR, "cli", "launch.ts"),
      "run",
      file,
      "--json",
      "--memory-report",
      ...set.flatMap((value) => ["--set", value]),
    ];
    const deno = this.#options.deno ?? Deno.execPath();
    // In a session of its own, so that Cancel reaches the launcher's child too (as Ctrl-C does).
    const command = hasSetsid()
      ? new Deno.Command("setsid", { args: [deno, ...args], ...this.#io() })
      : new Deno.Command(deno, { args, ...this.#io() });
    const child = command.spawn();
    this.#children.set(id, child);
    this.#follow(run, child);
    return run;
  }

  /** Asks a run to stop at its next step (Ctrl-C); false when it is not running. */
  cancel(id: string): boolean {
    const child = this.#children.get(id);
    if (!child) return false;
    this.#cancelled.add(id);
    try {
      if (hasSetsid()) Deno.kill(-child.pid, "SIGINT");
      else child.kill("SIGTERM");
    } catch {
      // It has just exited.
    }
    return true;
  }

  /** Calls `listener` with each past and future event of a run; returns a function to stop. */
  subscribe(id: string, listener: (event: ServerRunEvent) => void): () => void {
    const run = this.#runs.get(id);
    if (!run) return () => {};
    for (const event of run.events) listener(event);
    if (run.done) return () => {};
    const listeners = this.#listeners.get(id) ?? new Set();
    listeners.add(listener);
    this.#listeners.set(id, listeners);
    return () => listeners.delete(listener);
  }

  /** Cancels every run and waits for the children to exit. */
  async close(): Promise<void> {
    const children = [...this.#children.entries()];
    for (const [id] of children) this.cancel(id);
    await Promise.all(children.map(([, child]) => child.status.catch(() => {})));
  }

  #io() {
    return {
      cwd: this.#options.cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    } as const;
  }

  #emit(run: Run, event: ServerRunEvent): void {
    run.events.push(event);
    for (const listener of this.#listeners.get(run.id) ?? []) listener(event);
  }

  async #follow(run: Run, child: Deno.ChildProcess): Promise<void> {
    const stderr = readAll(child.stderr);
    let buffer = "";
    const decoder = new TextDecoder();
    const handleLine = (line: string) => {
      if (line.trim() === "") return;
      let event: RunEvent;
      try {
        event = JSON.parse(line);
      } catch {
        return;
      }
      if (event.type === "node_end" && event.files) event.files.forEach((f) => run.files.add(f));
      if (event.type === "run_end") event.files.forEach((file) => run.files.add(file));
      this.#emit(run, event);
    };
    for await (const chunk of child.stdout) {
      buffer += decoder.decode(chunk, { stream: true });
      let newline;
      while ((newline = buffer.indexOf("\n")) !== -1) {
        handleLine(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
      }
    }
    handleLine(buffer);
    const status = await child.status;
    const errors = await stderr;
    this.#children.delete(run.id);
    const chart = await this.#memoryChart(run);
    if (chart) run.files.add(chart);
    const code = status.code;
    const cancelled = this.#cancelled.has(run.id) || code === 130;
    const exit: RunExitEvent = {
      type: "run_exit",
      status: code === 0 ? "ok" : cancelled ? "cancelled" : code === 2 ? "invalid" : "failed",
      code,
      files: [...run.files],
      time: Date.now(),
    };
    if (code !== 0 && !cancelled) exit.message = lastLines(errors, 20);
    run.done = true;
    this.#emit(run, exit);
    this.#listeners.delete(run.id);
  }

  /** The memory chart the CLI writes beside the first output: `<name>.memory.svg`. */
  async #memoryChart(run: Run): Promise<string | undefined> {
    const start = run.events.find((event) => event.type === "run_start");
    const first = [...run.files][0];
    if (!start || start.type !== "run_start") return undefined;
    const folder = first ? dirname(first) : join(this.#options.cwd, "out");
    const chart = join(folder, `${start.workflow}.memory.svg`);
    try {
      await Deno.stat(chart);
      return chart;
    } catch {
      return undefined;
    }
  }

  #forgetOld(): void {
    const keep = this.#options.keep ?? 20;
    for (const [id, run] of this.#runs) {
      if (this.#runs.size < keep) break;
      if (run.done) this.#runs.delete(id);
    }
  }
}

let setsid: boolean | undefined;

function hasSetsid(): boolean {
  if (setsid === undefined) {
    setsid = ["/usr/bin/setsid", "/bin/setsid"].some((path) => {
      try {
        return Deno.statSync(path).isFile;
      } catch {
        return false;
      }
    });
  }
  return setsid;
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<string> {
  let text = "";
  const decoder = new TextDecoder();
  for await (const chunk of stream) {
    text += decoder.decode(chunk, { stream: true });
    // Only the end is shown: keep memory bounded for a chatty child.
    if (text.length > 64 * 1024) text = text.slice(-32 * 1024);
  }
  return text;
}

function lastLines(text: string, count: number): string {
  return text.trimEnd().split("\n").slice(-count).join("\n");
}
