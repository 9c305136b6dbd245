import assert from "node:assert/strict";
import { join } from "node:path";
import type { SchedulerSpec } from "../diffusion/scheduler.ts";
import type { ModelHandle } from "../runtime/model_handle.ts";
import { scanAttention } from "../runtime/onnx_attention.ts";
import {
  fixture,
  HF_FIXTURES,
  logMessages,
  outputsOf,
  pipelineWith,
  runYaml,
  validationErrors,
  withTempDir,
} from "../tests/testing.ts";
import type { TokenizerHandle } from "./ports.ts";
import { componentDType } from "./load_pipeline.ts";

function pipelineWorkflow(path: string): string {
  return `
cogflow: 1
name: load_pipeline_test
nodes:
  pipe: { type: load_pipeline, with: { path: "${path}" } }
`;
}

/** The validation errors of loading `path`, without the position prefix. */
async function loadErrors(path: string): Promise<string[]> {
  const errors = await validationErrors(pipelineWorkflow(path));
  return errors.map((error) => error.replace(/^.*?nodes\.pipe: /, ""));
}

Deno.test("load_pipeline gives each component of a pipeline folder as an output", async () => {
  const run = await runYaml(pipelineWorkflow(fixture("5b")), { only: ["pipe"] });
  const pipe = outputsOf(run, "pipe");
  const models = ["text_encoder", "transformer", "vae"].map((name) => pipe[name] as ModelHandle);
  assert.deepEqual(models.map((model) => [model.name, model.role]), [
    ["text_encoder", "text_encoder"],
    ["transformer", "transformer"],
    ["vae", "vae"],
  ]);
  assert.equal(models[2].path, fixture("5b", "vae_decoder", "model.onnx"));
  // The VAE's config is vae/config.json: its scaling factor differs between the variants.
  assert.equal(models[2].config.scaling_factor, 0.7);
  assert.equal(models[1].config.use_rotary_positional_embeddings, true);
  assert.equal((pipe.scheduler as SchedulerSpec).kind, "ddim");
  assert.equal((pipe.scheduler as SchedulerSpec).config.snr_shift_scale, 1.0);
  assert.equal((pipe.tokenizer as TokenizerHandle).dir, fixture("5b", "tokenizer"));
});

Deno.test("load_pipeline of a missing folder or component is a validation error", async () => {
  await withTempDir(async (dir) => {
    const missing = join(dir, "nowhere");
    const [notThere, ...others] = await loadErrors(missing);
    assert.deepEqual(others, []);
    assert.ok(
      notThere.startsWith(`Node "pipe": Model folder "${missing}" does not exist`),
      notThere,
    );
    // Without its ONNX file or its config and weights, a component is missing.
    const folder = await pipelineWith(dir, "2b", {
      "vae_decoder/model.onnx": null,
      "vae/diffusion_pytorch_model.safetensors": null,
    });
    assert.deepEqual(await loadErrors(folder), [
      `Node "pipe": Missing VAE: neither "${
        join(folder, "vae_decoder", "model.onnx")
      }" nor the weights "${
        join(folder, "vae", "diffusion_pytorch_model.safetensors")
      }" (or its .index.json) in model folder "${folder}"`,
    ]);
  });
});

Deno.test("load_pipeline with a corrupt ONNX file is a validation error naming the file", async () => {
  await withTempDir(async (dir) => {
    const bytes = await Deno.readFile(fixture("2b", "transformer", "model.onnx"));
    const folder = await pipelineWith(dir, "2b", {
      "transformer/model.onnx": bytes.subarray(0, 100_000),
    });
    const errors = await loadErrors(folder);
    assert.equal(errors.length, 1);
    assert.ok(
      errors[0].startsWith(
        `Node "pipe": Not an ONNX model "${
          join(folder, "transformer", "model.onnx")
        }": invalid protobuf at byte `,
      ),
      errors[0],
    );
  });
});

Deno.test("load_pipeline refuses a scheduler config with unknown values or another class", async () => {
  await withTempDir(async (dir) => {
    const config = JSON.parse(
      await Deno.readTextFile(fixture("2b", "scheduler", "scheduler_config.json")),
    );
    const folder = await pipelineWith(join(dir, "cosine"), "2b", {
      "scheduler/scheduler_config.json": JSON.stringify({ ...config, beta_schedule: "cosine" }),
    });
    assert.deepEqual(await loadErrors(folder), [
      `Node "pipe": Invalid scheduler config: "beta_schedule": expected one of "scaled_linear", "linear", got "cosine" (in "${
        join(folder, "scheduler", "scheduler_config.json")
      }")`,
    ]);

    const euler = await pipelineWith(join(dir, "euler"), "2b", {
      "scheduler/scheduler_config.json": JSON.stringify({
        ...config,
        _class_name: "EulerDiscreteScheduler",
      }),
    });
    assert.deepEqual(await loadErrors(euler), [
      `Node "pipe": Unsupported scheduler "EulerDiscreteScheduler" in "${
        join(euler, "scheduler", "scheduler_config.json")
      }": expected CogVideoXDDIMScheduler or CogVideoXDPMScheduler`,
    ]);
  });
});

Deno.test("load_pipeline builds the transformer with 1024-row query chunks for the CPU only", async () => {
  const transformerOf = async (providers: string) => {
    const yaml = `
cogflow: 1
name: load_pipeline_chunk_test
nodes:
  pipe: { type: load_pipeline, with: { path: "${
      join(HF_FIXTURES, "2b")
    }", providers: ${providers} } }
`;
    return outputsOf(await runYaml(yaml, { only: ["pipe"] }), "pipe").transformer as ModelHandle;
  };
  const cpu = await transformerOf("[cpu]");
  const cuda = await transformerOf("[cuda, cpu]");
  assert.equal(cpu.build?.attentionQueryChunk, 1024);
  assert.equal(cuda.build?.attentionQueryChunk, undefined);
  assert.notEqual(cpu.path, cuda.path);
  assert.deepEqual(await scanAttention(cpu.path), { fused: true, queryChunk: 1024 });
  assert.deepEqual(await scanAttention(cuda.path), { fused: true });
});

Deno.test("load_pipeline: bfloat16 on the CPU is a validation error, float16 a warning", async () => {
  const yaml = (dtype: string, providers: string) => `
cogflow: 1
name: load_pipeline_dtype_test
nodes:
  pipe: { type: load_pipeline, with: { path: "${
    join(HF_FIXTURES, "2b")
  }", dtype: ${dtype}, providers: ${providers} } }
`;
  const [error, ...others] = await validationErrors(yaml("bfloat16", "[cpu]"));
  assert.deepEqual(others, []);
  assert.match(
    error,
    /nodes\.pipe\.with\.dtype: dtype "bfloat16" needs a GPU provider: ONNX Runtime's CPU provider has no bfloat16 kernels \(use dtype: float32 on the CPU, or providers: \[cuda\]/,
  );
  // With a GPU provider first it is valid (the graphs are built, not run, here).
  const cuda = await runYaml(yaml("bfloat16", "[cuda, cpu]"), { only: ["pipe"] });
  assert.equal((outputsOf(cuda, "pipe").transformer as ModelHandle).build?.dtype, "bfloat16");
  assert.deepEqual(logMessages(cuda.events, "pipe"), []);

  const half = await runYaml(yaml("float16", "[cpu]"), { only: ["pipe"] });
  assert.deepEqual(logMessages(half.events, "pipe"), [
    'dtype "float16" on the CPU: ONNX Runtime\'s CPU provider runs float16 matrix products about 8x slower than float32 (use dtype: float32 on the CPU)',
  ]);
  const float = await runYaml(yaml("float32", "[cpu]"), { only: ["pipe"] });
  assert.deepEqual(logMessages(float.events, "pipe"), []);
});

Deno.test("componentDType keeps T5 in float32 for float16 and the VAE in float16 for bfloat16", () => {
  assert.equal(componentDType("text_encoder", "float16"), "float32");
  assert.equal(componentDType("text_encoder", "bfloat16"), "bfloat16");
  assert.equal(componentDType("vae", "bfloat16"), "float16");
  assert.equal(componentDType("vae", "float16"), "float16");
  assert.equal(componentDType("transformer", "bfloat16"), "bfloat16");
  assert.equal(componentDType("transformer", "float32"), "float32");
});
