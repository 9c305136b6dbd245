/**
 * One denoising step of a CogVideoX transformer (a real-width HF folder: bench/gpu/run_table.sh's
 * `make` stage writes one) with guidance, through ONNX Runtime's C API (runtime/ort_native.ts),
 * three ways: `whole`, one session holding every weight on the device (as the model manager runs a
 * resident built model: text and positional feeds kept on the device); `streamed`, the weight
 * streaming of sequential offload (runtime/streamed_chain.ts): parts in sessions without weights,
 * weights in pinned host memory bound per run, activations left on the device between parts;
 * `prefetch`, the same with the next part's weights copied to the device while a part runs.
 *
 * ```sh
 * deno run -A bench/gpu/streamed_step_probe.ts --folder /tmp/gpu-table/pipes/2b/transformer \
 *   --modes whole,streamed,prefetch --dtype float16 [--latent 13x60x90] [--cuda-options k=v,k=v]
 * ```
 *
 * Prints a row per mode (median step milliseconds after a warm-up step, the slowest parts) and
 * `RESULT {...}`; checks that both modes give the same sample (max abs difference printed). The
 * caller samples device memory (bench/gpu/run_table.sh's with_device_peak): run one mode per
 * process to read each mode's peak.
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  buildCogVideoXTransformer,
  cogVideoXTransformerParts,
} from "../../builders/cogvideox_transformer.ts";
import type { ComputeDType } from "../../builders/onnx_graph.ts";
import { loadComponentWeights } from "../../builders/safetensors_weights.ts";
import { streamedParts } from "../../builders/streamed_part.ts";
import { chainParts, StreamedChain } from "../../runtime/streamed_chain.ts";
import { createTensor, type Tensor } from "../../runtime/tensor.ts";
import { median } from "../bench_util.ts";

/** The step's inputs: latents of `[frames, height, width]`, 226 text tokens, batch 2. */
export function stepFeeds(config: Record<string, unknown>, size: number[]): Record<string, Tensor> {
  const inner = Number(config.num_attention_heads) * Number(config.attention_head_dim);
  const fill = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 0.5);
  const [frames, height, width] = size;
  const latent = [2, frames, Number(config.in_channels), height, width];
  const tokens = frames * (height / 2) * (width / 2);
  const text = Number(config.text_embed_dim);
  const feeds: Record<string, Tensor> = {
    hidden_states: createTensor("float32", latent, fill(latent.reduce((a, b) => a * b))),
    encoder_hidden_states: createTensor("float32", [2, 226, text], fill(2 * 226 * text)),
    timestep: createTensor("int64", [2], BigInt64Array.from([999n, 999n])),
  };
  if (config.use_rotary_positional_embeddings) {
    const dim = Number(config.attention_head_dim);
    feeds.image_rotary_emb_cos = createTensor("float32", [tokens, dim], fill(tokens * dim));
    feeds.image_rotary_emb_sin = createTensor("float32", [tokens, dim], fill(tokens * dim));
  } else {
    feeds.pos_embedding = createTensor("float32", [tokens, inner], fill(tokens * inner));
  }
  return feeds;
}

function parseOptions(text: string): Record<string, string> {
  return Object.fromEntries(
    text.split(",").filter(Boolean).map((pair) => pair.split("=") as [string, string]),
  );
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      folder: { type: "string", default: "/tmp/gpu-table/pipes/2b/transformer" },
      modes: { type: "string", default: "whole,streamed,prefetch" },
      dtype: { type: "string", default: "float16" },
      latent: { type: "string", default: "13x60x90" },
      runs: { type: "string", default: "3" },
      provider: { type: "string", default: "cuda" },
      "cuda-options": { type: "string", default: "arena_extend_strategy=kSameAsRequested" },
      "blocks-per-group": { type: "string", default: "1" },
      // Query rows per attention chunk, as the CPU pipeline builds the transformer (none: whole).
      "query-chunk": { type: "string" },
      "mem-pattern": { type: "string", default: "on" },
      arena: { type: "string", default: "on" },
    },
  });
  const folder = values.folder;
  const configPath = join(folder, "config.json");
  const config = JSON.parse(await Deno.readTextFile(configPath));
  const weights = await loadComponentWeights(folder);
  const dtype = values.dtype as ComputeDType;
  const provider = values.provider as "cpu" | "cuda";
  const cudaOptions = parseOptions(values["cuda-options"]);
  const size = values.latent.split("x").map(Number);
  const feeds = stepFeeds(config, size);
  const runs = Number(values.runs);
  const queryChunk = values["query-chunk"] ? Number(values["query-chunk"]) : undefined;
  const rows: Record<string, unknown>[] = [];
  const samples: Record<string, Float32Array> = {};
  console.log("| mode | layers | create s | step ms (median) | slowest parts ms |");
  console.log("| --- | ---: | ---: | ---: | --- |");
  for (const mode of values.modes.split(",")) {
    const created = performance.now();
    let step: () => Promise<{ sample: Tensor; partMs?: number[] }>;
    let release: () => void;
    let extra: Record<string, unknown> = {};
    if (mode === "whole") {
      // As the model manager makes a resident built model on a GPU: one part, its weights the
      // graph's own, the step's unchanged feeds kept on the device.
      const bytes = buildCogVideoXTransformer({
        config,
        configPath,
        weights,
        dtype,
        attentionQueryChunk: queryChunk,
      });
      const names = Object.keys(feeds);
      const chain = await StreamedChain.create({
        parts: [{
          name: "part_00_whole",
          graph: bytes,
          inputs: names.map((name) => ({ graph: name, tensor: name })),
          outputs: [{ graph: "sample", tensor: "sample" }],
          weights: [],
          externalDataFolder: weights.folder,
        }],
        modelOutputs: ["sample"],
        provider,
        cudaOptions,
      });
      const kept = new Set(names.filter((name) => !["hidden_states", "timestep"].includes(name)));
      step = async () => {
        const { outputs } = await chain.run(feeds, kept);
        return { sample: outputs.sample };
      };
      release = () => chain.release();
    } else {
      const parts = cogVideoXTransformerParts({
        config,
        configPath,
        weights,
        dtype,
        blocksPerGroup: Number(values["blocks-per-group"]),
        attentionQueryChunk: queryChunk,
      });
      const chain = await StreamedChain.create({
        parts: chainParts(streamedParts(parts, weights, "transformer_blocks"), weights.folder),
        modelOutputs: ["sample"],
        provider,
        cudaOptions,
        prefetch: mode === "prefetch",
        memoryPattern: values["mem-pattern"] !== "off",
        cpuArena: values.arena !== "off",
      });
      extra = {
        sessions: chain.sessionCount,
        stagers: chain.stagerCount,
        hostGiB: chain.hostBytes / 2 ** 30,
      };
      step = async () => {
        const { outputs, stats } = await chain.run(feeds);
        return { sample: outputs.sample, partMs: stats.partMs };
      };
      release = () => chain.release();
    }
    const createMs = performance.now() - created;
    const times: number[] = [];
    let partMs: number[] | undefined;
    for (let i = 0; i <= runs; i++) {
      const started = performance.now();
      const result = await step();
      if (i > 0) times.push(performance.now() - started);
      samples[mode] = result.sample.data as Float32Array;
      partMs = result.partMs;
    }
    release();
    const slowest = partMs
      ? partMs.map((ms, i) => [i, ms]).sort((a, b) => b[1] - a[1]).slice(0, 4)
        .map(([i, ms]) => `${i}: ${ms.toFixed(1)}`).join(", ")
      : "";
    const row = {
      mode,
      layers: config.num_layers,
      createMs,
      stepMs: median(times),
      times,
      blockMedianMs: partMs ? median(partMs.slice(1, -1)) : undefined,
      ...extra,
    };
    rows.push(row);
    console.log(
      `| ${mode} | ${config.num_layers} | ${(createMs / 1000).toFixed(1)} | ${
        row.stepMs.toFixed(1)
      } | ${slowest} |`,
    );
  }
  // Every mode against the first.
  const [first, ...others] = Object.entries(samples);
  const maxAbs: Record<string, number> = {};
  for (const [mode, sample] of others) {
    let max = 0;
    for (let i = 0; i < sample.length; i++) max = Math.max(max, Math.abs(sample[i] - first[1][i]));
    maxAbs[mode] = max;
    console.log(`max abs difference of ${mode} from ${first[0]}: ${max.toExponential(2)}`);
  }
  console.log(`RESULT ${JSON.stringify({ provider, dtype, cudaOptions, rows, maxAbs })}`);
}
