/**
 * The graph-building pieces the component builders share, each mirroring a PyTorch module or
 * function: `nn.Linear`, `nn.LayerNorm`, activations, reshapes. Weights are read under the
 * builder's current scope, by the checkpoint's own names (`weight`, `bias`).
 *
 * @module
 */

import { float, type GraphBuilder } from "./onnx_graph.ts";

/** Options of {@link linear}. */
export interface LinearOptions {
  /** Add the `bias` weight (default: when the checkpoint has one). */
  bias?: boolean;
}

/**
 * `nn.Linear` under the current scope: `x @ weight^T + bias`. The `[out, in]` weight is read as
 * stored, through com.microsoft `FusedMatMul` with `transB`, so no transposed copy is made.
 */
export function linear(b: GraphBuilder, x: string, options: LinearOptions = {}): string {
  const product = b.op("FusedMatMul", [x, b.weight("weight")], { transB: 1 }, {
    domain: "com.microsoft",
  });
  const withBias = options.bias ?? b.hasWeight("bias");
  return withBias ? b.op("Add", [product, b.weight("bias")]) : product;
}

/** `nn.LayerNorm` over the last axis (with `weight` and `bias` when `affine`, the default). */
export function layerNorm(
  b: GraphBuilder,
  x: string,
  options: { epsilon: number; affine?: boolean; channels?: number },
): string {
  const affine = options.affine ?? true;
  let scale: string;
  let bias: string | undefined;
  if (affine) {
    scale = b.weight("weight");
    bias = b.hasWeight("bias") ? b.weight("bias") : undefined;
  } else {
    if (options.channels === undefined) throw new Error("layerNorm without affine needs channels");
    scale = b.constant(b.computeDType, [options.channels], new Array(options.channels).fill(1));
  }
  return b.op("LayerNormalization", bias ? [x, scale, bias] : [x, scale], {
    axis: -1,
    epsilon: float(options.epsilon),
  });
}

/** `F.silu`: `x * sigmoid(x)`. */
export function silu(b: GraphBuilder, x: string): string {
  return b.op("Mul", [x, b.op("Sigmoid", [x])]);
}

/** `F.gelu(x, approximate="tanh")`. */
export function geluTanh(b: GraphBuilder, x: string): string {
  return b.op("Gelu", [x], { approximate: "tanh" });
}

/** `F.gelu(x)` (the exact, erf form). */
export function gelu(b: GraphBuilder, x: string): string {
  return b.op("Gelu", [x]);
}

/** `x.reshape(shape)`; 0 in `shape` copies the input's dimension, -1 is inferred (ONNX rules). */
export function reshape(b: GraphBuilder, x: string, shape: readonly number[]): string {
  return b.op("Reshape", [x, b.int64s(shape)]);
}

/** Reshape to a shape computed in the graph (an int64 1-D value). */
export function reshapeTo(b: GraphBuilder, x: string, shape: string): string {
  return b.op("Reshape", [x, shape]);
}

/** `x.permute(perm)`. */
export function transpose(b: GraphBuilder, x: string, perm: readonly number[]): string {
  return b.op("Transpose", [x], { perm: [...perm] });
}

/** `x[..., start:end]` along `axis`. */
export function slice(
  b: GraphBuilder,
  x: string,
  axis: number,
  start: number,
  end: number,
): string {
  return b.op("Slice", [x, b.int64s([start]), b.int64s([end]), b.int64s([axis])]);
}

/** `torch.cat(values, dim=axis)`. */
export function concat(b: GraphBuilder, values: readonly string[], axis: number): string {
  return b.op("Concat", values, { axis });
}

/** `x.unsqueeze(axis)` for each of `axes`. */
export function unsqueeze(b: GraphBuilder, x: string, axes: readonly number[]): string {
  return b.op("Unsqueeze", [x, b.int64s(axes)]);
}

/** Dimension `axis` of `x` as a 1-element int64 value. */
export function dim(b: GraphBuilder, x: string, axis: number): string {
  return b.op("Shape", [x], { start: axis, end: axis === -1 ? 2 ** 31 - 1 : axis + 1 });
}
