/**
 * Building ONNX graphs in code. A {@link GraphBuilder} collects inputs, nodes, constants and
 * initializers and encodes a ModelProto whose weights are external data pointing at byte ranges
 * of the downloaded `.safetensors` files, so nothing is copied. Weights stored in another dtype
 * than the graph computes in are read through a `Cast` (ONNX Runtime folds it into a converted
 * copy when the session is created).
 *
 * Names follow the checkpoint: a weight's initializer is named by its key, and nodes are named
 * by the module path they were emitted under ({@link GraphBuilder.scope}), e.g.
 * `transformer_blocks.3.attn1/MatMul_41`, so a graph splits into blocks by name.
 *
 * @module
 */

import onnxProto from "onnx-proto";
import type { ComponentWeights, WeightDType, WeightRef } from "./safetensors_weights.ts";
import { UserError } from "../runtime/user_error.ts";

const onnx = onnxProto.onnx;

/** Element types a graph's values can have. */
export type ValueDType =
  | "float32"
  | "float16"
  | "bfloat16"
  | "float64"
  | "int64"
  | "int32"
  | "bool"
  | "uint8";

/** The dtypes the graph computes in. */
export type ComputeDType = "float32" | "float16" | "bfloat16";

/** ONNX TensorProto.DataType codes. */
export const ONNX_DTYPES: Readonly<Record<ValueDType, number>> = {
  float32: 1,
  uint8: 2,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
  bfloat16: 16,
};

/** A node attribute value: numbers are ints unless wrapped with {@link float} / {@link floats}. */
export type AttributeValue =
  | number
  | bigint
  | string
  | number[]
  | { float: number }
  | { floats: number[] }
  | { graph: onnxProto.onnx.IGraphProto };

/** A float attribute (plain numbers are ints). */
export function float(value: number): { float: number } {
  return { float: value };
}

/** A graph attribute (a `Loop` body): see {@link GraphBuilder.toGraphProto}. */
export function subgraph(body: GraphBuilder): { graph: onnxProto.onnx.IGraphProto } {
  return { graph: body.toGraphProto() };
}

/** A list-of-floats attribute. */
export function floats(values: number[]): { floats: number[] } {
  return { floats: values };
}

/** Options of {@link GraphBuilder}. */
export interface GraphBuilderOptions {
  /** The graph's name. */
  name: string;
  /** The component's weights (initializers are created from them on demand). */
  weights?: ComponentWeights;
  /** The dtype activations and weights are computed in (default float32). */
  computeDType?: ComputeDType;
  /** The default-domain opset (default 21). */
  opset?: number;
  /**
   * The outer graph of a subgraph (a `Loop` body): the subgraph's weights and constants are made
   * there (its nodes read them by name), its value names are unique across both, and it reads
   * the outer graph's weights and compute dtype.
   */
  parent?: GraphBuilder;
}

/** Options of {@link GraphBuilder.op}. */
export interface OpOptions {
  /** Operator domain (`com.microsoft` for contrib ops). */
  domain?: string;
  /** Number of outputs (default 1). */
  outputs?: number;
  /** A name hint for the outputs. */
  name?: string;
}

/** Builds one ONNX graph. */
export class GraphBuilder {
  /** The dtype activations are computed in. */
  readonly computeDType: ComputeDType;
  readonly #name: string;
  readonly #weights: ComponentWeights | undefined;
  readonly #opset: number;
  readonly #nodes: onnxProto.onnx.INodeProto[] = [];
  readonly #inputs: onnxProto.onnx.IValueInfoProto[] = [];
  readonly #outputs: onnxProto.onnx.IValueInfoProto[] = [];
  readonly #initializers: onnxProto.onnx.ITensorProto[] = [];
  readonly #weightValues = new Map<string, string>();
  readonly #usedWeights = new Set<string>();
  readonly #constants = new Map<string, string>();
  readonly #scopes: string[] = [];
  readonly #parent: GraphBuilder | undefined;
  #counter = 0;

  /** A builder for one graph. */
  constructor(options: GraphBuilderOptions) {
    this.#name = options.name;
    this.#parent = options.parent;
    this.#weights = options.weights ?? (options.parent && options.parent.#weights);
    this.computeDType = options.computeDType ?? options.parent?.computeDType ?? "float32";
    this.#opset = options.opset ?? 21;
  }

  /** The module path nodes are emitted under (`transformer_blocks.0.attn1`). */
  get path(): string {
    return this.#scopes.join(".");
  }

  /** Runs `build` with nodes and weight keys under `name` (a child module, like `attn1`). */
  scope<T>(name: string, build: () => T): T {
    this.#scopes.push(name);
    try {
      return build();
    } finally {
      this.#scopes.pop();
    }
  }

  /** The full checkpoint key of `name` under the current scope (`attn1.to_q.weight`). */
  key(name: string): string {
    return [...this.#scopes, name].join(".");
  }

  /** Declares a graph input; `dims` may name symbolic dimensions. */
  input(name: string, dtype: ValueDType, dims: readonly (number | string)[]): string {
    this.#inputs.push(valueInfo(name, dtype, dims));
    return name;
  }

  /** Declares `value` as a graph output named `name` (an Identity when the names differ). */
  output(
    value: string,
    name: string,
    dtype: ValueDType,
    dims?: readonly (number | string)[],
  ): string {
    const out = value === name ? value : this.#emit("Identity", [value], {}, [name])[0];
    this.#outputs.push(valueInfo(out, dtype, dims));
    return out;
  }

  /** True when the component has a weight under `name` in the current scope. */
  hasWeight(name: string): boolean {
    return this.#weights?.tensors.has(this.key(name)) ?? false;
  }

  /** The stored weight under `name` in the current scope; an error names the key when missing. */
  weightRef(name: string): WeightRef {
    const key = this.key(name);
    const ref = this.#weights?.tensors.get(key);
    if (!ref) throw new UserError(`Missing weight "${key}" in the ${this.#name} weights`);
    return ref;
  }

  /**
   * The weight under `name` in the current scope as a value of `dtype` (default: the compute
   * dtype): the initializer points into the safetensors file; a Cast converts when needed.
   */
  weight(name: string, dtype: ValueDType = this.computeDType): string {
    const ref = this.weightRef(name);
    if (this.#parent) return this.#parent.#weightValue(ref, dtype);
    return this.#weightValue(ref, dtype);
  }

  #weightValue(ref: WeightRef, dtype: ValueDType): string {
    this.#usedWeights.add(ref.name);
    const memo = `${ref.name}|${dtype}`;
    const known = this.#weightValues.get(memo);
    if (known) return known;
    if (!this.#weightValues.has(`${ref.name}|${ref.dtype}`)) {
      this.#initializers.push(externalTensor(ref));
      this.#weightValues.set(`${ref.name}|${ref.dtype}`, ref.name);
    }
    let value = ref.name;
    if (dtype !== ref.dtype) {
      value = this.#emit("Cast", [ref.name], { to: ONNX_DTYPES[dtype] }, [`${ref.name}:${dtype}`])[
        0
      ];
    }
    this.#weightValues.set(memo, value);
    return value;
  }

  /** Checkpoint keys the graph read. */
  usedWeights(): ReadonlySet<string> {
    return this.#usedWeights;
  }

  /** A constant tensor embedded in the graph (small: shapes, scalars, tables). */
  constant(dtype: ValueDType, dims: readonly number[], values: ArrayLike<number | bigint>): string {
    if (this.#parent) return this.#parent.constant(dtype, dims, values);
    const bytes = encodeValues(dtype, values);
    const memo = `${dtype}|${dims.join(",")}|${hex(bytes)}`;
    const known = this.#constants.get(memo);
    if (known) return known;
    const name = `const_${this.#constants.size}`;
    this.#initializers.push({
      name,
      dims: [...dims],
      dataType: ONNX_DTYPES[dtype],
      rawData: bytes,
    });
    this.#constants.set(memo, name);
    return name;
  }

  /** A 1-D int64 constant (shapes, axes, starts and ends). */
  int64s(values: readonly number[]): string {
    return this.constant("int64", [values.length], values.map((v) => BigInt(v)));
  }

  /** A scalar in the compute dtype (or `dtype`). */
  scalar(value: number, dtype: ValueDType = this.computeDType): string {
    return this.constant(dtype, [], [value]);
  }

  /** Emits one node with one output; returns the output's name. */
  op(
    type: string,
    inputs: readonly string[],
    attributes: Record<string, AttributeValue> = {},
    options: Omit<OpOptions, "outputs"> = {},
  ): string {
    return this.ops(type, inputs, attributes, { ...options, outputs: 1 })[0];
  }

  /** Emits one node with several outputs (`options.outputs`); an empty input name skips one. */
  ops(
    type: string,
    inputs: readonly string[],
    attributes: Record<string, AttributeValue> = {},
    options: OpOptions = {},
  ): string[] {
    const count = options.outputs ?? 1;
    const hint = options.name ?? type;
    const outputs = Array.from({ length: count }, (_, i) => this.#valueName(`${hint}${i || ""}`));
    return this.#emit(type, inputs, attributes, outputs, options.domain);
  }

  /**
   * The graph as a subgraph (a `Loop` body, see {@link subgraph}): its nodes, inputs and outputs.
   * Its nodes may read the outer graph's values by name; it must make no constants or weights of
   * its own (their names would repeat the outer graph's).
   */
  toGraphProto(): onnxProto.onnx.IGraphProto {
    if (this.#initializers.length > 0) {
      throw new Error(`Subgraph "${this.#name}" has initializers: make them in the outer graph`);
    }
    return { name: this.#name, node: this.#nodes, input: this.#inputs, output: this.#outputs };
  }

  /** The encoded ModelProto. */
  toBytes(): Uint8Array {
    const model: onnxProto.onnx.IModelProto = {
      irVersion: 10,
      producerName: "cogflow",
      opsetImport: [
        { domain: "", version: this.#opset },
        { domain: "com.microsoft", version: 1 },
      ],
      graph: {
        name: this.#name,
        node: this.#nodes,
        input: this.#inputs,
        output: this.#outputs,
        initializer: this.#initializers,
      },
    };
    return onnx.ModelProto.encode(model).finish();
  }

  /** Number of nodes so far. */
  get nodeCount(): number {
    return this.#nodes.length;
  }

  #valueName(hint: string): string {
    const path = this.path;
    return `${path ? `${path}/` : ""}${hint}_${this.#nextId()}`;
  }

  #nextId(): number {
    return this.#parent ? this.#parent.#nextId() : this.#counter++;
  }

  #emit(
    type: string,
    inputs: readonly string[],
    attributes: Record<string, AttributeValue>,
    outputs: string[],
    domain?: string,
  ): string[] {
    const path = this.path;
    // A subgraph's node names carry its name: its scopes may repeat the outer graph's.
    const prefix = this.#parent ? `${this.#name}:` : "";
    this.#nodes.push({
      name: `${prefix}${path ? `${path}/` : ""}${type}_${this.#nodes.length}`,
      opType: type,
      domain: domain ?? "",
      input: [...inputs],
      output: outputs,
      attribute: Object.entries(attributes).map(([name, value]) => attribute(name, value)),
    });
    return outputs;
  }
}

/** A graph input's or output's declaration: name, element type and (named) dimensions. */
export function valueInfo(
  name: string,
  dtype: ValueDType,
  dims?: readonly (number | string)[],
): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ONNX_DTYPES[dtype],
        shape: dims
          ? {
            dim: dims.map((d) => typeof d === "number" ? { dimValue: d } : { dimParam: d }),
          }
          : undefined,
      },
    },
  };
}

function externalTensor(ref: WeightRef): onnxProto.onnx.ITensorProto {
  return {
    name: ref.name,
    dims: ref.shape,
    dataType: ONNX_DTYPES[ref.dtype satisfies WeightDType],
    dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
    externalData: [
      { key: "location", value: ref.location },
      { key: "offset", value: String(ref.offset) },
      { key: "length", value: String(ref.length) },
    ],
  };
}

function attribute(name: string, value: AttributeValue): onnxProto.onnx.IAttributeProto {
  const Type = onnx.AttributeProto.AttributeType;
  if (typeof value === "number" || typeof value === "bigint") {
    if (typeof value === "number" && !Number.isInteger(value)) {
      throw new Error(`Attribute "${name}": ${value} is not an integer (use float())`);
    }
    return { name, type: Type.INT, i: Number(value) };
  }
  if (typeof value === "string") {
    return { name, type: Type.STRING, s: new TextEncoder().encode(value) };
  }
  if (Array.isArray(value)) return { name, type: Type.INTS, ints: value };
  if ("float" in value) return { name, type: Type.FLOAT, f: value.float };
  if ("graph" in value) return { name, type: Type.GRAPH, g: value.graph };
  return { name, type: Type.FLOATS, floats: value.floats };
}

/** Little-endian bytes of `values` as `dtype`. */
export function encodeValues(dtype: ValueDType, values: ArrayLike<number | bigint>): Uint8Array {
  const n = values.length;
  switch (dtype) {
    case "float32":
      return bytesOf(Float32Array.from(values as ArrayLike<number>, Number));
    case "float64":
      return bytesOf(Float64Array.from(values as ArrayLike<number>, Number));
    case "int64":
      return bytesOf(BigInt64Array.from(values as ArrayLike<bigint>, (v) => BigInt(v)));
    case "int32":
      return bytesOf(Int32Array.from(values as ArrayLike<number>, Number));
    case "bool":
    case "uint8":
      return Uint8Array.from(values as ArrayLike<number>, Number);
    case "float16": {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = float32ToFloat16Bits(Number(values[i]));
      return bytesOf(out);
    }
    case "bfloat16": {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = float32ToBfloat16Bits(Number(values[i]));
      return bytesOf(out);
    }
  }
}

function bytesOf(array: ArrayBufferView): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength).slice();
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half-precision bits of a number, rounded to nearest even. */
export function float32ToFloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  let e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    let half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && (half & 1))) half++;
    return sign | half;
  }
  let half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1))) half++;
  e = half >>> 10;
  return sign | half;
}

/** bfloat16 bits of a number, rounded to nearest even. */
export function float32ToBfloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  if ((x & 0x7fffffff) > 0x7f800000) return (x >>> 16) | 0x40;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

function hex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}
