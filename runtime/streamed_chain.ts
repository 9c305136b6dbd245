/**
 * Weight streaming, the GPU's sequential offload, on the worker side: a model's parts
 * (builders/streamed_part.ts: weights as graph inputs) run one after another in sessions that
 * hold no weights, one per distinct graph, through ONNX Runtime's C API (runtime/ort_native.ts).
 * Every weight is read once into host memory (pinned by the CUDA provider when it runs there).
 * On the CPU a part's weights are bound as inputs of its run. On a GPU a staging session per
 * distinct set of weight shapes (an Identity per weight, its outputs bound to the device) copies
 * them to the device just before the part runs, and the part reads them from device memory:
 * ONNX Runtime's own copy of host inputs into a CUDA session took 7.5 s per 2b pipeline step on
 * an H200 against 0.94 s through staging (bench/RESULTS.md). Device memory holds one part's
 * weights and activations. Activations stay on the device between parts; only the model's inputs
 * and outputs cross to JS.
 *
 * With `prefetch`, the next part's weights are staged while a part runs (diffusers' group offload
 * with CUDA streams): the staging session runs on a thread of its own beside the part's run.
 * Device memory then holds two parts' weights.
 *
 * @module
 */

import { join } from "node:path";
import type { StreamedPart } from "../builders/streamed_part.ts";
import {
  type HostBlock,
  NativeOrt,
  type NativeSession,
  type NativeSessionOptions,
  type NativeValue,
  type OutputDevice,
} from "./ort_native.ts";
import { readRange } from "../builders/safetensors_weights.ts";
import type { Tensor } from "./tensor.ts";
import { checkDeviceRoundTrip, stage, stagingGraph } from "./device_staging.ts";

/** A weight as a chain part reads it: a byte range of a file. */
export interface ChainWeight {
  /** The part graph's input. */
  input: string;
  /** Absolute path of the file. */
  path: string;
  /** Byte offset of the data in the file. */
  offset: number;
  /** Byte length of the data. */
  length: number;
  /** Stored dtype. */
  dtype: "float32" | "float16" | "bfloat16";
  /** Dimensions. */
  shape: number[];
}

/** One part of a chain. */
export interface ChainPart {
  /** Part name (`part_03_block_2`). */
  name: string;
  /** The encoded graph (no external data). */
  graph: Uint8Array;
  /** Graph inputs that are run tensors: the graph's name and the run's. */
  inputs: { graph: string; tensor: string }[];
  /** Graph outputs, likewise. */
  outputs: { graph: string; tensor: string }[];
  /** Graph inputs that are weights. */
  weights: ChainWeight[];
  /**
   * Set for a part whose weights are the graph's own external initializers, made resident on
   * the device by ONNX Runtime when the session is created (a model run whole, not streamed):
   * the folder their locations are relative to.
   */
  externalDataFolder?: string;
}

/** What a chain runs. */
export interface ChainPlan {
  /** The parts, in running order. */
  parts: ChainPart[];
  /** The run tensors the model returns. */
  modelOutputs: string[];
  /** Where the parts run. */
  provider: "cpu" | "cuda";
  /** CUDA provider options (ONNX Runtime's names). */
  cudaOptions?: Record<string, string>;
  /** Threads within an operator (0: ONNX Runtime's default). */
  intraOpThreads?: number;
  /** Graph optimizations (default all). */
  graphOptimizationLevel?: NativeSessionOptions["graphOptimizationLevel"];
  /** ONNX Runtime's memory pattern (default true). */
  memoryPattern?: boolean;
  /** The CPU provider's arena (default true). */
  cpuArena?: boolean;
  /** Copy the next part's weights to the device while a part runs. */
  prefetch?: boolean;
}

/** Chain parts of streamed parts whose weight files lie in `folder` (their real folder). */
export function chainParts(parts: readonly StreamedPart[], folder: string): ChainPart[] {
  return parts.map((part) => ({
    name: part.name,
    graph: part.graph,
    inputs: part.inputs,
    outputs: part.outputs,
    weights: part.weights.map(({ input, ref }) => ({
      input,
      path: join(folder, ref.location),
      offset: ref.offset,
      length: ref.length,
      dtype: ref.dtype,
      shape: ref.shape,
    })),
  }));
}

/** Timings of one chain run. */
export interface ChainRunStats {
  /** Milliseconds per part, in running order. */
  partMs: number[];
}

/** A chain's sessions and host weights, made once and run per call. */
export class StreamedChain {
  readonly #ort: NativeOrt;
  readonly #plan: ChainPlan;
  /** Per part, its session (shared by parts of the same graph). */
  readonly #sessions: NativeSession[];
  /** Per part, its weights as host values by graph input (views of {@link #block}). */
  readonly #weights: Record<string, NativeValue>[];
  /** The host memory holding every weight. */
  readonly #block: HostBlock;
  /** Per part, the run tensors whose last reader it is. */
  readonly #lastReads: string[][];
  /** Per part, where each graph output is left: the CPU for model outputs, else the device. */
  readonly #outputDevices: Record<string, OutputDevice>[];
  /** Per part on a GPU or with prefetch: the session that copies its weights to the device. */
  readonly #stagers: (NativeSession | undefined)[];
  /** Feeds kept on the device between runs (while the caller passes the same tensor), by name. */
  readonly #deviceFeeds = new Map<string, { tensor: Tensor; value: NativeValue }>();
  /** Sessions that copy a feed to the device, by name, dtype and rank. */
  readonly #feedStagers = new Map<string, NativeSession>();
  /** Bytes of the weights in host memory. */
  readonly hostBytes: number;
  /** Distinct sessions. */
  readonly sessionCount: number;
  /** Distinct staging sessions (none on the CPU without prefetch). */
  readonly stagerCount: number;
  /** On a GPU: why the weights are in pageable host memory, not pinned. */
  readonly unpinned?: string;

  private constructor(
    ort: NativeOrt,
    plan: ChainPlan,
    sessions: NativeSession[],
    weights: Record<string, NativeValue>[],
    block: HostBlock,
    stagers: (NativeSession | undefined)[],
    unpinned: string | undefined,
  ) {
    this.#ort = ort;
    this.#plan = plan;
    this.#sessions = sessions;
    this.#weights = weights;
    this.#stagers = stagers;
    this.#block = block;
    this.unpinned = unpinned;
    this.#lastReads = lastReads(plan);
    const wanted = new Set(plan.modelOutputs);
    this.#outputDevices = plan.parts.map((part) =>
      Object.fromEntries(
        part.outputs.map((
          { graph, tensor },
        ) => [graph, wanted.has(tensor) ? "cpu" : plan.provider]),
      )
    );
    this.hostBytes = plan.parts.reduce(
      (sum, part) => sum + part.weights.reduce((s, w) => s + w.length, 0),
      0,
    );
    this.sessionCount = new Set(sessions).size;
    this.stagerCount = new Set(stagers.filter((stager) => stager)).size;
  }

  /** Starts copying part `index`'s weights to the device; undefined without a staging session. */
  #stage(index: number): Promise<Record<string, NativeValue>> | undefined {
    const stager = this.#stagers[index];
    if (!stager) return undefined;
    return stage(stager, this.#weights[index], this.#plan.provider);
  }

  /** Creates the sessions and reads every weight into host memory. */
  static async create(plan: ChainPlan, ort: NativeOrt = NativeOrt.open()): Promise<StreamedChain> {
    if (plan.provider !== "cpu") await checkDeviceRoundTrip(ort, plan.provider, plan.cudaOptions);
    const byGraph = new Map<string, NativeSession>();
    const stagersByShapes = new Map<string, NativeSession>();
    const stagers: (NativeSession | undefined)[] = [];
    const sessions: NativeSession[] = [];
    const weights: Record<string, NativeValue>[] = [];
    let block: HostBlock | undefined;
    let unpinned: string | undefined;
    const files = new Map<string, Deno.FsFile>();
    try {
      for (const part of plan.parts) {
        const key = await digest(part.graph);
        let session = byGraph.get(key);
        if (!session) {
          session = ort.createSession(part.graph, {
            provider: plan.provider,
            cudaOptions: plan.cudaOptions,
            intraOpThreads: plan.intraOpThreads,
            graphOptimizationLevel: plan.graphOptimizationLevel,
            memoryPattern: plan.memoryPattern,
            cpuArena: plan.cpuArena,
            config: part.externalDataFolder === undefined ? undefined : {
              model_external_initializers_file_folder_path: part.externalDataFolder,
              // The weights get device allocations of their own, not the activation arena's.
              use_device_allocator_for_initializers: "1",
            },
          });
          byGraph.set(key, session);
        }
        sessions.push(session);
        let stager: NativeSession | undefined;
        if ((plan.prefetch || plan.provider !== "cpu") && part.weights.length > 0) {
          const graph = stagingGraph(
            part.weights.map((w) => ({ name: w.input, dtype: w.dtype, dims: w.shape })),
          );
          const key = await digest(graph);
          stager = stagersByShapes.get(key);
          if (!stager) {
            stager = ort.createSession(graph, {
              provider: plan.provider,
              cudaOptions: plan.cudaOptions,
              intraOpThreads: plan.intraOpThreads,
            });
            stagersByShapes.set(key, stager);
          }
        }
        stagers.push(stager);
      }
      // Every weight in one block of host memory, pinned on a GPU: one allocation of exactly the
      // weights' size (ONNX Runtime's arena would round many allocations up by powers of two).
      const aligned = (length: number) => Math.ceil(length / BLOCK_ALIGNMENT) * BLOCK_ALIGNMENT;
      const total = plan.parts.flatMap((part) => part.weights)
        .reduce((sum, weight) => sum + aligned(weight.length), 0);
      if (plan.provider === "cuda") {
        try {
          block = ort.hostBlock(total, "cuda_pinned", sessions[0]);
        } catch (error) {
          // Pinned memory the provider cannot give (its allocator missing, the limit of locked
          // memory reached): pageable memory serves, copied at a lower speed.
          unpinned = (error as Error).message.split("\n")[0];
        }
      }
      block ??= ort.hostBlock(total, "cpu");
      let offset = 0;
      for (const part of plan.parts) {
        const values: Record<string, NativeValue> = {};
        weights.push(values);
        for (const weight of part.weights) {
          let file = files.get(weight.path);
          if (!file) files.set(weight.path, file = await Deno.open(weight.path, { read: true }));
          let view;
          try {
            view = block.view(offset, weight.length, weight.dtype, weight.shape);
          } catch (error) {
            throw new Error(
              `Weight "${weight.input}" of ${part.name}: ${(error as Error).message}`,
            );
          }
          values[weight.input] = view.value;
          offset += aligned(weight.length);
          await readWeight(file, weight.offset, view.bytes, weight.path);
        }
      }
    } catch (error) {
      for (const values of weights) for (const value of Object.values(values)) value.release();
      block?.release();
      for (const session of [...byGraph.values(), ...stagersByShapes.values()]) session.release();
      throw error;
    } finally {
      for (const file of files.values()) file.close();
    }
    return new StreamedChain(ort, plan, sessions, weights, block, stagers, unpinned);
  }

  /**
   * Runs every part on `feeds` (the model's inputs); returns the model's outputs. Feeds named in
   * `kept` (the caller passes them unchanged from run to run: text embeddings, positional
   * tables) are copied to the device once and kept there while the same tensor comes again.
   */
  async run(
    feeds: Record<string, Tensor>,
    kept: ReadonlySet<string> = new Set(),
  ): Promise<{ outputs: Record<string, Tensor>; stats: ChainRunStats }> {
    const ort = this.#ort;
    const live = new Map<string, NativeValue>();
    /** Values of `live` the chain keeps (not released by this run). */
    const borrowed = new Set<NativeValue>();
    const outputs: Record<string, Tensor> = {};
    const partMs: number[] = [];
    const prefetch = this.#plan.prefetch === true;
    let staging = this.#stage(0);
    try {
      for (const [name, tensor] of Object.entries(feeds)) {
        if (!kept.has(name)) {
          live.set(name, ort.cpuValue(tensor));
          continue;
        }
        const value = await this.#deviceFeed(name, tensor);
        borrowed.add(value);
        live.set(name, value);
      }
      for (const [index, part] of this.#plan.parts.entries()) {
        const staged = staging ? await staging : undefined;
        const next = index + 1 < this.#plan.parts.length ? index + 1 : undefined;
        // With prefetch the next part's weights go to the device while this part runs.
        staging = prefetch && next !== undefined ? this.#stage(next) : undefined;
        const inputs: Record<string, NativeValue> = { ...(staged ?? this.#weights[index]) };
        for (const { graph, tensor } of part.inputs) {
          const value = live.get(tensor);
          if (!value) throw new Error(`${part.name} reads "${tensor}", which nothing made`);
          inputs[graph] = value;
        }
        const devices = this.#outputDevices[index];
        const started = performance.now();
        let produced: Record<string, NativeValue>;
        try {
          produced = await this.#sessions[index].run(inputs, devices);
        } finally {
          for (const value of Object.values(staged ?? {})) value.release();
        }
        partMs.push(performance.now() - started);
        if (!prefetch && next !== undefined) staging = this.#stage(next);
        const release = (value: NativeValue | undefined) => {
          if (value && !borrowed.has(value)) value.release();
        };
        for (const { graph, tensor } of part.outputs) {
          release(live.get(tensor));
          live.set(tensor, produced[graph]);
        }
        for (const name of this.#lastReads[index]) {
          release(live.get(name));
          live.delete(name);
        }
      }
      for (const name of this.#plan.modelOutputs) {
        const value = live.get(name);
        if (!value) throw new Error(`No part made the model output "${name}"`);
        outputs[name] = value.toTensor();
      }
      return { outputs, stats: { partMs } };
    } finally {
      for (const value of live.values()) if (!borrowed.has(value)) value.release();
      const left = await staging?.catch(() => undefined);
      for (const value of Object.values(left ?? {})) value.release();
    }
  }

  /** The device copy of feed `name`, made when `tensor` is not the one kept. */
  async #deviceFeed(name: string, tensor: Tensor): Promise<NativeValue> {
    const known = this.#deviceFeeds.get(name);
    if (known?.tensor === tensor) return known.value;
    this.#deviceFeeds.delete(name);
    known?.value.release();
    const key = `${name}|${tensor.dtype}|${tensor.shape.length}`;
    let stager = this.#feedStagers.get(key);
    if (!stager) {
      const dims = tensor.shape.map((_, i) => `d${i}`);
      stager = this.#ort.createSession(stagingGraph([{ name, dtype: tensor.dtype, dims }]), {
        provider: this.#plan.provider,
        cudaOptions: this.#plan.cudaOptions,
      });
      this.#feedStagers.set(key, stager);
    }
    const source = this.#ort.cpuValue(tensor);
    try {
      const value = (await stage(stager, { [name]: source }, this.#plan.provider))[name];
      this.#deviceFeeds.set(name, { tensor, value });
      return value;
    } finally {
      source.release();
    }
  }

  /** Releases the host weights and the sessions. */
  release(): void {
    for (const { value } of this.#deviceFeeds.values()) value.release();
    this.#deviceFeeds.clear();
    for (const stager of this.#feedStagers.values()) stager.release();
    this.#feedStagers.clear();
    for (const values of this.#weights) for (const value of Object.values(values)) value.release();
    this.#weights.length = 0;
    this.#block.release();
    for (const session of new Set([...this.#sessions, ...this.#stagers])) session?.release();
    this.#sessions.length = 0;
    this.#stagers.length = 0;
  }
}

/** Byte alignment of each weight in the host block. */
const BLOCK_ALIGNMENT = 256;

/** Per part, the run tensors no later part reads and the model does not return. */
function lastReads(plan: ChainPlan): string[][] {
  const last = new Map<string, number>();
  for (const [index, part] of plan.parts.entries()) {
    for (const { tensor } of part.inputs) last.set(tensor, index);
  }
  for (const name of plan.modelOutputs) last.delete(name);
  const result: string[][] = plan.parts.map(() => []);
  for (const [name, index] of last) result[index].push(name);
  return result;
}

async function digest(bytes: Uint8Array): Promise<string> {
  const hash = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Reads `bytes.byteLength` bytes of `file` from `offset`; a short file is an error naming it. */
async function readWeight(
  file: Deno.FsFile,
  offset: number,
  bytes: Uint8Array,
  path: string,
): Promise<void> {
  if (await readRange(file, offset, bytes) < bytes.byteLength) {
    throw new Error(`${path} ends before byte ${offset + bytes.byteLength}`);
  }
}
