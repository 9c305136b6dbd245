/**
 * One denoising step of the CogVideoX-2b transformer at 480x720x49 with guidance (batch 2), in one
 * session, timed around `run()` alone: at two depths, so that the difference gives the time of a
 * block and the rest is the embeddings, the output and the JS boundary. Random weights
 * (bench/real_size/make_random_pipeline.ts's tensors), written once to `--dir`.
 *
 * ```sh
 * deno run -A bench/gpu/transformer_step_probe.ts --provider cuda --dtype float16 --layers 2,8
 * ```
 *
 * Prints a markdown row per depth and `RESULT {...}` with the per-block and fixed milliseconds.
 * `--latent 13x60x90` sets the latent frames, height and width (a small one checks the script on
 * the CPU). `--profile` also writes ONNX Runtime's profile of the deepest run and sums it by operator (on
 * CUDA those times are the host's, launches included: a guide, not kernel times).
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { median } from "../bench_util.ts";
import { stepFeeds } from "./streamed_step_probe.ts";
import * as ort from "onnxruntime-node";
import { buildCogVideoXTransformer } from "../../builders/cogvideox_transformer.ts";
import type { ComputeDType } from "../../builders/onnx_graph.ts";
import { loadComponentWeights } from "../../builders/safetensors_weights.ts";
import {
  cogVideoXTransformerTensors,
  jsonText,
  REAL_TRANSFORMER,
  writeRandomSafetensors,
} from "../real_size/make_random_pipeline.ts";

/** The 2b transformer config with `layers` blocks. */
function configOf(layers: number): Record<string, unknown> {
  return { ...REAL_TRANSFORMER, num_layers: layers };
}

/** Writes `<dir>/<layers>/` (config.json and random float16 weights) unless it is there. */
async function ensureFolder(dir: string, layers: number): Promise<string> {
  const folder = join(dir, String(layers));
  const file = join(folder, "diffusion_pytorch_model.safetensors");
  if (await Deno.stat(file).then(() => true, () => false)) return folder;
  await Deno.mkdir(folder, { recursive: true });
  const config = configOf(layers);
  writeRandomSafetensors(file, cogVideoXTransformerTensors(config), "F16", 0);
  await Deno.writeTextFile(join(folder, "config.json"), jsonText(config));
  return folder;
}

/** The step's inputs (streamed_step_probe.ts's) as onnxruntime-node tensors. */
function feedsOf(config: Record<string, unknown>, size: number[]): Record<string, ort.Tensor> {
  return Object.fromEntries(
    Object.entries(stepFeeds(config, size)).map((
      [name, tensor],
    ) => [name, new ort.Tensor(tensor.dtype, tensor.data, [...tensor.shape])]),
  );
}

async function measure(
  folder: string,
  provider: string,
  dtype: ComputeDType,
  runs: number,
  profile: string | undefined,
  size: number[],
) {
  const config = JSON.parse(await Deno.readTextFile(join(folder, "config.json")));
  const weights = await loadComponentWeights(folder);
  const bytes = buildCogVideoXTransformer({
    config,
    configPath: join(folder, "config.json"),
    weights,
    dtype,
  });
  const created = performance.now();
  const session = await ort.InferenceSession.create(bytes, {
    executionProviders: [provider],
    logSeverityLevel: 3,
    ...(profile ? { enableProfiling: true, profileFilePrefix: profile } : {}),
    extra: { session: { model_external_initializers_file_folder_path: weights.folder } },
  });
  const createMs = performance.now() - created;
  const feeds = feedsOf(config, size);
  for (const name of Object.keys(feeds)) if (!session.inputNames.includes(name)) delete feeds[name];
  const times: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const started = performance.now();
    await session.run(feeds);
    if (i > 0) times.push(performance.now() - started);
  }
  if (profile) await session.endProfiling();
  await session.release();
  return { layers: Number(config.num_layers), createMs, runMs: median(times), times };
}

/** Milliseconds by operator type in an ONNX Runtime profile, largest first. */
async function profileByOperator(prefix: string): Promise<[string, number][]> {
  const dir = join(prefix, "..");
  const name = [...Deno.readDirSync(dir)].map((e) => e.name)
    .filter((n) => join(dir, n).startsWith(prefix) && n.endsWith(".json")).sort().at(-1);
  if (!name) return [];
  const events: { cat: string; dur: number; args?: { op_name?: string } }[] = JSON.parse(
    await Deno.readTextFile(join(dir, name)),
  );
  const totals = new Map<string, number>();
  for (const event of events) {
    if (event.cat !== "Node" || !event.args?.op_name) continue;
    totals.set(event.args.op_name, (totals.get(event.args.op_name) ?? 0) + event.dur / 1000);
  }
  return [...totals].sort((a, b) => b[1] - a[1]);
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      provider: { type: "string", default: "cuda" },
      dtype: { type: "string", default: "float16" },
      layers: { type: "string", default: "2,8" },
      runs: { type: "string", default: "5" },
      dir: { type: "string", default: "/tmp/cogflow-transformer-probe" },
      profile: { type: "boolean", default: false },
      latent: { type: "string", default: "13x60x90" },
    },
  });
  const depths = values.layers.split(",").map(Number);
  const rows = [];
  console.log("| provider | dtype | layers | session s | run() ms (median) |");
  console.log("| --- | --- | ---: | ---: | ---: |");
  for (const layers of depths) {
    const folder = await ensureFolder(values.dir, layers);
    const deepest = layers === Math.max(...depths);
    const profile = values.profile && deepest ? join(values.dir, `profile-${layers}`) : undefined;
    const size = values.latent.split("x").map(Number);
    const row = await measure(
      folder,
      values.provider,
      values.dtype as ComputeDType,
      Number(values.runs),
      profile,
      size,
    );
    rows.push(row);
    console.log(
      `| ${values.provider} | ${values.dtype} | ${layers} | ${(row.createMs / 1000).toFixed(1)} | ${
        row.runMs.toFixed(1)
      } |`,
    );
    if (profile) {
      const totals = await profileByOperator(profile);
      const runs = Number(values.runs) + 1;
      console.log(
        `profile (ms per run, host side): ${
          totals.slice(0, 14).map(([op, ms]) => `${op} ${(ms / runs).toFixed(1)}`).join(", ")
        }`,
      );
    }
  }
  const [a, b] = [rows[0], rows.at(-1)!];
  const blockMs = rows.length > 1 ? (b.runMs - a.runMs) / (b.layers - a.layers) : NaN;
  console.log(`RESULT ${
    JSON.stringify({
      provider: values.provider,
      dtype: values.dtype,
      blockMs,
      fixedMs: a.runMs - a.layers * blockMs,
      step30Ms: a.runMs + (30 - a.layers) * blockMs,
      rows,
    })
  }`);
}
