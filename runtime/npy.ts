/**
 * The NumPy `.npy` format for a single tensor, byte for byte as `numpy.save` writes it: the magic
 * `\x93NUMPY`, a version, a little-endian header length, a Python-literal header dict padded
 * with spaces and a newline so that the data starts at a multiple of 64 bytes, then the raw
 * little-endian elements in C order.
 *
 * @module
 */

import { type AtomicOutputOptions, writeFileAtomic } from "./atomic_file.ts";
import {
  allocate,
  BYTES_PER_ELEMENT,
  createTensor,
  type DType,
  elementCount,
  type Tensor,
} from "./tensor.ts";

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"
const ARRAY_ALIGN = 64;
// numpy leaves room in the header for the first axis to grow to this many digits.
const GROWTH_AXIS_MAX_DIGITS = 21;

const DESCRS: Readonly<Record<DType, string>> = {
  float32: "<f4",
  float64: "<f8",
  float16: "<f2",
  int64: "<i8",
  int32: "<i4",
  uint8: "|u1",
  bool: "|b1",
};

const DTYPES_BY_DESCR: ReadonlyMap<string, DType> = new Map(
  Object.entries(DESCRS).map(([dtype, descr]) => [descr, dtype as DType]),
);

/**
 * Encodes a tensor as a `.npy` file (version 1.0, or 2.0 when the header outgrows 64 KiB,
 * as numpy does).
 */
export function encodeNpy(tensor: Tensor): Uint8Array {
  const shape = tensor.shape.length === 1
    ? `(${tensor.shape[0]},)`
    : `(${tensor.shape.join(", ")})`;
  let header = `{'descr': '${DESCRS[tensor.dtype]}', 'fortran_order': False, 'shape': ${shape}, }`;
  if (tensor.shape.length > 0) {
    header += " ".repeat(Math.max(0, GROWTH_AXIS_MAX_DIGITS - String(tensor.shape[0]).length));
  }
  // Prefix: magic, two version bytes and a 2-byte (v1) or 4-byte (v2) header length.
  let prefixLength = MAGIC.length + 2 + 2;
  let paddedLength = paddedHeaderLength(prefixLength, header.length);
  if (paddedLength > 0xffff) {
    prefixLength = MAGIC.length + 2 + 4;
    paddedLength = paddedHeaderLength(prefixLength, header.length);
  }
  const version = prefixLength === 10 ? 1 : 2;
  const dataStart = prefixLength + paddedLength;
  const bytes = new Uint8Array(dataStart + tensor.data.byteLength);
  const view = new DataView(bytes.buffer);
  bytes.set(MAGIC, 0);
  bytes[6] = version;
  bytes[7] = 0;
  if (version === 1) view.setUint16(8, paddedLength, true);
  else view.setUint32(8, paddedLength, true);
  const paddedHeader = header.padEnd(paddedLength - 1, " ") + "\n";
  for (let i = 0; i < paddedHeader.length; i++) {
    bytes[prefixLength + i] = paddedHeader.charCodeAt(i);
  }
  bytes.set(
    new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength),
    dataStart,
  );
  return bytes;
}

/**
 * Decodes a `.npy` file into a tensor. Reads versions 1.0 to 3.0 in C order with one of the
 * little-endian dtypes that {@link encodeNpy} writes; anything else is rejected with a message
 * naming `source`.
 */
export function decodeNpy(bytes: Uint8Array, source = "npy data"): Tensor {
  if (bytes.byteLength < 10 || MAGIC.some((byte, i) => bytes[i] !== byte)) {
    throw new Error(`Invalid npy file ${source}: missing the "\\x93NUMPY" magic`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6];
  if (major < 1 || major > 3) {
    throw new Error(`Unsupported npy version ${major}.${bytes[7]} in ${source}`);
  }
  const prefixLength = major === 1 ? 10 : 12;
  if (bytes.byteLength < prefixLength) throw new Error(`Invalid npy file ${source}: truncated`);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const dataStart = prefixLength + headerLength;
  if (dataStart > bytes.byteLength) {
    throw new Error(`Invalid npy file ${source}: header length ${headerLength} exceeds the file`);
  }
  const header = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(
    bytes.subarray(prefixLength, dataStart),
  );
  const { descr, fortranOrder, shape } = parseHeader(header, source);
  const dtype = DTYPES_BY_DESCR.get(descr.replace(/^=/, "<"));
  if (!dtype) throw new Error(`Unsupported npy dtype "${descr}" in ${source}`);
  if (fortranOrder && shape.length > 1) {
    throw new Error(`Unsupported npy layout in ${source}: fortran_order is True`);
  }
  const count = elementCount(shape);
  const byteLength = count * BYTES_PER_ELEMENT[dtype];
  if (bytes.byteLength - dataStart < byteLength) {
    throw new Error(
      `Invalid npy file ${source}: shape (${
        shape.join(", ")
      }) needs ${byteLength} bytes of data, ` +
        `got ${bytes.byteLength - dataStart}`,
    );
  }
  // Copy into a fresh, aligned buffer: the data offset in `bytes` need not be aligned.
  const data = allocate(dtype, count);
  new Uint8Array(data.buffer).set(bytes.subarray(dataStart, dataStart + byteLength));
  return createTensor(dtype, shape, data);
}

function paddedHeaderLength(prefixLength: number, headerLength: number): number {
  // numpy always adds at least one space, then the newline.
  const withNewline = headerLength + 1;
  return withNewline + ARRAY_ALIGN - ((prefixLength + withNewline) % ARRAY_ALIGN);
}

function parseHeader(
  header: string,
  source: string,
): { descr: string; fortranOrder: boolean; shape: number[] } {
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortranOrder = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortranOrder === undefined || shapeText === undefined) {
    throw new Error(`Invalid npy header in ${source}: ${JSON.stringify(header.trim())}`);
  }
  const shape = shapeText.split(",").map((size) => size.trim()).filter((size) => size !== "")
    .map((size) => Number(size.replace(/L$/, "")));
  if (shape.some((size) => !Number.isInteger(size) || size < 0)) {
    throw new Error(`Invalid npy shape (${shapeText}) in ${source}`);
  }
  return { descr, fortranOrder: fortranOrder === "True", shape };
}

/** Writes a tensor to a `.npy` file atomically; see {@link writeFileAtomic}. */
export async function writeNpy(
  path: string,
  tensor: Tensor,
  options: AtomicOutputOptions = {},
): Promise<void> {
  await writeFileAtomic(path, encodeNpy(tensor), options);
}

/** Reads a `.npy` file into a tensor. */
export async function readNpy(path: string): Promise<Tensor> {
  return decodeNpy(await Deno.readFile(path), `"${path}"`);
}
