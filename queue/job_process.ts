/**
 * Runs one job's `cogflow run --json` in a child process and reads its events. The child runs in
 * a process group of its own with a watchdog that holds a pipe from the worker: when the worker
 * dies (`kill -9`, a lost machine's reboot), the pipe closes and the watchdog kills the whole
 * group, so no orphan keeps computing or writes an output after its job was handed to another
 * worker. cogflow writes outputs atomically, so a killed run leaves no partial file.
 *
 * @module
 */

import { escapeControl, type RunEvent } from "../engine/mod.ts";

/** How a job's process ended. */
export interface JobProcessResult {
  /** The exit code (128 + the signal's number when a signal ended it). */
  exitCode: number;
  /** Files the run wrote (from its `run_end` event). */
  files: string[];
  /** What the run printed on stderr (its error messages), at most the last 8,000 characters. */
  stderr: string;
}

/** Options of {@link runJobProcess}. */
export interface JobProcessOptions {
  /** The child's current folder. */
  cwd: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Receives every event of the run, in order. */
  onEvent: (event: RunEvent) => void;
  /** Receives the run's stderr as it comes. */
  onStderr?: (text: string) => void;
  /** Aborting interrupts the run (as Ctrl-C does: it stops at the next step and exits 130). */
  signal?: AbortSignal;
  /** After an interrupt, how long before the run is killed (default 30 s). */
  killAfterMs?: number;
}

// The watchdog: "interrupt" lines send SIGINT to the group, the end of its input (the worker
// closed the pipe or died) sends SIGKILL. An asynchronous list ignores SIGINT itself, and reads
// /dev/null unless given another descriptor: the pipe goes to it as descriptor 3.
const WATCHDOG =
  `exec 3<&0; ( while read -r line <&3; do [ "$line" = interrupt ] && kill -INT 0; ` +
  `done; kill -KILL 0 ) >/dev/null 2>&1 & exec "$@" </dev/null 3<&-`;

/** Runs `command` with `args` (a `cogflow run --json` command line); resolves when it ends. */
export async function runJobProcess(
  command: string,
  args: readonly string[],
  options: JobProcessOptions,
): Promise<JobProcessResult> {
  const child = new Deno.Command("setsid", {
    args: ["-w", "sh", "-c", WATCHDOG, "cogflow-job", command, ...args],
    cwd: options.cwd,
    env: options.env,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const control = child.stdin.getWriter();
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  const onAbort = () => {
    control.write(new TextEncoder().encode("interrupt\n")).catch(() => {});
    killTimer = setTimeout(() => control.close().catch(() => {}), options.killAfterMs ?? 30_000);
  };
  if (options.signal?.aborted) onAbort();
  options.signal?.addEventListener("abort", onAbort, { once: true });

  let files: string[] = [];
  let stderr = "";
  const keep = (text: string) => {
    stderr = (stderr + text).slice(-8000);
    options.onStderr?.(text);
  };
  const readEvents = async () => {
    for await (const line of lines(child.stdout)) {
      if (line.trim() === "") continue;
      let event: RunEvent;
      try {
        event = JSON.parse(line);
      } catch {
        keep(`${escapeControl(line)}\n`);
        continue;
      }
      if (event.type === "run_end") files = [...(event.files ?? [])];
      options.onEvent(event);
    }
  };
  const readErrors = async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) keep(decoder.decode(chunk, { stream: true }));
  };
  const reading = Promise.all([readEvents(), readErrors()]);
  try {
    const status = await child.status;
    // Ends the watchdog, and with it anything of the run still in its group (holding its output).
    await control.close().catch(() => {});
    await reading;
    return {
      exitCode: status.signal ? 128 + signalNumber(status.signal) : status.code,
      files,
      stderr,
    };
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    clearTimeout(killTimer);
    await control.close().catch(() => {});
  }
}

/** The stream's text, line by line. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffered = "";
  for await (const chunk of stream) {
    buffered += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
    }
  }
  if (buffered !== "") yield buffered;
}

function signalNumber(signal: Deno.Signal): number {
  return ({ SIGINT: 2, SIGTERM: 15, SIGKILL: 9, SIGHUP: 1 } as Record<string, number>)[signal] ?? 1;
}
