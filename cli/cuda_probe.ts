/**
 * The provider load test of `deno task install-cuda --check`, run in a child process of its own
 * (a provider that fails to load cannot take the checking process with it, and ONNX Runtime's log,
 * which names the library that did not load, goes to the child's stderr): creates a session of a
 * one-MatMul graph with the CUDA provider only, runs it once, and prints the result as one line of
 * JSON on stdout, {@link ProbeResult}. It also opens each CUDA library the provider needs by its
 * name, as the loader finds it (`LD_LIBRARY_PATH`, then the system's folders), so that every missing
 * one is named, not only the first that stopped ONNX Runtime.
 *
 * @module
 */

import onnxProto from "onnx-proto";
import { CUDA_LIBRARIES } from "../runtime/cuda_provider.ts";

/** What the probe prints. */
export interface ProbeResult {
  /** True when a CUDA session was created and ran. */
  ok: boolean;
  /** ONNX Runtime's error, first line, when it did not. */
  error?: string;
  /** Milliseconds creating the session. */
  createMs?: number;
  /** The CUDA libraries (file names) that could not be opened, each with the loader's error. */
  unopened?: Record<string, string>;
}

/** A graph `y = x @ w` of 2x2 float matrices (cuBLAS computes it on the CUDA provider). */
export function matMulGraph(): Uint8Array {
  const { onnx } = onnxProto;
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const matrix = (name: string) => ({
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimValue: 2 }, { dimValue: 2 }] } } },
  });
  return onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "cuda_probe",
      node: [{ opType: "MatMul", input: ["x", "w"], output: ["y"] }],
      initializer: [{ name: "w", dataType: FLOAT, dims: [2, 2], floatData: [1, 2, 3, 4] }],
      input: [matrix("x")],
      output: [matrix("y")],
    },
  }).finish();
}

/** The libraries of {@link CUDA_LIBRARIES} that `dlopen` cannot open, with its errors. */
export function unopenedLibraries(): Record<string, string> {
  const unopened: Record<string, string> = {};
  for (const { file } of CUDA_LIBRARIES) {
    try {
      Deno.dlopen(file, {}).close();
    } catch (error) {
      unopened[file] = (error as Error).message.replace(/^(Could not open library: )+/, "");
    }
  }
  return unopened;
}

async function probe(): Promise<ProbeResult> {
  // Loaded here, so that a missing binding is reported like any other failure.
  const ort = await import("onnxruntime-node");
  // Errors of the provider bridge name the library that did not load: keep them on stderr.
  ort.env.logLevel = "error";
  const started = performance.now();
  try {
    const session = await ort.InferenceSession.create(matMulGraph(), {
      executionProviders: ["cuda"],
    });
    const createMs = performance.now() - started;
    const x = new ort.Tensor("float32", Float32Array.from([1, 0, 0, 1]), [2, 2]);
    const { y } = await session.run({ x });
    const values = Array.from(y.data as Float32Array);
    await session.release();
    if (values.join(",") !== "1,2,3,4") {
      return { ok: false, error: `The CUDA session computed [${values}] instead of [1,2,3,4]` };
    }
    return { ok: true, createMs };
  } catch (error) {
    return { ok: false, error: String((error as Error).message ?? error).split("\n")[0] };
  }
}

if (import.meta.main) {
  const result = await probe().catch((error) => ({
    ok: false,
    error: String((error as Error).message ?? error).split("\n")[0],
  }));
  console.log(JSON.stringify({ ...result, unopened: unopenedLibraries() }));
  Deno.exit(result.ok ? 0 : 1);
}
