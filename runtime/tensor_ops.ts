/**
 * The few tensor operations the pipeline needs outside the models: joining and slicing along the
 * batch dimension, and permuting dimensions. Plain loops over typed arrays.
 *
 * @module
 */

import {
  allocate,
  createTensor,
  type DType,
  elementCount,
  formatShape,
  type Tensor,
} from "./tensor.ts";

/** Joins tensors of equal trailing shape along the first dimension. */
export function concatBatch<D extends DType>(tensors: readonly Tensor<D>[]): Tensor<D> {
  if (tensors.length === 0) throw new RangeError("Nothing to concatenate");
  const [first] = tensors;
  const rest = first.shape.slice(1);
  for (const tensor of tensors) {
    if (tensor.dtype !== first.dtype || formatShape(tensor.shape.slice(1)) !== formatShape(rest)) {
      throw new RangeError(
        `Cannot concatenate ${tensor.dtype} ${formatShape(tensor.shape)} with ${first.dtype} ${
          formatShape(first.shape)
        }`,
      );
    }
  }
  const batch = tensors.reduce((sum, tensor) => sum + tensor.shape[0], 0);
  const data = allocate(first.dtype, batch * elementCount(rest));
  let offset = 0;
  for (const tensor of tensors) {
    (data as unknown as { set(source: ArrayLike<unknown>, offset: number): void }).set(
      tensor.data as ArrayLike<unknown>,
      offset,
    );
    offset += tensor.data.length;
  }
  return createTensor(first.dtype, [batch, ...rest], data);
}

/** Rows `start` to `end` (exclusive) of the first dimension, as a copy. */
export function sliceBatch<D extends DType>(
  tensor: Tensor<D>,
  start: number,
  end: number,
): Tensor<D> {
  const rowSize = elementCount(tensor.shape.slice(1));
  const data = tensor.data.slice(start * rowSize, end * rowSize) as Tensor<D>["data"];
  return createTensor(tensor.dtype, [end - start, ...tensor.shape.slice(1)], data);
}

/** Stacks tensors of one shape along a new first dimension. */
export function stack<D extends DType>(tensors: readonly Tensor<D>[]): Tensor<D> {
  if (tensors.length === 0) throw new RangeError("Nothing to stack");
  const joined = concatBatch(
    tensors.map((tensor) => createTensor(tensor.dtype, [1, ...tensor.shape], tensor.data)),
  );
  return joined;
}

/** Reorders dimensions: output dimension `i` is input dimension `order[i]` (as torch's `permute`). */
export function permute<D extends DType>(tensor: Tensor<D>, order: readonly number[]): Tensor<D> {
  const rank = tensor.shape.length;
  if (order.length !== rank || [...order].sort().some((value, index) => value !== index)) {
    throw new RangeError(
      `Invalid permutation ${formatShape(order)} for shape ${formatShape(tensor.shape)}`,
    );
  }
  const shape = order.map((dimension) => tensor.shape[dimension]);
  const inputStrides = stridesOf(tensor.shape);
  const strides = order.map((dimension) => inputStrides[dimension]);
  const output = allocate(tensor.dtype, tensor.data.length) as unknown as {
    [index: number]: unknown;
  };
  const input = tensor.data as unknown as { [index: number]: unknown };
  const index = new Array<number>(rank).fill(0);
  let source = 0;
  for (let target = 0; target < tensor.data.length; target++) {
    output[target] = input[source];
    for (let axis = rank - 1; axis >= 0; axis--) {
      index[axis]++;
      source += strides[axis];
      if (index[axis] < shape[axis]) break;
      source -= strides[axis] * shape[axis];
      index[axis] = 0;
    }
  }
  return createTensor(tensor.dtype, shape, output as unknown as Tensor<D>["data"]);
}

/** Row-major strides of a shape. */
export function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let stride = 1;
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    strides[axis] = stride;
    stride *= shape[axis];
  }
  return strides;
}
