import assert from "node:assert/strict";
import * as ort from "onnxruntime-node";
import onnxProto from "onnx-proto";
import { inspectOnnxModel, verifyExternalData } from "./onnx_inspect.ts";
import {
  DEFAULT_BLOCK_PATTERN,
  fileSha256,
  modelContentHash,
  NoBlocksError,
  planSplit,
  splitCacheKey,
  splitModel,
  type SplitResult,
  transposeMatrix,
  verifySplitPart,
} from "./onnx_split.ts";
import { presets, writeVaeDecoder } from "../tests/synthetic_models.ts";
import { readSafetensors } from "./safetensors.ts";
import { maxAbsDiff, type Tensor } from "./tensor.ts";

const { onnx } = onnxProto;
const FIXTURES = new URL("../tests/fixtures/tiny-cogvideox/", import.meta.url).pathname;
const transformerPath = (variant: string) => `${FIXTURES}${variant}/transformer/model.onnx`;

type Feeds = Record<string, ort.Tensor>;

function toOrt(tensor: Tensor): ort.Tensor {
  return new ort.Tensor(tensor.dtype as "float32", tensor.data as Float32Array, [...tensor.shape]);
}

/** Concatenates two float32 tensors along the batch axis. */
function batchOf(a: Tensor, b: Tensor): ort.Tensor {
  const data = new Float32Array(a.data.length + b.data.length);
  data.set(a.data as Float32Array);
  data.set(b.data as Float32Array, a.data.length);
  return new ort.Tensor("float32", data, [a.shape[0] + b.shape[0], ...a.shape.slice(1)]);
}

/** The transformer inputs of a reference case's first step, as the pipeline builds them. */
async function firstStepFeeds(variant: "2b" | "5b"): Promise<Feeds> {
  const name = variant === "2b" ? "ddim-2b" : "dpm-5b-dynamic-cfg";
  const { tensors } = await readSafetensors(`${FIXTURES}cases/${name}/tensors.safetensors`);
  const get = (key: string) => tensors.get(key)!;
  const latents = get("latents_init");
  const timestep = (get("timesteps").data as BigInt64Array)[0];
  const feeds: Feeds = {
    hidden_states: batchOf(latents, latents),
    encoder_hidden_states: batchOf(get("negative_prompt_embeds"), get("prompt_embeds")),
    timestep: new ort.Tensor("int64", new BigInt64Array([timestep, timestep]), [2]),
  };
  if (variant === "5b") {
    feeds.image_rotary_emb_cos = toOrt(get("image_rotary_emb_cos"));
    feeds.image_rotary_emb_sin = toOrt(get("image_rotary_emb_sin"));
  }
  return feeds;
}

async function runWhole(path: string, feeds: Feeds): Promise<Feeds> {
  const session = await ort.InferenceSession.create(path);
  try {
    const inputs = Object.fromEntries(session.inputNames.map((name) => [name, feeds[name]]));
    return await session.run(inputs);
  } finally {
    await session.release();
  }
}

/** Runs the parts in order, feeding each from the model inputs and earlier outputs. */
async function runParts(
  split: SplitResult,
  feeds: Feeds,
  options: ort.InferenceSession.SessionOptions = {},
): Promise<Map<string, ort.Tensor>> {
  const values = new Map(Object.entries(feeds));
  for (const part of split.parts) {
    const session = await ort.InferenceSession.create(part.path, options);
    try {
      assert.deepEqual([...session.inputNames].sort(), [...part.inputs].sort());
      const inputs = Object.fromEntries(part.inputs.map((name) => [name, values.get(name)!]));
      const outputs = await session.run(inputs);
      for (const [name, value] of Object.entries(outputs)) values.set(name, value);
    } finally {
      await session.release();
    }
  }
  return values;
}

/** {@link maxAbsDiff} of two ONNX Runtime tensors of the same dims. */
function ortMaxAbsDiff(a: ort.Tensor, b: ort.Tensor): number {
  assert.deepEqual(a.dims, b.dims);
  return maxAbsDiff(a.data as Float32Array, b.data as Float32Array);
}

/** Initializers of each part file, with their stored size and where they are. */
async function partInitializers(split: SplitResult) {
  const found = [];
  for (const part of split.parts) {
    const model = onnx.ModelProto.decode(await Deno.readFile(part.path));
    for (const tensor of model.graph?.initializer ?? []) {
      const entries = new Map((tensor.externalData ?? []).map((e) => [e.key, e.value]));
      const external = tensor.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL;
      found.push({
        part: part.name,
        name: tensor.name ?? "",
        bytes: external ? Number(entries.get("length")) : tensor.rawData?.byteLength ?? 0,
        external,
        location: entries.get("location"),
        offset: Number(entries.get("offset") ?? 0),
      });
    }
  }
  return found;
}

for (const variant of ["2b", "5b"] as const) {
  for (const blocksPerGroup of [1, 2]) {
    Deno.test(`split ${variant} transformer in groups of ${blocksPerGroup} runs like the whole model`, async () => {
      const cacheDir = await Deno.makeTempDir({ prefix: "cogflow-split-" });
      try {
        const modelPath = transformerPath(variant);
        const split = await splitModel(modelPath, { cacheDir, blocksPerGroup });
        assert.equal(split.cached, false);
        assert.deepEqual(split.plan.blocks, [0, 1]);
        assert.deepEqual(
          split.parts.map((part) => part.kind),
          blocksPerGroup === 1
            ? ["prologue", "blocks", "blocks", "epilogue"]
            : ["prologue", "blocks", "epilogue"],
        );

        const feeds = await firstStepFeeds(variant);
        const whole = await runWhole(modelPath, feeds);
        const values = await runParts(split, feeds);
        const diff = ortMaxAbsDiff(values.get("sample")!, whole.sample);
        assert.ok(diff < 1e-5, `max abs diff ${diff}`);
        // And both match the diffusers reference of that step.
        const { tensors } = await readSafetensors(
          `${FIXTURES}cases/${
            variant === "2b" ? "ddim-2b" : "dpm-5b-dynamic-cfg"
          }/tensors.safetensors`,
        );
        const reference = toOrt(tensors.get("transformer_out_step_0")!);
        assert.ok(ortMaxAbsDiff(values.get("sample")!, reference) < 1e-4);

        // Each big initializer is stored once; the small shared ones are reported.
        const stored = await partInitializers(split);
        const sharedNames = new Set(split.plan.shared.map((shared) => shared.name));
        const unique = new Map<string, number>();
        for (const tensor of stored) {
          if (unique.has(tensor.name)) assert.ok(sharedNames.has(tensor.name), tensor.name);
          unique.set(tensor.name, tensor.bytes);
          if (tensor.external) {
            assert.equal(tensor.location, `${tensor.part}.onnx.data`);
            assert.equal(tensor.offset % 64, 0);
          }
        }
        for (const shared of split.plan.shared) assert.ok(shared.bytes < 1024, shared.name);
        // Block weights sit in their block's part, also those renamed by constant folding.
        for (const tensor of stored) {
          const block = /transformer_blocks\.(\d+)\./.exec(tensor.name)?.[1];
          if (block !== undefined && !sharedNames.has(tensor.name)) {
            const part = split.parts.find((p) => p.name === tensor.part)!;
            assert.ok(part.blocks.includes(Number(block)), `${tensor.name} in ${tensor.part}`);
          }
        }
        const folded = stored.filter((tensor) => tensor.name.startsWith("onnx::MatMul_"));
        assert.ok(folded.filter((tensor) => tensor.part.includes("block")).length >= 12);
        const uniqueBytes = [...unique.values()].reduce((sum, bytes) => sum + bytes, 0);
        const original = await inspectOnnxModel(modelPath);
        assert.equal(uniqueBytes, original.weightBytes);
        assert.equal(split.plan.weightBytes, original.weightBytes);
        assert.ok(stored.some((tensor) => tensor.external));
        for (const part of split.parts) await verifyExternalData(part.path);
      } finally {
        await Deno.remove(cacheDir, { recursive: true });
      }
    });
  }
}

Deno.test("split parts of a model with external data split again", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "cogflow-split-" });
  try {
    const feeds = await firstStepFeeds("2b");
    const pair = await splitModel(transformerPath("2b"), { cacheDir, blocksPerGroup: 2 });
    const values = await runParts(pair, feeds);
    // The middle part holds both blocks and reads its weights from external data.
    const middle = pair.parts[1];
    assert.ok(middle.dataPath);
    const again = await splitModel(middle.path, { cacheDir, blocksPerGroup: 1 });
    assert.deepEqual(again.parts.map((part) => part.kind), ["blocks", "blocks"]);
    const inner = await runParts(
      again,
      Object.fromEntries(middle.inputs.map((n) => [n, values.get(n)!])),
    );
    for (const name of middle.outputs) {
      assert.ok(ortMaxAbsDiff(inner.get(name)!, values.get(name)!) < 1e-5);
    }
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

/**
 * A small graph with unnamed nodes: blocks are known only from their weights' names
 * ("layers.<i>.w"), and unmatched nodes sit before, between and after the blocks.
 */
function layeredModel(first = "layers.0.w", second = "layers.1.w"): Uint8Array {
  const weight = (name: string, values: number[], dims: number[]) => ({
    name,
    dataType: onnx.TensorProto.DataType.FLOAT,
    dims,
    rawData: new Uint8Array(new Float32Array(values).buffer),
  });
  const square = (seed: number) => Array.from({ length: 16 }, (_, i) => Math.sin(seed + i));
  const float = (name: string) => ({
    name,
    type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: "batch" }, { dimValue: 4 }] } } },
  });
  return onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    graph: {
      name: "layered",
      node: [
        { name: "pre", opType: "Mul", input: ["x", "scale"], output: ["h0"] },
        { opType: "MatMul", input: ["h0", first], output: ["h1"] },
        { opType: "Add", input: ["h1", "shared.b"], output: ["h2"] },
        { opType: "Shape", input: ["h2"], output: ["s"] },
        { opType: "MatMul", input: ["h2", second], output: ["h3"] },
        { opType: "Add", input: ["h3", "shared.b"], output: ["h4"] },
        { name: "post", opType: "Reshape", input: ["h4", "s"], output: ["y"] },
      ],
      initializer: [
        weight("scale", [2], [1]),
        weight("layers.0.w", square(0), [4, 4]),
        weight("layers.1.w", square(1), [4, 4]),
        weight("shared.b", [0.5, -1, 1.5, 2], [4]),
      ],
      input: [float("x")],
      output: [float("y")],
    },
  }).finish();
}

Deno.test("unnamed nodes are placed by their weights, their producers and their consumers", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cogflow-split-" });
  try {
    const modelPath = `${dir}/layered.onnx`;
    await Deno.writeFile(modelPath, layeredModel());
    const split = await splitModel(modelPath, {
      cacheDir: `${dir}/cache`,
      blockPattern: String.raw`^layers\.(\d+)\.`,
      externalThreshold: 0,
    });
    const { plan } = split;
    assert.deepEqual(plan.blocks, [0, 1]);
    assert.deepEqual(plan.parts.map((p) => [p.name, p.nodeCount, p.inputs, p.outputs]), [
      ["part_00_prologue", 1, ["x"], ["h0"]],
      ["part_01_block_0", 1, ["h0"], ["h1"]],
      // The Add between the blocks goes to its first consumer, the next block.
      ["part_02_block_1", 2, ["h1"], ["h2", "h3"]],
      // The Shape of h2 is only needed by the final Reshape: it moves to the epilogue.
      ["part_03_epilogue", 3, ["h2", "h3"], ["y"]],
    ]);
    assert.deepEqual(plan.placements, {
      byName: 2,
      constants: 0,
      prologue: 1,
      byConsumer: 4,
      unused: 0,
    });
    assert.deepEqual(plan.shared, [{
      name: "shared.b",
      bytes: 16,
      parts: ["part_02_block_1", "part_03_epilogue"],
    }]);

    const x = new Float32Array([1, 2, 3, 4, -1, -2, -3, -4, 0.5, 0.25, 0, 8]);
    const feeds = { x: new ort.Tensor("float32", x, [3, 4]) };
    const whole = await runWhole(modelPath, feeds);
    const values = await runParts(split, feeds);
    assert.ok(ortMaxAbsDiff(values.get("y")!, whole.y) < 1e-6);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("blocks that do not run in index order are refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cogflow-split-" });
  try {
    const modelPath = `${dir}/swapped.onnx`;
    await Deno.writeFile(modelPath, layeredModel("layers.1.w", "layers.0.w"));
    await assert.rejects(
      planSplit(modelPath, { blockPattern: String.raw`^layers\.(\d+)\.` }),
      /node "h2" \(block none\) reads "h1" from node "h1" \(block 1\), so the blocks do not run in order/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the 5b transformer parts follow dynamic frame and latent sizes", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "cogflow-split-" });
  try {
    const modelPath = transformerPath("5b");
    const split = await splitModel(modelPath, { cacheDir, blocksPerGroup: 1 });
    let seed = 7;
    const random = (count: number) =>
      new Float32Array(count).map(() => (seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5);
    const tokens = 2 * 3 * 5;
    const feeds: Feeds = {
      hidden_states: new ort.Tensor("float32", random(2 * 4 * 6 * 10), [1, 2, 4, 6, 10]),
      encoder_hidden_states: new ort.Tensor("float32", random(16 * 32), [1, 16, 32]),
      timestep: new ort.Tensor("int64", new BigInt64Array([500n]), [1]),
      image_rotary_emb_cos: new ort.Tensor("float32", random(tokens * 16), [tokens, 16]),
      image_rotary_emb_sin: new ort.Tensor("float32", random(tokens * 16), [tokens, 16]),
    };
    const whole = await runWhole(modelPath, feeds);
    const values = await runParts(split, feeds);
    assert.deepEqual(values.get("sample")!.dims, [1, 2, 4, 6, 10]);
    const diff = ortMaxAbsDiff(values.get("sample")!, whole.sample);
    assert.ok(diff < 1e-5, `max abs diff ${diff}`);
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

const vaeDecoderPath = `${FIXTURES}2b/vae_decoder/model.onnx`;

/** Deterministic latents in [-1, 1) for a VAE decoder: [batch, channels, 3 frames, h, w]. */
function latents(channels: number, [batch, height, width]: number[]): Feeds {
  let seed = 11 + height * 7 + width;
  const count = batch * channels * 3 * height * width;
  const data = new Float32Array(count).map(() =>
    (seed = (seed * 16807) % 2147483647) / 1073741823.5 - 1
  );
  return { latent_sample: new ort.Tensor("float32", data, [batch, channels, 3, height, width]) };
}

// [batch, latent height, latent width]: the whole 64 x 64 px video, the tiles of ddim-2b-tiled
// (32 px, overlap 1/4: 4 and 2 latents), those of 48 px tiles (6 and 4), an odd size, a batch.
const VAE_LATENT_SIZES = [
  [1, 8, 8],
  [1, 4, 4],
  [1, 4, 2],
  [1, 2, 4],
  [1, 2, 2],
  [1, 6, 6],
  [1, 6, 4],
  [1, 5, 7],
  [2, 4, 4],
];

for (const blocksPerGroup of [1, 2]) {
  Deno.test(`the VAE decoder split into groups of ${blocksPerGroup} up block(s) runs like the whole decoder at every latent size`, async () => {
    const cacheDir = await Deno.makeTempDir({ prefix: "cogflow-split-" });
    try {
      const split = await splitModel(vaeDecoderPath, { cacheDir, blocksPerGroup });
      assert.deepEqual(split.plan.blocks, [0, 1, 2, 3]);
      assert.deepEqual(
        split.parts.map((part) => part.name),
        blocksPerGroup === 1
          ? [
            "part_00_prologue",
            "part_01_block_0",
            "part_02_block_1",
            "part_03_block_2",
            "part_04_block_3",
            "part_05_epilogue",
          ]
          : ["part_00_prologue", "part_01_blocks_0_1", "part_02_blocks_2_3", "part_03_epilogue"],
      );
      // conv_in and the mid block open; norm_out and conv_out close; each up block in its part.
      const stored = await partInitializers(split);
      const partOf = (name: string) => stored.find((tensor) => tensor.name === name)?.part;
      const prologue = split.parts[0].name;
      const epilogue = split.parts.at(-1)!.name;
      assert.equal(partOf("m.decoder.conv_in.conv.weight"), prologue);
      assert.equal(partOf("m.decoder.mid_block.resnets.1.conv2.conv.weight"), prologue);
      assert.equal(partOf("m.decoder.norm_out.conv_y.conv.weight"), epilogue);
      assert.equal(partOf("m.decoder.conv_out.conv.weight"), epilogue);
      for (const tensor of stored) {
        const block = /up_blocks\.(\d+)\./.exec(tensor.name)?.[1];
        if (block === undefined) continue;
        const part = split.parts.find((p) => p.name === tensor.part)!;
        assert.ok(part.blocks.includes(Number(block)), `${tensor.name} in ${tensor.part}`);
      }
      // Only two 32-byte constants are stored in several parts.
      assert.ok(split.plan.shared.every((shared) => shared.bytes <= 32), "shared weights");

      const whole = await ort.InferenceSession.create(vaeDecoderPath);
      try {
        for (const size of VAE_LATENT_SIZES) {
          const feeds = latents(4, size);
          const expected = (await whole.run(feeds)).sample;
          // Unpacked, as sequential offload loads parts; the whole decoder packs its weights.
          const values = await runParts(split, feeds, {
            extra: { session: { disable_prepacking: "1" } },
          });
          const sample = values.get("sample")!;
          assert.deepEqual(sample.dims, [size[0], 3, 9, 8 * size[1], 8 * size[2]]);
          const diff = ortMaxAbsDiff(sample, expected);
          assert.ok(diff < 1e-5, `latents ${size.join(" x ")}: max abs diff ${diff}`);
        }
      } finally {
        await whole.release();
      }
    } finally {
      await Deno.remove(cacheDir, { recursive: true });
    }
  });
}

Deno.test("VAE decoder parts keep the decoder's dynamic batch and spatial sizes", async () => {
  const plan = await planSplit(vaeDecoderPath);
  // The latents feed every up block (CogVideoX's spatial norms read them), not only the first.
  for (const part of plan.parts.slice(1, -1)) {
    assert.ok(part.inputs.some((name) => plan.parts[0].outputs.includes(name)), part.name);
  }
  const cacheDir = await Deno.makeTempDir({ prefix: "cogflow-split-" });
  try {
    const split = await splitModel(vaeDecoderPath, { cacheDir });
    const first = await inspectOnnxModel(split.parts[0].path);
    assert.deepEqual(first.inputs.map((input) => input.shape), [
      ["batch", 4, 3, "latent_height", "latent_width"],
    ]);
    const last = await inspectOnnxModel(split.parts.at(-1)!.path);
    assert.deepEqual(last.outputs.map((output) => output.shape), [
      ["batch", 3, 9, "height", "width"],
    ]);
    // Tensors crossing parts are typed only: their shapes follow the latents.
    for (const part of split.parts.slice(1)) {
      const info = await inspectOnnxModel(part.path);
      assert.ok(info.inputs.every((input) => input.shape === null), part.name);
    }
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("the synthetic VAE decoder splits into its up blocks and runs like the whole", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cogflow-split-" });
  try {
    const written = await writeVaeDecoder(`${dir}/model.onnx`, presets.small.vaeDecoder);
    const split = await splitModel(written.path, { cacheDir: `${dir}/cache` });
    assert.deepEqual(split.plan.blocks, [0, 1, 2, 3]);
    assert.deepEqual(split.plan.shared, []);
    assert.equal(
      split.parts.reduce((sum, part) => sum + part.weightBytes, 0),
      split.plan.weightBytes,
    );
    const whole = await ort.InferenceSession.create(written.path);
    try {
      for (const size of [[1, 8, 8], [1, 4, 4], [1, 4, 2], [1, 6, 4], [2, 3, 5]]) {
        const feeds = latents(presets.small.vaeDecoder.latentChannels, size);
        const expected = (await whole.run(feeds)).sample;
        const values = await runParts(split, feeds, {
          extra: { session: { disable_prepacking: "1" } },
        });
        const diff = ortMaxAbsDiff(values.get("sample")!, expected);
        assert.ok(diff < 1e-5, `latents ${size.join(" x ")}: max abs diff ${diff}`);
      }
    } finally {
      await whole.release();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("splitModel caches by content and settings, also when called concurrently", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "cogflow-split-" });
  try {
    const modelPath = transformerPath("2b");
    const [first, second] = await Promise.all([
      splitModel(modelPath, { cacheDir, blocksPerGroup: 2 }),
      splitModel(modelPath, { cacheDir, blocksPerGroup: 2 }),
    ]);
    assert.equal(first.dir, second.dir);
    const third = await splitModel(modelPath, { cacheDir, blocksPerGroup: 2 });
    assert.equal(third.cached, true);
    assert.deepEqual(third.plan, first.plan);
    const entries = [];
    for await (const entry of Deno.readDir(cacheDir)) entries.push(entry.name);
    assert.deepEqual(entries, [first.key]);

    const hash = await modelContentHash(modelPath);
    assert.equal(hash, "a74e10843ccf05470b9a6dec8d6be06c6505cd41bc460ad7765be1019bb3286d");
    assert.equal(first.key, splitCacheKey(hash, { blocksPerGroup: 2 }));
    assert.notEqual(first.key, splitCacheKey(hash, { blocksPerGroup: 1 }));
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("planSplit finds the blocks and sizes the parts without writing", async () => {
  const plan = await planSplit(transformerPath("5b"), { blocksPerGroup: 2 });
  assert.equal(plan.pattern, DEFAULT_BLOCK_PATTERN);
  assert.deepEqual(plan.blocks, [0, 1]);
  assert.deepEqual(plan.parts.map((part) => part.name), [
    "part_00_prologue",
    "part_01_blocks_0_1",
    "part_02_epilogue",
  ]);
  assert.deepEqual(plan.modelOutputs, ["sample"]);
  // The rotary tables go straight to the blocks; the prologue never sees them.
  assert.ok(!plan.parts[0].inputs.includes("image_rotary_emb_cos"));
  assert.ok(plan.parts[1].inputs.includes("image_rotary_emb_cos"));
  assert.deepEqual(plan.parts[2].outputs, ["sample"]);
  // The exporter deduplicated equal LayerNorm weights: the epilogue reads block 0's.
  assert.deepEqual(plan.shared.map((shared) => shared.name).sort(), [
    "m.transformer_blocks.0.norm1.norm.bias",
    "m.transformer_blocks.0.norm1.norm.weight",
  ]);
  const partBytes = plan.parts.reduce((sum, part) => sum + part.weightBytes, 0);
  const sharedExtra = plan.shared.reduce((sum, s) => sum + s.bytes * (s.parts.length - 1), 0);
  assert.equal(partBytes - sharedExtra, plan.weightBytes);
  assert.ok(plan.parts[1].weightBytes > 10 * plan.parts[0].weightBytes);
});

Deno.test("a custom block pattern splits the T5 text encoder too", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "cogflow-split-" });
  try {
    const modelPath = `${FIXTURES}2b/text_encoder/model.onnx`;
    const split = await splitModel(modelPath, {
      cacheDir,
      blockPattern: String.raw`(?:^|[/.])block\.(\d+)(?=[/.]|$)`,
    });
    assert.deepEqual(split.plan.blocks, [0, 1]);
    const ids = new BigInt64Array(2 * 7).map((_, i) => BigInt((i * 37) % 1000));
    const feeds = { input_ids: new ort.Tensor("int64", ids, [2, 7]) };
    const whole = await runWhole(modelPath, feeds);
    const values = await runParts(split, feeds);
    const diff = ortMaxAbsDiff(values.get("last_hidden_state")!, whole.last_hidden_state);
    assert.ok(diff < 1e-5, `max abs diff ${diff}`);
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("no matching block names gives an error saying what was tried", async () => {
  const modelPath = `${FIXTURES}2b/text_encoder/model.onnx`;
  const error = await planSplit(modelPath).catch((e) => e);
  assert.ok(error instanceof NoBlocksError);
  assert.equal(error.pattern, DEFAULT_BLOCK_PATTERN);
  assert.ok(error.nodeNames.length > 0 && error.initializerNames.length > 0);
  assert.match(
    error.message,
    /^No blocks found in ".*text_encoder\/model.onnx" with block pattern "/,
  );
  assert.ok(error.message.includes(`"${error.nodeNames[0]}"`));
});

Deno.test("invalid settings and files are refused", async () => {
  await assert.rejects(
    planSplit(transformerPath("2b"), { blocksPerGroup: 0 }),
    /Invalid blocksPerGroup "0": expected an integer >= 1/,
  );
  await assert.rejects(
    planSplit(transformerPath("2b"), { blockPattern: "transformer_blocks\\.\\d+" }),
    /must capture the block index in its first group/,
  );
  await assert.rejects(
    planSplit(`${FIXTURES}missing.onnx`),
    /Model file ".*missing.onnx" does not exist/,
  );
  await assert.rejects(
    planSplit(`${FIXTURES}README.md`),
    /Not an ONNX model ".*README.md": it looks like a text file/,
  );
});

Deno.test("part files keep the model's opsets and declared input types", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "cogflow-split-" });
  try {
    const split = await splitModel(transformerPath("2b"), { cacheDir, blocksPerGroup: 2 });
    const prologue = await inspectOnnxModel(split.parts[0].path);
    // FusedMatMul, which reads the transposed MatMul weights, comes from com.microsoft.
    assert.deepEqual(prologue.opsets, [{ domain: "", version: 17 }, {
      domain: "com.microsoft",
      version: 1,
    }]);
    const plain = await splitModel(transformerPath("2b"), {
      cacheDir,
      blocksPerGroup: 2,
      transposeMatMulWeights: false,
    });
    const plainPrologue = await inspectOnnxModel(plain.parts[0].path);
    assert.deepEqual(plainPrologue.opsets, [{ domain: "", version: 17 }]);
    assert.deepEqual(prologue.inputs.find((input) => input.name === "timestep"), {
      name: "timestep",
      kind: "tensor",
      dtype: "int64",
      shape: ["batch"],
    });
    const epilogue = await inspectOnnxModel(split.parts[2].path);
    assert.deepEqual(epilogue.outputs.map((output) => output.shape), [["batch", 3, 4, 8, 8]]);
    // Crossing tensors are typed; their shapes are left to ONNX Runtime.
    const crossing = epilogue.inputs.find((input) => input.name === "/m/Concat_output_0")!;
    assert.equal(crossing.dtype, "int64");
    assert.equal(crossing.shape, null);
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("MatMul weights are stored transposed and give the same results", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "cogflow-split-" });
  try {
    const split = await splitModel(transformerPath("2b"), { cacheDir });
    const plain = await splitModel(transformerPath("2b"), {
      cacheDir,
      transposeMatMulWeights: false,
    });
    assert.notEqual(split.key, plain.key);
    const blocks = split.parts.filter((part) => part.kind === "blocks");
    assert.ok(blocks.every((part) => part.transposedWeights >= 6));
    assert.ok(plain.parts.every((part) => part.transposedWeights === 0));
    const block = onnx.ModelProto.decode(await Deno.readFile(blocks[0].path)).graph!;
    const fused = block.node!.filter((node) => node.opType === "FusedMatMul");
    assert.equal(fused.length, blocks[0].transposedWeights);
    assert.ok(fused.every((node) => node.domain === "com.microsoft"));
    assert.ok(
      !block.node!.some((node) =>
        node.opType === "MatMul" && fused.some((f) => f.input![1] === node.input![1])
      ),
    );

    // Parts run without repacking (as sequential offload runs them): the same bits as MatMul.
    const feeds = await firstStepFeeds("2b");
    const unpacked = { extra: { session: { disable_prepacking: "1" } } };
    const transposed = await runParts(split, feeds, unpacked);
    const original = await runParts(plain, feeds, unpacked);
    assert.deepEqual(transposed.get("sample")!.data, original.get("sample")!.data);
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("transposeMatrix moves 4-byte words, NaN payloads included", () => {
  const words = new Uint32Array([1, 2, 3, 0x7fa00001, 5, 6]);
  const out = new Uint32Array(transposeMatrix(new Uint8Array(words.buffer), 2, 3).buffer);
  assert.deepEqual([...out], [1, 0x7fa00001, 2, 5, 3, 6]);
  // Unaligned input is copied first.
  const shifted = new Uint8Array(words.byteLength + 1);
  shifted.set(new Uint8Array(words.buffer), 1);
  assert.deepEqual(
    transposeMatrix(shifted.subarray(1), 3, 2),
    transposeMatrix(new Uint8Array(words.buffer), 3, 2),
  );
  assert.throws(() => transposeMatrix(new Uint8Array(8), 3, 2), /Cannot transpose 8 bytes/);
});

/** Hex SHA-256 of every file of a split, by file name. */
async function splitDigests(split: SplitResult): Promise<Record<string, string>> {
  const digests: Record<string, string> = {};
  for (const part of split.parts) {
    for (const path of [part.path, ...(part.dataPath ? [part.dataPath] : [])]) {
      digests[path.slice(split.dir.length + 1)] = await fileSha256(path);
    }
  }
  return digests;
}

Deno.test("a damaged split part is found by its digest, and the split is made again, whole", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "cogflow-split-" });
  try {
    const modelPath = transformerPath("2b");
    const clean = await splitModel(modelPath, { cacheDir, blocksPerGroup: 2 });
    const cleanDigests = await splitDigests(clean);
    const block = clean.parts[1];
    assert.ok(block.dataPath, "the block part keeps its weights in a data file");
    const damages: [string, string, (bytes: Uint8Array) => Uint8Array | undefined][] = [
      ["weights with flipped bytes", block.dataPath!, (bytes) => {
        const copy = bytes.slice();
        for (let i = 1000; i < 1016; i++) copy[i] ^= 0xff;
        return copy;
      }],
      ["a graph with flipped bytes", block.path, (bytes) => {
        const copy = bytes.slice();
        copy[copy.length - 10] ^= 0x01;
        return copy;
      }],
      ["weights cut short", block.dataPath!, (bytes) => bytes.slice(0, bytes.length / 2)],
      ["a missing part", clean.parts[0].path, () => undefined],
      ["a manifest that is not JSON", `${clean.dir}/manifest.json`, () => new Uint8Array([1, 2])],
    ];
    for (const [what, file, damage] of damages) {
      const damaged = damage(await Deno.readFile(file));
      if (damaged) await Deno.writeFile(file, damaged);
      else await Deno.remove(file);
      const warnings: string[] = [];
      const again = await splitModel(modelPath, {
        cacheDir,
        blocksPerGroup: 2,
        onWarning: (message) => warnings.push(message),
      });
      assert.equal(again.cached, false, what);
      assert.equal(warnings.length, 1, what);
      assert.ok(
        warnings[0].startsWith(`The split of "${modelPath}" cached in "${clean.dir}" is damaged (`),
        warnings[0],
      );
      if (!file.endsWith("manifest.json")) assert.ok(warnings[0].includes(file), warnings[0]);
      // The parts are as a clean split made them: the same bytes, so the same results.
      assert.deepEqual(await splitDigests(again), cleanDigests, what);
      const third = await splitModel(modelPath, { cacheDir, blocksPerGroup: 2 });
      assert.equal(third.cached, true, what);
    }
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("verifySplitPart hashes a part once, then notices when its file changes", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "cogflow-split-" });
  try {
    const split = await splitModel(transformerPath("2b"), { cacheDir, blocksPerGroup: 2 });
    const part = split.parts[1];
    assert.equal(await verifySplitPart(part), undefined);
    assert.equal(await verifySplitPart(part), undefined);
    const bytes = await Deno.readFile(part.dataPath!);
    bytes[0] ^= 0xff;
    await Deno.writeFile(part.dataPath!, bytes);
    // A later modification time than when it was hashed: hashed again.
    const later = new Date(Date.now() + 5000);
    await Deno.utime(part.dataPath!, later, later);
    assert.equal(
      await verifySplitPart(part),
      `"${part.dataPath}" does not match its SHA-256 digest`,
    );
    await Deno.writeFile(part.dataPath!, bytes.subarray(0, 10));
    assert.equal(
      await verifySplitPart(part),
      `"${part.dataPath}" has 10 bytes, not ${bytes.length}`,
    );
    await Deno.remove(part.dataPath!);
    assert.equal(await verifySplitPart(part), `"${part.dataPath}" is missing`);
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});
