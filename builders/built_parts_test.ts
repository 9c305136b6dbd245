import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import onnxProto from "onnx-proto";
import { buildModelFile } from "./built_model.ts";
import { buildModelParts, builtComponentOf } from "./built_parts.ts";
import { buildCogVideoXTransformer } from "./cogvideox_transformer.ts";
import { buildCogVideoXVaeDecoder } from "./cogvideox_vae_decoder.ts";
import { findWeightFiles, openComponentWeights } from "./safetensors_weights.ts";
import { buildT5Encoder } from "./t5_encoder.ts";
import type { ModelBuild } from "../runtime/model_handle.ts";
import { scanAttention } from "../runtime/onnx_attention.ts";
import { readSafetensors } from "../runtime/safetensors.ts";
import { SequentialRunner } from "../runtime/sequential_runner.ts";
import { SessionWorker } from "../runtime/session_client.ts";
import type { WorkerSessionOptions } from "../runtime/session_worker.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { concatBatch } from "../runtime/tensor_ops.ts";
import { HF_FIXTURES, withTempDir } from "../tests/testing.ts";

const CPU: WorkerSessionOptions = {
  executionProviders: ["cpu"],
  fallbackToCpu: false,
  intraOpThreads: 1,
  interOpThreads: 1,
  graphOptimizationLevel: "all",
};

async function modelBuild(
  variant: "2b" | "5b",
  folder: string,
  component: ModelBuild["component"],
): Promise<ModelBuild> {
  const dir = join(HF_FIXTURES, variant, folder);
  const configPath = join(dir, "config.json");
  return {
    component,
    config: JSON.parse(await Deno.readTextFile(configPath)),
    configPath,
    weightFiles: await findWeightFiles(dir),
    dtype: "float32",
  };
}

/** The 5b transformer's inputs at the first step of its reference case. */
async function transformerFeeds(): Promise<Record<string, Tensor>> {
  const { tensors } = await readSafetensors(
    join(HF_FIXTURES, "cases", "dpm-5b-49f-nonsquare", "tensors.safetensors"),
  );
  const get = (key: string) => tensors.get(key)!;
  const latents = get("latents_init");
  const timestep = (get("timesteps").data as BigInt64Array)[0];
  return {
    hidden_states: concatBatch([latents, latents]),
    encoder_hidden_states: concatBatch([get("negative_prompt_embeds"), get("prompt_embeds")]),
    timestep: { dtype: "int64", shape: [2], data: new BigInt64Array(2).fill(timestep) },
    image_rotary_emb_cos: get("image_rotary_emb_cos"),
    image_rotary_emb_sin: get("image_rotary_emb_sin"),
  };
}

Deno.test("builtComponentOf names the builder of each component", () => {
  assert.equal(builtComponentOf(buildCogVideoXTransformer), "cogvideox_transformer");
  assert.equal(builtComponentOf(buildT5Encoder), "t5_encoder");
  assert.equal(builtComponentOf(buildCogVideoXVaeDecoder), "cogvideox_vae_decoder");
  assert.equal(builtComponentOf(() => new Uint8Array()), undefined);
});

Deno.test("transformer parts are stored once, point into the safetensors files and run as the whole graph does", async () => {
  await withTempDir(async (cacheDir) => {
    const build = await modelBuild("5b", "transformer", "cogvideox_transformer");
    const weights = await openComponentWeights(build.weightFiles);
    const whole = await buildModelFile({
      name: "transformer",
      build: buildCogVideoXTransformer,
      ...build,
      weights,
      cacheDir,
    });
    const options = {
      name: "transformer",
      path: whole.path,
      inputs: [],
      outputs: ["sample"],
      build,
      blocksPerGroup: 1,
      cacheDir,
    };
    const built = await buildModelParts(options);
    assert.equal(built.whole, undefined);
    assert.deepEqual(built.parts.map((part) => [part.name, part.kind, part.blocks]), [
      ["part_00_prologue", "prologue", []],
      ["part_01_block_0", "blocks", [0]],
      ["part_02_block_1", "blocks", [1]],
      ["part_03_epilogue", "epilogue", []],
    ]);
    assert.deepEqual(built.plan.modelInputs, [
      "hidden_states",
      "encoder_hidden_states",
      "timestep",
      "image_rotary_emb_cos",
      "image_rotary_emb_sin",
    ]);
    assert.deepEqual(built.plan.modelOutputs, ["sample"]);
    assert.deepEqual(built.plan.blocks, [0, 1]);
    // Each weight counted once: the parts hold the checkpoint's bytes, no copies.
    const checkpointBytes = [...weights.tensors.values()].reduce((sum, ref) => sum + ref.length, 0);
    assert.equal(built.plan.weightBytes, checkpointBytes);
    for (const part of built.parts) {
      assert.equal(part.externalDataFolder, weights.folder);
      assert.equal(part.dataPath, null);
      assert.equal(dirname(dirname(part.path)), cacheDir);
      // A graph file only: its weights stay in the safetensors files.
      const graph = onnxProto.onnx.ModelProto.decode(await Deno.readFile(part.path)).graph!;
      const stored = graph.initializer!.filter((tensor) => weights.tensors.has(tensor.name!));
      assert.equal(stored.length, part.initializerCount, part.name);
      for (const tensor of stored) {
        assert.equal(tensor.rawData?.length ?? 0, 0, tensor.name!);
        const location = tensor.externalData!.find((entry) => entry.key === "location")!.value;
        assert.equal(location, weights.tensors.get(tensor.name!)!.location);
      }
    }
    // Content-addressed: building again finds the same files and writes nothing.
    const stamps = await Promise.all(built.parts.map((part) => Deno.stat(part.path)));
    const again = await buildModelParts(options);
    assert.deepEqual(again.parts.map((part) => part.path), built.parts.map((part) => part.path));
    const restamped = await Promise.all(again.parts.map((part) => Deno.stat(part.path)));
    assert.deepEqual(restamped.map((s) => s.mtime), stamps.map((s) => s.mtime));
    // Two blocks per part: other graphs, other folders.
    const grouped = await buildModelParts({ ...options, blocksPerGroup: 2 });
    assert.deepEqual(grouped.parts.map((part) => part.name), [
      "part_00_prologue",
      "part_01_blocks_0_1",
      "part_02_epilogue",
    ]);

    // The runner creates each part's session with the weights' folder.
    const feeds = await transformerFeeds();
    const worker = new SessionWorker();
    const runner = new SequentialRunner(
      { parts: built.parts, modelOutputs: built.plan.modelOutputs },
      [worker],
      { session: CPU, name: "transformer", prefetch: false },
    );
    try {
      const fromParts = (await runner.run(feeds)).sample;
      await worker.create("whole", whole.path, {
        ...CPU,
        externalDataFolder: whole.externalDataFolder,
        prepackWeights: false,
      });
      const fromWhole = (await worker.run("whole", feeds)).outputs.sample;
      assert.deepEqual(fromParts.shape, fromWhole.shape);
      assert.deepEqual(fromParts.data, fromWhole.data);
    } finally {
      await runner.close();
      worker.stop();
    }
  });
});

Deno.test("transformer parts use the build's attention query chunk", async () => {
  await withTempDir(async (cacheDir) => {
    const build = await modelBuild("2b", "transformer", "cogvideox_transformer");
    const options = {
      name: "transformer",
      path: "",
      inputs: [],
      outputs: ["sample"],
      blocksPerGroup: 1,
      cacheDir,
    };
    const chunked = await buildModelParts({
      ...options,
      build: { ...build, attentionQueryChunk: 7 },
    });
    const whole = await buildModelParts({ ...options, build });
    const scans = (built: typeof whole) =>
      Promise.all(built.parts.map((part) => scanAttention(part.path)));
    assert.deepEqual(await scans(chunked), [
      { fused: false },
      { fused: true, queryChunk: 7 },
      { fused: true, queryChunk: 7 },
      { fused: false },
    ]);
    assert.deepEqual(await scans(whole), [
      { fused: false },
      { fused: true },
      { fused: true },
      { fused: false },
    ]);
  });
});

Deno.test("text encoder parts: embeddings with the position bias, blocks, final norm", async () => {
  await withTempDir(async (cacheDir) => {
    const build = await modelBuild("2b", "text_encoder", "t5_encoder");
    const built = await buildModelParts({
      name: "text_encoder",
      path: join(cacheDir, "unused.onnx"),
      inputs: [],
      outputs: [],
      build,
      blocksPerGroup: 2,
      cacheDir,
    });
    assert.deepEqual(built.parts.map((part) => [part.name, part.inputs, part.outputs]), [
      ["part_00_prologue", ["input_ids"], ["shared.hidden_states", "encoder.position_bias"]],
      ["part_01_blocks_0_1", ["shared.hidden_states", "encoder.position_bias"], [
        "encoder.block.1.hidden_states",
      ]],
      ["part_02_epilogue", ["encoder.block.1.hidden_states"], ["last_hidden_state"]],
    ]);
    assert.deepEqual(built.plan.modelInputs, ["input_ids"]);
    assert.deepEqual(built.plan.modelOutputs, ["last_hidden_state"]);
  });
});

Deno.test("a built VAE decoder runs whole, as one part: its own graph, with a note saying so", async () => {
  const build = await modelBuild("2b", "vae", "cogvideox_vae_decoder");
  const built = await buildModelParts({
    name: "vae",
    path: "/somewhere/vae-0123/model.onnx",
    inputs: ["sample", "conv_cache_0"],
    outputs: ["frames", "conv_cache_out_0"],
    build,
    blocksPerGroup: 1,
    cacheDir: "/nowhere",
  });
  assert.equal(built.parts.length, 1);
  const [part] = built.parts;
  assert.equal(part.path, "/somewhere/vae-0123/model.onnx");
  assert.deepEqual(part.inputs, ["sample", "conv_cache_0"]);
  assert.deepEqual(part.outputs, ["frames", "conv_cache_out_0"]);
  assert.deepEqual(built.plan.modelOutputs, ["frames", "conv_cache_out_0"]);
  assert.match(built.whole ?? "", /VAE decoder runs whole/);
});
