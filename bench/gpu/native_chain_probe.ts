/**
 * What a part boundary costs when the activations stay with ONNX Runtime (runtime/ort_native.ts):
 * a chain of sessions, each `y = x + 1` over a CogVideoX-2b block's hidden states with guidance
 * at 480x720x49 (2 x 17,776 x 1920 float32, 273 MB), each session's output bound to the device
 * and fed to the next; against onnxruntime-node, where every output comes back to a JS array.
 *
 * ```sh
 * deno run -A bench/gpu/native_chain_probe.ts --provider cuda [--parts 30] [--elements N]
 * deno run -A bench/gpu/native_chain_probe.ts --provider cpu --elements 1000000
 * ```
 *
 * Prints a markdown row per path (median milliseconds per part over the chain, after a warm-up
 * chain) and `RESULT {...}`; checks that the chain's result is `x + parts`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { GraphBuilder } from "../../builders/onnx_graph.ts";
import { NativeOrt } from "../../runtime/ort_native.ts";
import { createTensor } from "../../runtime/tensor.ts";
import { median } from "../bench_util.ts";

/** `y = x + 1` over float32 `[n]`. */
export function addOneGraph(): Uint8Array {
  const b = new GraphBuilder({ name: "add_one", computeDType: "float32" });
  const x = b.input("x", "float32", ["n"]);
  b.output(b.op("Add", [x, b.scalar(1)]), "y", "float32", ["n"]);
  return b.toBytes();
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      provider: { type: "string", default: "cuda" },
      parts: { type: "string", default: "30" },
      elements: { type: "string", default: String(2 * 17_776 * 1920) },
      rounds: { type: "string", default: "3" },
    },
  });
  const provider = values.provider as "cpu" | "cuda";
  const parts = Number(values.parts);
  const elements = Number(values.elements);
  const rounds = Number(values.rounds);
  const bytes = addOneGraph();
  const input = Float32Array.from({ length: elements }, (_, i) => i % 7);

  const native = NativeOrt.open();
  const sessions = Array.from({ length: parts }, () => native.createSession(bytes, { provider }));
  const nativeMs: number[] = [];
  let last: Float32Array | undefined;
  for (let round = 0; round <= rounds; round++) {
    const x = native.cpuValue(createTensor("float32", [elements], input));
    let value = x;
    const started = performance.now();
    for (let i = 0; i < parts; i++) {
      const device = i === parts - 1 ? "cpu" : provider;
      const next = (await sessions[i].run({ x: value }, device)).y;
      if (value !== x) value.release();
      value = next;
    }
    if (round > 0) nativeMs.push((performance.now() - started) / parts);
    last = value.toTensor().data as Float32Array;
    value.release();
    x.release();
  }
  for (const session of sessions) session.release();
  for (let i = 0; i < elements; i += Math.max(1, Math.floor(elements / 1000))) {
    if (last![i] !== (i % 7) + parts) throw new Error(`Element ${i}: ${last![i]}`);
  }

  const nodeSessions = await Promise.all(
    Array.from(
      { length: parts },
      () =>
        ort.InferenceSession.create(bytes, { executionProviders: [provider], logSeverityLevel: 3 }),
    ),
  );
  const nodeMs: number[] = [];
  for (let round = 0; round <= rounds; round++) {
    let data: Float32Array<ArrayBufferLike> = input;
    const started = performance.now();
    for (const session of nodeSessions) {
      const out = await session.run({ x: new ort.Tensor("float32", data, [elements]) });
      data = out.y.data as Float32Array;
    }
    if (round > 0) nodeMs.push((performance.now() - started) / parts);
  }
  for (const session of nodeSessions) await session.release();

  const mb = (elements * 4) / 1e6;
  console.log("| path | provider | MB per boundary | ms per part (median) |");
  console.log("| --- | --- | ---: | ---: |");
  console.log(
    `| native, outputs left on ${provider} | ${provider} | ${mb.toFixed(0)} | ${
      median(nativeMs).toFixed(2)
    } |`,
  );
  console.log(
    `| onnxruntime-node | ${provider} | ${mb.toFixed(0)} | ${median(nodeMs).toFixed(2)} |`,
  );
  console.log(
    `RESULT ${
      JSON.stringify({
        provider,
        parts,
        elements,
        nativeMs: median(nativeMs),
        nodeMs: median(nodeMs),
      })
    }`,
  );
}
