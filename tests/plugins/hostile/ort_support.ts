/**
 * What the `ort_*` hostile plugins share (this file is not a plugin): a session created through
 * onnxruntime-node itself or through cogflow's session workers, with session options of the
 * plugin's choosing, and a graph whose one weight is a file of its choosing (external data).
 *
 * @module
 */

import { join } from "node:path";
import onnxProto from "onnx-proto";
import type { HostileTarget } from "../hostile_support.ts";
import { SessionWorker } from "../../../runtime/session_client.ts";
import type { WorkerSessionOptions } from "../../../runtime/session_worker.ts";

/** The length of the test's secrets (`secret-` and a UUID). */
export const SECRET_BYTES = 43;

const CPU: WorkerSessionOptions = {
  executionProviders: ["cpu"],
  fallbackToCpu: false,
  intraOpThreads: 1,
  interOpThreads: 1,
  graphOptimizationLevel: "all",
};

/** A model the plugin may read: the fixture VAE decoder. */
export function fixtureModel(target: HostileTarget): string {
  return join(target.projectDir, "tests/fixtures/tiny-cogvideox/2b/vae_decoder/model.onnx");
}

/** Creates a session with onnxruntime-node directly; says what it got. */
export async function ortDirect(model: string, options: Record<string, unknown>): Promise<string> {
  const ort = await import("onnxruntime-node");
  const session = await ort.InferenceSession.create(model, options);
  try {
    if (options.enableProfiling) session.endProfiling();
    return `a session with inputs ${session.inputNames.join(", ")}`;
  } finally {
    await session.release();
  }
}

/** Creates a session in one of cogflow's session workers with extra options; says what it got. */
export async function sessionWorkerCreate(
  model: string | Uint8Array,
  extra: Record<string, unknown>,
): Promise<string> {
  const worker = new SessionWorker();
  try {
    const created = await worker.create("hostile", model, { ...CPU, ...extra });
    await worker.release("hostile");
    return `a session with inputs ${created.inputNames.join(", ")}`;
  } finally {
    worker.stop();
  }
}

/** Runs a graph of {@link secretGraph} in a session worker; returns its weight as text. */
export async function sessionWorkerRead(
  model: string | Uint8Array,
  extra: Partial<WorkerSessionOptions>,
): Promise<string> {
  const worker = new SessionWorker();
  try {
    await worker.create("hostile", model, { ...CPU, ...extra });
    const { outputs } = await worker.run("hostile", {});
    return new TextDecoder().decode(outputs.y.data as Uint8Array);
  } finally {
    worker.stop();
  }
}

/**
 * Runs a streamed model (runtime/streamed_chain.ts) in a session worker: one part, `graph`, with
 * one weight input `w` read from `path`; returns its output `y` as text.
 */
export async function sessionWorkerChainRead(graph: Uint8Array, path?: string): Promise<string> {
  const worker = new SessionWorker();
  try {
    const weights = path
      ? [{ input: "w", path, offset: 0, length: SECRET_BYTES, dtype: "float32", shape: [] }]
      : [];
    await worker.createChain("hostile", {
      parts: [{
        name: "part_00_whole",
        graph,
        inputs: [],
        outputs: [{ graph: "y", tensor: "y" }],
        weights: weights as never,
      }],
      modelOutputs: ["y"],
    }, CPU);
    const { outputs } = await worker.run("hostile", {});
    return new TextDecoder().decode(outputs.y.data as Uint8Array);
  } finally {
    worker.stop();
  }
}

/** A graph whose output `y` is its one weight: `bytes` bytes read from `location`. */
export function secretGraph(location: string, bytes: number = SECRET_BYTES): Uint8Array {
  const { onnx } = onnxProto;
  const UINT8 = onnx.TensorProto.DataType.UINT8;
  return onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "secret",
      node: [{ opType: "Identity", input: ["w"], output: ["y"] }],
      initializer: [{
        name: "w",
        dataType: UINT8,
        dims: [bytes],
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [{ key: "location", value: location }, { key: "offset", value: "0" }, {
          key: "length",
          value: String(bytes),
        }],
      }],
      output: [{
        name: "y",
        type: { tensorType: { elemType: UINT8, shape: { dim: [{ dimValue: bytes }] } } },
      }],
    },
  }).finish();
}
