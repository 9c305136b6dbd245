/**
 * The ONNX Runtime model manager: the one owner of every session of a run. Sessions live in
 * Workers, are created on first use, counted, measured, and released by the session plan that
 * one of the model's hooks gives (runtime/model_hooks.ts; the hook nodes' files say which):
 *
 * - no plan: resident until the run ends (diffusers' default, everything resident);
 * - `releaseAfterLastUse`: released right after the last node that uses the model (the executor
 *   says when a model handle is no longer needed), with `keepInRam` from the model's bytes kept
 *   in host memory so that creating the session again reads no file (model_offload);
 * - `budget`: resident while the sessions of the group fit its budget, least recently used first
 *   out (budget_offload);
 * - `parts`: the model runs as parts, one resident at a time (see `sequential_runner.ts`;
 *   sequential_offload).
 *
 * Every call goes through the call wrappers of the model's hooks first.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { UserError } from "./user_error.ts";
import { cudaRemedy, missingProviderFiles } from "./cuda_provider.ts";
import { formatBytes } from "./byte_size.ts";
import type { ModelManager, ModelRunOptions } from "./model_manager.ts";
import { isModelHandle, type ModelBuild, type ModelHandle, sessionKey } from "./model_handle.ts";
import { type PartsPlan, runWithHooks, type SessionPlan, sessionPlanOf } from "./model_hooks.ts";
import { inspectOnnxModel } from "./onnx_inspect.ts";
import { buildModelParts, buildStreamedModel } from "../builders/built_parts.ts";
import { modelContentHash, splitModel } from "./onnx_split.ts";
import { type PartStats, SequentialRunner } from "./sequential_runner.ts";
import { StreamedRunner } from "./streamed_runner.ts";
import { SessionWorker, WorkerStopped } from "./session_client.ts";
import type { CreatedSession, WorkerSessionOptions } from "./session_worker.ts";
import type { Tensor } from "./tensor.ts";

/** Statistics of one model's sessions over a run. */
export interface ModelStats {
  /** Model name. */
  name: string;
  /** How its sessions were managed: `resident`, or the session plan's policy (`model_offload`). */
  policy: string;
  /** Sessions created. */
  loads: number;
  /** Milliseconds creating sessions. */
  loadMs: number;
  /** Calls. */
  runs: number;
  /** Milliseconds in `run()` (for split models: the sum over parts). */
  runMs: number;
  /** Resident memory the last session added, in bytes (process-wide measure, approximate). */
  residentBytes: number;
  /** The provider its sessions got (the CPU after a fallback; before any load, the requested). */
  provider: string;
  /** Why its sessions run on the CPU instead of the requested provider (a fallback). */
  fallbackReason?: string;
  /** For split models: milliseconds runs waited for parts to load. */
  waitMs?: number;
  /** For split models: the number of parts. */
  parts?: number;
  /** For split models: each part's statistics (block loads against block runs, say). */
  partStats?: PartStats[];
  /** For split models: whether parts load with their weights repacked now, and why. */
  prepack?: { packed: boolean; why: string };
  /**
   * For streamed models: the sessions the parts share, the weights' bytes in host memory, and on
   * a GPU why they are not pinned, if they are not.
   */
  streamed?: { sessions: number; hostBytes: number; unpinned?: string };
  /** True when its session was made through ONNX Runtime's C API (`nativeSessions`). */
  native?: boolean;
  /** Why its session was not made through the C API where `nativeSessions` asked for it. */
  nativeFallback?: string;
}

/** What runs a model in parts: one part's session at a time, or a streamed chain. */
type PartsRunner = SequentialRunner | StreamedRunner;

/** Options of an {@link OnnxModelManager}. */
export interface OnnxModelManagerOptions {
  /** Folder where split models (sequential offload) are cached (default `.cache/split`). */
  splitCacheDir?: string;
  /** Receives warnings (a provider fallback, say). */
  onWarning?: (message: string) => void;
  /**
   * Which built models run whole (resident, or under model_offload and budget_offload) in
   * sessions made through ONNX Runtime's C API (runtime/ort_native.ts) with cogflow's CUDA
   * provider options: `gpu` (default: those on a GPU provider), `always`, or `never`. Where the
   * C API is not available (no whole ffi permission), onnxruntime-node makes them.
   */
  nativeSessions?: "gpu" | "always" | "never";
}

interface Resident {
  key: string;
  model: ModelHandle;
  worker: SessionWorker;
  lastUsed: number;
  busy: number;
  residentBytes: number;
}

/** The model manager of a run. */
export class OnnxModelManager implements ModelManager {
  #options: OnnxModelManagerOptions;
  #resident = new Map<string, Resident>();
  #creating = new Map<string, Promise<Resident>>();
  #sequential = new Map<string, Promise<PartsRunner>>();
  #runners = new Set<PartsRunner>();
  /** Runners of cancelled calls, finishing the part in flight before their sessions go. */
  #draining = new Set<Promise<void>>();
  #live = new Map<string, number>();
  #inRam = new Map<
    string,
    Promise<{ model: Uint8Array; externalData: { path: string; data: Uint8Array }[] }>
  >();
  #idle: SessionWorker[] = [];
  #workers = new Set<SessionWorker>();
  #stats = new Map<string, ModelStats>();
  #closed = false;

  /** Makes a manager; it starts workers only when a model first runs. */
  constructor(options: OnnxModelManagerOptions = {}) {
    this.#options = options;
  }

  /**
   * Runs a model, through its hooks' call wrappers. Cancelling stops the call at once (its worker
   * is stopped).
   */
  async run(
    model: unknown,
    feeds: Record<string, Tensor>,
    options: ModelRunOptions = {},
  ): Promise<Record<string, Tensor>> {
    if (!isModelHandle(model)) throw new Error("Expected a model handle");
    if (this.#closed) throw new Error("The model manager is closed");
    options.signal?.throwIfAborted();
    return await runWithHooks(
      model,
      feeds,
      (feeds) => this.#run(model, feeds, options),
      options.signal,
    );
  }

  async #run(
    model: ModelHandle,
    feeds: Record<string, Tensor>,
    options: ModelRunOptions,
  ): Promise<Record<string, Tensor>> {
    if (this.#closed) throw new Error("The model manager is closed");
    options.signal?.throwIfAborted();
    const plan = sessionPlanOf(model);
    if (plan?.parts) return await this.#runSequential(model, plan.parts, feeds, options.signal);
    // Creating the session is not cancelled (it may be shared), but the call does not wait for it.
    const resident = await abortable(this.#sessionFor(model), options.signal, () => {});
    const stats = this.#statsFor(model);
    resident.busy++;
    resident.lastUsed = performance.now();
    try {
      const { outputs, runMs } = await abortable(
        resident.worker.run(resident.key, feeds, { unchanged: options.unchanged }),
        options.signal,
        () => this.#stopWorker(resident.worker),
      );
      stats.runs++;
      stats.runMs += runMs;
      return outputs;
    } catch (error) {
      if (error instanceof WorkerStopped || options.signal?.aborted) {
        throw options.signal?.reason ?? error;
      }
      throw new UserError(`Model "${model.name}" failed to run: ${(error as Error).message}`, {
        cause: error,
      });
    } finally {
      resident.busy--;
      resident.lastUsed = performance.now();
    }
  }

  /** Counts a model handle produced by a node as live. */
  retain(value: unknown): Promise<void> {
    if (isModelHandle(value)) {
      const key = sessionKey(value);
      this.#live.set(key, (this.#live.get(key) ?? 0) + 1);
    }
    return Promise.resolve();
  }

  /** A model handle is no longer needed: under an offload policy, its session goes now. */
  async release(value: unknown): Promise<void> {
    if (!isModelHandle(value)) return;
    const key = sessionKey(value);
    const left = Math.max(0, (this.#live.get(key) ?? 1) - 1);
    this.#live.set(key, left);
    const plan = sessionPlanOf(value);
    if (left > 0 || !plan?.releaseAfterLastUse) return;
    if (plan.parts) {
      const runner = this.#sequential.get(key);
      this.#sequential.delete(key);
      const ready = await runner?.catch(() => undefined);
      if (ready) {
        this.#runners.delete(ready);
        await ready.close();
        for (const worker of ready.workers) this.#giveBack(worker);
      }
      return;
    }
    await this.#releaseSession(key);
  }

  /** Names of the sessions resident now (parts of split models as `name[part]`). */
  residentSessions(): string[] {
    const names = [...this.#resident.values()].map((resident) => resident.model.name);
    for (const runner of this.#runners.values()) names.push(...runner.residentParts());
    return names;
  }

  /** Statistics per model so far. */
  stats(): ModelStats[] {
    return [...this.#stats.values()];
  }

  /** Releases every session and stops every worker. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(this.#draining);
    for (const runner of this.#sequential.values()) {
      await (await runner.catch(() => undefined))?.close().catch(() => {});
    }
    this.#sequential.clear();
    this.#runners.clear();
    for (const key of [...this.#resident.keys()]) await this.#releaseSession(key).catch(() => {});
    for (const worker of this.#workers) worker.stop();
    this.#workers.clear();
    this.#idle = [];
    this.#inRam.clear();
  }

  async #sessionFor(model: ModelHandle): Promise<Resident> {
    const key = sessionKey(model);
    const existing = this.#resident.get(key);
    if (existing) return existing;
    let creating = this.#creating.get(key);
    if (!creating) {
      creating = this.#createSession(key, model).finally(() => this.#creating.delete(key));
      this.#creating.set(key, creating);
    }
    return await creating;
  }

  async #createSession(key: string, model: ModelHandle): Promise<Resident> {
    const plan = sessionPlanOf(model);
    if (plan?.budget) await this.#makeRoom(model, plan.budget);
    const worker = this.#takeWorker();
    const stats = this.#statsFor(model);
    try {
      const native = await this.#createNative(key, model, worker);
      stats.native = native?.created !== undefined;
      if (native?.failure) stats.nativeFallback = native.failure;
      const created = native?.created ?? await this.#createWithNode(key, model, worker);
      if (created.fallbackReason) {
        this.#options.onWarning?.(
          `Model "${model.name}": ${
            model.session.executionProviders[0]
          } is unavailable, using the CPU (${created.fallbackReason})${
            model.session.executionProviders[0] === "cuda"
              ? `: ${cudaRemedy(created.fallbackReason, missingProviderFiles(PROJECT_DIR))}`
              : ""
          }`,
        );
      }
      const residentBytes = Math.max(0, created.rssAfter - created.rssBefore);
      stats.loads++;
      stats.loadMs += created.createMs;
      stats.residentBytes = residentBytes;
      stats.provider = created.provider;
      stats.fallbackReason = created.fallbackReason;
      const resident: Resident = {
        key,
        model,
        worker,
        lastUsed: performance.now(),
        busy: 0,
        residentBytes,
      };
      this.#resident.set(key, resident);
      return resident;
    } catch (error) {
      this.#giveBack(worker);
      throw new UserError(describeLoadFailure(model, error as Error), { cause: error });
    }
  }

  /** Creates a model's resident session through onnxruntime-node. */
  async #createWithNode(
    key: string,
    model: ModelHandle,
    worker: SessionWorker,
  ): Promise<CreatedSession> {
    if (sessionPlanOf(model)?.keepInRam) {
      const bytes = await this.#bytesInRam(model);
      return await worker.create(key, bytes.model, workerSessionOptions(model), bytes.externalData);
    }
    return await worker.create(key, model.path, workerSessionOptions(model));
  }

  /**
   * Creates a built model's resident session through ONNX Runtime's C API, as a streamed chain of
   * one part whose weights are its graph's own (see {@link OnnxModelManagerOptions.nativeSessions});
   * undefined where that does not apply. When it fails, onnxruntime-node makes the session (and
   * reports what is wrong with the provider, if anything is); the failure goes to the model's
   * statistics.
   */
  async #createNative(
    key: string,
    model: ModelHandle,
    worker: SessionWorker,
  ): Promise<{ created?: CreatedSession; failure?: string } | undefined> {
    const policy = this.#options.nativeSessions ?? "gpu";
    const options = workerSessionOptions(model);
    const provider = options.executionProviders[0] ?? "cpu";
    if (!model.build || sessionPlanOf(model)?.keepInRam || policy === "never") return;
    if (policy === "gpu" && provider === "cpu") return;
    const inputNames = model.signature.inputs.map((input) => input.name);
    const outputNames = model.signature.outputs.map((output) => output.name);
    try {
      const created = await worker.createChain(key, {
        parts: [{
          name: "part_00_whole",
          graph: await Deno.readFile(model.path),
          inputs: inputNames.map((name) => ({ graph: name, tensor: name })),
          outputs: outputNames.map((name) => ({ graph: name, tensor: name })),
          weights: [],
          externalDataFolder: model.externalDataFolder ?? dirname(model.path),
        }],
        modelOutputs: outputNames,
      }, options);
      return { created: { ...created, inputNames, outputNames } };
    } catch (error) {
      return { failure: (error as Error).message.split("\n")[0] };
    }
  }

  async #releaseSession(key: string): Promise<void> {
    const resident = this.#resident.get(key);
    if (!resident) return;
    this.#resident.delete(key);
    if (!resident.worker.stopped) await resident.worker.release(key).catch(() => {});
    this.#giveBack(resident.worker);
  }

  /** Evicts least recently used sessions of the same budget until `model` fits. */
  async #makeRoom(model: ModelHandle, budget: NonNullable<SessionPlan["budget"]>): Promise<void> {
    const needed = model.bytes;
    if (needed > budget.maxBytes) {
      throw new UserError(
        `Model "${model.name}" needs about ${formatBytes(needed)}, more than max_memory ${
          formatBytes(budget.maxBytes)
        } of "${budget.group}": raise max_memory or use sequential_offload`,
      );
    }
    const group = () =>
      [...this.#resident.values()].filter((resident) =>
        sessionPlanOf(resident.model)?.budget?.group === budget.group
      );
    const used = () => group().reduce((sum, resident) => sum + resident.model.bytes, 0);
    while (used() + needed > budget.maxBytes) {
      const candidates = group().filter((resident) => resident.busy === 0).sort((a, b) =>
        a.lastUsed - b.lastUsed
      );
      if (candidates.length === 0) break;
      await this.#releaseSession(candidates[0].key);
    }
  }

  async #runSequential(
    model: ModelHandle,
    hook: PartsPlan,
    feeds: Record<string, Tensor>,
    signal: AbortSignal | undefined,
  ): Promise<Record<string, Tensor>> {
    const key = sessionKey(model);
    let runner = this.#sequential.get(key);
    if (!runner) {
      runner = this.#createSequential(model, hook);
      this.#sequential.set(key, runner);
    }
    const ready = await abortable(runner, signal, () => {});
    this.#runners.add(ready);
    const stats = this.#statsFor(model);
    const running = ready.run(feeds, signal);
    try {
      const outputs = await abortable(running, signal, () => {
        // The next call makes a new runner. This one is not stopped mid-call: a worker terminated
        // while ONNX Runtime creates or runs a part's session makes ONNX Runtime print errors
        // (`GetElementType is not implemented`). It stops at its next part (it checks the signal
        // between parts), then its sessions are released; `close()` waits for that.
        this.#runners.delete(ready);
        if (this.#sequential.get(key) === runner) this.#sequential.delete(key);
        this.#drain(ready, running);
      });
      stats.runs++;
      stats.runMs = sum(ready.stats.map((part) => part.runMs));
      stats.loadMs = sum(ready.stats.map((part) => part.loadMs));
      stats.loads = sum(ready.stats.map((part) => part.loads));
      stats.waitMs = sum(ready.stats.map((part) => part.waitMs));
      stats.residentBytes = Math.max(...ready.stats.map((part) => part.residentBytes));
      stats.partStats = ready.stats.map((part) => ({ ...part }));
      const loaded = ready.stats.filter((part) => part.provider !== undefined);
      const providers = [...new Set(loaded.map((part) => part.provider))];
      if (providers.length > 0) stats.provider = providers.join("+");
      stats.fallbackReason = loaded.find((part) => part.fallbackReason)?.fallbackReason;
      stats.prepack = ready.prepack;
      if (ready instanceof StreamedRunner) {
        const { sessions, hostBytes, unpinned } = ready.created;
        stats.streamed = { sessions, hostBytes, unpinned };
      }
      return outputs;
    } catch (error) {
      if (error instanceof WorkerStopped || signal?.aborted) throw signal?.reason ?? error;
      throw new UserError(
        `Model "${model.name}" failed to run in parts: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }

  /** Closes a cancelled call's runner once its part in flight is done. */
  #drain(runner: PartsRunner, running: Promise<unknown>) {
    const drained = running.catch(() => {}).then(() => runner.close()).catch(() => {}).then(
      () => {
        for (const worker of runner.workers) this.#giveBack(worker);
        this.#draining.delete(drained);
      },
    );
    this.#draining.add(drained);
  }

  async #createSequential(
    model: ModelHandle,
    hook: PartsPlan,
  ): Promise<PartsRunner> {
    const streamed = await this.#createStreamed(model, hook);
    if (streamed) return streamed;
    const split =
      await (model.build ? this.#buildParts(model, model.build, hook) : this.#split(model, hook));
    if (split.whole) this.#options.onWarning?.(`Model "${model.name}": ${split.whole}`);
    const workers = hook.prefetch ? [this.#takeWorker(), this.#takeWorker()] : [this.#takeWorker()];
    const stats = this.#statsFor(model);
    stats.parts = split.parts.length;
    const runner = new SequentialRunner(
      { parts: split.parts, modelOutputs: split.plan.modelOutputs },
      workers,
      {
        // A part's session serves one call. Repacking its weights costs more CPU than the call
        // saves unless spare CPUs do it while the prefetch hides it, and the repacked copies are
        // heap memory that glibc keeps after the release; unpacked, the weights stay in the
        // mapped file. So parts load unpacked unless `prepack_weights` (auto: by measurement,
        // see AutoPrepack) says otherwise. Idle intra-op threads sleep instead of spinning: the
        // next part, created in the other worker while this one runs, would otherwise hold a CPU.
        // A model that runs whole is created as without a hook.
        session: split.whole
          ? workerSessionOptions(model)
          : { ...workerSessionOptions(model), intraOpSpinning: false },
        prepack: split.whole ? "always" : hook.prepackWeights ?? "never",
        name: model.name,
        prefetch: hook.prefetch,
      },
    );
    return runner;
  }

  /**
   * The model's weight streaming (runtime/streamed_runner.ts), or undefined where it does not
   * stream: a model from an ONNX file, `stream_weights: off`, or
   * `auto` on the CPU (there the parts' sessions read their weights from the mapped files, which
   * streaming would hold in memory). Under `auto` a chain that cannot be made (no CUDA, no ffi
   * permission) is a warning, and the parts load one by one instead.
   */
  async #createStreamed(model: ModelHandle, hook: PartsPlan): Promise<StreamedRunner | undefined> {
    const policy = hook.streamWeights ?? "auto";
    const options = workerSessionOptions(model);
    const provider = options.executionProviders[0] ?? "cpu";
    if (!model.build || policy === "off" || (policy === "auto" && provider === "cpu")) return;
    const plan = await buildStreamedModel(model.build, hook.blocksPerGroup, {
      path: model.path,
      inputs: model.signature.inputs.map((input) => input.name),
      outputs: model.signature.outputs.map((output) => output.name),
    });
    const worker = this.#takeWorker();
    try {
      return await StreamedRunner.create(
        worker,
        model.name,
        { ...plan, prefetch: hook.prefetch },
        options,
      );
    } catch (error) {
      this.#giveBack(worker);
      const why = (error as Error).message.split("\n")[0];
      if (policy === "on") {
        throw new UserError(`Cannot stream the weights of model "${model.name}": ${why}`, {
          cause: error,
        });
      }
      this.#options.onWarning?.(
        `Model "${model.name}": its weights are not streamed (${why}); its parts load one by one`,
      );
      return undefined;
    }
  }

  /** A model from an ONNX file, split into parts cached in `.cache/split`. */
  async #split(model: ModelHandle, hook: PartsPlan) {
    const cacheDir = this.#options.splitCacheDir ?? join(Deno.cwd(), ".cache", "split");
    const split = await contentHashOf(model, cacheDir).then((contentHash) =>
      splitModel(model.path, {
        cacheDir,
        blocksPerGroup: hook.blocksPerGroup,
        blockPattern: hook.blockPattern,
        contentHash,
        onWarning: this.#options.onWarning,
      })
    ).catch((error) => {
      throw new UserError(
        `Cannot split model "${model.name}" for sequential offload: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    });
    return { ...split, whole: undefined };
  }

  /** A built model, built in parts beside its graph in the graphs cache (builders/built_parts.ts). */
  async #buildParts(model: ModelHandle, build: ModelBuild, hook: PartsPlan) {
    try {
      return await buildModelParts({
        name: model.name,
        path: model.path,
        inputs: model.signature.inputs.map((input) => input.name),
        outputs: model.signature.outputs.map((output) => output.name),
        build,
        blocksPerGroup: hook.blocksPerGroup,
        // `<cache>/<name>-<sha>/model.onnx`
        cacheDir: dirname(dirname(model.path)),
      });
    } catch (error) {
      if (error instanceof UserError) throw error;
      throw new UserError(
        `Cannot build model "${model.name}" in parts for sequential offload: ${
          (error as Error).message
        }`,
        { cause: error },
      );
    }
  }

  async #bytesInRam(model: ModelHandle) {
    let bytes = this.#inRam.get(model.path);
    if (!bytes) {
      bytes = (async () => {
        const info = await inspectOnnxModel(model.path);
        const externalData = [];
        for (const location of info.externalDataFiles) {
          externalData.push({
            path: location,
            data: await Deno.readFile(
              join(model.externalDataFolder ?? dirname(model.path), location),
            ),
          });
        }
        return { model: await Deno.readFile(model.path), externalData };
      })();
      this.#inRam.set(model.path, bytes);
    }
    return await bytes;
  }

  #statsFor(model: ModelHandle): ModelStats {
    const key = sessionKey(model);
    let stats = this.#stats.get(key);
    if (!stats) {
      stats = {
        name: model.name,
        policy: sessionPlanOf(model)?.policy ?? "resident",
        loads: 0,
        loadMs: 0,
        runs: 0,
        runMs: 0,
        residentBytes: 0,
        provider: model.session.executionProviders[0] ?? "cpu",
      };
      this.#stats.set(key, stats);
    }
    return stats;
  }

  #takeWorker(): SessionWorker {
    const worker = this.#idle.pop() ?? new SessionWorker();
    this.#workers.add(worker);
    return worker;
  }

  #giveBack(worker: SessionWorker) {
    if (worker.stopped || this.#closed) return;
    if (this.#idle.length < 2) {
      this.#idle.push(worker);
    } else {
      worker.stop();
      this.#workers.delete(worker);
    }
  }

  #stopWorker(worker: SessionWorker) {
    worker.stop();
    this.#workers.delete(worker);
    for (const [key, resident] of this.#resident) {
      if (resident.worker === worker) this.#resident.delete(key);
    }
  }
}

/** The project folder, with the node_modules whose onnxruntime-node the session workers load. */
const PROJECT_DIR = fileURLToPath(new URL("..", import.meta.url));

/** Why a session could not be created, with what to do about an unavailable provider. */
function describeLoadFailure(model: ModelHandle, error: Error): string {
  const detail = error.message.split("\n")[0];
  const provider = model.session.executionProviders[0] ?? "cpu";
  if (provider !== "cpu" && /provider|shared library/i.test(detail)) {
    const remedy = provider === "cuda"
      ? `: ${cudaRemedy(detail, missingProviderFiles(PROJECT_DIR))}`
      : "";
    return `Cannot load model "${model.name}": the ${provider} execution provider is unavailable (${detail})${remedy}; or use providers: [cpu] (--set provider=cpu in the library workflows), or on_unavailable_provider: fallback to fall back to the CPU with a warning`;
  }
  return `Cannot load model "${model.name}" from "${model.path}": ${detail}`;
}

/**
 * The content hash of a model (the key of its splits), remembered in
 * `<cacheDir>/content-hashes.json` by path and fingerprint (sizes and modification times of the
 * model and its external data): hashing reads every weight, about a second per GB, which every
 * run would otherwise pay on its first transformer call.
 */
async function contentHashOf(model: ModelHandle, cacheDir: string): Promise<string> {
  const file = join(cacheDir, "content-hashes.json");
  const known: Record<string, { fingerprint?: unknown; hash?: unknown }> = await Deno.readTextFile(
    file,
  ).then((text) => JSON.parse(text)).catch(() => ({}));
  const entry = known[model.path];
  if (entry?.fingerprint === model.fingerprint && typeof entry.hash === "string") return entry.hash;
  const hash = await modelContentHash(model.path);
  try {
    known[model.path] = { fingerprint: model.fingerprint, hash };
    await Deno.mkdir(cacheDir, { recursive: true });
    const temporary = `${file}.${crypto.randomUUID()}.tmp`;
    await Deno.writeTextFile(temporary, JSON.stringify(known, null, 2));
    await Deno.rename(temporary, file);
  } catch {
    // Only a shortcut for the next run.
  }
  return hash;
}

/** Races a promise with an AbortSignal; on abort, runs `onAbort` and rejects with the reason. */
function abortable<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  onAbort: () => void,
): Promise<T> {
  if (!signal) return promise;
  // Rejected after an abort (its worker stopped): nobody waits for it any more.
  promise.catch(() => {});
  return new Promise<T>((resolve, reject) => {
    const abort = () => {
      onAbort();
      reject(signal.reason);
    };
    if (signal.aborted) return abort();
    signal.addEventListener("abort", abort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", abort));
  });
}

function sum(values: number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

/** The options of a model's sessions, as the session worker takes them. */
export function workerSessionOptions(model: ModelHandle): WorkerSessionOptions {
  return {
    executionProviders: model.session.executionProviders,
    fallbackToCpu: model.session.onUnavailableProvider === "fallback",
    intraOpThreads: model.session.intraOpThreads,
    interOpThreads: model.session.interOpThreads,
    graphOptimizationLevel: model.session.graphOptimizationLevel,
    externalDataFolder: model.externalDataFolder,
    // The VAE decoder's inputs change shape between its first chunk and the others, and
    // between tiles: a memory pattern per shape was kept, the arena held them together
    // (a real-size 240x360 tile of 13 latent frames on the CPU peaked 13.6 GiB over its start
    // with it, 9.57 GiB without, and ran 8% faster; bench/vae_video_decoder_memory.ts).
    ...(model.role === "vae" ? { memoryPattern: false } : {}),
  };
}
