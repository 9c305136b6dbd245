/**
 * Checks that creating and releasing sessions does not leak: a model under `model_offload` is
 * created, run and released many times through the {@link OnnxModelManager}, as a long workflow
 * or a server would, and the process's resident memory (workers included) is compared before and
 * after. The target is under 5% growth over 50 cycles.
 *
 * With glibc's default malloc settings the freed weights partly stay in the allocator's arenas, so
 * the growth is noisy (12% to 36% measured) though bounded: it does not grow with more cycles, and
 * `MALLOC_TRIM_THRESHOLD_=0 deno run -A bench/session_churn.ts`, which makes glibc give freed
 * memory back, measures about 3%. A session leaked per cycle adds a model's size per cycle.
 *
 * ```sh
 * deno run -A bench/session_churn.ts                      # synthetic 2-block transformer, ~25 MB
 * deno run -A bench/session_churn.ts --cycles 200 --hidden 1024
 * deno run -A bench/session_churn.ts --model tests/fixtures/tiny-cogvideox/2b/transformer/model.onnx
 * ```
 *
 * Options: `--cycles N` (default 50), `--warmup N` cycles before the baseline (default 5),
 * `--hidden N` and `--layers N` (synthetic transformer size), `--model PATH` (a transformer with
 * the fixture's inputs instead), `--keep-in-ram`, `--target PERCENT` (default 5). Exits with 1
 * when the growth reaches the target.
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { describeModel } from "../runtime/model_files.ts";
import type { ModelHandle } from "../runtime/model_handle.ts";
import { modelOffloadHook } from "../nodes/model_offload.ts";
import { OnnxModelManager } from "../runtime/onnx_model_manager.ts";
import { readProcessMemory } from "../runtime/process_memory.ts";
import { createTensor, type Tensor } from "../runtime/tensor.ts";
import { presets, writeTransformer } from "../tests/synthetic_models.ts";

/** Options of {@link measureSessionChurn}. */
export interface ChurnOptions {
  /** Measured create/run/release cycles. */
  cycles: number;
  /** Cycles before the baseline is read (allocator and JIT warm-up). */
  warmup: number;
  /** Keep the model's bytes in memory (`keep_in_ram`). */
  keepInRam?: boolean;
}

/** What {@link measureSessionChurn} measured. */
export interface ChurnResult {
  /** Sessions created in all (warm-up included). */
  loads: number;
  /** Resident memory after the warm-up, in bytes. */
  rssBefore: number;
  /** Resident memory after the measured cycles, in bytes. */
  rssAfter: number;
  /** Highest resident memory read between cycles, in bytes. */
  rssMax: number;
  /** `(rssAfter - rssBefore) / rssBefore`, in percent. */
  growthPercent: number;
}

/** Creates, runs and releases `model` (wrapped in model_offload) repeatedly; see the module. */
export async function measureSessionChurn(
  model: ModelHandle,
  feeds: () => Record<string, Tensor>,
  options: ChurnOptions,
): Promise<ChurnResult> {
  const manager = new OnnxModelManager();
  const offloaded = modelOffloadHook.wrap(model, {
    node: "churn",
    keepInRam: options.keepInRam ?? false,
  });
  const cycle = async () => {
    await manager.retain(offloaded);
    await manager.run(offloaded, feeds());
    await manager.release(offloaded);
  };
  try {
    for (let i = 0; i < options.warmup; i++) await cycle();
    const rssBefore = readProcessMemory().rss;
    let rssMax = rssBefore;
    for (let i = 0; i < options.cycles; i++) {
      await cycle();
      rssMax = Math.max(rssMax, readProcessMemory().rss);
    }
    const rssAfter = readProcessMemory().rss;
    const loads = manager.stats()[0]?.loads ?? 0;
    return {
      loads,
      rssBefore,
      rssAfter,
      rssMax,
      growthPercent: (100 * (rssAfter - rssBefore)) / rssBefore,
    };
  } finally {
    await manager.close();
  }
}

/** Inputs of one denoising call of a CogVideoX transformer with 3 latent frames of 8 x 8. */
export function transformerFeeds(textEmbedDim: number): () => Record<string, Tensor> {
  const count = 2 * 3 * 4 * 8 * 8;
  return () => ({
    hidden_states: createTensor(
      "float32",
      [2, 3, 4, 8, 8],
      Float32Array.from({ length: count }, (_, i) => Math.sin(i)),
    ),
    encoder_hidden_states: createTensor(
      "float32",
      [2, 16, textEmbedDim],
      Float32Array.from({ length: 32 * textEmbedDim }, (_, i) => Math.cos(i)),
    ),
    timestep: createTensor("int64", [2], new BigInt64Array([999n, 999n])),
  });
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      cycles: { type: "string", default: "50" },
      warmup: { type: "string", default: "5" },
      hidden: { type: "string", default: "512" },
      layers: { type: "string", default: "2" },
      model: { type: "string" },
      "keep-in-ram": { type: "boolean", default: false },
      target: { type: "string", default: "5" },
    },
  });
  const dir = await Deno.makeTempDir({ prefix: "cogflow-churn-" });
  try {
    let path = values.model;
    let textEmbedDim = 32;
    if (path === undefined) {
      const options = {
        ...presets.small.transformer,
        hiddenSize: Number(values.hidden),
        numLayers: Number(values.layers),
      };
      textEmbedDim = options.textEmbedDim;
      path = (await writeTransformer(join(dir, "model.onnx"), options)).path;
    }
    const model = await describeModel(path, { name: "transformer" });
    const result = await measureSessionChurn(model, transformerFeeds(textEmbedDim), {
      cycles: Number(values.cycles),
      warmup: Number(values.warmup),
      keepInRam: values["keep-in-ram"],
    });
    const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
    console.log(
      `${values.cycles} create/run/release cycles of a ${mb(model.bytes)} model` +
        `${values["keep-in-ram"] ? " (keep_in_ram)" : ""}: ${result.loads} sessions created, ` +
        `resident ${mb(result.rssBefore)} -> ${mb(result.rssAfter)} (max ${mb(result.rssMax)}), ` +
        `growth ${result.growthPercent.toFixed(2)}% (target < ${values.target}%)`,
    );
    return result.growthPercent < Number(values.target) ? 0 : 1;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
