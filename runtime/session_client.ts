/**
 * The main-thread side of a session worker: sends requests, matches replies, and turns worker
 * failures into errors. One worker can hold several sessions; calls to it run one at a time.
 *
 * @module
 */

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

type Pending = { resolve: (value: unknown) => void; reject: (error: Error) => void };

/** A worker holding ONNX Runtime sessions. */
export class SessionWorker {
  #worker: Worker;
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #stopped?: Error;

  /** Starts a worker. */
  constructor() {
    this.#worker = new Worker(new URL("./session_worker.ts", import.meta.url), { type: "module" });
    this.#worker.onmessage = (event: MessageEvent<WorkerReply>) => {
      const reply = event.data;
      const pending = this.#pending.get(reply.id);
      if (!pending) return;
      this.#pending.delete(reply.id);
      if (reply.ok) pending.resolve(reply.result);
      else pending.reject(new SessionError(reply.error.message));
    };
    this.#worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      this.stop(new WorkerStopped(`The session worker failed: ${event.message}`));
    };
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
    this.#worker.terminate();
    for (const pending of this.#pending.values()) pending.reject(reason);
    this.#pending.clear();
  }

  #call(request: WorkerRequest, transfer: Transferable[] = []): Promise<unknown> {
    if (this.#stopped) return Promise.reject(this.#stopped);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ ...request, id }, { transfer });
    });
  }
}
