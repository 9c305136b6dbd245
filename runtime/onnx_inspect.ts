/**
 * Reads what an ONNX model declares (inputs, outputs, opsets, external data files) without
 * decoding its weights: the protobuf is walked field by field and weight bytes are skipped by
 * length, so a model of gigabytes costs a few small reads.
 *
 * @module
 */

import onnxProto from "onnx-proto";
import type { DType } from "./tensor.ts";
import {
  type ByteSource,
  bytesSource,
  concatBytes,
  FileSource,
  readFields,
  readValue,
  readWhole,
  WIRE_LENGTH,
  WIRE_VARINT,
  WireError,
  type WireField,
} from "./protobuf_wire.ts";

const { onnx } = onnxProto;

/** An ONNX tensor element type: one of our {@link DType}s, or the ONNX name of another. */
export type OnnxElementType =
  | DType
  | "undefined"
  | "int8"
  | "uint16"
  | "int16"
  | "string"
  | "uint32"
  | "uint64"
  | "complex64"
  | "complex128"
  | "bfloat16"
  | "float8e4m3fn"
  | "float8e4m3fnuz"
  | "float8e5m2"
  | "float8e5m2fnuz"
  | "uint4"
  | "int4"
  | "float4e2m1"
  | "float8e8m0"
  | "uint2"
  | "int2";

/** ONNX `TensorProto.DataType` codes, by element type, with the bits each element takes. */
const ELEMENT_TYPES: readonly [OnnxElementType, number][] = [
  ["undefined", 0],
  ["float32", 32],
  ["uint8", 8],
  ["int8", 8],
  ["uint16", 16],
  ["int16", 16],
  ["int32", 32],
  ["int64", 64],
  ["string", 0],
  ["bool", 8],
  ["float16", 16],
  ["float64", 64],
  ["uint32", 32],
  ["uint64", 64],
  ["complex64", 64],
  ["complex128", 128],
  ["bfloat16", 16],
  ["float8e4m3fn", 8],
  ["float8e4m3fnuz", 8],
  ["float8e5m2", 8],
  ["float8e5m2fnuz", 8],
  ["uint4", 4],
  ["int4", 4],
  ["float4e2m1", 4],
  ["float8e8m0", 8],
  ["uint2", 2],
  ["int2", 2],
];

/** The element type of an ONNX `TensorProto.DataType` code ("undefined" for unknown codes). */
export function elementTypeOf(code: number): OnnxElementType {
  return ELEMENT_TYPES[code]?.[0] ?? "undefined";
}

/** Bytes taken by `count` elements of an ONNX data type code (0 for strings and unknown codes). */
export function elementBytes(code: number, count: number): number {
  const bits = ELEMENT_TYPES[code]?.[1] ?? 0;
  return Math.ceil((bits * count) / 8);
}

/** A graph input or output as the model declares it. */
export interface OnnxValueInfo {
  /** Tensor name. */
  name: string;
  /** What the value is: almost always a tensor. */
  kind: "tensor" | "sparse_tensor" | "sequence" | "map" | "optional" | "unknown";
  /** Element type of a tensor ("undefined" for other kinds). */
  dtype: OnnxElementType;
  /** Sizes, symbolic ones as their names ("?" when unnamed); `null` when the rank is unknown. */
  shape: (number | string)[] | null;
}

/** An operator set the model imports. */
export interface OnnxOpset {
  /** Domain; "" is the default ONNX domain ("ai.onnx"). */
  domain: string;
  /** Opset version. */
  version: number;
}

/** A tensor whose bytes live in an external data file. */
export interface ExternalTensorRef {
  /** Tensor name. */
  tensor: string;
  /** File path relative to the model's folder, as written in the model. */
  location: string;
  /** Byte offset in that file. */
  offset: number;
  /** Byte length, or `null` when the model leaves it to the end of the file. */
  length: number | null;
}

/** What {@link inspectOnnxModel} finds. */
export interface OnnxModelInfo {
  /** The file that was read (or the name given for bytes). */
  path: string;
  /** ONNX IR version. */
  irVersion: number;
  /** Producer name and version, e.g. "pytorch 2.11.0". */
  producer: string;
  /** Imported operator sets. */
  opsets: OnnxOpset[];
  /** Graph inputs that must be fed (inputs that are also initializers are left out). */
  inputs: OnnxValueInfo[];
  /** Graph outputs. */
  outputs: OnnxValueInfo[];
  /** Number of initializers of the main graph. */
  initializerCount: number;
  /** Bytes of weights: initializers of the main graph, inline or external. */
  weightBytes: number;
  /** External data files, relative to the model's folder, each once, in order of reference. */
  externalDataFiles: string[];
  /** Every tensor stored in an external file (initializers, also in subgraphs, and attributes). */
  externalTensors: ExternalTensorRef[];
}

/** Where the bytes of a scanned tensor are. */
export type TensorBytesLocation =
  /** Little-endian element bytes inside the model file (`raw_data`, or packed floats/doubles). */
  | { kind: "inline"; offset: number; length: number }
  /** In an external data file. */
  | { kind: "external"; location: string; offset: number; length: number | null }
  /** In typed fields that need decoding (`int32_data`, `int64_data`, strings...). */
  | { kind: "typed" }
  /** No data at all (an empty tensor). */
  | { kind: "empty" };

/** A tensor read without its data: metadata decoded, data located. */
export interface ScannedTensor {
  /** Tensor name. */
  name: string;
  /** ONNX data type code. */
  dataType: number;
  /** Dimensions. */
  dims: number[];
  /** Size of the elements in bytes, from the dims and data type (raw length for strings). */
  byteLength: number;
  /** The tensor's fields other than its data, decoded. */
  meta: onnxProto.onnx.TensorProto;
  /** Where the data is. */
  data: TensorBytesLocation;
  /** Offset of the tensor message (its value, after tag and length) in the source. */
  start: number;
  /** Offset just past the tensor message. */
  end: number;
}

// TensorProto fields holding element data, and the packed ones whose bytes equal raw_data.
const TENSOR_DATA_FIELDS = new Set([4, 5, 6, 7, 9, 10, 11]);
const TENSOR_RAW_FIELDS = new Set([4, 9, 10]);

/**
 * Scans the TensorProto in `[start, end)` of `source`: decodes everything but the element data,
 * whose place it records. Reads only the small fields.
 */
export async function scanTensor(
  source: ByteSource,
  start: number,
  end: number,
): Promise<ScannedTensor> {
  const metaParts: Uint8Array[] = [];
  const dataFields: WireField[] = [];
  for await (const field of readFields(source, start, end)) {
    if (TENSOR_DATA_FIELDS.has(field.field)) dataFields.push(field);
    else metaParts.push(await readWhole(source, field));
  }
  const meta = decodeMessage(() => onnx.TensorProto.decode(concatBytes(metaParts)), start);
  const dims = meta.dims.map(toNumber);
  const dataType = meta.dataType;
  let count = 1;
  for (const size of dims) count *= size;
  let data: TensorBytesLocation;
  if (meta.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    const entries = new Map(meta.externalData.map((entry) => [entry.key, entry.value]));
    const location = entries.get("location");
    if (!location) throw new WireError(`External tensor "${meta.name}" has no location`, start);
    const length = entries.has("length") ? Number(entries.get("length")) : null;
    data = { kind: "external", location, offset: Number(entries.get("offset") ?? 0), length };
  } else if (dataFields.length === 0) {
    data = { kind: "empty" };
  } else if (
    dataFields.length === 1 && TENSOR_RAW_FIELDS.has(dataFields[0].field) &&
    dataFields[0].wireType === WIRE_LENGTH
  ) {
    const field = dataFields[0];
    data = { kind: "inline", offset: field.valueStart, length: field.end - field.valueStart };
  } else {
    data = { kind: "typed" };
  }
  let byteLength = elementBytes(dataType, count);
  if (byteLength === 0 && count > 0) {
    if (data.kind === "inline") byteLength = data.length;
    else if (data.kind === "external") byteLength = data.length ?? 0;
  }
  return { name: meta.name, dataType, dims, byteLength, meta, data, start, end };
}

/** Converts a protobuf int64 (a number or a Long) to a number. */
export function toNumber(value: number | { toNumber(): number } | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === "number" ? value : value.toNumber();
}

/** Turns a decoded ValueInfoProto into an {@link OnnxValueInfo}. */
export function valueInfoOf(value: onnxProto.onnx.IValueInfoProto): OnnxValueInfo {
  const type = value.type;
  const name = value.name ?? "";
  if (!type) return { name, kind: "unknown", dtype: "undefined", shape: null };
  const tensor = type.tensorType ?? type.sparseTensorType;
  if (!tensor) {
    const kind = type.sequenceType
      ? "sequence"
      : type.mapType
      ? "map"
      : type.optionalType
      ? "optional"
      : "unknown";
    return { name, kind, dtype: "undefined", shape: null };
  }
  const shape = tensor.shape
    ? (tensor.shape.dim ?? []).map((dim) =>
      dim.dimParam
        ? dim.dimParam
        : dim.dimValue !== null && dim.dimValue !== undefined
        ? toNumber(dim.dimValue)
        : "?"
    )
    : null;
  return {
    name,
    kind: type.tensorType ? "tensor" : "sparse_tensor",
    dtype: elementTypeOf(tensor.elemType ?? 0),
    shape,
  };
}

// Wire types of the ModelProto and GraphProto fields we rely on; others are skipped.
const MODEL_WIRE_TYPES = new Map([
  [1, WIRE_VARINT],
  [2, WIRE_LENGTH],
  [3, WIRE_LENGTH],
  [4, WIRE_LENGTH],
  [5, WIRE_VARINT],
  [6, WIRE_LENGTH],
  [7, WIRE_LENGTH],
  [8, WIRE_LENGTH],
  [14, WIRE_LENGTH],
  [20, WIRE_LENGTH],
  [25, WIRE_LENGTH],
]);
const GRAPH_WIRE_TYPES = new Map([
  [1, WIRE_LENGTH],
  [2, WIRE_LENGTH],
  [5, WIRE_LENGTH],
  [10, WIRE_LENGTH],
  [11, WIRE_LENGTH],
  [12, WIRE_LENGTH],
  [13, WIRE_LENGTH],
  [14, WIRE_LENGTH],
  [15, WIRE_LENGTH],
]);

/** Throws when a known field has the wrong wire type: the bytes are then not that message. */
export function expectWireType(
  field: WireField,
  types: ReadonlyMap<number, number>,
  message: string,
): void {
  const expected = types.get(field.field);
  if (expected !== undefined && expected !== field.wireType) {
    throw new WireError(
      `${message} field ${field.field} has wire type ${field.wireType}, expected ${expected}`,
      field.start,
    );
  }
}

/** The wire types of known GraphProto fields, for {@link expectWireType}. */
export const GRAPH_FIELD_WIRE_TYPES: ReadonlyMap<number, number> = GRAPH_WIRE_TYPES;
/** The wire types of known ModelProto fields, for {@link expectWireType}. */
export const MODEL_FIELD_WIRE_TYPES: ReadonlyMap<number, number> = MODEL_WIRE_TYPES;

/** Runs a protobufjs decode, turning its errors into a {@link WireError} at `offset`. */
export function decodeMessage<T>(decode: () => T, offset: number): T {
  try {
    return decode();
  } catch (error) {
    if (error instanceof WireError) throw error;
    throw new WireError(`Invalid message: ${(error as Error).message}`, offset);
  }
}

interface ScanState {
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  initializerNames: Set<string>;
  initializerCount: number;
  weightBytes: number;
  externalTensors: ExternalTensorRef[];
}

function recordExternal(state: ScanState, tensor: ScannedTensor): void {
  if (tensor.data.kind !== "external") return;
  const { location, offset, length } = tensor.data;
  state.externalTensors.push({ tensor: tensor.name, location, offset, length });
}

/** Scans a GraphProto; `main` is false for subgraphs, whose inputs and weights are not counted. */
async function scanGraph(
  source: ByteSource,
  start: number,
  end: number,
  state: ScanState,
  main: boolean,
): Promise<void> {
  for await (const field of readFields(source, start, end)) {
    expectWireType(field, GRAPH_WIRE_TYPES, "GraphProto");
    if (field.field === 1) {
      await scanNode(source, field.valueStart, field.end, state);
    } else if (field.field === 5) {
      const tensor = await scanTensor(source, field.valueStart, field.end);
      recordExternal(state, tensor);
      if (main) {
        state.initializerNames.add(tensor.name);
        state.initializerCount++;
        state.weightBytes += tensor.byteLength;
      }
    } else if (main && (field.field === 11 || field.field === 12)) {
      const bytes = await readValue(source, field);
      const value = decodeMessage(() => onnx.ValueInfoProto.decode(bytes), field.valueStart);
      (field.field === 11 ? state.inputs : state.outputs).push(valueInfoOf(value));
    }
  }
}

/** Scans a NodeProto for tensors and subgraphs in its attributes, skipping their data. */
async function scanNode(
  source: ByteSource,
  start: number,
  end: number,
  state: ScanState,
): Promise<void> {
  for await (const field of readFields(source, start, end)) {
    if (field.field !== 5 || field.wireType !== WIRE_LENGTH) continue;
    for await (const attribute of readFields(source, field.valueStart, field.end)) {
      if (attribute.wireType !== WIRE_LENGTH) continue;
      if (attribute.field === 5 || attribute.field === 10) {
        recordExternal(state, await scanTensor(source, attribute.valueStart, attribute.end));
      } else if (attribute.field === 6 || attribute.field === 11) {
        await scanGraph(source, attribute.valueStart, attribute.end, state, false);
      }
    }
  }
}

/** Recognizes files that are clearly something else than an ONNX protobuf. */
export function knownFormatOf(head: Uint8Array): string | null {
  const text = (start: number, end: number) => String.fromCharCode(...head.subarray(start, end));
  if (text(0, 4) === "PK\x03\x04") return "a ZIP archive (a PyTorch checkpoint?)";
  if (text(0, 4) === "GGUF") return "a GGUF file";
  if (text(0, 4) === "\x89HDF") return "an HDF5 file";
  if (text(0, 4) === "\x7fELF") return "an ELF executable";
  if (text(4, 8) === "ORTM") return "an ONNX Runtime ORT-format model";
  if (head.byteLength >= 10 && text(5, 9) === "\0\0\0{") return "a safetensors file";
  if (head.byteLength > 0 && looksLikeText(head)) return "a text file";
  return null;
}

function looksLikeText(head: Uint8Array): boolean {
  for (const byte of head) {
    if (byte === 9 || byte === 10 || byte === 13) continue;
    if (byte < 32 || byte === 127) return false;
  }
  return true;
}

/** Says why `path` is not an ONNX model, in the style of our other errors. */
export function notOnnxError(path: string, detail: string): Error {
  return new Error(`Not an ONNX model "${path}": ${detail}`);
}

/** Options of {@link inspectOnnxModel}. */
export interface InspectOptions {
  /** What to call the model in messages when bytes are given instead of a path. */
  name?: string;
}

/**
 * Reads a model's declared inputs, outputs, opsets and external data references from a file or
 * from bytes, without decoding its weights.
 * Throws when the file is missing or is not an ONNX model, naming the path.
 */
export async function inspectOnnxModel(
  pathOrBytes: string | Uint8Array,
  options: InspectOptions = {},
): Promise<OnnxModelInfo> {
  const path = typeof pathOrBytes === "string" ? pathOrBytes : options.name ?? "<bytes>";
  const source = typeof pathOrBytes === "string"
    ? await openModel(pathOrBytes)
    : bytesSource(pathOrBytes);
  try {
    return await inspectOnnxSource(source, path);
  } finally {
    if (source instanceof FileSource) source.close();
  }
}

/** Opens a model file, turning "not found" into a message naming the path. */
export async function openModel(path: string): Promise<FileSource> {
  let isDirectory: boolean;
  try {
    isDirectory = (await Deno.stat(path)).isDirectory;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(`Model file "${path}" does not exist`);
    }
    throw new Error(`Cannot read model file "${path}": ${(error as Error).message}`);
  }
  if (isDirectory) throw new Error(`Model file "${path}" is a directory`);
  try {
    return await FileSource.open(path);
  } catch (error) {
    throw new Error(`Cannot read model file "${path}": ${(error as Error).message}`);
  }
}

/** Checks the start of a model source: not empty, not a known other format. */
export async function checkModelHead(source: ByteSource, path: string): Promise<void> {
  if (source.size === 0) throw notOnnxError(path, "the file is empty");
  const head = await source.read(0, Math.min(512, source.size));
  const format = knownFormatOf(head);
  if (format) throw notOnnxError(path, `it looks like ${format}`);
}

/** Like {@link inspectOnnxModel}, over any {@link ByteSource}; `path` names it in errors. */
export async function inspectOnnxSource(source: ByteSource, path: string): Promise<OnnxModelInfo> {
  await checkModelHead(source, path);
  const state: ScanState = {
    inputs: [],
    outputs: [],
    initializerNames: new Set(),
    initializerCount: 0,
    weightBytes: 0,
    externalTensors: [],
  };
  let irVersion = 0;
  let producerName = "";
  let producerVersion = "";
  const opsets: OnnxOpset[] = [];
  let graphs = 0;
  try {
    for await (const field of readFields(source)) {
      expectWireType(field, MODEL_WIRE_TYPES, "ModelProto");
      if (field.field === 1) irVersion = Number(field.varint);
      else if (field.field === 2) {
        producerName = new TextDecoder().decode(await readValue(source, field));
      } else if (field.field === 3) {
        producerVersion = new TextDecoder().decode(await readValue(source, field));
      } else if (field.field === 8) {
        const bytes = await readValue(source, field);
        const opset = decodeMessage(() => onnx.OperatorSetIdProto.decode(bytes), field.valueStart);
        opsets.push({ domain: opset.domain, version: toNumber(opset.version) });
      } else if (field.field === 7) {
        graphs++;
        await scanGraph(source, field.valueStart, field.end, state, true);
      }
    }
  } catch (error) {
    if (error instanceof WireError) {
      throw notOnnxError(path, `invalid protobuf at byte ${error.offset}: ${error.message}`);
    }
    throw error;
  }
  if (graphs === 0) throw notOnnxError(path, "it has no graph");
  if (irVersion <= 0) throw notOnnxError(path, "it has no IR version");
  const externalDataFiles = [...new Set(state.externalTensors.map((ref) => ref.location))];
  return {
    path,
    irVersion,
    producer: [producerName, producerVersion].filter(Boolean).join(" "),
    opsets,
    inputs: state.inputs.filter((input) => !state.initializerNames.has(input.name)),
    outputs: state.outputs,
    initializerCount: state.initializerCount,
    weightBytes: state.weightBytes,
    externalDataFiles,
    externalTensors: state.externalTensors,
  };
}

/**
 * Joins a location written in a model to the model's folder (or to `folder`, for graphs whose
 * weights live elsewhere), refusing paths that leave it.
 */
export function externalDataPath(modelPath: string, location: string, folder?: string): string {
  const parts = location.split(/[\\/]/);
  if (location.startsWith("/") || /^[a-zA-Z]:/.test(location) || parts.includes("..")) {
    throw new Error(
      `External data location "${location}" in "${modelPath}" is outside the model's folder`,
    );
  }
  if (folder !== undefined) return `${folder.replace(/[\\/]$/, "")}/${parts.join("/")}`;
  const slash = Math.max(modelPath.lastIndexOf("/"), modelPath.lastIndexOf("\\"));
  const modelFolder = slash >= 0 ? modelPath.slice(0, slash + 1) : "";
  return modelFolder + parts.join("/");
}

/**
 * Checks that every external data file a model references exists beside it and is long enough
 * for the tensors stored in it. Throws an error naming the first missing or short file.
 */
export async function verifyExternalData(
  modelPath: string,
  info?: OnnxModelInfo,
  folder?: string,
): Promise<void> {
  const model = info ?? await inspectOnnxModel(modelPath);
  const needed = new Map<string, number>();
  for (const ref of model.externalTensors) {
    const end = ref.offset + (ref.length ?? 0);
    needed.set(ref.location, Math.max(needed.get(ref.location) ?? 0, end));
  }
  for (const [location, end] of needed) {
    const path = externalDataPath(modelPath, location, folder);
    let size: number;
    try {
      const stat = await Deno.stat(path);
      if (!stat.isFile) throw new Error(`External data "${path}" of "${modelPath}" is not a file`);
      size = stat.size;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new Error(`External data file "${path}" referenced by "${modelPath}" does not exist`);
      }
      throw error;
    }
    if (size < end) {
      throw new Error(
        `External data file "${path}" of "${modelPath}" is too short: ${size} bytes, need ${end}`,
      );
    }
  }
}
