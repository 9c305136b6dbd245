/**
 * The launcher behind `deno task cogflow`: works out which paths the command needs (see
 * `permissions.ts`) and runs the CLI in a child Deno process that may read and write only those,
 * load only onnxruntime-node's native binding, run no program, reach no network and fetch no
 * module (`--no-remote --cached-only`), and never write `deno.lock` (`--frozen`). ONNX Runtime
 * loads only in the session host's workers, which check every session request: the CLI gives up
 * FFI before any plugin loads (`confineOnnxRuntime`, runtime/session_client.ts). Videos are
 * encoded on the child's behalf by an ffmpeg broker (`ffmpeg_broker.ts`), a process of its own
 * that may run only ffmpeg.
 *
 * The command line reaches the child on its stdin (`child_args.ts`), not as arguments: long
 * arguments crash a process that loads ONNX Runtime in a Worker.
 *
 * Add folders with `--allow-read DIR` / `--allow-write DIR` (repeatable) or the environment
 * variables `COGFLOW_ALLOW_READ` / `COGFLOW_ALLOW_WRITE` (comma-separated).
 *
 * @module
 */

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ffmpegPath } from "../media/video_writer.ts";
import { FFMPEG_BROKER_VARIABLE } from "../media/ffmpeg_client.ts";
import { UserError } from "../runtime/user_error.ts";
import { ARGS_FROM_STDIN, checkArgumentSizes, sendArgs } from "./child_args.ts";
import { UsageError } from "./common.ts";
import { type BrokerProcess, ffmpegBrokerSocket, spawnFfmpegBroker } from "./ffmpeg_broker.ts";
import {
  permissionFlags,
  type PermissionScopes,
  scopesFor,
  splitLauncherOptions,
} from "./permissions.ts";

/** Runs the CLI in a child process with scoped permissions; returns its exit code. */
export async function launch(args: readonly string[]): Promise<number> {
  const projectDir = dirname(dirname(fileURLToPath(import.meta.url)));
  const list = (name: string) =>
    (Deno.env.get(name) ?? "").split(",").map((item) => item.trim()).filter(Boolean);
  let scopes: PermissionScopes;
  try {
    checkArgumentSizes(args);
    scopes = await scopesFor(args, {
      projectDir,
      cwd: Deno.cwd(),
      extraRead: list("COGFLOW_ALLOW_READ"),
      extraWrite: list("COGFLOW_ALLOW_WRITE"),
    });
  } catch (error) {
    if (!(error instanceof UserError || error instanceof UsageError)) throw error;
    console.error(`error: ${error.message}`);
    return 2;
  }
  for (const message of scopes.notGranted) console.error(`warning: ${message}`);
  const commandArgs = splitLauncherOptions(args).args;
  const config = join(projectDir, "deno.json");
  const env = childEnvironment();
  // Only `run` saves videos. The broker starts beside the CLI, which needs it only at the end.
  let broker: Promise<BrokerProcess | undefined> = Promise.resolve(undefined);
  env[FFMPEG_BROKER_VARIABLE] = "";
  if (commandArgs[0] === "run") {
    const dir = privateFolder();
    const socket = ffmpegBrokerSocket(dir);
    broker = startBroker(dir, config);
    env[FFMPEG_BROKER_VARIABLE] = socket;
    // The CLI may read and write the broker's socket (to connect), nothing else of its folder.
    scopes.read.push(socket);
    scopes.write.push(socket);
    scopes.net.push(`unix:${socket}`);
  }
  try {
    const child = new Deno.Command(Deno.execPath(), {
      env,
      args: [
        "run",
        `--config=${config}`,
        "--no-remote",
        "--cached-only",
        "--frozen",
        // The session host gets permissions of its own (runtime/session_client.ts).
        "--unstable-worker-options",
        ...permissionFlags(scopes),
        join(projectDir, "mod.ts"),
        ARGS_FROM_STDIN,
      ],
      stdin: "piped",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    await sendArgs(child.stdin, commandArgs);
    // Ctrl-C reaches the child too; it stops at the next step and exits with 130.
    const ignore = () => {};
    Deno.addSignalListener("SIGINT", ignore);
    try {
      const status = await child.status;
      return status.signal ? 128 + signalNumber(status.signal) : status.code;
    } finally {
      Deno.removeSignalListener("SIGINT", ignore);
    }
  } finally {
    await (await broker)?.stop();
  }
}

/** Starts the ffmpeg broker; when it cannot start, says so (saving a video then fails). */
async function startBroker(dir: string, config: string): Promise<BrokerProcess | undefined> {
  const ffmpeg = await ffmpegPath().then(
    (path) => ({ ffmpeg: path }),
    (error) => ({ missing: (error as Error).message }),
  );
  try {
    return await spawnFfmpegBroker({ ...ffmpeg, dir, config });
  } catch (error) {
    console.error(`warning: ${(error as Error).message}: videos cannot be saved`);
    return undefined;
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

/** A fresh path in the system's temporary folder for the broker's private folder. */
function privateFolder(): string {
  const random = crypto.getRandomValues(new Uint8Array(12));
  const suffix = Array.from(random, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return join(Deno.env.get("TMPDIR") || "/tmp", `cogflow-ffmpeg-${suffix}`);
}

function signalNumber(signal: Deno.Signal): number {
  return ({ SIGINT: 2, SIGTERM: 15, SIGKILL: 9, SIGHUP: 1 } as Record<string, number>)[signal] ?? 1;
}

if (import.meta.main) {
  Deno.exit(await launch(Deno.args));
}
