/**
 * Writes a synthetic CogVideoX pipeline folder for benchmarks.
 *
 * ```sh
 * deno run -A bench/generate_synthetic.ts /tmp/synthetic-bench --preset bench
 * deno run -A bench/generate_synthetic.ts /tmp/synthetic-small --preset small --inline --layers 4
 * ```
 *
 * Options: `--preset small|bench` (default bench), `--inline` (weights inside model.onnx),
 * `--seed N`, and transformer sizes `--layers N`, `--hidden N`, `--heads N`, `--mlp-ratio X`,
 * `--text-seq N`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  type PresetName,
  presets,
  type SyntheticPipelineOptions,
  writeSyntheticPipeline,
  type WrittenModel,
} from "../tests/synthetic_models.ts";

function describe(name: string, m: WrittenModel): string {
  const mb = (n: number) => (n / 1e6).toFixed(1);
  return `${name}: ${(m.parameters / 1e6).toFixed(1)}M parameters, model.onnx ${
    mb(m.onnxBytes)
  } MB, ` +
    `data ${mb(m.dataBytes)} MB, ${m.seconds.toFixed(2)} s`;
}

/** Parses the command line and writes the folder. */
export async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      preset: { type: "string", default: "bench" },
      inline: { type: "boolean", default: false },
      seed: { type: "string" },
      layers: { type: "string" },
      hidden: { type: "string" },
      heads: { type: "string" },
      "mlp-ratio": { type: "string" },
      "text-seq": { type: "string" },
    },
  });
  if (positionals.length !== 1) {
    throw new Error("Usage: generate_synthetic.ts <dir> [--preset small|bench] [--inline] [...]");
  }
  const preset = presets[values.preset as PresetName];
  if (!preset) throw new Error(`Unknown preset "${values.preset}": expected small or bench`);
  const num = (s: string | undefined, fallback: number) => s === undefined ? fallback : Number(s);
  const t = preset.transformer;
  const options: SyntheticPipelineOptions = {
    ...preset,
    seed: num(values.seed, preset.seed),
    externalData: !values.inline,
    transformer: {
      ...t,
      numLayers: num(values.layers, t.numLayers),
      hiddenSize: num(values.hidden, t.hiddenSize),
      numAttentionHeads: num(values.heads, t.numAttentionHeads),
      mlpRatio: num(values["mlp-ratio"], t.mlpRatio),
      textSeqLength: num(values["text-seq"], t.textSeqLength),
    },
  };
  const summary = await writeSyntheticPipeline(positionals[0], options);
  console.log(describe("text_encoder", summary.textEncoder));
  console.log(describe("transformer", summary.transformer));
  console.log(describe("vae_decoder", summary.vaeDecoder));
  console.log(`wrote ${summary.dir} in ${summary.seconds.toFixed(2)} s`);
}

if (import.meta.main) await main(Deno.args);
