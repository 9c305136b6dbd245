/**
 * ONNX Runtime's C API through Deno's FFI, for what onnxruntime-node 1.29 cannot do: keep a
 * session's outputs in the provider's memory and hand them to the next session as inputs
 * (IoBinding), and pass provider options (onnxruntime-node passes the CUDA provider only a device
 * id). It loads the library onnxruntime-node ships (`libonnxruntime.so.1`, the same 1.29.0, so
 * the CUDA provider that `deno task install-cuda` installs beside it serves both).
 *
 * The C API is a table of function pointers (`OrtApi`, version 29); {@link ORT_API_INDEX} names
 * the entries used here by their position in ONNX Runtime 1.29.0's `onnxruntime_c_api.h`. Every
 * call that returns an `OrtStatus*` is checked: a failure throws an Error with ONNX Runtime's
 * message. Values made here own native memory: release them (`release()`), or they live until
 * the process ends.
 *
 * Linux x64 only, like the provider libraries. Needs the whole ffi permission (Deno's pointer
 * views need it; under the launcher only the session host keeps it, see cli/permissions.ts);
 * nothing else.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ONNX_DTYPES } from "../builders/onnx_graph.ts";
import { BINDING_FOLDER } from "./cuda_provider.ts";
import {
  BYTES_PER_ELEMENT,
  createTensor,
  type DType,
  type Tensor,
  type TensorData,
} from "./tensor.ts";

/** The C API version of ONNX Runtime 1.29.0. */
export const ORT_API_VERSION = 29;

/** Positions in `OrtApi` (ONNX Runtime 1.29.0) of the functions used here. */
export const ORT_API_INDEX = {
  GetErrorMessage: 2,
  CreateEnv: 3,
  CreateSessionFromArray: 8,
  CreateSessionOptions: 10,
  DisableMemPattern: 17,
  DisableCpuMemArena: 19,
  SetSessionGraphOptimizationLevel: 23,
  SetIntraOpNumThreads: 24,
  SessionGetInputCount: 30,
  SessionGetOutputCount: 31,
  SessionGetInputName: 36,
  SessionGetOutputName: 37,
  CreateTensorAsOrtValue: 48,
  CreateTensorWithDataAsOrtValue: 49,
  GetTensorMutableData: 51,
  GetTensorElementType: 60,
  GetDimensionsCount: 61,
  GetDimensions: 62,
  GetTensorTypeAndShape: 65,
  CreateMemoryInfo: 68,
  CreateCpuMemoryInfo: 69,
  AllocatorFree: 76,
  GetAllocatorWithDefaultOptions: 78,
  ReleaseStatus: 93,
  ReleaseMemoryInfo: 94,
  ReleaseSession: 95,
  ReleaseValue: 96,
  ReleaseTensorTypeAndShapeInfo: 99,
  ReleaseSessionOptions: 100,
  AddSessionConfigEntry: 130,
  CreateAllocator: 131,
  ReleaseAllocator: 132,
  RunWithBinding: 133,
  CreateIoBinding: 134,
  ReleaseIoBinding: 135,
  BindInput: 136,
  BindOutputToDevice: 138,
  GetBoundOutputValues: 140,
  SessionOptionsAppendExecutionProvider_CUDA_V2: 204,
  CreateCUDAProviderOptions: 205,
  UpdateCUDAProviderOptions: 206,
  ReleaseCUDAProviderOptions: 208,
} as const;

const P = "pointer" as const;
const SIGNATURES = {
  GetErrorMessage: { parameters: [P], result: P },
  CreateEnv: { parameters: ["i32", "buffer", "buffer"], result: P },
  CreateSessionFromArray: { parameters: [P, "buffer", "usize", P, "buffer"], result: P },
  CreateSessionOptions: { parameters: ["buffer"], result: P },
  DisableMemPattern: { parameters: [P], result: P },
  DisableCpuMemArena: { parameters: [P], result: P },
  SetSessionGraphOptimizationLevel: { parameters: [P, "i32"], result: P },
  SetIntraOpNumThreads: { parameters: [P, "i32"], result: P },
  SessionGetInputCount: { parameters: [P, "buffer"], result: P },
  SessionGetOutputCount: { parameters: [P, "buffer"], result: P },
  SessionGetInputName: { parameters: [P, "usize", P, "buffer"], result: P },
  SessionGetOutputName: { parameters: [P, "usize", P, "buffer"], result: P },
  CreateTensorAsOrtValue: { parameters: [P, "buffer", "usize", "i32", "buffer"], result: P },
  CreateTensorWithDataAsOrtValue: {
    parameters: [P, P, "usize", "buffer", "usize", "i32", "buffer"],
    result: P,
  },
  GetTensorMutableData: { parameters: [P, "buffer"], result: P },
  GetTensorElementType: { parameters: [P, "buffer"], result: P },
  GetDimensionsCount: { parameters: [P, "buffer"], result: P },
  GetDimensions: { parameters: [P, "buffer", "usize"], result: P },
  GetTensorTypeAndShape: { parameters: [P, "buffer"], result: P },
  CreateMemoryInfo: { parameters: ["buffer", "i32", "i32", "i32", "buffer"], result: P },
  CreateCpuMemoryInfo: { parameters: ["i32", "i32", "buffer"], result: P },
  AllocatorFree: { parameters: [P, P], result: P },
  GetAllocatorWithDefaultOptions: { parameters: ["buffer"], result: P },
  ReleaseStatus: { parameters: [P], result: "void" },
  ReleaseMemoryInfo: { parameters: [P], result: "void" },
  ReleaseSession: { parameters: [P], result: "void" },
  ReleaseValue: { parameters: [P], result: "void" },
  ReleaseTensorTypeAndShapeInfo: { parameters: [P], result: "void" },
  ReleaseSessionOptions: { parameters: [P], result: "void" },
  AddSessionConfigEntry: { parameters: [P, "buffer", "buffer"], result: P },
  CreateAllocator: { parameters: [P, P, "buffer"], result: P },
  ReleaseAllocator: { parameters: [P], result: "void" },
  RunWithBinding: { parameters: [P, P, P], result: P, nonblocking: true },
  CreateIoBinding: { parameters: [P, "buffer"], result: P },
  ReleaseIoBinding: { parameters: [P], result: "void" },
  BindInput: { parameters: [P, "buffer", P], result: P },
  BindOutputToDevice: { parameters: [P, "buffer", P], result: P },
  GetBoundOutputValues: { parameters: [P, P, "buffer", "buffer"], result: P },
  SessionOptionsAppendExecutionProvider_CUDA_V2: { parameters: [P, P], result: P },
  CreateCUDAProviderOptions: { parameters: ["buffer"], result: P },
  UpdateCUDAProviderOptions: { parameters: [P, "buffer", "buffer", "usize"], result: P },
  ReleaseCUDAProviderOptions: { parameters: [P], result: "void" },
} as const satisfies Record<keyof typeof ORT_API_INDEX, Deno.ForeignFunction>;

type Api = {
  [K in keyof typeof SIGNATURES]: Deno.UnsafeFnPointer<(typeof SIGNATURES)[K]>;
};

/** ONNX element types (`ONNXTensorElementDataType`, TensorProto's codes) of cogflow's dtypes. */
const ELEMENT_TYPES: Readonly<Record<DType, number>> = ONNX_DTYPES;

const GRAPH_OPTIMIZATION_LEVELS = { disabled: 0, basic: 1, extended: 2, all: 99 } as const;

/** Where a session's outputs are left. */
export type OutputDevice = "cpu" | "cuda";

/** Host memory of a value made by {@link NativeOrt.hostValue}. */
export type HostMemory =
  /** ONNX Runtime's default CPU allocator (pageable). */
  | "cpu"
  /** Page-locked memory from a CUDA session's allocator: copies to the device run at full speed. */
  | "cuda_pinned";

/** Options of {@link NativeOrt.createSession}. */
export interface NativeSessionOptions {
  /** `cpu` (the default) or `cuda`. */
  provider?: "cpu" | "cuda";
  /** CUDA provider options as ONNX Runtime names them (`device_id`, `use_tf32`, ...). */
  cudaOptions?: Record<string, string>;
  /** Session config entries (`session.<key>` in onnxruntime-node's `extra`). */
  config?: Record<string, string>;
  /** Graph optimizations (default all). */
  graphOptimizationLevel?: keyof typeof GRAPH_OPTIMIZATION_LEVELS;
  /** Threads within an operator (0: ONNX Runtime's default). */
  intraOpThreads?: number;
  /** ONNX Runtime's memory pattern (default true; see session_guard.ts's `memoryPattern`). */
  memoryPattern?: boolean;
  /** The CPU provider's arena (default true); off, CPU tensors come from malloc. */
  cpuArena?: boolean;
}

/** The path of the ONNX Runtime library onnxruntime-node ships, in this project's node_modules. */
export function bundledLibraryPath(): string {
  const root = join(dirname(fileURLToPath(import.meta.url)), "..");
  return join(root, BINDING_FOLDER, "libonnxruntime.so.1");
}

const encoder = new TextEncoder();

function cString(text: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(`${text}\0`) as Uint8Array<ArrayBuffer>;
}

/** An out-parameter slot for one pointer or one size_t. */
function slot(): BigUint64Array<ArrayBuffer> {
  return new BigUint64Array(1);
}

function pointerIn(out: BigUint64Array): Deno.PointerValue {
  return Deno.UnsafePointer.create(out[0]);
}

/** ONNX Runtime's C API, loaded once per library path. */
export class NativeOrt {
  static #opened = new Map<string, NativeOrt>();
  readonly #api: Api;
  readonly #env: Deno.PointerValue;
  readonly #allocator: Deno.PointerValue;
  readonly #cpuMemory: Deno.PointerValue;
  readonly #memory = new Map<OutputDevice | HostMemory, Deno.PointerValue>();

  /** Opens the library at `path` (default: onnxruntime-node's). */
  static open(path = bundledLibraryPath()): NativeOrt {
    let opened = NativeOrt.#opened.get(path);
    if (!opened) {
      opened = new NativeOrt(path);
      NativeOrt.#opened.set(path, opened);
    }
    return opened;
  }

  private constructor(path: string) {
    const library = Deno.dlopen(path, {
      OrtGetApiBase: { parameters: [], result: "pointer" },
    });
    const base = new Deno.UnsafePointerView(library.symbols.OrtGetApiBase()!);
    const getApi = new Deno.UnsafeFnPointer(base.getPointer(0)!, {
      parameters: ["u32"],
      result: "pointer",
    });
    const table = getApi.call(ORT_API_VERSION);
    if (!table) throw new Error(`${path} does not provide ONNX Runtime's C API ${ORT_API_VERSION}`);
    const view = new Deno.UnsafePointerView(table);
    const api: Record<string, unknown> = {};
    for (const [name, index] of Object.entries(ORT_API_INDEX)) {
      const definition = SIGNATURES[name as keyof typeof SIGNATURES];
      api[name] = new Deno.UnsafeFnPointer(view.getPointer(index * 8)!, definition);
    }
    this.#api = api as Api;
    const out = slot();
    // ORT_LOGGING_LEVEL_FATAL: failures reach the caller as exceptions with ONNX Runtime's
    // message; its log lines would repeat them.
    this.#check(this.#api.CreateEnv.call(4, cString("cogflow"), out));
    this.#env = pointerIn(out);
    this.#check(this.#api.GetAllocatorWithDefaultOptions.call(out));
    this.#allocator = pointerIn(out);
    // OrtArenaAllocator, OrtMemTypeDefault.
    this.#check(this.#api.CreateCpuMemoryInfo.call(1, 0, out));
    this.#cpuMemory = pointerIn(out);
    this.#memory.set("cpu", this.#cpuMemory);
  }

  /** Throws ONNX Runtime's message when `status` is not null (and releases it). */
  #check(status: Deno.PointerValue): void {
    if (status === null) return;
    const message = Deno.UnsafePointerView.getCString(this.#api.GetErrorMessage.call(status)!);
    this.#api.ReleaseStatus.call(status);
    throw new Error(message);
  }

  /** The `OrtMemoryInfo` of `device` (CUDA: device 0's default memory, or its pinned host memory). */
  #memoryOf(device: OutputDevice | HostMemory): Deno.PointerValue {
    let info = this.#memory.get(device);
    if (info === undefined) {
      const out = slot();
      // OrtDeviceAllocator, device 0; OrtMemTypeDefault (0), or OrtMemTypeCPUOutput (-1) for
      // the host memory the CUDA provider pins.
      const [name, type] = device === "cuda_pinned" ? ["CudaPinned", -1] : ["Cuda", 0];
      this.#check(this.#api.CreateMemoryInfo.call(cString(name), 0, 0, type, out));
      info = pointerIn(out);
      this.#memory.set(device, info);
    }
    return info;
  }

  /** Creates a session from the model's bytes (external data by the config's folder entry). */
  createSession(model: Uint8Array, options: NativeSessionOptions = {}): NativeSession {
    const api = this.#api;
    const out = slot();
    this.#check(api.CreateSessionOptions.call(out));
    const sessionOptions = pointerIn(out);
    try {
      const level = GRAPH_OPTIMIZATION_LEVELS[options.graphOptimizationLevel ?? "all"];
      this.#check(api.SetSessionGraphOptimizationLevel.call(sessionOptions, level));
      if (options.intraOpThreads) {
        this.#check(api.SetIntraOpNumThreads.call(sessionOptions, options.intraOpThreads));
      }
      if (options.memoryPattern === false) {
        this.#check(api.DisableMemPattern.call(sessionOptions));
      }
      if (options.cpuArena === false) this.#check(api.DisableCpuMemArena.call(sessionOptions));
      for (const [key, value] of Object.entries(options.config ?? {})) {
        this.#check(
          api.AddSessionConfigEntry.call(sessionOptions, cString(`session.${key}`), cString(value)),
        );
      }
      if (options.provider === "cuda") this.#appendCuda(sessionOptions, options.cudaOptions ?? {});
      const bytes = model.buffer instanceof ArrayBuffer ? model : model.slice();
      this.#check(
        api.CreateSessionFromArray.call(
          this.#env,
          bytes as Uint8Array<ArrayBuffer>,
          BigInt(bytes.byteLength),
          sessionOptions,
          out,
        ),
      );
    } finally {
      api.ReleaseSessionOptions.call(sessionOptions);
    }
    const session = pointerIn(out);
    const names = (count: keyof Api, name: keyof Api) => {
      this.#check((api[count] as Api["SessionGetInputCount"]).call(session, out));
      const result: string[] = [];
      for (let i = 0; i < Number(out[0]); i++) {
        const value = slot();
        this.#check(
          (api[name] as Api["SessionGetInputName"]).call(
            session,
            BigInt(i),
            this.#allocator,
            value,
          ),
        );
        const text = pointerIn(value)!;
        result.push(Deno.UnsafePointerView.getCString(text));
        this.#check(api.AllocatorFree.call(this.#allocator, text));
      }
      return result;
    };
    const inputs = names("SessionGetInputCount", "SessionGetInputName");
    const outputs = names("SessionGetOutputCount", "SessionGetOutputName");
    return new NativeSession(this, session, inputs, outputs);
  }

  #appendCuda(sessionOptions: Deno.PointerValue, cudaOptions: Record<string, string>) {
    const api = this.#api;
    const out = slot();
    this.#check(api.CreateCUDAProviderOptions.call(out));
    const cuda = pointerIn(out);
    try {
      const entries = Object.entries(cudaOptions);
      if (entries.length > 0) {
        const keys = entries.map(([key]) => cString(key));
        const values = entries.map(([, value]) => cString(value));
        const table = (strings: Uint8Array<ArrayBuffer>[]) =>
          BigUint64Array.from(
            strings,
            (s) => BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(s))),
          );
        this.#check(
          api.UpdateCUDAProviderOptions.call(
            cuda,
            table(keys),
            table(values),
            BigInt(entries.length),
          ),
        );
      }
      this.#check(api.SessionOptionsAppendExecutionProvider_CUDA_V2.call(sessionOptions, cuda));
    } finally {
      api.ReleaseCUDAProviderOptions.call(cuda);
    }
  }

  /** A CPU tensor over `tensor`'s array (not copied: keep the array unchanged while it is used). */
  cpuValue(tensor: Tensor): NativeValue {
    const type = ELEMENT_TYPES[tensor.dtype];
    if (type === undefined) throw new Error(`No ONNX element type for ${tensor.dtype}`);
    const data = tensor.data as TensorData & { buffer: ArrayBuffer };
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const pointer = bytes.byteLength > 0 ? Deno.UnsafePointer.of(bytes) : null;
    const value = this.#valueOver(this.#cpuMemory, pointer, bytes.byteLength, type, tensor.shape);
    return new NativeValue(this, value, "cpu", bytes);
  }

  /** An OrtValue over `length` bytes at `pointer` in the memory `info` describes. */
  #valueOver(
    info: Deno.PointerValue,
    pointer: Deno.PointerValue,
    length: number,
    type: number,
    shape: readonly number[],
  ): Deno.PointerValue {
    const dims = BigInt64Array.from(shape, (d) => BigInt(d));
    const out = slot();
    this.#check(
      this.#api.CreateTensorWithDataAsOrtValue.call(
        info,
        pointer,
        BigInt(length),
        dims,
        BigInt(dims.length),
        type,
        out,
      ),
    );
    return pointerIn(out);
  }

  /**
   * `byteLength` bytes of host memory in one allocation from ONNX Runtime (`memory`: pageable, or
   * pinned by the CUDA provider of `session`), for tensors that are views of it
   * ({@link HostBlock.view}). One allocation holds exactly its size, where many would each be
   * rounded up by the allocator's arena. Release the views, then the block, then the session.
   */
  hostBlock(byteLength: number, memory: HostMemory = "cpu", session?: NativeSession): HostBlock {
    const allocator = memory === "cpu" ? this.#allocator : this.#sessionAllocator(session, memory);
    const dims = BigInt64Array.from([BigInt(Math.max(1, byteLength))]);
    const out = slot();
    this.#check(
      this.#api.CreateTensorAsOrtValue.call(allocator, dims, 1n, ONNX_DTYPES.uint8, out),
    );
    const owner = new NativeValue(this, pointerIn(out), "cpu");
    this.#check(this.#api.GetTensorMutableData.call(owner.pointer, out));
    const base = Deno.UnsafePointer.value(pointerIn(out));
    const info = memory === "cpu" ? this.#cpuMemory : this.#memoryOf(memory);
    return new HostBlock(byteLength, owner, (offset, length, dtype, shape) => {
      if (offset < 0 || offset + length > byteLength) {
        throw new Error(`Bytes ${offset}..${offset + length} are outside a block of ${byteLength}`);
      }
      const pointer = Deno.UnsafePointer.create(BigInt(base) + BigInt(offset));
      const bytes = new Uint8Array(
        length > 0 ? Deno.UnsafePointerView.getArrayBuffer(pointer!, length) : new ArrayBuffer(0),
      );
      const type = ONNX_DTYPES[dtype];
      if (type === undefined) throw new Error(`No ONNX element type for ${dtype}`);
      const elements = shape.reduce((a, b) => a * b, 1);
      const expected = elements * (dtype === "bfloat16" ? 2 : BYTES_PER_ELEMENT[dtype]);
      if (expected !== length) {
        throw new Error(`${length} bytes for ${dtype} [${shape}], which takes ${expected}`);
      }
      const value = new NativeValue(
        this,
        this.#valueOver(info, pointer, length, type, shape),
        "cpu",
      );
      return { value, bytes };
    });
  }

  /** The allocator of `memory` for `session` (made once per session). */
  #sessionAllocator(session: NativeSession | undefined, memory: HostMemory): Deno.PointerValue {
    if (!session) throw new Error(`Host memory "${memory}" needs the session it is pinned for`);
    const known = session.allocators.get(memory);
    if (known) return known;
    const out = slot();
    this.#check(this.#api.CreateAllocator.call(session.pointer, this.#memoryOf(memory), out));
    const allocator = pointerIn(out);
    session.allocators.set(memory, allocator);
    return allocator;
  }

  /** @internal Releases an allocator made for a session. */
  releaseAllocator(allocator: Deno.PointerValue): void {
    this.#api.ReleaseAllocator.call(allocator);
  }

  /** @internal Runs `session` on `inputs`, leaving each output on its device. */
  async run(
    session: Deno.PointerValue,
    outputNames: readonly string[],
    inputs: Record<string, NativeValue>,
    devices: OutputDevice | Readonly<Record<string, OutputDevice>>,
  ): Promise<Record<string, NativeValue>> {
    const api = this.#api;
    const out = slot();
    this.#check(api.CreateIoBinding.call(session, out));
    const binding = pointerIn(out);
    try {
      for (const [name, value] of Object.entries(inputs)) {
        this.#check(api.BindInput.call(binding, cString(name), value.pointer));
      }
      const deviceOf = (name: string) =>
        typeof devices === "string" ? devices : devices[name] ?? "cpu";
      for (const name of outputNames) {
        const memory = this.#memoryOf(deviceOf(name));
        this.#check(api.BindOutputToDevice.call(binding, cString(name), memory));
      }
      this.#check(await api.RunWithBinding.call(session, null, binding));
      const count = slot();
      this.#check(api.GetBoundOutputValues.call(binding, this.#allocator, out, count));
      const array = pointerIn(out)!;
      const view = new Deno.UnsafePointerView(array);
      const result: Record<string, NativeValue> = {};
      outputNames.forEach((name, i) => {
        result[name] = new NativeValue(this, view.getPointer(i * 8), deviceOf(name));
      });
      this.#check(api.AllocatorFree.call(this.#allocator, array));
      return result;
    } finally {
      api.ReleaseIoBinding.call(binding);
    }
  }

  /** @internal The dtype and shape of a tensor value. */
  describe(value: Deno.PointerValue): { type: number; shape: number[] } {
    const api = this.#api;
    const out = slot();
    this.#check(api.GetTensorTypeAndShape.call(value, out));
    const info = pointerIn(out);
    try {
      this.#check(api.GetTensorElementType.call(info, out));
      const type = Number(new Int32Array(out.buffer)[0]);
      this.#check(api.GetDimensionsCount.call(info, out));
      const dims = new BigInt64Array(Number(out[0]));
      this.#check(api.GetDimensions.call(info, dims, BigInt(dims.length)));
      return { type, shape: Array.from(dims, Number) };
    } finally {
      api.ReleaseTensorTypeAndShapeInfo.call(info);
    }
  }

  /** @internal Copies a CPU value's elements into a new tensor. */
  read(value: Deno.PointerValue): Tensor {
    const { type, shape } = this.describe(value);
    const dtype = (Object.entries(ELEMENT_TYPES).find(([, t]) => t === type)?.[0]) as
      | DType
      | undefined;
    if (!dtype) throw new Error(`Unsupported ONNX element type ${type}`);
    const out = slot();
    this.#check(this.#api.GetTensorMutableData.call(value, out));
    const elements = shape.reduce((a, b) => a * b, 1);
    const empty = createTensor(dtype, [elements], undefined);
    const bytes = new Uint8Array(empty.data.buffer as ArrayBuffer);
    if (bytes.byteLength > 0) new Deno.UnsafePointerView(pointerIn(out)!).copyInto(bytes);
    return createTensor(dtype, shape, empty.data);
  }

  /** @internal Releases a value. */
  releaseValue(value: Deno.PointerValue): void {
    this.#api.ReleaseValue.call(value);
  }

  /** @internal Releases a session. */
  releaseSession(session: Deno.PointerValue): void {
    this.#api.ReleaseSession.call(session);
  }
}

/** A session made by {@link NativeOrt.createSession}. */
export class NativeSession {
  #ort: NativeOrt;
  #pointer: Deno.PointerValue;
  /** @internal Allocators made for this session, by memory. */
  readonly allocators = new Map<HostMemory, Deno.PointerValue>();

  /** @internal */
  constructor(
    ort: NativeOrt,
    pointer: Deno.PointerValue,
    /** Declared input names. */
    readonly inputNames: readonly string[],
    /** Declared output names. */
    readonly outputNames: readonly string[],
  ) {
    this.#ort = ort;
    this.#pointer = pointer;
  }

  /** @internal The OrtSession. */
  get pointer(): Deno.PointerValue {
    if (this.#pointer === null) throw new Error("The session was released");
    return this.#pointer;
  }

  /**
   * Runs on `inputs` (values of any device); outputs are left on `devices` (one device for all,
   * or one per output name, the CPU for those not named).
   */
  run(
    inputs: Record<string, NativeValue>,
    devices: OutputDevice | Readonly<Record<string, OutputDevice>> = "cpu",
  ): Promise<Record<string, NativeValue>> {
    return this.#ort.run(this.pointer, this.outputNames, inputs, devices);
  }

  /** Releases the session (release the values pinned by its allocators first). */
  release(): void {
    if (this.#pointer === null) return;
    for (const allocator of this.allocators.values()) this.#ort.releaseAllocator(allocator);
    this.allocators.clear();
    this.#ort.releaseSession(this.#pointer);
    this.#pointer = null;
  }
}

/** A tensor value held by ONNX Runtime, on the CPU or a device. */
export class NativeValue {
  #ort: NativeOrt;
  #pointer: Deno.PointerValue;
  /** The array a CPU input borrows (kept alive with the value). */
  #borrowed?: Uint8Array;

  /** @internal */
  constructor(
    ort: NativeOrt,
    pointer: Deno.PointerValue,
    readonly device: OutputDevice,
    borrowed?: Uint8Array,
  ) {
    this.#ort = ort;
    this.#pointer = pointer;
    this.#borrowed = borrowed;
  }

  /** @internal The OrtValue. */
  get pointer(): Deno.PointerValue {
    if (this.#pointer === null) throw new Error("The value was released");
    return this.#pointer;
  }

  /** The dimensions. */
  get shape(): number[] {
    return this.#ort.describe(this.pointer).shape;
  }

  /** A copy of the elements (CPU values only). */
  toTensor(): Tensor {
    if (this.device !== "cpu") throw new Error(`A ${this.device} value cannot be read here`);
    return this.#ort.read(this.pointer);
  }

  /** Releases the value (and, for a device value, its device memory). */
  release(): void {
    if (this.#pointer === null) return;
    this.#ort.releaseValue(this.#pointer);
    this.#pointer = null;
    this.#borrowed = undefined;
  }
}

/** Host memory in one allocation, and tensors that are views of it (see {@link NativeOrt.hostBlock}). */
export class HostBlock {
  readonly #owner: NativeValue;
  readonly #view: (
    offset: number,
    length: number,
    dtype: DType | "bfloat16",
    shape: readonly number[],
  ) => { value: NativeValue; bytes: Uint8Array<ArrayBuffer> };

  /** @internal */
  constructor(
    /** Its size in bytes. */
    readonly byteLength: number,
    owner: NativeValue,
    view: HostBlock["view"],
  ) {
    this.#owner = owner;
    this.#view = view;
  }

  /**
   * A tensor of `dtype` and `shape` over `length` bytes from `offset`, and those bytes (to fill
   * before the tensor is used). Release it before the block.
   */
  view(
    offset: number,
    length: number,
    dtype: DType | "bfloat16",
    shape: readonly number[],
  ): { value: NativeValue; bytes: Uint8Array<ArrayBuffer> } {
    return this.#view(offset, length, dtype, shape);
  }

  /** Gives the memory back to ONNX Runtime's allocator. */
  release(): void {
    this.#owner.release();
  }
}
