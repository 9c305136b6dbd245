import assert from "node:assert/strict";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import onnxProto from "onnx-proto";
import {
  buildCogVideoXTransformer,
  cogVideoXTransformerGraph,
  cogVideoXTransformerParts,
  readCogVideoXTransformerConfig,
} from "./cogvideox_transformer.ts";
import { type ComponentWeights, loadComponentWeights } from "./safetensors_weights.ts";
import { cogVideoXPositionalEmbedding } from "../diffusion/sincos_pos_embedding.ts";
import { readSafetensors } from "../runtime/safetensors.ts";
import { createTensor, type Tensor } from "../runtime/tensor.ts";
import { concatBatch } from "../runtime/tensor_ops.ts";
import { UserError } from "../runtime/user_error.ts";
import { assertClose, ROOT } from "../tests/testing.ts";

const HF = join(ROOT, "tests", "fixtures", "tiny-cogvideox-hf");

interface Variant {
  config: Record<string, unknown>;
  configPath: string;
  weights: ComponentWeights;
}

async function variant(name: "2b" | "5b"): Promise<Variant> {
  const dir = join(HF, name, "transformer");
  const configPath = join(dir, "config.json");
  return {
    config: JSON.parse(await Deno.readTextFile(configPath)),
    configPath,
    weights: await loadComponentWeights(dir),
  };
}

function toOrt(tensor: Tensor): ort.Tensor {
  return new ort.Tensor(tensor.dtype as "float32", tensor.data as Float32Array, [...tensor.shape]);
}

/** The transformer's feeds at step `i` of a case, as the sample node makes them. */
async function stepFeeds(model: Variant, caseName: string, i: number) {
  const { tensors } = await readSafetensors(join(HF, "cases", caseName, "tensors.safetensors"));
  const get = (key: string) => tensors.get(key) as Tensor<"float32">;
  const latents = get(i === 0 ? "latents_init" : `latents_step_${i - 1}`);
  const timestep = (tensors.get("timesteps")!.data as BigInt64Array)[i];
  const feeds: Record<string, ort.Tensor> = {
    hidden_states: toOrt(concatBatch([latents, latents])),
    encoder_hidden_states: toOrt(
      concatBatch([get("negative_prompt_embeds"), get("prompt_embeds")]),
    ),
    timestep: new ort.Tensor("int64", new BigInt64Array(2).fill(timestep), [2]),
  };
  if (model.config.use_rotary_positional_embeddings) {
    feeds.image_rotary_emb_cos = toOrt(get("image_rotary_emb_cos"));
    feeds.image_rotary_emb_sin = toOrt(get("image_rotary_emb_sin"));
  } else {
    feeds.pos_embedding = toOrt(
      cogVideoXPositionalEmbedding(
        model.config as unknown as Parameters<typeof cogVideoXPositionalEmbedding>[0],
        latents.shape,
      ),
    );
  }
  return { feeds, expected: get(`transformer_out_step_${i}`) };
}

/** Runs a graph's bytes once with the weights' folder. */
async function runGraph(
  bytes: Uint8Array,
  folder: string,
  feeds: Record<string, ort.Tensor>,
  options: ort.InferenceSession.SessionOptions = {},
) {
  const session = await ort.InferenceSession.create(bytes, {
    ...options,
    extra: { session: { model_external_initializers_file_folder_path: folder } },
  });
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

/** Runs the built graph on each listed step of a case and checks `transformer_out_step_<i>`. */
async function checkSteps(name: "2b" | "5b", caseName: string, steps: readonly number[]) {
  const model = await variant(name);
  const session = await ort.InferenceSession.create(buildCogVideoXTransformer(model), {
    extra: { session: { model_external_initializers_file_folder_path: model.weights.folder } },
  });
  const { tensors } = await readSafetensors(join(HF, "cases", caseName, "tensors.safetensors"));
  const get = (key: string) => {
    const tensor = tensors.get(key);
    assert.ok(tensor, `The case has no tensor "${key}"`);
    return tensor as Tensor<"float32">;
  };
  const text = concatBatch([get("negative_prompt_embeds"), get("prompt_embeds")]);
  const timesteps = tensors.get("timesteps")!.data as BigInt64Array;
  const errors: number[] = [];
  for (const i of steps) {
    const latents = get(i === 0 ? "latents_init" : `latents_step_${i - 1}`);
    const feeds: Record<string, ort.Tensor> = {
      hidden_states: toOrt(concatBatch([latents, latents])),
      encoder_hidden_states: toOrt(text),
      timestep: new ort.Tensor("int64", new BigInt64Array(2).fill(timesteps[i]), [2]),
    };
    if (model.config.use_rotary_positional_embeddings) {
      feeds.image_rotary_emb_cos = toOrt(get("image_rotary_emb_cos"));
      feeds.image_rotary_emb_sin = toOrt(get("image_rotary_emb_sin"));
    } else {
      feeds.pos_embedding = toOrt(
        cogVideoXPositionalEmbedding(
          model.config as unknown as Parameters<typeof cogVideoXPositionalEmbedding>[0],
          latents.shape,
        ),
      );
    }
    const out = (await session.run(feeds)).sample;
    const expected = get(`transformer_out_step_${i}`);
    assert.deepEqual(out.dims, expected.shape);
    const actual = createTensor("float32", expected.shape, out.data as Float32Array);
    errors.push(assertClose(actual, expected, `${caseName} transformer step ${i}`).maxAbs);
  }
  await session.release();
  return errors;
}

Deno.test("the 2b transformer (fp16 weights, sin-cos table) gives diffusers' outputs", async () => {
  const errors = await checkSteps("2b", "ddim-2b-49f", [0, 1, 2, 3]);
  console.log(`2b max abs error per step: ${errors.map((e) => e.toExponential(2)).join(", ")}`);
});

Deno.test("the 5b transformer (bf16 shards, rotary tables) gives diffusers' outputs at 6 x 10 latents", async () => {
  const errors = await checkSteps("5b", "dpm-5b-49f-nonsquare", [0, 1, 2, 3, 4]);
  console.log(`5b max abs error per step: ${errors.map((e) => e.toExponential(2)).join(", ")}`);
});

Deno.test("the transformer graph reads every checkpoint tensor, nodes named by module path", async () => {
  for (const name of ["2b", "5b"] as const) {
    const model = await variant(name);
    const graph = cogVideoXTransformerGraph(model);
    assert.deepEqual([...graph.usedWeights()].sort(), [...model.weights.tensors.keys()].sort());
    const nodes = onnxProto.onnx.ModelProto.decode(graph.toBytes()).graph!.node!;
    const modules = new Set(nodes.map((node) => node.name!.split("/")[0]));
    for (
      const path of [
        "time_proj",
        "time_embedding.linear_1",
        "patch_embed.proj",
        "transformer_blocks.0.norm1.linear",
        "transformer_blocks.1.attn1",
        "transformer_blocks.1.attn1.to_out.0",
        "transformer_blocks.1.ff.net.0.proj",
        "transformer_blocks.1",
        "norm_out.norm",
        "proj_out",
      ]
    ) assert.ok(modules.has(path), `No node under "${path}"`);
    const attention = nodes.filter((node) => node.opType === "MultiHeadAttention");
    assert.deepEqual(attention.map((node) => node.name!.split("/")[0]), [
      "transformer_blocks.0.attn1",
      "transformer_blocks.1.attn1",
    ]);
  }
});

Deno.test("transformer config errors are UserErrors naming the file and the key", async () => {
  const model = await variant("2b");
  const refused = (patch: Record<string, unknown>, pattern: RegExp) => {
    assert.throws(
      () => readCogVideoXTransformerConfig({ ...model.config, ...patch }, model.configPath),
      (error: unknown) => {
        assert.ok(error instanceof UserError, String(error));
        assert.match(error.message, pattern);
        assert.ok(error.message.includes(model.configPath), error.message);
        return true;
      },
    );
  };
  refused(
    { activation_fn: "relu" },
    /^Unsupported "activation_fn": "relu" in ".*": expected "gelu-approximate"$/,
  );
  refused({ timestep_activation_fn: "gelu" }, /"timestep_activation_fn"/);
  refused({ patch_size_t: 2 }, /"patch_size_t": 2/);
  refused({ ofs_embed_dim: 512 }, /"ofs_embed_dim"/);
  refused({ use_learned_positional_embeddings: true }, /"use_learned_positional_embeddings"/);
  refused({ _class_name: "CogView3PlusTransformer2DModel" }, /"_class_name"/);
  refused({ num_layers: 0 }, /"num_layers": 0/);
  refused({ norm_eps: "small" }, /"norm_eps"/);
  refused({ attention_bias: 1 }, /"attention_bias"/);
  refused({ attention_head_dim: 6 }, /"attention_head_dim"/);
  refused({ frobnicate: true }, /Unknown key "frobnicate"/);

  const defaults = readCogVideoXTransformerConfig({}, model.configPath);
  assert.equal(defaults.num_attention_heads, 30);
  assert.equal(defaults.attention_head_dim, 64);
  assert.equal(defaults.patch_bias, true);
  assert.equal(defaults.use_rotary_positional_embeddings, false);
});

Deno.test("weights that do not fit the config are UserErrors naming the key", async () => {
  const model = await variant("2b");
  assert.throws(
    () => cogVideoXTransformerGraph({ ...model, config: { ...model.config, num_layers: 3 } }),
    (error: unknown) =>
      error instanceof UserError &&
      /"transformer_blocks\.2\.norm1\.linear\.weight"/.test(error.message),
  );
  assert.throws(
    () => cogVideoXTransformerGraph({ ...model, config: { ...model.config, in_channels: 8 } }),
    (error: unknown) =>
      error instanceof UserError &&
      /"patch_embed\.proj\.weight".*\[32, 4, 2, 2\]/.test(error.message),
  );
});

for (
  const [name, caseName, step] of [["2b", "ddim-2b-49f", 1], [
    "5b",
    "dpm-5b-49f-nonsquare",
    2,
  ]] as const
) {
  Deno.test(`the ${name} transformer in parts gives the whole graph's output bit for bit`, async () => {
    const model = await variant(name);
    const { feeds, expected } = await stepFeeds(model, caseName, step);
    const whole = (await runGraph(buildCogVideoXTransformer(model), model.weights.folder, feeds))
      .sample;
    for (const blocksPerGroup of [1, 2, 5]) {
      const parts = cogVideoXTransformerParts({ ...model, blocksPerGroup });
      assert.deepEqual(
        parts.map((part) => part.name),
        blocksPerGroup === 1
          ? ["part_00_prologue", "part_01_block_0", "part_02_block_1", "part_03_epilogue"]
          : ["part_00_prologue", "part_01_blocks_0_1", "part_02_epilogue"],
      );
      // Each weight is read by exactly one part: nothing is duplicated.
      const used = parts.flatMap((part) => [...part.graph.usedWeights()]);
      assert.deepEqual(used.toSorted(), [...model.weights.tensors.keys()].sort());

      const available = new Map(Object.entries(feeds));
      for (const part of parts) {
        const partFeeds = Object.fromEntries(part.inputs.map((input) => {
          const tensor = available.get(input);
          assert.ok(tensor, `Part "${part.name}" reads "${input}", which nothing made`);
          return [input, tensor];
        }));
        const outputs = await runGraph(part.graph.toBytes(), model.weights.folder, partFeeds);
        assert.deepEqual(Object.keys(outputs).sort(), [...part.outputs].sort());
        for (const [output, tensor] of Object.entries(outputs)) available.set(output, tensor);
      }
      const sample = available.get("sample")!;
      assert.deepEqual(sample.dims, whole.dims);
      assert.deepEqual(sample.data, whole.data, `${blocksPerGroup} blocks per part`);
    }
    const actual = createTensor("float32", expected.shape, whole.data as Float32Array);
    assertClose(actual, expected, `${caseName} transformer step ${step}`);
  });
}

Deno.test("transformer parts in float16 give the whole graph's output: bit for bit unoptimized, within a float16 step optimized", async () => {
  // bfloat16 has no CPU kernels. On the CPU, ONNX Runtime runs float16 ops through inserted
  // casts and its optimizations drop cast pairs, so where a value is rounded to float16 depends
  // on the graph around it: at a part's edge it always is.
  const model = await variant("5b");
  const { feeds } = await stepFeeds(model, "dpm-5b-49f-nonsquare", 0);
  for (const level of ["disabled", "all"] as const) {
    const options = { graphOptimizationLevel: level };
    const whole = (await runGraph(
      buildCogVideoXTransformer({ ...model, dtype: "float16" }),
      model.weights.folder,
      feeds,
      options,
    )).sample;
    const available = new Map(Object.entries(feeds));
    for (const part of cogVideoXTransformerParts({ ...model, dtype: "float16" })) {
      const partFeeds = Object.fromEntries(
        part.inputs.map((input) => [input, available.get(input)!]),
      );
      const outputs = await runGraph(
        part.graph.toBytes(),
        model.weights.folder,
        partFeeds,
        options,
      );
      for (const [output, tensor] of Object.entries(outputs)) available.set(output, tensor);
    }
    const sample = available.get("sample")!.data as Float32Array;
    const expected = whole.data as Float32Array;
    if (level === "disabled") {
      assert.deepEqual(sample, expected);
      continue;
    }
    let maxAbs = 0;
    let largest = 0;
    sample.forEach((value, i) => {
      maxAbs = Math.max(maxAbs, Math.abs(value - expected[i]));
      largest = Math.max(largest, Math.abs(expected[i]));
    });
    const step = 2 ** (Math.floor(Math.log2(largest)) - 10);
    console.log(
      `float16 parts against the whole graph: max abs ${maxAbs} (a float16 step: ${step})`,
    );
    assert.ok(maxAbs <= step, `${maxAbs} > ${step}`);
  }
});

for (
  const [name, caseName, step] of [["2b", "ddim-2b-49f", 1], [
    "5b",
    "dpm-5b-49f-nonsquare",
    2,
  ]] as const
) {
  Deno.test(`the ${name} transformer with attention in 7-row query chunks gives the whole attention's output and diffusers'`, async () => {
    const model = await variant(name);
    const { feeds, expected } = await stepFeeds(model, caseName, step);
    const whole = (await runGraph(buildCogVideoXTransformer(model), model.weights.folder, feeds))
      .sample.data as Float32Array;
    const chunked = { ...model, attentionQueryChunk: 7 };
    const bytes = buildCogVideoXTransformer(chunked);
    const sample = (await runGraph(bytes, model.weights.folder, feeds)).sample;
    const data = sample.data as Float32Array;
    const maxAbs = data.reduce((most, value, i) => Math.max(most, Math.abs(value - whole[i])), 0);
    console.log(`${name}: 7-row query chunks against whole attention: max abs ${maxAbs}`);
    // Each chunk is the same kernel on the same rows: bit for bit (measured on ONNX Runtime 1.29).
    assert.deepEqual(data, whole);
    const actual = createTensor("float32", expected.shape, data);
    assertClose(actual, expected, `${caseName} chunked transformer step ${step}`);

    // The parts, chunked the same way, give the chunked whole graph's output bit for bit.
    const available = new Map(Object.entries(feeds));
    for (const part of cogVideoXTransformerParts({ ...chunked, blocksPerGroup: 1 })) {
      const partFeeds = Object.fromEntries(
        part.inputs.map((input) => [input, available.get(input)!]),
      );
      const outputs = await runGraph(part.graph.toBytes(), model.weights.folder, partFeeds);
      for (const [output, tensor] of Object.entries(outputs)) available.set(output, tensor);
    }
    assert.deepEqual(available.get("sample")!.data, data);
  });
}

Deno.test("an attention query chunk that is not a positive integer is a UserError", async () => {
  const model = await variant("2b");
  for (const rows of [0, 2.5]) {
    assert.throws(
      () => buildCogVideoXTransformer({ ...model, attentionQueryChunk: rows }),
      (error) => error instanceof UserError && error.message.includes(`"${rows}"`),
    );
  }
});
