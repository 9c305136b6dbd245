/**
 * The launcher behind `deno task cogflow`: works out which folders the command needs (see
 * `permissions.ts`) and runs the CLI in a child Deno process that may read and write only those,
 * load native code only from node_modules, run only ffmpeg, and reach no network.
 *
 * Add folders with `--allow-read DIR` / `--allow-write DIR` (repeatable) or the environment
 * variables `COGFLOW_ALLOW_READ` / `COGFLOW_ALLOW_WRITE` (comma-separated).
 *
 * @module
 */

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ffmpegPath } from "../media/video_writer.ts";
import { permissionFlags, scopesFor, splitLauncherOptions } from "./permissions.ts";

/** Runs the CLI in a child process with scoped permissions; returns its exit code. */
export async function launch(args: readonly string[]): Promise<number> {
  const projectDir = dirname(dirname(fileURLToPath(import.meta.url)));
  const list = (name: string) =>
    (Deno.env.get(name) ?? "").split(",").map((item) => item.trim()).filter(Boolean);
  const scopes = await scopesFor(args, {
    projectDir,
    cwd: Deno.cwd(),
    // Without ffmpeg the child may run no program; saving a video then says what is missing.
    ffmpeg: await ffmpegPath().catch(() => undefined),
    extraRead: list("COGFLOW_ALLOW_READ"),
    extraWrite: list("COGFLOW_ALLOW_WRITE"),
  });
  const child = new Deno.Command(Deno.execPath(), {
    env: childEnvironment(),
    args: [
      "run",
      `--config=${join(projectDir, "deno.json")}`,
      ...permissionFlags(scopes),
      join(projectDir, "mod.ts"),
      ...splitLauncherOptions(args).args,
    ],
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  // Ctrl-C reaches the child too; it stops at the next step and exits with 130.
  const ignore = () => {};
  Deno.addSignalListener("SIGINT", ignore);
  try {
    const status = await child.status;
    return status.signal ? 128 + signalNumber(status.signal) : status.code;
  } finally {
    Deno.removeSignalListener("SIGINT", ignore);
  }
}

/**
 * glibc keeps memory that ONNX Runtime's worker threads free (a released session's weights) for
 * reuse, so offloading models would not lower the process's resident size; with a trim threshold
 * of 0 it returns freed memory to the system at once (see bench/RESULTS.md, B4). A value the user
 * set is kept.
 */
function childEnvironment(): Record<string, string> {
  return Deno.env.has("MALLOC_TRIM_THRESHOLD_") ? {} : { MALLOC_TRIM_THRESHOLD_: "0" };
}

function signalNumber(signal: Deno.Signal): number {
  return ({ SIGINT: 2, SIGTERM: 15, SIGKILL: 9, SIGHUP: 1 } as Record<string, number>)[signal] ?? 1;
}

if (import.meta.main) {
  Deno.exit(await launch(Deno.args));
}
