/**
 * Runs a model split into parts (see `onnx_split.ts`) one part after another, with only the
 * running part resident, plus, when prefetching, the next part loading in a second worker while
 * the current one runs. Activations between parts travel as transferred buffers.
 *
 * After the last part, the first part of the next call is loaded ahead: a denoising loop calls the
 * transformer again right away.
 *
 * @module
 */

import type { SessionWorker } from "./session_client.ts";
import type { WorkerSessionOptions } from "./session_worker.ts";
import type { SplitPart } from "./onnx_split.ts";
import type { Tensor } from "./tensor.ts";

/** Timings and memory of one part, summed over calls. */
export interface PartStats {
  /** Part name. */
  name: string;
  /** Sessions created. */
  loads: number;
  /** Milliseconds creating sessions. */
  loadMs: number;
  /** Runs. */
  runs: number;
  /** Milliseconds in `run()`. */
  runMs: number;
  /** Milliseconds a run waited for its part to finish loading (loading not hidden). */
  waitMs: number;
  /** Resident memory the last load added, in bytes (process-wide, so approximate). */
  residentBytes: number;
}

/** Options of a {@link SequentialRunner}. */
export interface SequentialRunnerOptions {
  /** Session options of every part. */
  session: WorkerSessionOptions;
  /** Name prefix for sessions (`transformer`). */
  name: string;
  /** Load the next part while the current one runs (needs two workers). */
  prefetch: boolean;
}

interface Loaded {
  worker: SessionWorker;
  ready: Promise<void>;
}

/** Runs the parts of one split model in order. */
export class SequentialRunner {
  #parts: SplitPart[];
  #modelOutputs: string[];
  #workers: SessionWorker[];
  #options: SequentialRunnerOptions;
  #loaded = new Map<number, Loaded>();
  #stats: PartStats[];

  /** Uses `workers` (two when prefetching, else one) for the parts of a split. */
  constructor(
    split: { parts: SplitPart[]; modelOutputs: string[] },
    workers: SessionWorker[],
    options: SequentialRunnerOptions,
  ) {
    const parts = split.parts;
    if (parts.length === 0) throw new Error("A split model needs at least one part");
    this.#modelOutputs = split.modelOutputs;
    if (workers.length < (options.prefetch ? 2 : 1)) {
      throw new Error("Not enough workers for the split model");
    }
    this.#parts = parts;
    this.#workers = workers;
    this.#options = options;
    this.#stats = parts.map((part) => ({
      name: part.name,
      loads: 0,
      loadMs: 0,
      runs: 0,
      runMs: 0,
      waitMs: 0,
      residentBytes: 0,
    }));
  }

  /** The workers holding the parts. */
  get workers(): readonly SessionWorker[] {
    return this.#workers;
  }

  /** Per-part statistics so far. */
  get stats(): readonly PartStats[] {
    return this.#stats;
  }

  /** Names of the parts resident or loading now. */
  residentParts(): string[] {
    return [...this.#loaded.keys()].sort((a, b) => a - b).map((index) =>
      `${this.#options.name}[${this.#parts[index].name}]`
    );
  }

  /** Runs the whole model: feeds in, the model's outputs out. */
  async run(feeds: Record<string, Tensor>, signal?: AbortSignal): Promise<Record<string, Tensor>> {
    const available = new Map<string, Tensor>(Object.entries(feeds));
    const fromCaller = new Set(Object.keys(feeds));
    const lastReader = this.#lastReaders();
    signal?.throwIfAborted();
    this.#load(0, undefined);
    for (let index = 0; index < this.#parts.length; index++) {
      signal?.throwIfAborted();
      const part = this.#parts[index];
      const loaded = this.#loaded.get(index) ?? this.#load(index, undefined);
      const waitStarted = performance.now();
      await loaded.ready;
      this.#stats[index].waitMs += performance.now() - waitStarted;
      if (this.#options.prefetch) this.#load((index + 1) % this.#parts.length, loaded.worker);

      const partFeeds: Record<string, Tensor> = {};
      const transferable = new Set<string>();
      for (const name of part.inputs) {
        const tensor = available.get(name);
        if (!tensor) {
          throw new Error(`Part "${part.name}" needs "${name}", which no earlier part made`);
        }
        partFeeds[name] = tensor;
        // Activations no later part reads can move to the worker; the caller's feeds are copied.
        if (!fromCaller.has(name) && lastReader.get(name) === index) transferable.add(name);
      }
      const { outputs, runMs } = await loaded.worker.run(this.#sessionName(index), partFeeds, {
        transferable,
      });
      this.#stats[index].runs++;
      this.#stats[index].runMs += runMs;
      for (const [name, tensor] of Object.entries(outputs)) available.set(name, tensor);
      for (const name of part.inputs) {
        if (!fromCaller.has(name) && lastReader.get(name) === index) available.delete(name);
      }
      if (this.#parts.length > 1 || !this.#options.prefetch) await this.#unload(index);
    }
    const result: Record<string, Tensor> = {};
    for (const name of this.#modelOutputs) {
      const tensor = available.get(name);
      if (!tensor) throw new Error(`The parts made no model output "${name}"`);
      result[name] = tensor;
    }
    return result;
  }

  /** Releases every part's session. */
  async close(): Promise<void> {
    const indices = [...this.#loaded.keys()];
    await Promise.allSettled(indices.map((index) => this.#unload(index)));
  }

  #sessionName(index: number): string {
    return `${this.#options.name}#${this.#parts[index].name}`;
  }

  /** Starts loading part `index` in a worker other than `busy`, unless it is loaded. */
  #load(index: number, busy: SessionWorker | undefined): Loaded {
    const existing = this.#loaded.get(index);
    if (existing) return existing;
    const worker = this.#workers.find((candidate) => candidate !== busy) ?? this.#workers[0];
    const part = this.#parts[index];
    const stats = this.#stats[index];
    const ready = worker.create(this.#sessionName(index), part.path, this.#options.session).then(
      (created) => {
        stats.loads++;
        stats.loadMs += created.createMs;
        stats.residentBytes = Math.max(0, created.rssAfter - created.rssBefore);
      },
    );
    // A failed load is reported by the run that awaits it.
    ready.catch(() => {});
    const loaded = { worker, ready };
    this.#loaded.set(index, loaded);
    return loaded;
  }

  async #unload(index: number): Promise<void> {
    const loaded = this.#loaded.get(index);
    if (!loaded) return;
    this.#loaded.delete(index);
    await loaded.ready.catch(() => {});
    if (!loaded.worker.stopped) await loaded.worker.release(this.#sessionName(index));
  }

  /** For each tensor passed between parts, the index of the last part reading it. */
  #lastReaders(): Map<string, number> {
    const last = new Map<string, number>();
    this.#parts.forEach((part, index) => {
      for (const name of part.inputs) last.set(name, index);
    });
    return last;
  }
}
