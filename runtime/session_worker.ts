/**
 * The worker side of ONNX Runtime sessions. onnxruntime-node's session creation and `run()` block
 * the thread they are called on; in a Worker they leave the main thread free for progress
 * display, servers and cancellation. Its first message is the MessagePort it serves (sent by the
 * session host, session_host.ts, or by the main thread when ONNX Runtime is not confined): messages
 * on it are {@link WorkerRequest}s; replies carry output tensors as transferred buffers. Every
 * `create` passes session_guard.ts's checks first.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import * as ort from "onnxruntime-node";
import { readProcessMemory } from "./process_memory.ts";
import {
  checkChainPlan,
  checkModelAccess,
  checkSessionOptions,
  type InMemoryExternalData,
  type WorkerChainPlan,
  type WorkerSessionOptions,
} from "./session_guard.ts";
import { StreamedChain } from "./streamed_chain.ts";
import { createTensor, type DType, type Tensor, type TensorData } from "./tensor.ts";

/** A tensor as it crosses between threads. */
export interface WireTensor {
  /** Element type. */
  dtype: DType;
  /** Dimensions. */
  shape: number[];
  /** Elements. */
  data: TensorData;
}

export type { WorkerSessionOptions } from "./session_guard.ts";

/** A request to the worker. */
export type WorkerRequest =
  | {
    id: number;
    op: "create";
    session: string;
    /** A file path, or the model's bytes (kept in host memory by the caller). */
    model: string | Uint8Array;
    /** External data kept in memory: file names as the model refers to them, and bytes. */
    externalData?: InMemoryExternalData[];
    options: WorkerSessionOptions;
  }
  | {
    id: number;
    op: "run";
    session: string;
    /** Tensors, or `{ kept: true }` for the tensor of that name kept from an earlier run. */
    feeds: Record<string, WireTensor | KeptFeed>;
    /** Feeds of this request to keep for later runs of the session (replacing earlier ones). */
    keep?: string[];
    fetches?: string[];
  }
  | {
    id: number;
    op: "create_chain";
    session: string;
    /** The streamed model (session_guard.ts checks it). */
    plan: WorkerChainPlan;
    /** Its provider (the first of `executionProviders`) and threads. */
    options: WorkerSessionOptions;
  }
  | { id: number; op: "release"; session: string };

/** A feed the worker kept from an earlier run of the session (the caller passes it unchanged). */
export interface KeptFeed {
  /** Always true. */
  kept: true;
}

/** What `create` returns. */
export interface CreatedSession {
  /** Declared input names. */
  inputNames: string[];
  /** Declared output names. */
  outputNames: string[];
  /** The provider actually used. */
  provider: string;
  /** Why the preferred provider was not used, when the CPU was used instead. */
  fallbackReason?: string;
  /** Milliseconds to create the session. */
  createMs: number;
  /** Process resident memory before and after creating it, in bytes. */
  rssBefore: number;
  /** See `rssBefore`. */
  rssAfter: number;
}

/** What `create_chain` returns. */
export interface CreatedChain {
  /** The provider the parts run on. */
  provider: string;
  /** Distinct sessions the parts share. */
  sessions: number;
  /** Bytes of the weights held in host memory. */
  hostBytes: number;
  /** On a GPU: why weights are in pageable host memory, not pinned. */
  unpinned?: string;
  /** Milliseconds to create the sessions and read the weights. */
  createMs: number;
  /** Process resident memory before and after, in bytes. */
  rssBefore: number;
  /** See `rssBefore`. */
  rssAfter: number;
}

/** What `run` returns. */
export interface RunResult {
  /** Outputs by name. */
  outputs: Record<string, WireTensor>;
  /** Milliseconds spent in `session.run()`. */
  runMs: number;
  /** For a streamed model: milliseconds per part. */
  partMs?: number[];
}

/**
 * CUDA provider options of streamed models: the arena grows by what is asked, not by powers of
 * two (a run's activations would otherwise hold up to twice their size), and cuDNN's convolutions
 * (the VAE decoder's) get no more workspace than their default, not all the device has free.
 */
const CHAIN_CUDA_OPTIONS = {
  arena_extend_strategy: "kSameAsRequested",
  cudnn_conv_use_max_workspace: "0",
};

/** A reply from the worker. */
export type WorkerReply =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: { name: string; message: string } };

const sessions = new Map<string, ort.InferenceSession>();
/** Streamed models, by session name. */
const chains = new Map<string, StreamedChain>();
/** Feeds kept for later runs of streamed models, by session, then by input name. */
const keptChainFeeds = new Map<string, Map<string, Tensor>>();
/** Feeds kept for later runs, by session, then by input name. */
const keptFeeds = new Map<string, Map<string, ort.Tensor>>();

// Failures reach the caller as exceptions; ONNX Runtime's own log lines would repeat them.
ort.env.logLevel = "fatal";
prepareFloat16();

// The host sends the port to serve, once; requests come on it.
self.onmessage = (event: MessageEvent<MessagePort>) => {
  self.onmessage = null;
  const port = event.data;
  port.onmessage = async (event: MessageEvent<WorkerRequest>) => {
    const request = event.data;
    try {
      const { result, transfer } = await handle(request);
      port.postMessage({ id: request.id, ok: true, result } satisfies WorkerReply, { transfer });
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      port.postMessage(
        {
          id: request.id,
          ok: false,
          error: { name: failure.name, message: failure.message },
        } satisfies WorkerReply,
      );
    }
  };
};

async function handle(
  request: WorkerRequest,
): Promise<{ result: unknown; transfer: Transferable[] }> {
  switch (request.op) {
    case "create":
      return { result: await create(request), transfer: [] };
    case "create_chain":
      return { result: await createChain(request), transfer: [] };
    case "run":
      return chains.has(request.session) ? await runChain(request) : await run(request);
    case "release": {
      const session = sessions.get(request.session);
      sessions.delete(request.session);
      keptFeeds.delete(request.session);
      await session?.release();
      chains.get(request.session)?.release();
      chains.delete(request.session);
      keptChainFeeds.delete(request.session);
      return { result: null, transfer: [] };
    }
  }
}

async function create(request: Extract<WorkerRequest, { op: "create" }>): Promise<CreatedSession> {
  const rssBefore = readProcessMemory().rss;
  const started = performance.now();
  // The request may come from any code of the main thread: only cogflow's options, only files
  // the caller could read. ONNX Runtime's options are built here, from those.
  const options = checkSessionOptions(request.options);
  let model = request.model;
  // With an external data folder the session is made from the graph's bytes: read them (Deno
  // checks that read) before checking them, so the file cannot change in between.
  const name = typeof model === "string" ? model : undefined;
  if (options.externalDataFolder && typeof model === "string") model = await Deno.readFile(model);
  await checkModelAccess(model, options, { inMemory: request.externalData, name });
  const base: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: options.graphOptimizationLevel,
    logSeverityLevel: 3,
  };
  if (options.intraOpThreads > 0) base.intraOpNumThreads = options.intraOpThreads;
  if (options.interOpThreads > 0) base.interOpNumThreads = options.interOpThreads;
  if (options.memoryPattern === false) base.enableMemPattern = false;
  if (request.externalData) {
    base.externalData = request.externalData.map(({ path, data }) => ({ path, data }));
  }
  // Config entries, as `session.<key>`.
  const entries: Record<string, string> = {};
  if (options.prepackWeights === false) entries.disable_prepacking = "1";
  if (options.intraOpSpinning === false) entries["intra_op.allow_spinning"] = "0";
  if (options.externalDataFolder) {
    entries.model_external_initializers_file_folder_path = options.externalDataFolder;
  }
  // On a GPU the weights get their own device allocations, not the activation arena's blocks,
  // which grow by powers of two: weights of gigabytes would otherwise take up to twice their size.
  if ((options.executionProviders[0] ?? "cpu") !== "cpu") {
    entries.use_device_allocator_for_initializers = "1";
  }
  if (Object.keys(entries).length > 0) base.extra = { session: entries };
  const providers = options.executionProviders;
  let provider = providers[0] ?? "cpu";
  let fallbackReason: string | undefined;
  let session: ort.InferenceSession;
  try {
    session = await createSession(model, { ...base, executionProviders: providers });
  } catch (error) {
    if (provider === "cpu" || !options.fallbackToCpu) throw error;
    fallbackReason = (error as Error).message.split("\n")[0];
    provider = "cpu";
    session = await createSession(model, { ...base, executionProviders: ["cpu"] });
  }
  sessions.get(request.session)?.release();
  sessions.set(request.session, session);
  keptFeeds.delete(request.session);
  return {
    inputNames: [...session.inputNames],
    outputNames: [...session.outputNames],
    provider,
    fallbackReason,
    createMs: performance.now() - started,
    rssBefore,
    rssAfter: readProcessMemory().rss,
  };
}

async function createChain(
  request: Extract<WorkerRequest, { op: "create_chain" }>,
): Promise<CreatedChain> {
  const rssBefore = readProcessMemory().rss;
  const started = performance.now();
  const options = checkSessionOptions(request.options);
  const plan = await checkChainPlan(request.plan);
  const provider = options.executionProviders[0] ?? "cpu";
  if (provider !== "cpu" && provider !== "cuda") {
    throw new Error(`Streamed models run on cpu or cuda, not ${provider}`);
  }
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    throw new Error(
      "Weight streaming needs ONNX Runtime's C API, which needs Deno's whole ffi permission: " +
        "the launcher grants it for workflows with provider cuda or stream_weights: on " +
        "(without the launcher, run Deno with --allow-ffi)",
    );
  }
  const chain = await StreamedChain.create({
    ...plan,
    provider,
    cudaOptions: provider === "cuda" ? CHAIN_CUDA_OPTIONS : undefined,
    intraOpThreads: options.intraOpThreads,
    graphOptimizationLevel: options.graphOptimizationLevel,
    memoryPattern: options.memoryPattern,
    // On the CPU a shared part session's arena grew by about 0.8 GB a run, never reusing its
    // blocks, when the part attends in query chunks (a Loop): a real-size CogVideoX-2b step at
    // 240x368x49 reached 24 GB; without the arena it holds 5.5 GB, the weights included
    // (bench/gpu/streamed_step_probe.ts --provider cpu --query-chunk 1024 --arena off).
    cpuArena: provider === "cpu" ? false : undefined,
  });
  chains.get(request.session)?.release();
  chains.set(request.session, chain);
  keptChainFeeds.delete(request.session);
  return {
    provider,
    sessions: chain.sessionCount,
    hostBytes: chain.hostBytes,
    unpinned: chain.unpinned,
    createMs: performance.now() - started,
    rssBefore,
    rssAfter: readProcessMemory().rss,
  };
}

async function runChain(
  request: Extract<WorkerRequest, { op: "run" }>,
): Promise<{ result: RunResult; transfer: Transferable[] }> {
  const chain = chains.get(request.session)!;
  const feeds = resolveFeeds(
    request,
    keptChainFeeds,
    (tensor) => createTensor(tensor.dtype, tensor.shape, tensor.data),
  );
  // Feeds the caller keeps passing unchanged stay on the device.
  const unchanged = new Set(request.keep ?? []);
  for (const [name, tensor] of Object.entries(request.feeds)) {
    if ("kept" in tensor) unchanged.add(name);
  }
  const started = performance.now();
  const { outputs, stats } = await chain.run(feeds, unchanged);
  const runMs = performance.now() - started;
  const { wire, transfer } = toWire(outputs);
  return { result: { outputs: wire, runMs, partMs: stats.partMs }, transfer };
}

/** Outputs as they cross to the caller: their buffers transferred, each once. */
function toWire(
  outputs: Record<string, { dtype: DType; shape: readonly number[]; data: TensorData }>,
): { wire: Record<string, WireTensor>; transfer: Transferable[] } {
  const wire: Record<string, WireTensor> = {};
  const transfer: Transferable[] = [];
  for (const [name, { dtype, shape, data }] of Object.entries(outputs)) {
    wire[name] = { dtype, shape: [...shape], data };
    if (data.buffer instanceof ArrayBuffer && !transfer.includes(data.buffer)) {
      transfer.push(data.buffer);
    }
  }
  return { wire, transfer };
}

/**
 * A run request's feeds as `make` makes them: `{ kept: true }` feeds from `keptBySession`, and
 * those the request says to keep stored there for later runs.
 */
function resolveFeeds<T>(
  request: Extract<WorkerRequest, { op: "run" }>,
  keptBySession: Map<string, Map<string, T>>,
  make: (tensor: WireTensor) => T,
): Record<string, T> {
  const feeds: Record<string, T> = {};
  let kept = keptBySession.get(request.session);
  for (const [name, tensor] of Object.entries(request.feeds)) {
    if ("kept" in tensor) {
      const earlier = kept?.get(name);
      if (!earlier) throw new Error(`No kept feed "${name}" for session "${request.session}"`);
      feeds[name] = earlier;
      continue;
    }
    feeds[name] = make(tensor);
    if (request.keep?.includes(name)) {
      if (!kept) keptBySession.set(request.session, kept = new Map());
      kept.set(name, feeds[name]);
    }
  }
  return feeds;
}

function createSession(
  model: string | Uint8Array,
  options: ort.InferenceSession.SessionOptions,
): Promise<ort.InferenceSession> {
  return typeof model === "string"
    ? ort.InferenceSession.create(model, options)
    : ort.InferenceSession.create(model, options);
}

async function run(
  request: Extract<WorkerRequest, { op: "run" }>,
): Promise<{ result: RunResult; transfer: Transferable[] }> {
  const session = sessions.get(request.session);
  if (!session) throw new Error(`No session "${request.session}" in this worker`);
  const feeds = resolveFeeds(
    request,
    keptFeeds,
    (tensor) => new ort.Tensor(tensor.dtype, tensor.data as ort.Tensor.DataType, tensor.shape),
  );
  const started = performance.now();
  const produced = request.fetches
    ? await session.run(feeds, request.fetches)
    : await session.run(feeds);
  const runMs = performance.now() - started;
  const { wire, transfer } = toWire(
    Object.fromEntries(
      Object.entries(produced).map(([name, value]) => [
        name,
        { dtype: value.type as DType, shape: value.dims, data: value.data as TensorData },
      ]),
    ),
  );
  return { result: { outputs: wire, runMs }, transfer };
}

/**
 * onnxruntime-common picks `Float16Array` for float16 tensors when the global exists, and then
 * rejects the `Uint16Array`s cogflow uses; building the first float16 tensor without the global
 * makes it settle on `Uint16Array`.
 */
function prepareFloat16() {
  const global = globalThis as { Float16Array?: unknown };
  const saved = global.Float16Array;
  if (saved === undefined) return;
  delete global.Float16Array;
  try {
    new ort.Tensor("float16", new Uint16Array(1), [1]);
  } finally {
    global.Float16Array = saved;
  }
}
