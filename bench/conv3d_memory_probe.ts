/**
 * Peak memory of one 3x3x3 convolution on ONNX Runtime's CPU provider, against its input's
 * size: the question behind the VAE decode estimate (runtime/run_estimate.ts). One run per
 * process, so that `VmHWM` is this convolution's.
 *
 * ```sh
 * deno run -A bench/conv3d_memory_probe.ts --channels 128 --frames 9 --height 240 --width 360
 * ```
 *
 * Prints one JSON line: the input, output and weight bytes, the resident set before the run
 * (session made, input allocated) and the peak after it, in MiB, and the run's seconds.
 *
 * @module
 */

import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { GraphBuilder } from "../builders/onnx_graph.ts";
import { readProcessMemory } from "../runtime/process_memory.ts";

/** A graph of one Conv: `channels` to `channels`, kernel 3x3x3, spatial padding 1, no time padding. */
export function conv3dGraph(channels: number): Uint8Array {
  const b = new GraphBuilder({ name: "conv3d_probe", computeDType: "float32" });
  const x = b.input("x", "float32", [1, channels, "t", "h", "w"]);
  const count = channels * channels * 27;
  const weights = Array.from({ length: count }, (_, i) => ((i * 7919) % 1000) / 1e5);
  const w = b.constant("float32", [channels, channels, 3, 3, 3], weights);
  const y = b.op("Conv", [x, w], { kernel_shape: [3, 3, 3], pads: [0, 1, 1, 0, 1, 1] });
  b.output(y, "y", "float32", [1, channels, "t2", "h", "w"]);
  return b.toBytes();
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      channels: { type: "string", default: "128" },
      frames: { type: "string", default: "9" },
      height: { type: "string", default: "240" },
      width: { type: "string", default: "360" },
      threads: { type: "string", default: "0" },
    },
  });
  const [c, t, h, w] = [values.channels, values.frames, values.height, values.width].map(Number);
  const session = await ort.InferenceSession.create(conv3dGraph(c), {
    executionProviders: ["cpu"],
    intraOpNumThreads: Number(values.threads),
    logSeverityLevel: 3,
  });
  const input = new Float32Array(c * (t + 2) * h * w).fill(0.5);
  const before = readProcessMemory().rss / 2 ** 20;
  const started = performance.now();
  const out = await session.run({ x: new ort.Tensor("float32", input, [1, c, t + 2, h, w]) });
  const seconds = (performance.now() - started) / 1000;
  const mib = 1024 * 1024;
  console.log(JSON.stringify({
    channels: c,
    frames: t,
    height: h,
    width: w,
    inputMiB: input.byteLength / mib,
    outputMiB: (out.y.data as Float32Array).byteLength / mib,
    columnMiB: (c * 27 * t * h * w * 4) / mib,
    rssBeforeMiB: Math.round(before),
    peakMiB: Math.round(readProcessMemory().peak / 2 ** 20),
    seconds: Number(seconds.toFixed(2)),
  }));
}
