/**
 * The node plugin API: {@link defineNode} and the types a node's `run()` sees.
 *
 * @module
 */

import { z } from "zod";
import type { ModelManager } from "../runtime/model_manager.ts";
import type { PortType } from "./port_types.ts";
import type { ObjectInput, ObjectOutput, OutputOf, PortSchema, Schema } from "./schema.ts";

/** Named ports: each a zod schema (see `tensorPort`, `valuePort` and plain zod types). */
export type PortSchemas = Record<string, Schema>;

/** The values a node receives: one per input port, typed by its schema. */
export type InputValues<I extends PortSchemas> = ObjectOutput<I>;

/** The values of variadic input ports (any name), when a node type accepts them. */
export type VariadicValues<V> = V extends Schema ? Record<string, OutputOf<V>> : unknown;

/** The values a node returns: one per output port. */
export type OutputValues<O extends PortSchemas> = ObjectInput<O>;

/** The parsed settings of a node. */
export type SettingValues<S extends PortSchemas> = ObjectOutput<S>;

/** Messages a node writes for the user. */
export interface NodeLogger {
  /** Something the user may want to know. */
  info(message: string): void;
  /** Something that may be wrong (a truncated prompt, a fallback). */
  warn(message: string): void;
  /** Detail for debugging. */
  debug(message: string): void;
}

/** What a running node gets from the engine besides its inputs and settings. */
export interface NodeContext {
  /** The node's id in the workflow. */
  readonly node: string;
  /** The node's type. */
  readonly type: string;
  /** For a hook: the hook node as written and the output (`node.port`) this instance wraps. */
  readonly hook?: { node: string; wraps: string };
  /** Aborted when the run is cancelled: check it between steps. */
  readonly signal: AbortSignal;
  /** Reports progress: step `step` of `total` (shown with an ETA). */
  progress(step: number, total: number, message?: string): void;
  /** Writes messages for the user. */
  readonly log: NodeLogger;
  /** A folder for temporary files, created on first use and removed after the run. */
  scratchDir(): Promise<string>;
  /** Owns every ONNX Runtime session: run models through it. */
  readonly models: ModelManager;
  /**
   * Declares that the output depends on a file that may change: a cached result is reused only
   * while the file's size and modification time are unchanged.
   */
  dependsOnFile(path: string): Promise<void>;
  /** Declares that this run's outputs must never be reused from a cache. */
  uncacheable(): void;
}

/** What a node's `infer()` gets at validation time. */
export interface InferContext {
  /** The node's id. */
  readonly node: string;
  /** Reports a problem with the node; `port` names the input port or setting it is about. */
  error(message: string, options?: { port?: string; setting?: string; hint?: string }): void;
  /** The node and output that feed an input port, if connected. */
  source(port: string): { node: string; port: string } | undefined;
}

/** Declares that a node type is a hook: it wraps other nodes' outputs (see `wraps:`). */
export interface HookSpec<I extends PortSchemas, O extends PortSchemas> {
  /** Hooks of the same kind may not wrap the same output twice (e.g. `offload`). */
  kind: string;
  /** The input port that receives the wrapped node's output. */
  input: keyof I & string;
  /** The output port that every consumer of the wrapped node receives instead. */
  output: keyof O & string;
}

/** Static types of a node's inputs at validation: undefined where a port is not connected. */
export type InputTypes<I extends PortSchemas> = { [K in keyof I]?: PortType };

/** A node type: its ports, settings and behaviour. */
export interface NodeDefinition<
  I extends PortSchemas = PortSchemas,
  S extends PortSchemas = PortSchemas,
  O extends PortSchemas = PortSchemas,
  V extends Schema | undefined = undefined,
> {
  /** The name used in workflows (`type: sample`): lower snake case. */
  type: string;
  /** Bump when the node's results change for the same inputs: it is part of the cache key. */
  version: number;
  /** One sentence for `cogflow nodes` and editors. */
  description: string;
  /** Groups node types in listings (`models`, `sampling`, `output`, ...). */
  category?: string;
  /** Input ports. */
  inputs: I;
  /** Constant settings (`with:`), with defaults. */
  settings: S;
  /** Output ports. */
  outputs: O;
  /**
   * Accepts input ports of any other name, each checked with this schema; `run()` gets them by
   * name (as `save_tensors` takes `in: { frames: decode.frames, latents: sample.latents }`).
   */
  variadicInputs?: V;
  /** True for nodes whose effect is the point (saving files): they run by default. */
  output?: boolean;
  /** Makes the node a hook that wraps other nodes (offload, VAE tiling). */
  hook?: HookSpec<I, O>;
  /**
   * Refines output types and checks inputs at validation time, before anything runs (reading a
   * model file's declared inputs, say). Report problems with `ctx.error`.
   */
  infer?(
    ctx: InferContext,
    inputs: InputTypes<I>,
    settings: SettingValues<S>,
  ): Partial<Record<keyof O, PortType>> | void | Promise<Partial<Record<keyof O, PortType>> | void>;
  /**
   * How workflows written for older versions of this type are brought up to date (see
   * {@link NodeMigration}); a version step with none needs no change to workflows.
   */
  migrations?: readonly NodeMigration[];
  /** Does the work. */
  run(
    ctx: NodeContext,
    inputs: InputValues<I> & VariadicValues<V>,
    settings: SettingValues<S>,
  ): OutputValues<O> | Promise<OutputValues<O>>;
}

/** A node as a workflow file writes it, for migrations: its `in:` and `with:`. */
export interface WrittenNode {
  /** Input port to reference. */
  in: Record<string, string>;
  /** Settings as written (`$param` references unresolved). */
  with: Record<string, unknown>;
}

/** A change between two versions of a node type that workflows written before it must follow. */
export interface NodeMigration {
  /** The version the change leaves: workflows written for it or older are migrated. */
  from: number;
  /** What changed, as the end of a sentence (`"strength" was renamed "scale"`). */
  changes: string;
  /** Rewrites a node written for version `from`; without it, such workflows fail to load. */
  migrate?(node: WrittenNode): WrittenNode;
}

/** A node definition with its type parameters erased, as registries hold them. */
// deno-lint-ignore no-explicit-any
export type AnyNodeDefinition = NodeDefinition<any, any, any, any>;

const NODE_BRAND = Symbol.for("cogflow.node");

/**
 * Defines a node type. An identity function whose job is type inference: the schemas' types flow
 * into `run()`, so a node needs no casts.
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { defineNode } from "./define_node.ts";
 *
 * export const add = defineNode({
 *   type: "add",
 *   version: 1,
 *   description: "Adds a constant to a number",
 *   inputs: { value: z.number().describe("The number to add to") },
 *   settings: { amount: z.number().default(1).describe("Added to the value (default 1)") },
 *   outputs: { sum: z.number().describe("The value plus the amount") },
 *   run: (_ctx, { value }, { amount }) => ({ sum: value + amount }),
 * });
 * ```
 */
export function defineNode<
  I extends PortSchemas,
  S extends PortSchemas,
  O extends PortSchemas,
  V extends Schema | undefined = undefined,
>(definition: NodeDefinition<I, S, O, V>): NodeDefinition<I, S, O, V> {
  Object.defineProperty(definition, NODE_BRAND, { value: true });
  return definition;
}

/** True for objects made by {@link defineNode}. */
export function isNodeDefinition(value: unknown): value is AnyNodeDefinition {
  return typeof value === "object" && value !== null &&
    (value as Record<symbol, unknown>)[NODE_BRAND] === true;
}

/** How a setting that holds a path is resolved when relative. */
export type PathRole = "input" | "output";

const pathSettings = z.registry<{ pathRole: PathRole }>();

/**
 * A setting holding the path of something the node reads. A relative path written in a workflow
 * file is resolved against the file's folder. Describe it as any setting:
 * `inputPath().describe("The .onnx file")`.
 */
export function inputPath(): PortSchema<string> {
  return z.string().min(1).register(pathSettings, { pathRole: "input" }) as unknown as PortSchema<
    string
  >;
}

/**
 * A setting holding the path of something the node writes. A relative path is resolved against the
 * current directory.
 */
export function outputPath(): PortSchema<string> {
  return z.string().min(1).register(pathSettings, { pathRole: "output" }) as unknown as PortSchema<
    string
  >;
}

/** The path role of a setting's schema, looking through `.optional()` and `.default()`. */
export function pathRoleOf(schema: Schema): PathRole | undefined {
  const entry = pathSettings.get(schema as unknown as z.ZodType);
  if (entry) return entry.pathRole;
  const def = (schema as unknown as { _zod: { def: { innerType?: Schema } } })._zod.def;
  return def.innerType ? pathRoleOf(def.innerType) : undefined;
}
