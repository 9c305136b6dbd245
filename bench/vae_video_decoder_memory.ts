/**
 * Peak memory of the whole-video VAE decode (builders/cogvideox_vae_decoder.ts, `latentFrames`)
 * against the number of latent frames, on a decoder of the real CogVideoX configuration with
 * seeded random weights (float32, written once to `--weights`), decoding a small latent.
 *
 * ```sh
 * deno run -A bench/vae_video_decoder_memory.ts --weights /tmp/vae-real --frames 13 --height 12 --width 18
 * deno run -A bench/vae_video_decoder_memory.ts --weights /tmp/vae-real --frames 13 --mode chunked
 * deno run -A bench/vae_video_decoder_memory.ts ... --providers cuda --dtype float16
 * ```
 *
 * One decode per process (so that the peak is this decode's): it prints one JSON line with the
 * resident set before the run (weights and session), the peak (`VmHWM`) after it, the output's
 * bytes, the session creation and run times. `--mode chunked` runs the one-chunk graph through
 * the chunk loop (nodes/vae_decode.ts's path for decoders without a build) instead, to compare.
 * `--arena off` and `--mem-pattern off` turn off ONNX Runtime's CPU arena and memory patterns.
 *
 * Measured (CPU, 2 shared cores, float32, latent 4 x 6 -> 32 x 48 pixels; weights ~470 MiB of the
 * peak), peak MiB by latent frames 1 / 3 / 5 / 7 / 13 (chunks 1 / 1 / 2 / 3 / 6):
 * video 590 / 653 / 800 / 947 / 949; with `--mem-pattern off` 591 / 651 / - / 820 / 835; chunk
 * loop - / 770 / - / 952 / 985. At 8 x 12 latents: video 640 / 832 / - / 1946 / 1947, chunk
 * loop 13 frames 2188. The video decode's peak stops growing after the third chunk: the Loop
 * body's first two iterations allocate its memory pattern beside the first chunk's freed buffers
 * (ONNX Runtime keeps them in its arena); without memory patterns it grows less.
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { NativeOrt } from "../runtime/ort_native.ts";
import * as ort from "onnxruntime-node";
import {
  buildCogVideoXVaeDecoder,
  CONV_CACHE_INPUT_PREFIX,
  CONV_CACHE_OUTPUT_PREFIX,
  emptyConvCacheShape,
} from "../builders/cogvideox_vae_decoder.ts";
import type { ComputeDType } from "../builders/onnx_graph.ts";
import { loadComponentWeights } from "../builders/safetensors_weights.ts";
import { chunkedDecode, type ConvCaches } from "../diffusion/chunked_vae_decode.ts";
import { encodeSafetensors } from "../runtime/safetensors.ts";
import { createTensor, type Tensor } from "../runtime/tensor.ts";

/** The VAE of THUDM/CogVideoX-2b's `vae/config.json` (bench/real_width/make_components.py). */
const REAL_VAE_CONFIG = {
  _class_name: "AutoencoderKLCogVideoX",
  act_fn: "silu",
  block_out_channels: [128, 256, 256, 512],
  latent_channels: 16,
  layers_per_block: 3,
  norm_eps: 1e-6,
  norm_num_groups: 32,
  out_channels: 3,
  scaling_factor: 1.15258426,
  temporal_compression_ratio: 4,
  up_block_types: new Array(4).fill("CogVideoXUpBlock3D"),
  use_post_quant_conv: false,
};

/** The decoder's parameter shapes under diffusers' keys (`CogVideoXDecoder3D`). */
function decoderShapes(config: typeof REAL_VAE_CONFIG): [string, number[]][] {
  const shapes: [string, number[]][] = [];
  const zq = config.latent_channels;
  const causalConv = (key: string, inC: number, outC: number, k: number) => {
    shapes.push([`${key}.conv.weight`, [outC, inC, k, k, k]], [`${key}.conv.bias`, [outC]]);
  };
  const spatialNorm = (key: string, channels: number) => {
    shapes.push([`${key}.norm_layer.weight`, [channels]], [`${key}.norm_layer.bias`, [channels]]);
    causalConv(`${key}.conv_y`, zq, channels, 1);
    causalConv(`${key}.conv_b`, zq, channels, 1);
  };
  const resnet = (key: string, inC: number, outC: number) => {
    spatialNorm(`${key}.norm1`, inC);
    causalConv(`${key}.conv1`, inC, outC, 3);
    spatialNorm(`${key}.norm2`, outC);
    causalConv(`${key}.conv2`, outC, outC, 3);
    if (inC !== outC) {
      shapes.push([`${key}.conv_shortcut.weight`, [outC, inC, 1, 1, 1]]);
      shapes.push([`${key}.conv_shortcut.bias`, [outC]]);
    }
  };
  const reversed = [...config.block_out_channels].reverse();
  causalConv("decoder.conv_in", zq, reversed[0], 3);
  for (let i = 0; i < 2; i++) resnet(`decoder.mid_block.resnets.${i}`, reversed[0], reversed[0]);
  let out = reversed[0];
  for (let i = 0; i < reversed.length; i++) {
    const prev = out;
    out = reversed[i];
    for (let j = 0; j <= config.layers_per_block; j++) {
      resnet(`decoder.up_blocks.${i}.resnets.${j}`, j === 0 ? prev : out, out);
    }
    if (i !== reversed.length - 1) {
      shapes.push([`decoder.up_blocks.${i}.upsamplers.0.conv.weight`, [out, out, 3, 3]]);
      shapes.push([`decoder.up_blocks.${i}.upsamplers.0.conv.bias`, [out]]);
    }
  }
  spatialNorm("decoder.norm_out", reversed.at(-1)!);
  causalConv("decoder.conv_out", reversed.at(-1)!, config.out_channels, 3);
  return shapes;
}

/** Writes seeded random weights (fan-in scaled, norms 1 and 0) unless the folder has them. */
async function ensureWeights(dir: string) {
  const file = join(dir, "diffusion_pytorch_model.safetensors");
  if (await Deno.stat(file).then(() => true, () => false)) return;
  await Deno.mkdir(dir, { recursive: true });
  let seed = 12345;
  const random = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 4294967296 - 0.5;
  };
  const tensors: [string, Tensor][] = decoderShapes(REAL_VAE_CONFIG).map(([key, shape]) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(size);
    if (key.endsWith("norm_layer.weight")) data.fill(1);
    else if (!key.endsWith("norm_layer.bias")) {
      const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
      const scale = key.endsWith("bias") ? 0.02 : 2 * Math.sqrt(3 / fanIn);
      for (let i = 0; i < size; i++) data[i] = scale * random();
    }
    return [key, createTensor("float32", shape, data)];
  });
  await Deno.writeFile(file, encodeSafetensors(tensors, { format: "pt" }));
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(REAL_VAE_CONFIG, null, 2));
}

function residentBytes(field: "VmRSS" | "VmHWM"): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

/** Resets the peak (`VmHWM`) to the current resident set (Linux: write 5 to clear_refs). */
function resetPeak() {
  try {
    Deno.writeTextFileSync("/proc/self/clear_refs", "5");
  } catch {
    // Then the peak includes session creation.
  }
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    weights: { type: "string", default: "/tmp/cogflow-vae-real" },
    frames: { type: "string", default: "13" },
    height: { type: "string", default: "12" },
    width: { type: "string", default: "18" },
    mode: { type: "string", default: "video" },
    dtype: { type: "string", default: "float32" },
    providers: { type: "string", default: "cpu" },
    arena: { type: "string", default: "on" },
    "mem-pattern": { type: "string", default: "on" },
    // With `--mode video` on CUDA: the session is made through ONNX Runtime's C API
    // (runtime/ort_native.ts) with these CUDA provider options (`k=v,k=v`), which
    // onnxruntime-node cannot pass.
    "native-cuda-options": { type: "string" },
  },
});
const dir = values.weights!;
await ensureWeights(dir);
const weights = await loadComponentWeights(dir);
const frames = Number(values.frames);
const shape = [1, 16, frames, Number(values.height), Number(values.width)];
const latent = new Float32Array(shape.reduce((a, b) => a * b, 1));
for (let i = 0; i < latent.length; i++) latent[i] = Math.sin(i * 0.7) * 0.8;
const z = createTensor("float32", shape, latent);
const video = values.mode === "video";
const bytes = buildCogVideoXVaeDecoder({
  config: REAL_VAE_CONFIG,
  configPath: join(dir, "config.json"),
  weights,
  dtype: values.dtype as ComputeDType,
  latentFrames: video ? frames : undefined,
});
if (values["native-cuda-options"] !== undefined) {
  await nativeVideoDecode(values["native-cuda-options"]);
  Deno.exit(0);
}
const created = performance.now();
const session = await ort.InferenceSession.create(bytes, {
  executionProviders: values.providers!.split(","),
  enableCpuMemArena: values.arena !== "off",
  enableMemPattern: values["mem-pattern"] !== "off",
  extra: { session: { model_external_initializers_file_folder_path: weights.folder } },
});
const createMs = performance.now() - created;
const before = residentBytes("VmRSS");
resetPeak();
const started = performance.now();
let sample: Tensor<"float32">;
const toOrt = (t: Tensor<"float32">) => new ort.Tensor("float32", t.data, [...t.shape]);
if (video) {
  const outputs = await session.run({ latent_sample: toOrt(z) });
  sample = createTensor("float32", outputs.sample.dims, outputs.sample.data as Float32Array);
} else {
  const cacheInputs = session.inputNames.filter((name) => name.startsWith(CONV_CACHE_INPUT_PREFIX));
  sample = await chunkedDecode(z, async (chunk, caches) => {
    const feeds: Record<string, ort.Tensor> = { latent_sample: toOrt(chunk) };
    for (const name of cacheInputs) {
      const path = name.slice(CONV_CACHE_INPUT_PREFIX.length);
      const metadata = session.inputMetadata.find((input) => input.name === name);
      const dims = metadata?.isTensor ? metadata.shape : [];
      feeds[name] = caches?.[path]
        ? toOrt(caches[path])
        : new ort.Tensor("float32", new Float32Array(0), emptyConvCacheShape(dims, chunk.shape));
    }
    const outputs = await session.run(feeds);
    const next: ConvCaches = {};
    for (const [name, value] of Object.entries(outputs)) {
      if (name.startsWith(CONV_CACHE_OUTPUT_PREFIX)) {
        const path = name.slice(CONV_CACHE_OUTPUT_PREFIX.length);
        next[path] = createTensor("float32", value.dims, value.data as Float32Array);
      }
    }
    const decoded = outputs.sample;
    return {
      sample: createTensor("float32", decoded.dims, decoded.data as Float32Array),
      caches: next,
    };
  });
}
const runMs = performance.now() - started;
const peak = residentBytes("VmHWM");
let finite = 0;
for (const value of sample.data) if (Number.isFinite(value)) finite++;
console.log(JSON.stringify({
  mode: values.mode,
  dtype: values.dtype,
  providers: values.providers,
  arena: values.arena,
  memPattern: values["mem-pattern"],
  latent: shape,
  sample: sample.shape,
  createMs: Math.round(createMs),
  runMs: Math.round(runMs),
  rssBeforeRunMiB: Math.round(before / 2 ** 20),
  peakMiB: Math.round(peak / 2 ** 20),
  peakOverBeforeMiB: Math.round((peak - before) / 2 ** 20),
  outputMiB: Math.round(sample.data.byteLength / 2 ** 20 * 10) / 10,
  finiteFraction: finite / sample.data.length,
}));
await session.release();

/** The whole-video decode in a native CUDA session with `options` (`k=v,k=v`); prints a JSON line. */
async function nativeVideoDecode(options: string) {
  const cudaOptions = Object.fromEntries(
    options.split(",").filter(Boolean).map((pair) => pair.split("=") as [string, string]),
  );
  const native = NativeOrt.open();
  const created = performance.now();
  const session = native.createSession(bytes, {
    provider: "cuda",
    cudaOptions,
    config: {
      model_external_initializers_file_folder_path: weights.folder,
      use_device_allocator_for_initializers: "1",
    },
  });
  const createMs = performance.now() - created;
  const times: number[] = [];
  let sample: Tensor | undefined;
  for (let run = 0; run < 2; run++) {
    const input = native.cpuValue(z);
    const started = performance.now();
    const outputs = await session.run({ latent_sample: input }, "cpu");
    times.push(performance.now() - started);
    sample = outputs.sample.toTensor();
    input.release();
    outputs.sample.release();
  }
  session.release();
  let finite = 0;
  for (const value of sample!.data as Float32Array) if (Number.isFinite(value)) finite++;
  console.log(JSON.stringify({
    mode: "video-native",
    dtype: values.dtype,
    cudaOptions,
    latent: shape,
    sample: sample!.shape,
    createMs: Math.round(createMs),
    runMs: times.map(Math.round),
    finiteFraction: finite / sample!.data.length,
  }));
}
