/**
 * Port types: what flows along an edge. Every port is a zod schema; the schemas made here also
 * carry a {@link PortType} so that validation can check a connection before anything runs.
 *
 * @module
 */

import { z } from "zod";
import { type DType, formatShape, isTensor, type Tensor } from "../runtime/tensor.ts";
import type { PortSchema, Schema } from "./schema.ts";

export type { PortSchema } from "./schema.ts";

/** A tensor dimension: a size, a symbolic name (`"batch"`), or null when unknown. */
export type Dimension = number | string | null;

/** The static type of a port, as validation sees it. */
export interface PortType {
  /** What the value is: `tensor`, `model`, `tokenizer`, `scheduler`, `frames`, `path`, `string`, ... */
  kind: string;
  /** Tensors and frames: the element type, when fixed. */
  dtype?: DType;
  /** Tensors: the number of dimensions, when fixed. */
  rank?: number;
  /** Tensors: the dimensions, when known (refined at validation from settings and model files). */
  shape?: readonly Dimension[];
  /** Models: what the model is for (`transformer`, `vae`, `text_encoder`). */
  role?: string;
  /** Anything else a node learned at validation (a model's declared inputs, say); not compared. */
  info?: unknown;
}

const portRegistry = z.registry<{ port: PortType }>();

/** Attaches a port type to a schema and returns the schema. */
export function withPortType<S extends Schema>(schema: S, type: PortType): S {
  portRegistry.add(schema as unknown as z.ZodType, { port: type });
  return schema;
}

/**
 * The port type of a schema: the one attached by {@link withPortType} (looking through
 * `.optional()`, `.nullable()` and `.default()`), or one derived from plain zod types.
 */
export function portTypeOf(schema: Schema): PortType {
  const registered = portRegistry.get(schema as unknown as z.ZodType);
  if (registered) return registered.port;
  const def =
    (schema as unknown as { _zod: { def: { type: string; innerType?: Schema } } })._zod.def;
  if (
    def.innerType && ["optional", "nullable", "default", "prefault", "readonly"].includes(def.type)
  ) {
    return portTypeOf(def.innerType);
  }
  switch (def.type) {
    case "string":
      return { kind: "string" };
    case "number":
      return { kind: (schema as z.ZodNumber).format?.includes("int") ? "integer" : "number" };
    case "int":
      return { kind: "integer" };
    case "boolean":
      return { kind: "boolean" };
    case "array":
      return { kind: "list" };
    default:
      return { kind: "any" };
  }
}

/** True when a port accepts `undefined` (it need not be connected). */
export function isOptionalPort(schema: Schema): boolean {
  return schema.safeParse(undefined).success;
}

/** A port type as people read it: `tensor<float32, [1, 16, 32]>`, `model<vae>`. */
export function formatPortType(type: PortType): string {
  const details: string[] = [];
  if (type.role) details.push(type.role);
  if (type.dtype) details.push(type.dtype);
  if (type.shape) details.push(formatShape(type.shape.map((d) => d ?? "?")));
  else if (type.rank !== undefined) details.push(`rank ${type.rank}`);
  return details.length > 0 ? `${type.kind}<${details.join(", ")}>` : type.kind;
}

/**
 * Whether a value of type `from` may feed a port of type `to`; returns the reason when it may not.
 * Unknown details (no dtype, no shape) are accepted here and checked when the value arrives.
 */
export function connectionProblem(from: PortType, to: PortType): string | undefined {
  if (to.kind === "any" || from.kind === "any") return undefined;
  const numeric = from.kind === "integer" && to.kind === "number";
  if (from.kind !== to.kind && !numeric) {
    return `expected ${formatPortType(to)}, got ${formatPortType(from)}`;
  }
  if (to.role !== undefined && from.role !== undefined && to.role !== from.role) {
    return `expected ${formatPortType(to)}, got ${formatPortType(from)}`;
  }
  if (to.dtype !== undefined && from.dtype !== undefined && to.dtype !== from.dtype) {
    return `expected dtype ${to.dtype}, got ${from.dtype}`;
  }
  const fromRank = from.shape?.length ?? from.rank;
  const toRank = to.shape?.length ?? to.rank;
  if (fromRank !== undefined && toRank !== undefined && fromRank !== toRank) {
    return `expected ${kindWithRank(to.kind, toRank)}, got rank ${fromRank}`;
  }
  if (from.shape && to.shape) {
    for (let i = 0; i < from.shape.length; i++) {
      const a = from.shape[i];
      const b = to.shape[i];
      if (typeof a === "number" && typeof b === "number" && a !== b) {
        return `expected shape ${formatShape(to.shape.map((d) => d ?? "?"))}, got ${
          formatShape(from.shape.map((d) => d ?? "?"))
        }`;
      }
    }
  }
  return undefined;
}

function kindWithRank(kind: string, rank: number): string {
  return `${kind} of rank ${rank}`;
}

/** Options of a tensor port. */
export interface TensorPortOptions<D extends DType> {
  /** The element type the port requires. */
  dtype?: D;
  /** The number of dimensions the port requires. */
  rank?: number;
  /** The dimensions, where fixed (null or a name for free ones). */
  shape?: readonly Dimension[];
}

/** A tensor port; values are checked for dtype and rank when they arrive. */
export function tensorPort<D extends DType = DType>(
  options: TensorPortOptions<D> = {},
): PortSchema<Tensor<D>> {
  const rank = options.shape?.length ?? options.rank;
  const schema = z.custom<Tensor<D>>((value) => isTensor(value), {
    message: "Expected a tensor",
  }).superRefine((value, ctx) => {
    if (options.dtype && value.dtype !== options.dtype) {
      ctx.addIssue({
        code: "custom",
        message: `Expected dtype ${options.dtype}, got ${value.dtype}`,
      });
    }
    if (rank !== undefined && value.shape.length !== rank) {
      ctx.addIssue({
        code: "custom",
        message: `Expected rank ${rank}, got shape ${formatShape(value.shape)}`,
      });
    }
  });
  return asPortSchema(
    withPortType(schema, { kind: "tensor", dtype: options.dtype, rank, shape: options.shape }),
  );
}

/**
 * A port for values of a named kind that plain zod cannot describe (model handles, tokenizers,
 * schedulers). `check` tells a valid value apart at run time.
 */
export function valuePort<T>(
  kind: string,
  check: (value: unknown) => boolean,
  details: Omit<PortType, "kind"> = {},
): PortSchema<T> {
  const schema = z.custom<T>((value) => check(value), { message: `Expected a ${kind}` });
  return asPortSchema(withPortType(schema, { kind, ...details }));
}

/** A port carrying a file or folder path (an absolute path string). */
export function pathPort(): PortSchema<string> {
  return asPortSchema(withPortType(z.string(), { kind: "path" }));
}

/** A port carrying a list of file or folder paths (absolute path strings). */
export function pathsPort(): PortSchema<string[]> {
  return asPortSchema(withPortType(z.array(z.string()), { kind: "paths" }));
}

/** A zod schema as the plugin API's {@link PortSchema} (zod's own types stay out of the API). */
function asPortSchema<T>(schema: z.ZodType<T>): PortSchema<T> {
  return schema as unknown as PortSchema<T>;
}
