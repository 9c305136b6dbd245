/**
 * Tensors as plain typed arrays with a dtype and a row-major shape.
 *
 * @module
 */

/** Element types a tensor can hold. `float16` stores raw IEEE half bits in a `Uint16Array`. */
export type DType = "float32" | "float64" | "float16" | "int64" | "int32" | "uint8" | "bool";

/** The typed array that holds the elements of each dtype. */
export interface DataByDType {
  /** 32-bit floats. */
  float32: Float32Array;
  /** 64-bit floats. */
  float64: Float64Array;
  /** Half floats, stored as their raw bits. */
  float16: Uint16Array;
  /** 64-bit signed integers. */
  int64: BigInt64Array;
  /** 32-bit signed integers. */
  int32: Int32Array;
  /** Bytes. */
  uint8: Uint8Array;
  /** Booleans, one byte each (0 or 1). */
  bool: Uint8Array;
}

/** The typed array of a dtype. */
export type TensorData<D extends DType = DType> = DataByDType[D];

/** An n-dimensional array: row-major elements of one dtype. */
export interface Tensor<D extends DType = DType> {
  /** Element type. */
  readonly dtype: D;
  /** Size of each dimension, outermost first. */
  readonly shape: readonly number[];
  /** The elements, row-major; `data.length` equals the product of `shape`. */
  readonly data: TensorData<D>;
}

/** Every dtype, in a fixed order. */
export const DTYPES: readonly DType[] = [
  "float32",
  "float64",
  "float16",
  "int64",
  "int32",
  "uint8",
  "bool",
];

/** Bytes per element of each dtype. */
export const BYTES_PER_ELEMENT: Readonly<Record<DType, number>> = {
  float32: 4,
  float64: 8,
  float16: 2,
  int64: 8,
  int32: 4,
  uint8: 1,
  bool: 1,
};

/** Number of elements of a tensor of this shape. */
export function elementCount(shape: readonly number[]): number {
  let count = 1;
  for (const size of shape) count *= size;
  return count;
}

/** A shape as people read it: `[1, 3, 4, 8, 8]`. */
export function formatShape(shape: readonly (number | string)[]): string {
  return `[${shape.join(", ")}]`;
}

/** Allocates a zero-filled typed array for `count` elements of `dtype`. */
export function allocate<D extends DType>(dtype: D, count: number): TensorData<D> {
  const data = {
    float32: () => new Float32Array(count),
    float64: () => new Float64Array(count),
    float16: () => new Uint16Array(count),
    int64: () => new BigInt64Array(count),
    int32: () => new Int32Array(count),
    uint8: () => new Uint8Array(count),
    bool: () => new Uint8Array(count),
  }[dtype]();
  return data as TensorData<D>;
}

/**
 * Makes a tensor, checking that the data matches the shape.
 * Without `data`, the tensor is zero-filled.
 */
export function createTensor<D extends DType>(
  dtype: D,
  shape: readonly number[],
  data?: TensorData<D>,
): Tensor<D> {
  for (const size of shape) {
    if (!Number.isInteger(size) || size < 0) {
      throw new RangeError(
        `Invalid tensor shape ${formatShape(shape)}: sizes must be integers >= 0`,
      );
    }
  }
  const count = elementCount(shape);
  const elements = data ?? allocate(dtype, count);
  if (elements.length !== count) {
    throw new RangeError(
      `Tensor data has ${elements.length} elements but shape ${formatShape(shape)} needs ${count}`,
    );
  }
  return { dtype, shape: [...shape], data: elements };
}

/** Size in bytes of a tensor's elements. */
export function byteSize(tensor: Tensor): number {
  return tensor.data.byteLength;
}

/** True when `value` looks like a {@link Tensor} (a dtype, a shape and matching data). */
export function isTensor(value: unknown): value is Tensor {
  if (typeof value !== "object" || value === null) return false;
  const candidate = value as Partial<Tensor>;
  return typeof candidate.dtype === "string" &&
    (DTYPES as readonly string[]).includes(candidate.dtype) &&
    Array.isArray(candidate.shape) &&
    ArrayBuffer.isView(candidate.data) &&
    (candidate.data as TensorData).length === elementCount(candidate.shape);
}

/** Narrows a tensor to one dtype, or throws a message naming what was expected. */
export function expectDType<D extends DType>(tensor: Tensor, dtype: D, what = "tensor"): Tensor<D> {
  if (tensor.dtype !== dtype) {
    throw new TypeError(`Expected ${what} of dtype ${dtype}, got ${tensor.dtype}`);
  }
  return tensor as Tensor<D>;
}

/**
 * Maximum absolute difference between two tensors of the same shape, or two arrays of the same
 * length (NaN where either has a NaN). The one comparison of tensors the tests and benchmarks use.
 */
export function maxAbsDiff(
  a: Tensor | ArrayLike<number | bigint>,
  b: Tensor | ArrayLike<number | bigint>,
): number {
  if (isTensor(a) && isTensor(b) && formatShape(a.shape) !== formatShape(b.shape)) {
    throw new RangeError(
      `Cannot compare tensors of shapes ${formatShape(a.shape)} and ${formatShape(b.shape)}`,
    );
  }
  let max = 0;
  const left = (isTensor(a) ? a.data : a) as ArrayLike<number | bigint>;
  const right = (isTensor(b) ? b.data : b) as ArrayLike<number | bigint>;
  if (left.length !== right.length) {
    throw new RangeError(`Cannot compare ${left.length} values with ${right.length}`);
  }
  for (let i = 0; i < left.length; i++) {
    const diff = Math.abs(Number(left[i]) - Number(right[i]));
    if (diff > max || Number.isNaN(diff)) max = diff;
  }
  return max;
}
