/**
 * Copying values to a provider's device with ONNX Runtime's C API (runtime/ort_native.ts): a
 * staging session is an Identity per value, its inputs bound to host values and its outputs to
 * the device, so ONNX Runtime does the copy (on the session's own stream, on a thread of its
 * own). Weight streaming stages the next part's weights this way while a part runs, and keeps
 * unchanged feeds on the device (runtime/streamed_chain.ts). Also the check that device values
 * work at all, made before a chain relies on them.
 *
 * @module
 */

import { GraphBuilder, type ValueDType } from "../builders/onnx_graph.ts";
import type { NativeOrt, NativeSession, NativeValue, OutputDevice } from "./ort_native.ts";
import { createTensor } from "./tensor.ts";

/** A value a staging session copies: its input name, dtype and dimensions (names: symbolic). */
export interface StagedValue {
  /** The input (and, after {@link STAGED}, the output) name. */
  name: string;
  /** Element type. */
  dtype: ValueDType;
  /** Dimensions; a string is a symbolic dimension. */
  dims: readonly (number | string)[];
}

/** The prefix of a staging graph's outputs (`staged:<input>`). */
const STAGED = "staged:";

/** A graph that copies each of `values` (inputs of their names) to an output. */
export function stagingGraph(values: readonly StagedValue[]): Uint8Array {
  const b = new GraphBuilder({ name: "staging" });
  for (const { name, dtype, dims } of values) {
    b.output(b.input(name, dtype, dims), `${STAGED}${name}`, dtype, dims);
  }
  return b.toBytes();
}

/** Runs staging session `stager` on `inputs`: the copies on `device`, by input name. */
export async function stage(
  stager: NativeSession,
  inputs: Record<string, NativeValue>,
  device: OutputDevice,
): Promise<Record<string, NativeValue>> {
  const staged = await stager.run(inputs, device);
  return Object.fromEntries(
    Object.entries(staged).map(([name, value]) => [name.slice(STAGED.length), value]),
  );
}

/** Providers whose device values were checked in this thread ({@link checkDeviceRoundTrip}). */
const checkedProviders = new Set<string>();

/**
 * Checks once per thread that a value left on `provider`'s device feeds a session and comes back
 * (one float there and back through a staging session): a chain that could not bind device values
 * fails when it is made, where the model manager falls back, not in the middle of a run.
 */
export async function checkDeviceRoundTrip(
  ort: NativeOrt,
  provider: "cpu" | "cuda",
  cudaOptions?: Record<string, string>,
): Promise<void> {
  if (checkedProviders.has(provider)) return;
  let session: NativeSession | undefined;
  const x = ort.cpuValue(createTensor("float32", [1], Float32Array.of(1.5)));
  const values: NativeValue[] = [x];
  try {
    session = ort.createSession(stagingGraph([{ name: "x", dtype: "float32", dims: [1] }]), {
      provider,
      cudaOptions,
    });
    const there = (await stage(session, { x }, provider)).x;
    values.push(there);
    const back = (await stage(session, { x: there }, "cpu")).x;
    values.push(back);
    const [y] = back.toTensor().data as Float32Array;
    if (y !== 1.5) throw new Error(`a value sent to ${provider} and back came back as ${y}`);
  } catch (error) {
    throw new Error(`Device values of ${provider} do not work here: ${(error as Error).message}`, {
      cause: error,
    });
  } finally {
    for (const value of values) value.release();
    session?.release();
  }
  checkedProviders.add(provider);
}
