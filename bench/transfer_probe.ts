/**
 * Where the time of moving a big tensor through onnxruntime-node's `run()` goes. Three graphs
 * whose compute is negligible isolate each direction:
 *
 * - `in`: `x -> ReduceSum -> scalar`: the JS tensor handed to ONNX Runtime (the N-API side
 *   borrows the typed array) and, on CUDA, the host-to-device copy from pageable memory;
 * - `out`: `shape -> Expand(0) -> y`: the output made on the provider, copied to the host
 *   on CUDA, then copied again into a new JS typed array by the N-API side;
 * - `both`: `x -> Add 1 -> y`: a block's activations in and out.
 *
 * float16 inputs cannot be passed from Deno: onnxruntime-common makes a native `Float16Array` of
 * them, which the N-API side does not read (it reports 0 bytes). So only `out` runs in float16,
 * and cogflow's graphs take float32 at the boundary.
 *
 * Each runs on the CPU provider (the N-API side alone) and on CUDA, at the sizes of a
 * CogVideoX-2b block's hidden states with guidance at 480x720x49 (2 x 17,776 x 1920 in float16:
 * 136 MB; in float32: 273 MB). Prints one markdown row per case and a JSON line at the end.
 *
 * ```sh
 * deno run -A bench/transfer_probe.ts                # cpu and cuda
 * deno run -A bench/transfer_probe.ts --providers cpu
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { GraphBuilder, type ValueDType } from "../builders/onnx_graph.ts";

/** One measured case. */
export interface TransferCase {
  /** The provider the session ran on. */
  provider: string;
  /** `in`, `out` or `both`. */
  direction: string;
  /** Element type. */
  dtype: "float16" | "float32";
  /** Bytes moved each way. */
  bytes: number;
  /** Median milliseconds of `run()` (after a warm-up run). */
  runMs: number;
  /** Bytes per second through `run()` (both directions counted for `both`). */
  gbPerSecond: number;
}

/** The three probe graphs for one element type. */
export function probeGraph(direction: string, dtype: ValueDType): Uint8Array {
  const b = new GraphBuilder({ name: `transfer_${direction}`, computeDType: "float32" });
  if (direction === "in") {
    const x = b.input("x", dtype, ["n"]);
    const sum = b.op("ReduceSum", [x], { keepdims: 0 });
    b.output(sum, "y", dtype, []);
  } else if (direction === "out") {
    const shape = b.input("shape", "int64", [1]);
    const filled = b.op("Expand", [b.constant(dtype, [1], [0]), shape]);
    b.output(filled, "y", dtype, ["n"]);
  } else {
    const x = b.input("x", dtype, ["n"]);
    const y = b.op("Add", [x, b.scalar(1, dtype)]);
    b.output(y, "y", dtype, ["n"]);
  }
  return b.toBytes();
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function measure(
  provider: string,
  direction: string,
  dtype: "float16" | "float32",
  elements: number,
  runs: number,
): Promise<TransferCase> {
  const session = await ort.InferenceSession.create(probeGraph(direction, dtype), {
    executionProviders: [provider],
    logSeverityLevel: 3,
  });
  const feeds: Record<string, ort.Tensor> = direction === "out"
    ? { shape: new ort.Tensor("int64", BigInt64Array.from([BigInt(elements)]), [1]) }
    : { x: new ort.Tensor("float32", new Float32Array(elements), [elements]) };
  const times: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const started = performance.now();
    const out = await session.run(feeds);
    const ms = performance.now() - started;
    if (i > 0) times.push(ms);
    (out.y as ort.Tensor).dispose?.();
  }
  await session.release();
  const bytes = elements * (dtype === "float16" ? 2 : 4);
  const runMs = median(times);
  const moved = direction === "both" ? 2 * bytes : bytes;
  return { provider, direction, dtype, bytes, runMs, gbPerSecond: moved / runMs / 1e6 };
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      providers: { type: "string", default: "cpu,cuda" },
      runs: { type: "string", default: "5" },
    },
  });
  const tokens = 2 * 17_776 * 1920;
  const cases: TransferCase[] = [];
  console.log("| provider | direction | dtype | MB each way | run() ms | GB/s |");
  console.log("| --- | --- | --- | ---: | ---: | ---: |");
  for (const provider of values.providers.split(",")) {
    for (const dtype of ["float16", "float32"] as const) {
      for (const direction of dtype === "float16" ? ["out"] : ["in", "out", "both"]) {
        try {
          const row = await measure(provider, direction, dtype, tokens, Number(values.runs));
          cases.push(row);
          console.log(
            `| ${provider} | ${direction} | ${dtype} | ${(row.bytes / 1e6).toFixed(0)} | ${
              row.runMs.toFixed(1)
            } | ${row.gbPerSecond.toFixed(2)} |`,
          );
        } catch (error) {
          console.log(
            `| ${provider} | ${direction} | ${dtype} | failed: ${(error as Error).message} |`,
          );
        }
      }
    }
  }
  console.log(`RESULT ${JSON.stringify(cases)}`);
}
