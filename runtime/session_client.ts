/**
 * The main-thread side of session workers: sends requests, matches replies, and turns worker
 * failures into errors. One worker can hold several sessions; calls to it run one at a time.
 *
 * Each worker serves one MessagePort. Under the launcher the CLI calls {@link confineOnnxRuntime}
 * before any plugin loads: workers are then started by the session host (`session_host.ts`),
 * which holds permissions of its own, and this thread (and every Worker started from it later)
 * can load no native library, ONNX Runtime included. Elsewhere (tests, the library, `deno run -A
 * mod.ts`) this thread starts them itself, with the same requests and checks.
 *
 * @module
 */

import type { HostReply, HostRequest } from "./session_host.ts";
import { createTensor, type Tensor } from "./tensor.ts";
import type { WorkerChainPlan } from "./session_guard.ts";
import type {
  CreatedChain,
  CreatedSession,
  KeptFeed,
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
 * The host's permissions: what the session workers need (reading the models, loading
 * onnxruntime-node's binding, the environment, the memory figures) as this thread has them now,
 * which the host keeps when this thread gives them up; nothing else.
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

/**
 * Copied feeds at least this large are copied here and the copy transferred: postMessage's
 * structured clone copies an ArrayBuffer at about 0.5 GB/s (a CogVideoX-2b step's 151 MB of
 * feeds took 316 ms, `bench/step_feed_overhead.ts`), `slice()` at memory speed. (A
 * SharedArrayBuffer would save that copy, but onnxruntime-node refuses tensors on one.)
 */
const COPY_AND_TRANSFER_BYTES = 1 << 20;

/** The main-thread side of the session host. */
class SessionHost {
  #worker: Worker;
  #waiting = new Map<number, Waiting>();
  #nextId = 1;
  #failed?: string;

  /** Starts the host with {@link HOST_PERMISSIONS}; it runs until the process exits. */
  constructor() {
    this.#worker = new Worker(new URL("./session_host.ts", import.meta.url), {
      type: "module",
      deno: { permissions: HOST_PERMISSIONS },
    });
    this.#worker.onmessage = (event: MessageEvent<HostReply>) => {
      const reply = event.data;
      const waiting = this.#waiting.get(reply.id);
      if (reply.op === "spawned") {
        if (waiting) waiting.onPort(reply.port);
        else reply.port.close();
      } else {
        this.#waiting.delete(reply.id);
        waiting?.onFailure(reply.message);
      }
    };
    this.#worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      this.#failed = `The session host failed: ${event.message}`;
      this.#worker.terminate();
      const waiting = [...this.#waiting.values()];
      this.#waiting.clear();
      for (const { onFailure } of waiting) onFailure(this.#failed);
    };
  }

  /** Has a worker started; returns its id. `waiting` hears of its port, or of its failure. */
  spawn(waiting: Waiting): number {
    // This thread gave up FFI: a failed host cannot be replaced.
    if (this.#failed) throw new WorkerStopped(this.#failed);
    const id = this.#nextId++;
    this.#waiting.set(id, waiting);
    this.#worker.postMessage({ op: "spawn", id } satisfies HostRequest);
    return id;
  }

  /** Stops worker `id` at once. */
  stop(id: number): void {
    this.#waiting.delete(id);
    if (!this.#failed) this.#worker.postMessage({ op: "stop", id } satisfies HostRequest);
  }
}

interface Waiting {
  onPort: (port: MessagePort) => void;
  onFailure: (message: string) => void;
}

/** The session host, once {@link confineOnnxRuntime} started it. */
let confinedHost: SessionHost | undefined;

/**
 * Confines ONNX Runtime to the session host's workers: starts the host with permissions of its
 * own (this needs `--unstable-worker-options`), then revokes this thread's FFI permission, so
 * that no code on it (plugins) and no Worker started later can load a native library. From then
 * on every {@link SessionWorker} is started by the host. Call it before any plugin loads; calling
 * it again does nothing.
 */
export function confineOnnxRuntime(): void {
  if (confinedHost) return;
  try {
    confinedHost = new SessionHost();
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

/**
 * A worker holding ONNX Runtime sessions: started by the session host once ONNX Runtime is
 * confined (see {@link confineOnnxRuntime}), else by this thread. Either way it serves one
 * MessagePort, and takes requests only through session_guard.ts's checks.
 */
export class SessionWorker {
  #port?: MessagePort;
  /** Messages sent before the host handed over the port. */
  #queued: [WorkerRequest, Transferable[]][] = [];
  #terminate: () => void = () => {};
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #stopped?: Error;
  /** Per session, the arrays of `unchanged` feeds the worker keeps, by input name. */
  #sentUnchanged = new Map<string, Map<string, unknown>>();

  /** Starts a worker. */
  constructor() {
    const failed = (message: string) =>
      this.stop(new WorkerStopped(`The session worker failed: ${message}`));
    if (!confinedHost) {
      const worker = new Worker(new URL("./session_worker.ts", import.meta.url), {
        type: "module",
      });
      worker.onerror = (event: ErrorEvent) => {
        event.preventDefault();
        failed(event.message);
      };
      const { port1, port2 } = new MessageChannel();
      worker.postMessage(port2, [port2]);
      this.#terminate = () => worker.terminate();
      this.#connect(port1);
      return;
    }
    const host = confinedHost;
    try {
      const id = host.spawn({
        onPort: (port) => this.#stopped ? port.close() : this.#connect(port),
        onFailure: failed,
      });
      this.#terminate = () => host.stop(id);
    } catch (error) {
      // The host failed: every call fails with why.
      this.stop(error instanceof Error ? error : new WorkerStopped());
    }
  }

  #connect(port: MessagePort) {
    this.#port = port;
    port.onmessage = (event: MessageEvent<WorkerReply>) => {
      const reply = event.data;
      const pending = this.#pending.get(reply.id);
      if (!pending) return;
      this.#pending.delete(reply.id);
      if (reply.ok) pending.resolve(reply.result);
      else pending.reject(new SessionError(reply.error.message));
    };
    for (const [message, transfer] of this.#queued) port.postMessage(message, { transfer });
    this.#queued = [];
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
    this.#sentUnchanged.delete(session);
    return this.#call({ id: 0, op: "create", session, model, options, externalData }) as Promise<
      CreatedSession
    >;
  }

  /**
   * Runs session `session`. Inputs are copied (the caller keeps them; large ones are copied here
   * and the copy moved, see COPY_AND_TRANSFER_BYTES); tensors listed in `transferable` are moved
   * instead, detaching the caller's arrays. Feeds listed in `unchanged` are kept by the worker:
   * passed again with the same array, they are not sent again (the caller must not change an
   * array it passes as unchanged; another array replaces the kept one).
   */
  async run(
    session: string,
    feeds: Record<string, Tensor>,
    options: {
      fetches?: string[];
      transferable?: ReadonlySet<string>;
      unchanged?: ReadonlySet<string>;
    } = {},
  ): Promise<{ outputs: Record<string, Tensor>; runMs: number; partMs?: number[] }> {
    const wire: Record<string, WireTensor | KeptFeed> = {};
    const transfer: Transferable[] = [];
    const keep: string[] = [];
    let sent = this.#sentUnchanged.get(session);
    for (const [name, tensor] of Object.entries(feeds)) {
      if (options.unchanged?.has(name)) {
        if (sent?.get(name) === tensor.data) {
          wire[name] = { kept: true };
          continue;
        }
        if (!sent) this.#sentUnchanged.set(session, sent = new Map());
        sent.set(name, tensor.data);
        keep.push(name);
      }
      let data = tensor.data;
      const moved = options.transferable?.has(name) && data.buffer instanceof ArrayBuffer;
      if (!moved && data.byteLength >= COPY_AND_TRANSFER_BYTES) data = data.slice();
      if ((moved || data !== tensor.data) && !transfer.includes(data.buffer as ArrayBuffer)) {
        transfer.push(data.buffer as ArrayBuffer);
      }
      wire[name] = { dtype: tensor.dtype, shape: [...tensor.shape], data };
    }
    const result = await this.#call({
      id: 0,
      op: "run",
      session,
      feeds: wire,
      ...(keep.length > 0 ? { keep } : {}),
      fetches: options.fetches,
    }, transfer) as RunResult;
    const outputs: Record<string, Tensor> = {};
    for (const [name, tensor] of Object.entries(result.outputs)) {
      outputs[name] = createTensor(tensor.dtype, tensor.shape, tensor.data);
    }
    return { outputs, runMs: result.runMs, partMs: result.partMs };
  }

  /**
   * Creates (or replaces) streamed model `session` (runtime/streamed_chain.ts): its parts'
   * sessions, and its weights read into the worker's host memory. Runs go through {@link run}.
   */
  createChain(
    session: string,
    plan: WorkerChainPlan,
    options: WorkerSessionOptions,
  ): Promise<CreatedChain> {
    this.#sentUnchanged.delete(session);
    return this.#call({ id: 0, op: "create_chain", session, plan, options }) as Promise<
      CreatedChain
    >;
  }

  /** Releases session `session` (its memory goes back to the system). */
  async release(session: string): Promise<void> {
    this.#sentUnchanged.delete(session);
    await this.#call({ id: 0, op: "release", session });
  }

  /** Stops the worker at once; pending calls fail with `reason`. */
  stop(reason: Error = new WorkerStopped()): void {
    if (this.#stopped) return;
    this.#stopped = reason;
    this.#port?.close();
    this.#queued = [];
    this.#terminate();
    for (const pending of this.#pending.values()) pending.reject(reason);
    this.#pending.clear();
  }

  #call(request: WorkerRequest, transfer: Transferable[] = []): Promise<unknown> {
    if (this.#stopped) return Promise.reject(this.#stopped);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      const message = { ...request, id };
      if (this.#port) this.#port.postMessage(message, { transfer });
      else this.#queued.push([message, transfer]);
    });
  }
}
