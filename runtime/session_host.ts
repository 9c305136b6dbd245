/**
 * The session host: the thread that starts session workers (`session_worker.ts`). Under the
 * launcher the CLI starts it with permissions of its own before any plugin loads, then gives up
 * its own right to load native libraries (`confineOnnxRuntime` in `session_client.ts`), so that
 * ONNX Runtime loads only in the workers this host starts, which take requests only through
 * `session_guard.ts`'s checks.
 *
 * The host only starts and stops workers: each gets the MessagePort the main thread talks to it
 * on, so tensors go between them directly, as transferred buffers, never through the host. The
 * host starts nothing but `session_worker.ts` and replies only to say that a worker failed.
 *
 * @module
 */

/// <reference lib="deno.worker" />

/** A request to the host. */
export type HostRequest =
  /** Starts worker `id`, serving `port`. */
  | { op: "spawn"; id: number; port: MessagePort }
  /** Stops worker `id` at once. */
  | { op: "stop"; id: number };

/** A message from the host: worker `id` failed (and was stopped). */
export interface HostReply {
  /** Always "failed". */
  op: "failed";
  /** The worker. */
  id: number;
  /** Why. */
  message: string;
}

const workers = new Map<number, Worker>();

self.onmessage = (event: MessageEvent<HostRequest>) => {
  const request = event.data;
  if (request.op === "spawn" && request.port instanceof MessagePort) {
    spawn(request.id, request.port);
  } else if (request.op === "stop") stop(request.id);
};

function spawn(id: number, port: MessagePort) {
  stop(id);
  const worker = new Worker(new URL("./session_worker.ts", import.meta.url), { type: "module" });
  worker.onerror = (event: ErrorEvent) => {
    event.preventDefault();
    stop(id);
    self.postMessage({ op: "failed", id, message: event.message } satisfies HostReply);
  };
  workers.set(id, worker);
  worker.postMessage(port, [port]);
}

function stop(id: number) {
  workers.get(id)?.terminate();
  workers.delete(id);
}
