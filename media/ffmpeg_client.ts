/**
 * The video writer's side of the launcher's ffmpeg broker (`cli/ffmpeg_broker.ts`). Under the
 * launcher, the CLI may run no program: it sends an encode request and the raw frames over a
 * Unix socket, and gets the encoded file back, which it writes itself (so where a video goes is
 * decided by the CLI's own write permissions, nothing else).
 *
 * @module
 */

import {
  ByteReader,
  ENCODE_LIMITS,
  type EncodeRequest,
  frameBytes,
  writeMessage,
} from "./ffmpeg_protocol.ts";

/** The environment variable naming the broker's socket. */
export const FFMPEG_BROKER_VARIABLE = "COGFLOW_FFMPEG_BROKER";

/** The broker's socket path, when this process runs under the launcher. */
export function ffmpegBrokerPath(): string | undefined {
  try {
    return Deno.env.get(FFMPEG_BROKER_VARIABLE) || undefined;
  } catch {
    // No permission to read it: not started by the launcher.
    return undefined;
  }
}

/**
 * Has the broker at `socketPath` encode `frames` (raw bytes, `request.frames` of them); returns
 * the encoded file. Aborting closes the connection, which stops the broker's ffmpeg.
 */
export async function encodeThroughBroker(
  socketPath: string,
  request: EncodeRequest,
  frames: readonly Uint8Array[],
  signal?: AbortSignal,
): Promise<Uint8Array> {
  signal?.throwIfAborted();
  const expected = frameBytes(request);
  const given = frames.reduce((sum, frame) => sum + frame.length, 0);
  if (given !== expected) {
    throw new RangeError(`Frames hold ${given} bytes, the request announces ${expected}`);
  }
  let connection: Deno.UnixConn;
  try {
    connection = await Deno.connect({ transport: "unix", path: socketPath });
  } catch (error) {
    throw new Error(`Cannot reach the ffmpeg broker "${socketPath}": ${(error as Error).message}`);
  }
  const close = () => {
    try {
      connection.close();
    } catch {
      // Already closed.
    }
  };
  signal?.addEventListener("abort", close);
  const reader = new ByteReader(connection.readable);
  const writer = connection.writable.getWriter();
  try {
    const sending = (async () => {
      await writeMessage(writer, request);
      for (const frame of frames) await writer.write(frame);
    })();
    // The broker may refuse the request before reading the frames: its reply says why.
    const reply = await reader.readMessage(ENCODE_LIMITS.message) as {
      ok?: boolean;
      size?: number;
      error?: string;
    };
    if (!reply.ok) {
      sending.catch(() => {});
      throw new Error(reply.error ?? "The ffmpeg broker failed without saying why");
    }
    await sending;
    return await reader.readExactly(reply.size ?? 0);
  } catch (error) {
    signal?.throwIfAborted();
    throw error;
  } finally {
    signal?.removeEventListener("abort", close);
    close();
  }
}
