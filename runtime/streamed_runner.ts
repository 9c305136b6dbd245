/**
 * Sequential offload by weight streaming, on the main thread's side: a built model's parts run in
 * one session worker as a streamed chain (runtime/streamed_chain.ts), made once and kept while
 * the model is in use; each call sends the model's inputs and gets its outputs back, as a
 * resident model does. On a GPU this keeps one part's weights and activations on the device and
 * every activation off the JS boundary (onnxruntime-node copies each output back to JS at about
 * 1.1 GB/s; a CogVideoX-2b step in parts moved 31 x 273 MB that way).
 *
 * Its statistics have a SequentialRunner's shape: the chain's creation is the first
 * part's one load; each part's runs and milliseconds come from the worker.
 *
 * @module
 */

import type { CreatedChain } from "./session_worker.ts";
import type { WorkerChainPlan, WorkerSessionOptions } from "./session_guard.ts";
import type { PartStats } from "./sequential_runner.ts";
import type { SessionWorker } from "./session_client.ts";
import type { Tensor } from "./tensor.ts";

/** A streamed model in a session worker. */
export class StreamedRunner {
  readonly #worker: SessionWorker;
  readonly #session: string;
  readonly #name: string;
  readonly #stats: PartStats[];
  readonly #created: CreatedChain;

  private constructor(
    worker: SessionWorker,
    session: string,
    name: string,
    plan: WorkerChainPlan,
    created: CreatedChain,
  ) {
    this.#worker = worker;
    this.#session = session;
    this.#name = name;
    this.#created = created;
    this.#stats = plan.parts.map((part, index) => ({
      name: part.name,
      loads: index === 0 ? 1 : 0,
      packedLoads: 0,
      loadMs: index === 0 ? created.createMs : 0,
      runs: 0,
      runMs: 0,
      waitMs: 0,
      residentBytes: index === 0 ? Math.max(0, created.rssAfter - created.rssBefore) : 0,
      provider: created.provider,
    }));
  }

  /** Creates model `name`'s streamed chain in `worker`: sessions made, weights read. */
  static async create(
    worker: SessionWorker,
    name: string,
    plan: WorkerChainPlan,
    options: WorkerSessionOptions,
  ): Promise<StreamedRunner> {
    const session = `${name}#streamed`;
    const created = await worker.createChain(session, plan, options);
    return new StreamedRunner(worker, session, name, plan, created);
  }

  /** The worker holding the chain. */
  get workers(): readonly SessionWorker[] {
    return [this.#worker];
  }

  /** Per-part statistics so far. */
  get stats(): readonly PartStats[] {
    return this.#stats;
  }

  /** Streamed parts hold no weights to repack. */
  get prepack(): { packed: boolean; why: string } {
    return { packed: false, why: "weights streamed: the parts' sessions hold none" };
  }

  /** What the chain holds: how many sessions, and the weights in host memory. */
  get created(): CreatedChain {
    return this.#created;
  }

  /** The chain, resident while the model is in use. */
  residentParts(): string[] {
    return [`${this.#name}[streamed]`];
  }

  /** Runs the whole model: feeds in, the model's outputs out. */
  async run(feeds: Record<string, Tensor>, signal?: AbortSignal): Promise<Record<string, Tensor>> {
    signal?.throwIfAborted();
    const { outputs, partMs } = await this.#worker.run(this.#session, feeds);
    for (const [index, ms] of (partMs ?? []).entries()) {
      const stats = this.#stats[index];
      if (!stats) continue;
      stats.runs++;
      stats.runMs += ms;
    }
    return outputs;
  }

  /** Releases the chain's sessions and host weights. */
  async close(): Promise<void> {
    if (!this.#worker.stopped) await this.#worker.release(this.#session);
  }
}
