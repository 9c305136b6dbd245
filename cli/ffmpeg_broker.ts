/**
 * The launcher's ffmpeg broker. The CLI child may run no program at all (ffmpeg with arguments of
 * a plugin's choosing reads and writes any file and opens sockets), so the launcher encodes
 * videos for it: it listens on a Unix socket in its private folder, checks each request
 * (`checkEncodeRequest`: a format from a list, bounded numbers), runs ffmpeg with arguments it
 * builds itself (`ffmpegArgs`), writing to a file in that private folder, and sends the encoded
 * file back. The child writes it to the output path with its own write permissions.
 *
 * The launcher runs the broker as a process of its own ({@link spawnFfmpegBroker}), which may
 * run only the ffmpeg binary and write only under the temporary folder: it makes its private
 * folder there (mode 0700), prints the socket's path, and stops when its stdin closes (when the
 * launcher ends, however it ends).
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ByteReader,
  checkEncodeRequest,
  ENCODE_LIMITS,
  ffmpegArgs,
  frameBytes,
  writeMessage,
} from "../media/ffmpeg_protocol.ts";

const SOCKET_NAME = "ffmpeg.sock";

/** The socket of a broker whose private folder is `dir`. */
export function ffmpegBrokerSocket(dir: string): string {
  return join(dir, SOCKET_NAME);
}

/** A running broker. */
export interface FfmpegBroker {
  /** The socket path to give the child. */
  path: string;
  /** Stops listening and stops any encode in progress. */
  close(): void;
}

/** Options of {@link startFfmpegBroker}. */
export interface FfmpegBrokerOptions {
  /** Finds the ffmpeg binary (called for each request, so that a missing one is reported then). */
  ffmpeg: () => Promise<string>;
  /** A private folder (mode 0700) for the socket and the encoded files. */
  dir: string;
  /** Encodes run at once; more connections wait (default 2). */
  concurrency?: number;
}

/** Starts a broker in this process, listening on `<dir>/ffmpeg.sock`. */
export function startFfmpegBroker(options: FfmpegBrokerOptions): FfmpegBroker {
  const path = ffmpegBrokerSocket(options.dir);
  const listener = Deno.listen({ transport: "unix", path });
  const running = new Set<Deno.ChildProcess>();
  let waiting: (() => void)[] = [];
  let active = 0;
  const limit = options.concurrency ?? 2;
  const slot = async () => {
    while (active >= limit) await new Promise<void>((wake) => waiting.push(wake));
    active++;
  };
  const release = () => {
    active--;
    const wake = waiting;
    waiting = [];
    wake.forEach((resume) => resume());
  };
  let count = 0;
  (async () => {
    for await (const connection of listener) {
      const id = count++;
      serve(connection, { ...options, output: join(options.dir, `encode-${id}`), running, slot })
        .finally(release)
        .catch(() => {});
    }
  })().catch(() => {});
  return {
    path,
    close: () => {
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      for (const child of running) {
        try {
          child.kill("SIGKILL");
        } catch {
          // Already gone.
        }
      }
    },
  };
}

/** Serves one connection: one request, one reply. */
async function serve(
  connection: Deno.Conn,
  context: FfmpegBrokerOptions & {
    output: string;
    running: Set<Deno.ChildProcess>;
    slot: () => Promise<void>;
  },
): Promise<void> {
  await context.slot();
  const reader = new ByteReader(connection.readable);
  const writer = connection.writable.getWriter();
  const refuse = (error: string) => writeMessage(writer, { ok: false, error }).catch(() => {});
  try {
    let message: unknown;
    try {
      message = await reader.readMessage(ENCODE_LIMITS.message);
    } catch (error) {
      await refuse(`Invalid request to the ffmpeg broker: ${(error as Error).message}`);
      return;
    }
    const request = checkEncodeRequest(message);
    if (typeof request === "string") {
      await refuse(`Invalid request to the ffmpeg broker: ${request}`);
      return;
    }
    let ffmpeg: string;
    try {
      ffmpeg = await context.ffmpeg();
    } catch (error) {
      await refuse((error as Error).message);
      return;
    }
    const child = new Deno.Command(ffmpeg, {
      args: ffmpegArgs(request, context.output),
      // ffmpeg needs no variable; and Deno refuses to start a program whose environment holds
      // LD_LIBRARY_PATH (which CUDA users set) under a scoped --allow-run.
      clearEnv: true,
      stdin: "piped",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    context.running.add(child);
    const stderr = new Response(child.stderr).text();
    const stdin = child.stdin.getWriter();
    let inputError: Error | undefined;
    try {
      await reader.forward(frameBytes(request), (chunk) => stdin.write(chunk));
      await stdin.close();
    } catch (error) {
      inputError = error as Error;
      await stdin.abort().catch(() => {});
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }
    const [status, text] = await Promise.all([child.status, stderr]);
    context.running.delete(child);
    if (inputError) {
      await refuse(`The ffmpeg broker did not get the frames: ${inputError.message}`);
      return;
    }
    if (!status.success) {
      const exit = status.signal ? `signal ${status.signal}` : `exit code ${status.code}`;
      const detail = text.trim().slice(-4000);
      await refuse(`ffmpeg failed (${exit})${detail ? `: ${detail}` : ""}`);
      return;
    }
    const bytes = await Deno.readFile(context.output);
    await writeMessage(writer, { ok: true, size: bytes.length });
    await writer.write(bytes);
  } finally {
    await Deno.remove(context.output).catch(() => {});
    await reader.cancel();
    await writer.close().catch(() => {});
    try {
      connection.close();
    } catch {
      // Already closed.
    }
  }
}

/** A broker process started by {@link spawnFfmpegBroker}. */
export interface BrokerProcess {
  /** The socket path to give the child. */
  path: string;
  /** Stops the broker (it removes its private folder). */
  stop(): Promise<void>;
}

/**
 * Starts the broker in a process of its own, in a new private folder `dir` (which must not exist):
 * it may run only `ffmpeg`, and touch only that folder and its socket. `missing` is the error to
 * give every request when no ffmpeg was found.
 */
export async function spawnFfmpegBroker(
  options: { ffmpeg?: string; missing?: string; dir: string; config: string },
): Promise<BrokerProcess> {
  const socket = ffmpegBrokerSocket(options.dir);
  const args = [
    "run",
    `--config=${options.config}`,
    "--no-remote",
    "--cached-only",
    "--frozen",
    `--allow-read=${options.dir}`,
    `--allow-write=${options.dir}`,
    `--allow-net=unix:${socket}`,
    ...(options.ffmpeg ? [`--allow-run=${options.ffmpeg}`] : []),
    "--no-prompt",
    fileURLToPath(import.meta.url),
    JSON.stringify({ dir: options.dir, ffmpeg: options.ffmpeg, missing: options.missing }),
  ];
  const child = new Deno.Command(Deno.execPath(), {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const stdin = child.stdin.getWriter();
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  if (new TextDecoder().decode(value ?? new Uint8Array()).trim() !== "ready") {
    await child.status;
    throw new Error("The ffmpeg broker did not start");
  }
  return {
    path: socket,
    stop: async () => {
      await stdin.close().catch(() => {});
      await child.status;
    },
  };
}

async function brokerMain(settings: { dir: string; ffmpeg?: string; missing?: string }) {
  // mkdir fails if the folder exists: nobody else can have prepared it.
  await Deno.mkdir(settings.dir, { mode: 0o700 });
  await Deno.chmod(settings.dir, 0o700);
  const ffmpeg = settings.ffmpeg;
  const broker = startFfmpegBroker({
    dir: settings.dir,
    ffmpeg: () => ffmpeg ? Promise.resolve(ffmpeg) : Promise.reject(new Error(settings.missing)),
  });
  // Ctrl-C reaches the whole process group: the CLI finishes the video it is saving, if any.
  Deno.addSignalListener("SIGINT", () => {});
  try {
    await Deno.stdout.write(new TextEncoder().encode("ready\n"));
    // The launcher holds stdin open for as long as it runs.
    await Deno.stdin.readable.pipeTo(new WritableStream()).catch(() => {});
  } finally {
    broker.close();
    await Deno.remove(settings.dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  await brokerMain(JSON.parse(Deno.args[0]));
  Deno.exit(0);
}
