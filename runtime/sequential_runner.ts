/**
 * Runs a model split into parts (see `onnx_split.ts`) one part after another, with only the
 * running part resident, plus, when prefetching, the next part loading in a second worker while
 * the current one runs. Activations between parts travel as transferred buffers.
 *
 * After the last part, the first part of the next call is loaded ahead: a denoising loop calls the
 * transformer again right away.
 *
 * Parts load without repacking their weights unless the prepacking policy says otherwise (see
 * {@link AutoPrepack}).
 *
 * @module
 */

import type { SessionWorker } from "./session_client.ts";
import type { WorkerSessionOptions } from "./session_worker.ts";
import { type SplitPart, verifySplitPart } from "./onnx_split.ts";
import type { Tensor } from "./tensor.ts";
import { quote } from "./quote.ts";

/**
 * A part as the runner runs it: a split's part, or a part built from safetensors weights
 * (builders/built_parts.ts), whose external data lie in the weights' folder.
 */
export interface RunnerPart extends SplitPart {
  /** The folder the part's external data locations are relative to, when not its file's own. */
  externalDataFolder?: string;
}

/** Timings and memory of one part, summed over calls. */
export interface PartStats {
  /** Part name. */
  name: string;
  /** Sessions created. */
  loads: number;
  /** Of those, sessions created with their weights repacked. */
  packedLoads: number;
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
  /** The provider the last load got (the CPU after a fallback). */
  provider?: string;
  /** Why the last load fell back to the CPU. */
  fallbackReason?: string;
}

/** Whether parts repack their weights when loaded: decided by measurement, always, or never. */
export type PrepackPolicy = "auto" | "always" | "never";

/** Options of a {@link SequentialRunner}. */
export interface SequentialRunnerOptions {
  /** Session options of every part (`prepackWeights` is set by `prepack`). */
  session: WorkerSessionOptions;
  /** Whether parts repack their weights when loaded (default "never"). */
  prepack?: PrepackPolicy;
  /** Name prefix for sessions (`transformer`). */
  name: string;
  /** Load the next part while the current one runs (needs two workers). */
  prefetch: boolean;
}

interface Loaded {
  worker: SessionWorker;
  ready: Promise<void>;
}

/** Below this mean block run, a trial of packed loads is not worth a call. */
const MIN_TRIAL_RUN_MS = 20;
/**
 * An optimistic rate of repacking weights at load: faster than the 2-CPU bench VM (0.5-0.9 bytes
 * per ns), so that only parts whose packed load surely cannot be hidden skip the trial.
 */
const PACK_BYTES_PER_MS = 1e6;
/** Packed loads stay when the trial call took at most this fraction of the unpacked one. */
const TRIAL_GAIN = 0.95;

/**
 * The `auto` prepacking policy. Unpacked, a part is created in milliseconds (its weights stay in
 * the mapped file) but its MatMuls pack each weight again on every call; packed, it computes at
 * full speed, but creating it repacks every weight (0.2-0.3 s per 150 MB block on 2 CPUs). Packed
 * loads pay only when the prefetch hides them AND spare CPUs do the packing: when every core runs
 * the current part, packing the next one slows it by about what packing saves. (ONNX Runtime can
 * save prepacked weights beside an optimized model, `session.save_external_prepacked_constant_
 * initializers`, but repacks them at load all the same: it finds the saved copy by a hash of the
 * packed bytes. That saves heap, not time.) So, per runner:
 *
 * 1. Calls 1 and 2 load parts unpacked; call 2 is the steady reference.
 * 2. If a block part's mean run is under {@link MIN_TRIAL_RUN_MS}, or under its packed load at
 *    {@link PACK_BYTES_PER_MS}, the prefetch cannot hide packing: unpacked for good.
 * 3. Otherwise call 3 loads its parts packed (a trial), and packed loads stay if that call took at
 *    most {@link TRIAL_GAIN} of call 2's time; else unpacked for good.
 *
 * Packed and unpacked MatMuls add in a different order: results differ in the last bits (about
 * 1e-6 on the transformer's output), within the 1e-5 that splitting keeps.
 */
export class AutoPrepack {
  #walls: number[] = [];
  #packed = false;
  #settled = false;
  #why = "calls 1-2 load parts unpacked, as a reference";

  /** Whether the next call's parts load packed, from the block parts' statistics so far. */
  next(blocks: { runs: number; runMs: number; weightBytes: number }[]): boolean {
    const call = this.#walls.length;
    if (this.#settled || call < 2) return this.#packed;
    if (call === 2) {
      const runs = blocks.reduce((sum, part) => sum + part.runs, 0);
      const runMs = blocks.reduce((sum, part) => sum + part.runMs, 0) / Math.max(1, runs);
      const loadMs = blocks.reduce((sum, part) => sum + part.weightBytes, 0) /
        Math.max(1, blocks.length) / PACK_BYTES_PER_MS;
      if (blocks.length === 0 || runMs < Math.max(MIN_TRIAL_RUN_MS, loadMs)) {
        this.#settle(
          false,
          `a block runs ${runMs.toFixed(0)} ms, less than packing it could take (${
            loadMs.toFixed(0)
          } ms)`,
        );
        return false;
      }
      this.#packed = true;
      this.#why = "call 3 loads parts packed, as a trial";
      return true;
    }
    const [reference, trial] = [this.#walls[1], this.#walls[2]];
    this.#settle(
      trial <= TRIAL_GAIN * reference,
      `a call took ${trial.toFixed(0)} ms with packed parts, ${reference.toFixed(0)} ms unpacked`,
    );
    return this.#packed;
  }

  /** Records the wall time of a finished call. */
  finished(wallMs: number): void {
    this.#walls.push(wallMs);
  }

  /** The current choice and why. */
  get state(): { packed: boolean; settled: boolean; why: string } {
    return { packed: this.#packed, settled: this.#settled, why: this.#why };
  }

  #settle(packed: boolean, why: string) {
    this.#packed = packed;
    this.#settled = true;
    this.#why = why;
  }
}

/** Runs the parts of one split model in order. */
export class SequentialRunner {
  #parts: RunnerPart[];
  #modelOutputs: string[];
  #workers: SessionWorker[];
  #options: SequentialRunnerOptions;
  #loaded = new Map<number, Loaded>();
  #stats: PartStats[];
  #auto = new AutoPrepack();
  #packed: boolean;

  /** Uses `workers` (two when prefetching, else one) for the parts of a split. */
  constructor(
    split: { parts: RunnerPart[]; modelOutputs: string[] },
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
    this.#packed = options.prepack === "always";
    this.#stats = parts.map((part) => ({
      name: part.name,
      loads: 0,
      packedLoads: 0,
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

  /** Whether parts load packed now, and why. */
  get prepack(): { packed: boolean; why: string } {
    const policy = this.#options.prepack ?? "never";
    if (policy !== "auto") return { packed: this.#packed, why: `prepack: ${policy}` };
    if (!this.#options.prefetch) return { packed: false, why: "no prefetch to hide packing" };
    const { packed, why } = this.#auto.state;
    return { packed, why };
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
    const started = performance.now();
    if (this.#options.prepack === "auto" && this.#options.prefetch) {
      this.#packed = this.#auto.next(
        this.#parts.map((part, index) => ({ ...this.#stats[index], ...part }))
          .filter((part) => part.kind === "blocks"),
      );
    }
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
    this.#auto.finished(performance.now() - started);
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
    const packed = this.#packed;
    const session = { ...this.#options.session, prepackWeights: packed };
    if (part.externalDataFolder) session.externalDataFolder = part.externalDataFolder;
    // The part's files are checked against their digests before each load (a hash the first time
    // in this process, a `stat` after): a part changed on disk fails the call, not silently.
    const ready = verifySplitPart(part).then((problem) => {
      if (problem) {
        throw new Error(
          `Part ${
            quote(part.name)
          } changed on disk since it was split (${problem}): run again to split the model again`,
        );
      }
      return worker.create(this.#sessionName(index), part.path, session);
    }).then(
      (created) => {
        stats.loads++;
        if (packed) stats.packedLoads++;
        stats.loadMs += created.createMs;
        stats.residentBytes = Math.max(0, created.rssAfter - created.rssBefore);
        stats.provider = created.provider;
        stats.fallbackReason = created.fallbackReason;
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
