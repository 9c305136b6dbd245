/**
 * The session host: the thread that starts session workers (`session_worker.ts`). Under the
 * launcher the CLI starts it with permissions of its own before any plugin loads, then gives up
 * its own right to load native libraries (`confineOnnxRuntime` in `session_client.ts`), so that
 * ONNX Runtime loads only in the workers this host starts, which take requests only through
 * `session_guard.ts`'s checks.
 *
 * The host only starts and stops workers and hands the main thread the MessagePort each serves,
 * so tensors go between them directly, as transferred buffers, never through the host. It starts
 * nothing but `session_worker.ts`. A worker started by a worker takes about half a second to start
 * and half a second more to get its first message (Deno 2.9), so the host keeps one started
 * ahead, its port already sent, and hands that one out.
 *
 * @module
 */

/// <reference lib="deno.worker" />

/** A request to the host. */
export type HostRequest =
  /** Starts worker `id`; the host replies with its port. */
  | { op: "spawn"; id: number }
  /** Stops worker `id` at once. */
  | { op: "stop"; id: number };

/** A message from the host. */
export type HostReply =
  /** Worker `id` is started and serves `port`. */
  | { op: "spawned"; id: number; port: MessagePort }
  /** Worker `id` failed (and was stopped). */
  | { op: "failed"; id: number; message: string };

interface Started {
  worker: Worker;
  /** The other end of the port the worker serves. */
  port: MessagePort;
  /** The id it was handed out as; 0 while it is the spare. */
  id: number;
}

const workers = new Map<number, Started>();
let spare: Started | undefined = start();

self.onmessage = (event: MessageEvent<HostRequest>) => {
  const request = event.data;
  if (request.op === "spawn" && Number.isInteger(request.id) && request.id > 0) {
    spawn(request.id);
  } else if (request.op === "stop") stop(request.id);
};

function start(): Started {
  const worker = new Worker(new URL("./session_worker.ts", import.meta.url), { type: "module" });
  const { port1, port2 } = new MessageChannel();
  const started: Started = { worker, port: port1, id: 0 };
  worker.onerror = (event: ErrorEvent) => {
    event.preventDefault();
    worker.terminate();
    if (spare === started) spare = undefined;
    if (started.id === 0) return;
    stop(started.id);
    self.postMessage({ op: "failed", id: started.id, message: event.message } satisfies HostReply);
  };
  worker.postMessage(port2, [port2]);
  return started;
}

function spawn(id: number) {
  stop(id);
  const started = spare ?? start();
  spare = start();
  started.id = id;
  workers.set(id, started);
  self.postMessage(
    { op: "spawned", id, port: started.port } satisfies HostReply,
    [started.port],
  );
}

function stop(id: number) {
  workers.get(id)?.worker.terminate();
  workers.delete(id);
}
