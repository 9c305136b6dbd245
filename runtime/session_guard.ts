/**
 * What a session worker checks before ONNX Runtime sees a request. ONNX Runtime's native code
 * opens files without Deno's permission checks, and any code on the main thread (a plugin among
 * it) can send a session worker requests, so:
 *
 * - the options are cogflow's own ({@link WorkerSessionOptions}, checked field by field, nothing
 *   else): the worker builds ONNX Runtime's options from them, so there is no way to ask for an
 *   optimized model file, a profile, custom operator libraries or config entries;
 * - every file ONNX Runtime would open (the model file, the external data folder, each external
 *   data file the graph names that is not given in memory) must be readable by this thread, links
 *   followed: a session reads nothing its caller could not read itself.
 *
 * @module
 */

import { EXECUTION_PROVIDERS } from "./model_handle.ts";
import { externalDataPath, inspectOnnxModel } from "./onnx_inspect.ts";
import { quote } from "./quote.ts";
import type { ChainPlan } from "./streamed_chain.ts";

/** Options of a session created in a worker. */
export interface WorkerSessionOptions {
  /** Providers in order of preference. */
  executionProviders: string[];
  /** Fall back to the CPU when the first provider fails to load. */
  fallbackToCpu: boolean;
  /** Threads within an operator (0: default). */
  intraOpThreads: number;
  /** Threads across operators (0: default). */
  interOpThreads: number;
  /** Graph optimization level. */
  graphOptimizationLevel: "disabled" | "basic" | "extended" | "all";
  /**
   * Let ONNX Runtime repack weights for its kernels when creating the session (default true).
   * Off, weights stay in the memory-mapped external data file: the session is created many times
   * faster and gives its memory back as soon as it is released (file pages, unmapped), but MatMuls
   * repack their weights on every call on the CPU (about 20% slower with a thousand rows, up to
   * twice as slow with a few hundred). Off suits a session created for one run (a part of a split
   * model).
   */
  prepackWeights?: boolean;
  /**
   * Let the intra-op threads spin between operators while a run waits for work (ONNX Runtime's
   * default, true). Off, they sleep: sessions of two workers then share the CPUs without idle
   * spinning (a part's run slowed by a quarter when the next part was created beside it).
   */
  intraOpSpinning?: boolean;
  /**
   * ONNX Runtime's memory pattern (default true): it plans a run's allocations from the first run
   * and keeps the plan, one per set of input shapes. Off, each run allocates as it goes, from the
   * arena. Off suits a model whose input shapes change from run to run (see onnx_model_manager.ts).
   */
  memoryPattern?: boolean;
  /**
   * The folder the model's external data locations are relative to, when it is not the model
   * file's folder (graphs built from safetensors files). The session is then created from the
   * graph's bytes, since ONNX Runtime refuses locations and links leaving a model file's folder.
   */
  externalDataFolder?: string;
}

/** External data given in memory: file names as the model refers to them, and bytes. */
export interface InMemoryExternalData {
  /** The location as the model writes it. */
  path: string;
  /** The file's bytes. */
  data: Uint8Array;
}

const GRAPH_OPTIMIZATION_LEVELS = ["disabled", "basic", "extended", "all"];

/** The most threads a session may ask for. */
const MAX_THREADS = 4096;

/**
 * Checks options that came from another thread: returns them as {@link WorkerSessionOptions},
 * or throws naming the first field that is unknown or of the wrong kind.
 */
export function checkSessionOptions(value: unknown): WorkerSessionOptions {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error("Invalid session options: expected an object");
  }
  const options = value as Record<string, unknown>;
  const known = [
    "executionProviders",
    "fallbackToCpu",
    "intraOpThreads",
    "interOpThreads",
    "graphOptimizationLevel",
    "prepackWeights",
    "intraOpSpinning",
    "memoryPattern",
    "externalDataFolder",
  ];
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new Error(
        `Unknown session option ${quote(key)}: a session worker takes only ${known.join(", ")}`,
      );
    }
  }
  const invalid = (key: string, expected: string) =>
    new Error(`Invalid session option ${quote(key)}: expected ${expected}`);
  const providers = options.executionProviders;
  const allowed: readonly string[] = EXECUTION_PROVIDERS;
  if (
    !Array.isArray(providers) ||
    !providers.every((provider) => typeof provider === "string" && allowed.includes(provider))
  ) {
    throw invalid("executionProviders", `a list of ${allowed.join(", ")}`);
  }
  for (const key of ["intraOpThreads", "interOpThreads"]) {
    const threads = options[key];
    if (typeof threads !== "number" || !Number.isInteger(threads) || threads < 0) {
      throw invalid(key, "a whole number of 0 or more");
    }
    if (threads > MAX_THREADS) throw invalid(key, `at most ${MAX_THREADS}`);
  }
  if (!GRAPH_OPTIMIZATION_LEVELS.includes(options.graphOptimizationLevel as string)) {
    throw invalid("graphOptimizationLevel", `one of ${GRAPH_OPTIMIZATION_LEVELS.join(", ")}`);
  }
  if (typeof options.fallbackToCpu !== "boolean") throw invalid("fallbackToCpu", "true or false");
  for (const key of ["prepackWeights", "intraOpSpinning", "memoryPattern"]) {
    if (options[key] !== undefined && typeof options[key] !== "boolean") {
      throw invalid(key, "true or false");
    }
  }
  const folder = options.externalDataFolder;
  if (folder !== undefined && (typeof folder !== "string" || folder === "")) {
    throw invalid("externalDataFolder", "a folder path");
  }
  return {
    executionProviders: [...providers],
    fallbackToCpu: options.fallbackToCpu,
    intraOpThreads: options.intraOpThreads as number,
    interOpThreads: options.interOpThreads as number,
    graphOptimizationLevel: options
      .graphOptimizationLevel as WorkerSessionOptions["graphOptimizationLevel"],
    prepackWeights: options.prepackWeights as boolean | undefined,
    intraOpSpinning: options.intraOpSpinning as boolean | undefined,
    memoryPattern: options.memoryPattern as boolean | undefined,
    externalDataFolder: folder as string | undefined,
  };
}

/** What else {@link checkModelAccess} needs to know. */
export interface ModelAccessOptions {
  /** External data given in memory (ONNX Runtime opens no file for those). */
  inMemory?: readonly InMemoryExternalData[];
  /** What to call a model given as bytes in messages (the file it was read from). */
  name?: string;
}

/**
 * Checks that every file ONNX Runtime would open for a session is readable by this thread: the
 * model file, the external data folder, and each external data file the graph names that is not
 * given in memory. A graph given as bytes finds its external data in the external data folder, or
 * else in the current folder (ONNX Runtime's rule). Throws naming the first one that is not.
 */
export async function checkModelAccess(
  model: string | Uint8Array,
  options: Pick<WorkerSessionOptions, "externalDataFolder">,
  access: ModelAccessOptions = {},
): Promise<void> {
  const inMemory = access.inMemory ?? [];
  if (typeof model !== "string" && !(model instanceof Uint8Array)) {
    throw new Error("Invalid model: expected a file path or the model's bytes");
  }
  if (!Array.isArray(inMemory) || !inMemory.every(isInMemoryExternalData)) {
    throw new Error("Invalid external data: expected a list of { path, data } with bytes");
  }
  const name = typeof model === "string" ? model : access.name ?? "<model bytes>";
  if (typeof model === "string") checkReadable(model, `Model file "${model}"`);
  const folder = options.externalDataFolder;
  if (folder !== undefined) checkReadable(folder, `External data folder "${folder}"`);
  const given = new Set(inMemory.map((file) => file.path));
  const info = await inspectOnnxModel(model, { name });
  for (const location of info.externalDataFiles) {
    if (given.has(location)) continue;
    const base = typeof model === "string" ? folder : folder ?? Deno.cwd();
    const path = externalDataPath(name, location, base);
    checkReadable(path, `External data file "${path}" of "${name}"`);
  }
}

/**
 * Throws unless `path` exists and this thread may read it and what its links point to; `subject`
 * names it in the message.
 */
function checkReadable(path: string, subject: string): void {
  const outside = () => new Error(`${subject} is outside the paths this run may read`);
  let real: string;
  try {
    real = Deno.realPathSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new Error(`${subject} does not exist`);
    if (error instanceof Deno.errors.NotCapable) throw outside();
    throw error;
  }
  if (Deno.permissions.querySync({ name: "read", path: real }).state !== "granted") throw outside();
}

function isInMemoryExternalData(value: unknown): value is InMemoryExternalData {
  const file = value as InMemoryExternalData;
  return typeof file === "object" && file !== null && typeof file.path === "string" &&
    file.data instanceof Uint8Array;
}

/** A streamed model as a worker takes it (runtime/streamed_chain.ts's plan, less the provider). */
export type WorkerChainPlan = Pick<ChainPlan, "parts" | "modelOutputs" | "prefetch">;

const WEIGHT_DTYPES = ["float32", "float16", "bfloat16"];

/**
 * Checks a streamed model's plan field by field: graphs that name no external data (ONNX
 * Runtime would open those files itself) unless the part has an external data folder, whose
 * files must then be readable as for any session (checkModelAccess); weights as byte ranges of
 * files this thread may read (the worker reads them with Deno's checks); names as strings.
 * Returns the plan.
 */
export async function checkChainPlan(value: unknown): Promise<WorkerChainPlan> {
  const invalid = (what: string) => new Error(`Invalid streamed model: ${what}`);
  const plan = value as WorkerChainPlan;
  if (typeof plan !== "object" || plan === null || !Array.isArray(plan.parts)) {
    throw invalid("expected { parts, modelOutputs }");
  }
  const isName = (name: unknown) => typeof name === "string" && name.length > 0;
  const isCount = (n: unknown) => typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
  if (!Array.isArray(plan.modelOutputs) || !plan.modelOutputs.every(isName)) {
    throw invalid("modelOutputs must be a list of names");
  }
  if (plan.prefetch !== undefined && typeof plan.prefetch !== "boolean") {
    throw invalid("prefetch must be true or false");
  }
  for (const part of plan.parts) {
    if (typeof part !== "object" || part === null || !isName(part.name)) {
      throw invalid("every part needs a name");
    }
    const where = `part ${quote(part.name)}`;
    if (!(part.graph instanceof Uint8Array)) throw invalid(`${where}: its graph must be bytes`);
    for (const key of ["inputs", "outputs"] as const) {
      const named = part[key];
      if (!Array.isArray(named) || !named.every((n) => isName(n?.graph) && isName(n?.tensor))) {
        throw invalid(`${where}: ${key} must be a list of { graph, tensor } names`);
      }
    }
    if (!Array.isArray(part.weights)) throw invalid(`${where}: weights must be a list`);
    for (const weight of part.weights) {
      const ok = typeof weight === "object" && weight !== null && isName(weight.input) &&
        typeof weight.path === "string" && isCount(weight.offset) && isCount(weight.length) &&
        WEIGHT_DTYPES.includes(weight.dtype) && Array.isArray(weight.shape) &&
        weight.shape.every(isCount);
      if (!ok) {
        throw invalid(`${where}: a weight is not { input, path, offset, length, dtype, shape }`);
      }
      checkReadable(weight.path, `Weight file "${weight.path}" of ${where}`);
    }
    if (part.externalDataFolder !== undefined) {
      if (typeof part.externalDataFolder !== "string") {
        throw invalid(`${where}: its external data folder must be a path`);
      }
      await checkModelAccess(part.graph, { externalDataFolder: part.externalDataFolder }, {
        name: where,
      });
      continue;
    }
    const info = await inspectOnnxModel(part.graph, { name: where });
    if (info.externalDataFiles.length > 0) {
      throw invalid(`${where}: its graph names external data (${info.externalDataFiles[0]})`);
    }
  }
  return plan;
}
