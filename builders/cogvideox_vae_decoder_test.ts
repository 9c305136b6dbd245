import assert from "node:assert/strict";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import onnxProto from "onnx-proto";
import {
  buildCogVideoXVaeDecoder,
  buildCogVideoXVaeDecoderGraph,
  buildCogVideoXVideoDecoderGraph,
  CONV_CACHE_INPUT_PREFIX,
  CONV_CACHE_OUTPUT_PREFIX,
  emptyConvCacheShape,
  groupNorm,
  readCogVideoXVaeDecoderConfig,
} from "./cogvideox_vae_decoder.ts";
import { GraphBuilder } from "./onnx_graph.ts";
import { loadComponentWeights } from "./safetensors_weights.ts";
import { chunkedDecode, type ConvCaches, decodedFrames } from "../diffusion/chunked_vae_decode.ts";
import { toFrames } from "../nodes/vae_decode.ts";
import { encodeSafetensors, readSafetensors } from "../runtime/safetensors.ts";
import { createTensor, type Tensor } from "../runtime/tensor.ts";
import { UserError } from "../runtime/user_error.ts";
import { assertClose, ROOT, withTempDir } from "../tests/testing.ts";

const HF = join(ROOT, "tests", "fixtures", "tiny-cogvideox-hf");

async function readConfig(variant: string): Promise<[Record<string, unknown>, string]> {
  const path = join(HF, variant, "vae", "config.json");
  return [JSON.parse(await Deno.readTextFile(path)), path];
}

async function readHfCase(name: string) {
  const dir = join(HF, "cases", name);
  const json = JSON.parse(await Deno.readTextFile(join(dir, "case.json")));
  const { tensors } = await readSafetensors(join(dir, "tensors.safetensors"));
  return { json, tensors };
}

/**
 * A session of the decoder graph built from the fixture folder `variant`: of one chunk, or with
 * `latentFrames` of a whole video.
 */
async function decoderSession(
  variant: string,
  options: { latentFrames?: number; dtype?: "float32" | "float16" } = {},
): Promise<ort.InferenceSession> {
  const [config, configPath] = await readConfig(variant);
  const weights = await loadComponentWeights(join(HF, variant, "vae"));
  const bytes = buildCogVideoXVaeDecoder({ config, configPath, weights, ...options });
  return await ort.InferenceSession.create(bytes, {
    extra: { session: { model_external_initializers_file_folder_path: weights.folder } },
  });
}

function toOrt(tensor: Tensor<"float32">): ort.Tensor {
  return new ort.Tensor("float32", tensor.data, [...tensor.shape]);
}

function fromOrt(tensor: ort.Tensor): Tensor<"float32"> {
  return createTensor("float32", tensor.dims, tensor.data as Float32Array);
}

/** Runs the chunk loop on the session; records each chunk's frames in and out. */
async function decodeChunked(session: ort.InferenceSession, z: Tensor<"float32">) {
  const calls: { latentFrames: number; cacheIn: boolean; outFrames: number }[] = [];
  const cacheInputs = session.inputNames.filter((name) => name.startsWith(CONV_CACHE_INPUT_PREFIX));
  const sample = await chunkedDecode(z, async (chunk, caches) => {
    const feeds: Record<string, ort.Tensor> = { latent_sample: toOrt(chunk) };
    for (const name of cacheInputs) {
      const path = name.slice(CONV_CACHE_INPUT_PREFIX.length);
      const cache = caches?.[path];
      if (cache) {
        feeds[name] = toOrt(cache);
      } else {
        const metadata = session.inputMetadata.find((input) => input.name === name);
        assert.ok(metadata?.isTensor);
        const dims = metadata.shape;
        const shape = emptyConvCacheShape(dims, chunk.shape);
        feeds[name] = new ort.Tensor("float32", new Float32Array(0), shape);
      }
    }
    const outputs = await session.run(feeds);
    const next: ConvCaches = {};
    for (const [name, value] of Object.entries(outputs)) {
      if (name.startsWith(CONV_CACHE_OUTPUT_PREFIX)) {
        next[name.slice(CONV_CACHE_OUTPUT_PREFIX.length)] = fromOrt(value);
      }
    }
    const decoded = fromOrt(outputs.sample);
    calls.push({
      latentFrames: chunk.shape[2],
      cacheIn: caches !== undefined,
      outFrames: decoded.shape[2],
    });
    return { sample: decoded, caches: next };
  });
  return { sample, calls };
}

for (
  const [caseName, variant] of [["ddim-2b-49f", "2b"], ["dpm-5b-49f-nonsquare", "5b"]] as const
) {
  Deno.test(`the chunked VAE decoder gives diffusers' 49 frames (${caseName})`, async () => {
    const { json, tensors } = await readHfCase(caseName);
    const session = await decoderSession(variant);
    const z = tensors.get("vae_decoder_input") as Tensor<"float32">;
    const { sample, calls } = await decodeChunked(session, z);
    const expected = json.vae.decode_calls;
    assert.deepEqual(calls.map((call) => call.latentFrames), expected.latent_frames_per_call);
    assert.deepEqual(calls.map((call) => call.cacheIn), expected.conv_cache_in);
    assert.deepEqual(calls.map((call) => call.outFrames), expected.out_frames_per_call);
    assert.deepEqual(sample.shape, json.vae.decoder_output_stats.shape);

    const frames = toFrames(sample);
    const reference = tensors.get("frames")!;
    const error = assertClose(
      createTensor("float32", frames.shape.slice(1), frames.data),
      reference,
      `${caseName} frames`,
    );
    console.log(`${caseName}: frames max abs diff ${error.maxAbs.toExponential(2)}`);
    await session.release();
  });
}

Deno.test("the video decoder graph decodes all 6 chunks of 49 frames in one run, to the bits of the chunk loop", async () => {
  const { tensors } = await readHfCase("ddim-2b-49f");
  const z = tensors.get("vae_decoder_input") as Tensor<"float32">;
  const chunkSession = await decoderSession("2b");
  const { sample: chunked, calls } = await decodeChunked(chunkSession, z);
  assert.equal(calls.length, 6);
  await chunkSession.release();

  const session = await decoderSession("2b", { latentFrames: z.shape[2] });
  assert.deepEqual(session.inputNames, ["latent_sample"]);
  assert.deepEqual(session.outputNames, ["sample"]);
  const outputs = await session.run({ latent_sample: toOrt(z) });
  const sample = fromOrt(outputs.sample);
  await session.release();
  assert.deepEqual(sample.shape, chunked.shape);
  assert.deepEqual(sample.data, chunked.data);
});

/** The nodes of a graph and of its Loop bodies, and its initializers. */
function graphContents(bytes: Uint8Array) {
  const graph = onnxProto.onnx.ModelProto.decode(bytes).graph!;
  const nodes: onnxProto.onnx.INodeProto[] = [];
  const bodies: onnxProto.onnx.IGraphProto[] = [];
  const visit = (g: onnxProto.onnx.IGraphProto) => {
    for (const node of g.node!) {
      nodes.push(node);
      for (const attribute of node.attribute ?? []) {
        if (attribute.g) {
          bodies.push(attribute.g);
          visit(attribute.g);
        }
      }
    }
  };
  visit(graph);
  return { nodes, bodies, initializers: graph.initializer!.length };
}

Deno.test("the video decoder graph decodes chunks after the first in one Loop body: its size stays with more chunks", async () => {
  const [config, configPath] = await readConfig("2b");
  const weights = await loadComponentWeights(join(HF, "2b", "vae"));
  const read = readCogVideoXVaeDecoderConfig(config, configPath);
  // 3, 5, 7, 9 and 13 latent frames: 1, 2, 3, 4 and 6 chunks.
  const graphs = [3, 5, 7, 9, 13].map((latentFrames) =>
    graphContents(buildCogVideoXVideoDecoderGraph(read, weights, { latentFrames }).toBytes())
  );
  const [one, ...more] = graphs;
  assert.equal(one.bodies.length, 0);
  for (const graph of more) {
    assert.equal(graph.bodies.length, 1);
    assert.equal(graph.nodes.length, more[0].nodes.length);
    // The Loop's trip count may be a new constant.
    assert.ok(Math.abs(graph.initializers - more[0].initializers) <= 1);
    // Every initializer is the outer graph's (the body reads them by name).
    assert.equal(graph.bodies[0].initializer?.length ?? 0, 0);
  }
  // The body is one chunk's decoder: as many nodes as the one-chunk graph, give or take the
  // slicing of its latent frames and, per cache, 3 more: the carried cache replaces the first
  // frame's slice and concatenation (2), the cache's slice and the convolution's wait for it
  // (zeroAfter) are new (5); the latent slicing and the Loop's bookkeeping add 28 at the fixture.
  const body = more[0].bodies[0].node!.length;
  const caches = more[0].bodies[0].input!.length - 2;
  const expected = one.nodes.length + 3 * caches;
  assert.ok(Math.abs(body - expected) < 40, `${body} against ${expected}`);
  // One set of weights: the Loop adds a few constants (its trip count, the slice bounds).
  assert.ok(more[0].initializers - one.initializers <= 8);
  const decoderWeights = [...weights.tensors.keys()].filter((key) => key.startsWith("decoder."));
  assert.ok(one.initializers < decoderWeights.length + 40);
  assert.equal(decodedFrames(3, 4), 9);
  assert.equal(decodedFrames(2, 4), 8);
  assert.equal(decodedFrames(1, 4), 1);
});

Deno.test("the float16 video decoder reduces every group norm in float32 and stays near float32 (49 frames)", async () => {
  const [config, configPath] = await readConfig("2b");
  const weights = await loadComponentWeights(join(HF, "2b", "vae"));
  const b = buildCogVideoXVideoDecoderGraph(
    readCogVideoXVaeDecoderConfig(config, configPath),
    weights,
    { latentFrames: 13, dtype: "float16" },
  );
  // Every ReduceMean reads (through the other reductions, the centering and the square) a Cast
  // of the 16-bit activations to float32.
  const { nodes } = graphContents(b.toBytes());
  const producer = new Map(nodes.flatMap((node) => node.output!.map((name) => [name, node])));
  const reductions = nodes.filter((node) => node.opType === "ReduceMean");
  // The first chunk and the Loop body: 2 * 2 + 4 * 2 * 2 + 1 spatial norms each (mid block, up
  // blocks, norm_out), 8 reductions per norm.
  assert.equal(reductions.length, 2 * (2 * 2 + 4 * 2 * 2 + 1) * 8);
  for (const reduction of reductions) {
    let node = reduction;
    while (["ReduceMean", "Mul", "Sub"].includes(node.opType!)) {
      node = producer.get(node.input![0])!;
    }
    assert.equal(node.opType, "Cast", reduction.name!);
    assert.equal(Number(node.attribute![0].i), onnxProto.onnx.TensorProto.DataType.FLOAT);
  }

  const { json, tensors } = await readHfCase("ddim-2b-49f");
  const z = tensors.get("vae_decoder_input") as Tensor<"float32">;
  const decode = async (dtype: "float32" | "float16") => {
    const session = await decoderSession("2b", { latentFrames: 13, dtype });
    const outputs = await session.run({ latent_sample: toOrt(z) });
    await session.release();
    return fromOrt(outputs.sample);
  };
  const half = await decode("float16");
  const full = await decode("float32");
  assert.deepEqual(half.shape, json.vae.decoder_output_stats.shape);
  let worst = 0;
  for (let i = 0; i < full.data.length; i++) {
    worst = Math.max(worst, Math.abs(half.data[i] - full.data[i]));
  }
  console.log(`float16 decoder output: max abs diff ${worst.toExponential(2)} from float32`);
  // Outputs reach about 3.5, where float16 steps are 2e-3 apart.
  assert.ok(worst < 1e-2, `max abs ${worst}`);
});

Deno.test("the decoder graph reads every decoder weight and names caches by module path", async () => {
  const [config, configPath] = await readConfig("2b");
  const weights = await loadComponentWeights(join(HF, "2b", "vae"));
  const b = buildCogVideoXVaeDecoderGraph(
    readCogVideoXVaeDecoderConfig(config, configPath),
    weights,
  );
  const decoderWeights = [...weights.tensors.keys()].filter((key) => key.startsWith("decoder."));
  assert.deepEqual([...b.usedWeights()].sort(), decoderWeights.sort());

  const session = await ort.InferenceSession.create(b.toBytes(), {
    extra: { session: { model_external_initializers_file_folder_path: weights.folder } },
  });
  const caches = session.inputNames.slice(1);
  assert.equal(session.inputNames[0], "latent_sample");
  assert.equal(session.outputNames[0], "sample");
  // conv_in, 2 mid resnets and 4 up blocks of 2 resnets with 2 convolutions each, conv_out.
  assert.equal(caches.length, 1 + 2 * 2 + 4 * 2 * 2 + 1);
  assert.equal(caches[0], "conv_cache.decoder.conv_in");
  assert.ok(caches.includes("conv_cache.decoder.up_blocks.2.resnets.1.conv2"));
  assert.equal(caches.at(-1), "conv_cache.decoder.conv_out");
  assert.deepEqual(
    session.outputNames.slice(1),
    caches.map((name) => name.replace(CONV_CACHE_INPUT_PREFIX, CONV_CACHE_OUTPUT_PREFIX)),
  );
  await session.release();
});

Deno.test("emptyConvCacheShape gives 0 frames at the latent size times the upsampling so far", () => {
  const latent = [2, 4, 3, 6, 10];
  assert.deepEqual(
    emptyConvCacheShape(["batch", 8, "cache_frames", "latent_height", "latent_width"], latent),
    [2, 8, 0, 6, 10],
  );
  assert.deepEqual(
    emptyConvCacheShape(["batch", 8, "cache_frames", "4*latent_height", "4*latent_width"], latent),
    [2, 8, 0, 24, 40],
  );
});

Deno.test("readCogVideoXVaeDecoderConfig names the file and the key of an unsupported value", async () => {
  const [config, path] = await readConfig("5b");
  const read = readCogVideoXVaeDecoderConfig(config, path);
  assert.equal(read.scalingFactor, 0.7);
  assert.deepEqual(read.blockOutChannels, [8, 8, 8, 8]);
  assert.equal(read.temporalCompressionRatio, 4);

  const cases: [string, unknown, string][] = [
    ["_class_name", "AutoencoderKL", '"AutoencoderKLCogVideoX"'],
    ["act_fn", "relu", '"silu"'],
    ["up_block_types", [
      "CogVideoXUpBlock3D",
      "UpDecoderBlock2D",
      "CogVideoXUpBlock3D",
      "CogVideoXUpBlock3D",
    ], '4 times "CogVideoXUpBlock3D"'],
    ["block_out_channels", [8, 0], "a non-empty list of positive integers"],
    ["latent_channels", 4.5, "a positive integer"],
    ["layers_per_block", -1, "an integer >= 0"],
    ["norm_eps", "small", "a positive number"],
    ["norm_num_groups", 3, 'a divisor of every "block_out_channels"'],
    ["temporal_compression_ratio", 3, "a power of two"],
    ["scaling_factor", 0, "a positive number"],
    ["out_channels", 0, "a positive integer"],
    ["use_post_quant_conv", true, "false"],
  ];
  for (const [key, value, expected] of cases) {
    assert.throws(
      () => readCogVideoXVaeDecoderConfig({ ...config, [key]: value }, path),
      (error: Error) => {
        assert.ok(error instanceof UserError);
        assert.ok(
          error.message.startsWith(
            `Unsupported "${key}": ${JSON.stringify(value)} in "${path}": expected ${expected}`,
          ),
          error.message,
        );
        return true;
      },
    );
  }
  // Missing keys take diffusers' defaults.
  const defaults = readCogVideoXVaeDecoderConfig({}, path);
  assert.deepEqual(defaults.blockOutChannels, [128, 256, 256, 512]);
  assert.equal(defaults.latentChannels, 16);
  assert.equal(defaults.layersPerBlock, 3);
  assert.equal(defaults.normNumGroups, 32);
});

Deno.test("groupNorm stays within 1e-5 of float64 over twelve million values per group", async () => {
  // A group of the 2b decoder at 480x720: one-pass float32 sums are 1.5e-3 off here.
  const [channels, frames, height, width] = [4, 9, 480, 720];
  const count = channels * frames * height * width;
  const x = new Float32Array(count);
  let seed = 1;
  for (let i = 0; i < count; i++) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    x[i] = 8 + (seed / 2147483648 - 0.5) * 4;
  }
  let mean = 0;
  for (const value of x) mean += value;
  mean /= count;
  let variance = 0;
  for (const value of x) variance += (value - mean) ** 2;
  variance /= count;
  const session = await withTempDir(async (dir) => {
    await Deno.writeFile(
      join(dir, "model.safetensors"),
      encodeSafetensors({
        "norm.weight": createTensor("float32", [channels], new Float32Array(channels).fill(1)),
        "norm.bias": createTensor("float32", [channels], new Float32Array(channels)),
      }),
    );
    const weights = await loadComponentWeights(dir, ["model"]);
    const b = new GraphBuilder({ name: "group_norm", weights });
    const input = b.input("x", "float32", [1, channels, frames, height, width]);
    b.output(b.scope("norm", () => groupNorm(b, input, 1, 1e-6)), "y", "float32");
    return await ort.InferenceSession.create(b.toBytes(), {
      extra: { session: { model_external_initializers_file_folder_path: weights.folder } },
    });
  });
  const out = await session.run({
    x: new ort.Tensor("float32", x, [1, channels, frames, height, width]),
  });
  const data = out.y.data as Float32Array;
  let worst = 0;
  for (let i = 0; i < count; i++) {
    worst = Math.max(worst, Math.abs(data[i] - (x[i] - mean) / Math.sqrt(variance + 1e-6)));
  }
  assert.ok(worst < 1e-5, `max abs ${worst}`);
});

/** The names of the nodes ONNX Runtime ran, in the order it ran them (one profiled CPU run). */
async function executionOrder(
  bytes: Uint8Array,
  weightsFolder: string,
  run: (session: ort.InferenceSession) => Promise<unknown>,
) {
  return await withTempDir(async (dir) => {
    const session = await ort.InferenceSession.create(bytes, {
      enableProfiling: true,
      profileFilePrefix: join(dir, "profile"),
      extra: { session: { model_external_initializers_file_folder_path: weightsFolder } },
    });
    await run(session);
    await session.endProfiling();
    await session.release();
    const [file] = [...Deno.readDirSync(dir)].map((entry) => join(dir, entry.name));
    const events: { cat: string; name: string }[] = JSON.parse(await Deno.readTextFile(file));
    return events.filter((event) => event.cat === "Node" && event.name.endsWith("_kernel_time"))
      .map((event) => event.name.slice(0, -"_kernel_time".length));
  });
}

Deno.test("each causal convolution runs after its cache slice, and each norm's modulations after the norm (so big values die early)", async () => {
  const [config, configPath] = await readConfig("2b");
  const weights = await loadComponentWeights(join(HF, "2b", "vae"));
  const read = readCogVideoXVaeDecoderConfig(config, configPath);
  const b = buildCogVideoXVaeDecoderGraph(read, weights);
  const shape = [1, read.latentChannels, 3, 6, 9];
  const z = createTensor(
    "float32",
    shape,
    new Float32Array(shape.reduce((a, c) => a * c)).fill(0.25),
  );
  let cachePaths: string[] = [];
  // 3 latent frames: one chunk, its caches empty.
  const order = await executionOrder(b.toBytes(), weights.folder, (session) => {
    cachePaths = session.inputNames.slice(1).map((name) =>
      name.slice(CONV_CACHE_INPUT_PREFIX.length)
    );
    return decodeChunked(session, z);
  });
  const position = (test: (name: string) => boolean, last: boolean) => {
    const found = order.map((name, i) => (test(name) ? i : -1)).filter((i) => i >= 0);
    assert.ok(found.length > 0);
    return last ? found.at(-1)! : found[0];
  };
  for (const path of cachePaths) {
    const lastSlice = position((name) => name.startsWith(`${path}/Slice`), true);
    const conv = position((name) => name.startsWith(`${path}.conv/Conv`), false);
    assert.ok(
      lastSlice < conv,
      `${path}: the cache slice ran at ${lastSlice}, the convolution at ${conv}`,
    );
  }
  const norm = "decoder.up_blocks.3.resnets.0.norm1";
  const lastNorm = position((name) => name.startsWith(`${norm}.norm_layer/`), true);
  const convY = position((name) => name.startsWith(`${norm}.conv_y.conv/Conv`), false);
  const convB = position((name) => name.startsWith(`${norm}.conv_b.conv/Conv`), false);
  assert.ok(
    lastNorm < convY && convY < convB,
    `norm ${lastNorm}, conv_y ${convY}, conv_b ${convB}`,
  );
});
