import assert from "node:assert/strict";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import onnxProto from "onnx-proto";
import {
  buildCogVideoXTransformer,
  cogVideoXTransformerGraph,
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
