/**
 * The main-thread side of session workers: sends requests, matches replies, and turns worker
 * failures into errors. One worker can hold several sessions; calls to it run one at a time.
 *
 * Workers are started by the session host (`session_host.ts`) and talk to this thread on a
 * MessagePort of their own. Under the launcher the CLI calls {@link confineOnnxRuntime} before
 * any plugin loads: the host then holds permissions of its own, and this thread (and every Worker
 * started from it later) can load no native library, ONNX Runtime included. Elsewhere (tests,
 * the library) a host is started with the first worker and stopped with the last.
 *
 * @module
 */

import type { HostReply, HostRequest } from "./session_host.ts";
import { createTensor, type Tensor } from "./tensor.ts";
import type {
  CreatedSession,
  RunResult,
  WireTensor,
  WorkerReply,
  WorkerRequest,
  WorkerSessionOptions,
} from "./session_worker.ts";

/** Thrown by calls pending on a worker that was stopped. */
export class WorkerStopped extends Error {
  /** Makes the error. */
  constructor(reason = "The session worker was stopped") {
    super(reason);
    this.name = "WorkerStopped";
  }
}

/** Thrown when ONNX Runtime reports an error in the worker. */
export class SessionError extends Error {
  /** Makes the error from the worker's message. */
  constructor(message: string) {
    super(message);
    this.name = "SessionError";
  }
}

/**
 * The host's permissions when it has its own: what the session workers need (reading the models,
 * loading onnxruntime-node's binding, the environment, the memory figures) as this thread has
 * them now, which the host keeps when this thread gives them up; nothing else.
 */
const HOST_PERMISSIONS: Deno.PermissionOptionsObject = {
  read: "inherit",
  ffi: "inherit",
  env: "inherit",
  sys: "inherit",
  import: "inherit",
  write: false,
  net: false,
  run: false,
};

/** The main-thread side of the session host. */
class SessionHost {
  #worker: Worker;
  #failures = new Map<number, (message: string) => void>();
  #nextId = 1;
  #failed?: string;

  /** Starts the host, with {@link HOST_PERMISSIONS} when `pinned` (it then runs until exit). */
  constructor(readonly pinned: boolean) {
    const url = new URL("./session_host.ts", import.meta.url);
    this.#worker = new Worker(
      url,
      pinned ? { type: "module", deno: { permissions: HOST_PERMISSIONS } } : { type: "module" },
    );
    this.#worker.onmessage = (event: MessageEvent<HostReply>) => {
      const failure = this.#failures.get(event.data.id);
      this.#failures.delete(event.data.id);
      failure?.(event.data.message);
    };
    this.#worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      this.#failed = `The session host failed: ${event.message}`;
      this.#worker.terminate();
      const failures = [...this.#failures.values()];
      this.#failures.clear();
      for (const failure of failures) failure(this.#failed);
      // A pinned host cannot be replaced (this thread gave up FFI): later workers fail with why.
      if (sharedHost === this && !this.pinned) sharedHost = undefined;
    };
  }

  /** Starts a worker serving `port`; returns its id. `onFailure` hears if it fails. */
  spawn(port: MessagePort, onFailure: (message: string) => void): number {
    if (this.#failed) throw new WorkerStopped(this.#failed);
    const id = this.#nextId++;
    this.#failures.set(id, onFailure);
    this.#worker.postMessage({ op: "spawn", id, port } satisfies HostRequest, [port]);
    return id;
  }

  /** Stops worker `id` at once. A host that is not pinned stops with its last worker. */
  stop(id: number): void {
    if (this.#failed) return;
    this.#failures.delete(id);
    this.#worker.postMessage({ op: "stop", id } satisfies HostRequest);
    if (!this.pinned && this.#failures.size === 0) {
      // Its workers stop with it.
      this.#worker.terminate();
      this.#failed = "The session host was stopped";
      if (sharedHost === this) sharedHost = undefined;
    }
  }
}

/** The host new workers are started by. */
let sharedHost: SessionHost | undefined;

/**
 * Confines ONNX Runtime to the session host's workers: starts the host with permissions of its
 * own (this needs `--unstable-worker-options`), then revokes this thread's FFI permission, so
 * that no code on it (plugins) and no Worker started later can load a native library. Workers
 * started before keep what they loaded. Call it before any plugin loads; calling it again does
 * nothing.
 */
export function confineOnnxRuntime(): void {
  if (sharedHost?.pinned) return;
  try {
    sharedHost = new SessionHost(true);
  } catch (error) {
    throw new Error(
      `Cannot start the session host with permissions of its own (run Deno with ` +
        `--unstable-worker-options): ${(error as Error).message}`,
      { cause: error },
    );
  }
  Deno.permissions.revokeSync({ name: "ffi" });
}

type Pending = { resolve: (value: unknown) => void; reject: (error: Error) => void };

/** A worker holding ONNX Runtime sessions. */
export class SessionWorker {
  #port: MessagePort;
  #host?: SessionHost;
  #hostId = 0;
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #stopped?: Error;

  /** Starts a worker (through the session host). */
  constructor() {
    const { port1, port2 } = new MessageChannel();
    this.#port = port1;
    this.#port.onmessage = (event: MessageEvent<WorkerReply>) => {
      const reply = event.data;
      const pending = this.#pending.get(reply.id);
      if (!pending) return;
      this.#pending.delete(reply.id);
      if (reply.ok) pending.resolve(reply.result);
      else pending.reject(new SessionError(reply.error.message));
    };
    const host = sharedHost ??= new SessionHost(false);
    try {
      this.#hostId = host.spawn(
        port2,
        (message) => this.stop(new WorkerStopped(`The session worker failed: ${message}`)),
      );
      this.#host = host;
    } catch (error) {
      // The host is gone (it failed): every call fails with why.
      this.stop(error instanceof Error ? error : new WorkerStopped());
    }
  }

  /** True once stopped. */
  get stopped(): boolean {
    return this.#stopped !== undefined;
  }

  /** Creates (or replaces) session `session` from a model file or in-memory bytes. */
  create(
    session: string,
    model: string | Uint8Array,
    options: WorkerSessionOptions,
    externalData?: { path: string; data: Uint8Array }[],
  ): Promise<CreatedSession> {
    return this.#call({ id: 0, op: "create", session, model, options, externalData }) as Promise<
      CreatedSession
    >;
  }

  /**
   * Runs session `session`. Inputs are copied (the caller keeps them); tensors listed in
   * `transferable` are moved instead, detaching the caller's arrays.
   */
  async run(
    session: string,
    feeds: Record<string, Tensor>,
    options: { fetches?: string[]; transferable?: ReadonlySet<string> } = {},
  ): Promise<{ outputs: Record<string, Tensor>; runMs: number }> {
    const wire: Record<string, WireTensor> = {};
    const transfer: Transferable[] = [];
    for (const [name, tensor] of Object.entries(feeds)) {
      wire[name] = { dtype: tensor.dtype, shape: [...tensor.shape], data: tensor.data };
      const buffer = tensor.data.buffer;
      if (
        options.transferable?.has(name) && buffer instanceof ArrayBuffer &&
        !transfer.includes(buffer)
      ) {
        transfer.push(buffer);
      }
    }
    const result = await this.#call({
      id: 0,
      op: "run",
      session,
      feeds: wire,
      fetches: options.fetches,
    }, transfer) as RunResult;
    const outputs: Record<string, Tensor> = {};
    for (const [name, tensor] of Object.entries(result.outputs)) {
      outputs[name] = createTensor(tensor.dtype, tensor.shape, tensor.data);
    }
    return { outputs, runMs: result.runMs };
  }

  /** Releases session `session` (its memory goes back to the system). */
  async release(session: string): Promise<void> {
    await this.#call({ id: 0, op: "release", session });
  }

  /** Stops the worker at once; pending calls fail with `reason`. */
  stop(reason: Error = new WorkerStopped()): void {
    if (this.#stopped) return;
    this.#stopped = reason;
    this.#port.close();
    this.#host?.stop(this.#hostId);
    for (const pending of this.#pending.values()) pending.reject(reason);
    this.#pending.clear();
  }

  #call(request: WorkerRequest, transfer: Transferable[] = []): Promise<unknown> {
    if (this.#stopped) return Promise.reject(this.#stopped);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#port.postMessage({ ...request, id }, { transfer });
    });
  }
}
