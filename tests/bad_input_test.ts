/**
 * Bad input through the CLI: models that do not fit what the pipeline feeds them, missing,
 * unreadable and corrupt files, unknown scheduler values, and video sizes the models cannot take.
 * Problems found before anything runs exit with 2, problems found while running with 1; either way
 * the message says what is wrong and where, without a stack trace.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { textEncoderModel, vaeDecoderModel } from "./onnx_models.ts";
import {
  assertNoStackTrace,
  type CliResult,
  fixture,
  pipelineWith,
  runCli,
  setArgs,
  withTempDir,
} from "./testing.ts";

/** Runs the library workflow with params; output goes to `dir`. */
function runTiny(dir: string, params: Record<string, unknown> = {}): Promise<CliResult> {
  return runCli([
    "run",
    "workflows/tiny.yaml",
    "--quiet",
    ...setArgs({ output: join(dir, "video.mp4"), ...params }),
  ]);
}

/** Fails unless the run was refused at validation with exactly these messages. */
function assertInvalid(result: CliResult, messages: string[]): void {
  assert.equal(result.code, 2, result.stderr);
  assertNoStackTrace(result.stderr);
  const errors = result.stderr.split("\n").filter((line) => line.startsWith("error: "));
  // Each line is `error: file:line:col: nodes.node.in.port: message`.
  assert.deepEqual(
    errors.map((line) => line.replace(/^error: .*?: (nodes\.\S+: )/, "$1")),
    messages,
  );
  assert.match(result.stderr, new RegExp(`^${messages.length} errors?$`, "m"));
}

Deno.test("the 2b transformer fed 12 x 12 latents is refused before running, naming both nodes and shapes", async () => {
  await withTempDir(async (dir) => {
    assertInvalid(await runTiny(dir, { height: 96, width: 96 }), [
      'nodes.sample.in.latents: Model "pipe.transformer" expects hidden_states [batch, 3, 4, 8, 8], but "noise.latents" gives tensor<float32, [1, 3, 4, 12, 12]> (input "latents" of "sample")',
    ]);
    // 13 frames are 4 latent frames: neither the transformer nor the VAE decoder takes them.
    assertInvalid(await runTiny(dir, { num_frames: 13 }), [
      'nodes.sample.in.latents: Model "pipe.transformer" expects hidden_states [batch, 3, 4, 8, 8], but "noise.latents" gives tensor<float32, [1, 4, 4, 8, 8]> (input "latents" of "sample")',
      'nodes.decode.in.latents: VAE decoder "pipe.vae" expects latent_sample [batch, 4, 3, latent_height, latent_width] (channels before frames), but "sample.latents" gives tensor<float32, [1, 4, 4, 8, 8]> as [batch, frames, channels, height, width] (input "latents" of "decode")',
    ]);
    assert.equal([...Deno.readDirSync(dir)].length, 0, "Nothing is written");
  });
});

Deno.test("a text encoder of the wrong width is refused before running", async () => {
  await withTempDir(async (dir) => {
    const model = await pipelineWith(dir, "2b", {
      "text_encoder/model.onnx": textEncoderModel({ width: 48 }),
    });
    assertInvalid(await runTiny(dir, { model }), [
      'nodes.sample.in.prompt_embeds: Model "pipe.transformer" expects encoder_hidden_states [batch, 16, 32], but "encode.prompt_embeds" gives tensor<float32, [1, 16, 48]> (input "prompt_embeds" of "sample")',
    ]);
  });
});

Deno.test("a VAE decoder taking other latent channels is refused before running", async () => {
  await withTempDir(async (dir) => {
    const model = await pipelineWith(dir, "2b", {
      "vae_decoder/model.onnx": vaeDecoderModel({ channels: 16 }),
    });
    assertInvalid(await runTiny(dir, { model }), [
      'nodes.decode.in.latents: VAE decoder "pipe.vae" expects latent_sample [batch, 16, 3, height, width] (channels before frames), but "sample.latents" gives tensor<float32, [1, 3, 4, 8, 8]> as [batch, frames, channels, height, width] (input "latents" of "decode")',
    ]);
  });
});

Deno.test("a VAE decoder wired as the transformer is refused before running", async () => {
  await withTempDir(async (dir) => {
    const workflow = join(dir, "miswired.yaml");
    await Deno.writeTextFile(
      workflow,
      `
cogflow: 1
name: miswired
nodes:
  pipe: { type: load_pipeline, with: { path: "${fixture("2b")}" } }
  transformer:
    type: load_model
    with: { path: "${fixture("2b", "vae_decoder", "model.onnx")}", role: transformer }
  prompts: { type: tokenize, in: { tokenizer: pipe.tokenizer }, with: { prompt: a cat, max_length: 16 } }
  encode:
    type: text_encode
    in: { model: pipe.text_encoder, input_ids: prompts.input_ids, negative_input_ids: prompts.negative_input_ids }
  noise:
    type: noise
    in: { transformer: pipe.transformer, vae: pipe.vae, prompt_embeds: encode.prompt_embeds }
    with: { seed: 0, num_frames: 9, height: 64, width: 64 }
  sample:
    type: sample
    in:
      model: transformer
      scheduler: pipe.scheduler
      latents: noise.latents
      prompt_embeds: encode.prompt_embeds
      negative_prompt_embeds: encode.negative_prompt_embeds
    with: { steps: 2 }
`,
    );
    assertInvalid(await runCli(["run", workflow, "--quiet"]), [
      'nodes.sample.in.model: Model "transformer.model" has no input "hidden_states" (it takes latent_sample): is it a CogVideoX transformer?',
    ]);
  });
});

Deno.test("missing, unreadable and corrupt model files are refused before running", async () => {
  await withTempDir(async (dir) => {
    const missing = await pipelineWith(join(dir, "missing"), "2b", {
      "transformer/model.onnx": null,
    });
    assertInvalid(await runTiny(dir, { model: missing }), [
      `nodes.pipe: Node "pipe": Missing transformer: neither "${
        join(missing, "transformer", "model.onnx")
      }" nor the weights "${
        join(missing, "transformer", "diffusion_pytorch_model.safetensors")
      }" (or its .index.json) in model folder "${missing}"`,
    ]);

    const unreadable = fixture("2b", "transformer", "model.onnx");
    const denied = await runCli(
      ["run", "workflows/tiny.yaml", "--quiet", ...setArgs({ output: join(dir, "x.mp4") })],
      { denyRead: [unreadable] },
    );
    assert.equal(denied.code, 2, denied.stderr);
    assertNoStackTrace(denied.stderr);
    assert.ok(
      denied.stderr.includes(
        `nodes.pipe: Node "pipe": Cannot read "${unreadable}" (no read permission) in model folder`,
      ),
      denied.stderr,
    );

    const bytes = await Deno.readFile(unreadable);
    const truncated = await pipelineWith(join(dir, "truncated"), "2b", {
      "transformer/model.onnx": bytes.subarray(0, 100_000),
    });
    const result = await runTiny(dir, { model: truncated });
    assert.equal(result.code, 2, result.stderr);
    assertNoStackTrace(result.stderr);
    assert.ok(
      result.stderr.includes(
        `nodes.pipe: Node "pipe": Not an ONNX model "${
          join(truncated, "transformer", "model.onnx")
        }": invalid protobuf at byte `,
      ),
      result.stderr,
    );
  });
});

Deno.test("a model ONNX Runtime cannot load fails the run with exit code 1, without a stack trace", async () => {
  await withTempDir(async (dir) => {
    const model = await pipelineWith(dir, "2b", {
      "text_encoder/model.onnx": textEncoderModel({ width: 32, opType: "NoSuchOp" }),
    });
    const result = await runTiny(dir, { model });
    assert.equal(result.code, 1, result.stderr);
    assertNoStackTrace(result.stderr);
    assert.ok(
      result.stderr.startsWith(
        `error: Node "encode" (text_encode) failed: Cannot load model "text_encoder" from "${
          join(model, "text_encoder", "model.onnx")
        }": `,
      ),
      result.stderr,
    );
  });
});

Deno.test("an existing output fails the run with exit code 1 and says how to write anyway", async () => {
  await withTempDir(async (dir) => {
    const output = join(dir, "video.mp4");
    await Deno.writeTextFile(output, "an earlier video");
    const result = await runTiny(dir, { if_exists: "error", steps: 1 });
    assert.equal(result.code, 1, result.stderr);
    assertNoStackTrace(result.stderr);
    assert.equal(
      result.stderr,
      `error: Node "save" (save_video) failed: Output "${output}" already exists: set if_exists to "overwrite" or "increment" to write anyway\n`,
    );
    assert.equal(await Deno.readTextFile(output), "an earlier video");
  });
});

Deno.test("a scheduler config with unknown values is refused before running", async () => {
  await withTempDir(async (dir) => {
    const config = JSON.parse(
      await Deno.readTextFile(fixture("2b", "scheduler", "scheduler_config.json")),
    );
    const model = await pipelineWith(dir, "2b", {
      "scheduler/scheduler_config.json": JSON.stringify({ ...config, beta_schedule: "cosine" }),
    });
    assertInvalid(await runTiny(dir, { model }), [
      `nodes.pipe: Node "pipe": Invalid scheduler config: "beta_schedule": expected one of "scaled_linear", "linear", got "cosine" (in "${
        join(model, "scheduler", "scheduler_config.json")
      }")`,
    ]);
  });
});

Deno.test("sizes the VAE cannot take are refused before running, naming the setting", async () => {
  await withTempDir(async (dir) => {
    assertInvalid(await runTiny(dir, { height: 60 }), [
      "nodes.noise.with.height: height 60 is not a multiple of 16 (VAE factor 8 x patch size 2)",
    ]);
    assertInvalid(await runTiny(dir, { num_frames: 16 }), [
      "nodes.noise.with.num_frames: num_frames 16 does not fit the VAE's temporal compression 4: use 4 * k + 1 frames, such as 13 or 17",
    ]);
  });
});

/** `validate` of the library workflow with params. */
function validateTiny(params: Record<string, unknown> = {}): Promise<CliResult> {
  return runCli(["validate", "workflows/tiny.yaml", ...setArgs(params)]);
}

/** The error lines of a `validate` that refused, each as `nodes.node.in.port: message`. */
function refusals(result: CliResult): string[] {
  assert.equal(result.code, 2, result.stderr);
  assertNoStackTrace(result.stderr);
  assertNoStackTrace(result.stdout);
  return result.stderr.split("\n").filter((line) => line.startsWith("error: ")).map((line) =>
    line.replace(/^error: workflows\/tiny\.yaml:\d+:\d+: (nodes\.\S+: )/, "$1")
  );
}

const FIVE_B = fixture("5b");

Deno.test("a 65536 x 65536 video is refused at validation with the size of its frames", async () => {
  const frames = "the decoded frames [1, 9, 3, 65536, 65536] float32 alone would need 432 GiB";
  assert.deepEqual(refusals(await validateTiny({ model: FIVE_B, height: 65536, width: 65536 })), [
    `nodes.noise.with.height: height 65536 is more than the 8192 pixels cogflow takes (${frames}): lower it`,
    `nodes.noise.with.width: width 65536 is more than the 8192 pixels cogflow takes (${frames}): lower it`,
  ]);
  assert.deepEqual(refusals(await validateTiny({ num_frames: 4097 })), [
    "nodes.noise.with.num_frames: num_frames 4097 is more than the 1025 frames cogflow takes (the decoded frames [1, 4097, 3, 64, 64] float32 alone would need 192 MiB): lower it",
  ]);
});

Deno.test("a video whose sampling cannot fit the machine is refused at validation with the numbers", async () => {
  // 8192 x 8192 on the tiny 5b: 786,448 tokens, so unfused attention scores of 9 TiB per layer.
  const errors = refusals(await validateTiny({ model: FIVE_B, height: 8192, width: 8192 }));
  assert.match(
    errors[0],
    /^nodes\.sample\.in\.latents: Sampling needs about 9\.00 TiB at once: 9\.00 TiB for the attention scores \(\[2, 2, 786448, 786448\] float32, unfused attention, one layer at a time\) and 1\.03 GiB for the rest, more than this machine's .* of memory: lower height, width or num_frames, or give fewer prompts$/,
  );
});

Deno.test("the tiny workflow, and its batch of two with every hook, still validate", async () => {
  for (
    const params of [{}, {
      prompt: ["a red ball", "a blue cube"],
      offload: "budget",
      vae_slicing: true,
      vae_tiling: true,
      tile_sample_min_height: 32,
      tile_sample_min_width: 32,
    }]
  ) {
    const result = await validateTiny(params);
    assert.equal(result.code, 0, result.stderr);
  }
});

Deno.test("a batch of 1,000 prompts and a 1 MB prompt in a file are refused at validation", async () => {
  const prompts = Array.from({ length: 1000 }, (_, index) => `prompt ${index}`);
  assert.deepEqual(refusals(await validateTiny({ prompt: prompts })), [
    "nodes.prompts.with.prompt: Got 1000 prompts: a batch takes at most 64 (each is a video, sampled and decoded at the same time): run them in several batches",
  ]);
  await withTempDir(async (dir) => {
    const text = await Deno.readTextFile("workflows/tiny.yaml");
    const long = "a red ball rolls across a table ".repeat(32768);
    const path = join(dir, "long_prompt.yaml");
    await Deno.writeTextFile(
      path,
      text.replace('default: "a red ball rolls across a table"', `default: "${long}"`)
        .replace("default: ../tests/fixtures/tiny-cogvideox/2b", `default: ${fixture("2b")}`),
    );
    const result = await runCli(["validate", path]);
    assert.equal(result.code, 2, result.stderr);
    assertNoStackTrace(result.stderr);
    assert.match(
      result.stderr,
      /: nodes\.prompts\.with\.prompt: prompt has 1048576 characters, more than the 20000 cogflow takes: the text encoder reads only its first tokens \(max_length\), so shorten it$/m,
    );
  });
});

Deno.test("steps past the scheduler's training timesteps are refused at validation", async () => {
  assert.deepEqual(refusals(await validateTiny({ steps: 1e6 })), [
    "nodes.sample.with.steps: steps 1000000 is more than the scheduler's num_train_timesteps 1000: use at most 1000 steps",
  ]);
});

Deno.test("a scheduler config with num_train_timesteps 2e9 is refused at validation", async () => {
  await withTempDir(async (dir) => {
    const config = JSON.parse(
      await Deno.readTextFile(fixture("2b", "scheduler", "scheduler_config.json")),
    );
    const model = await pipelineWith(dir, "2b", {
      "scheduler/scheduler_config.json": JSON.stringify({ ...config, num_train_timesteps: 2e9 }),
    });
    assert.deepEqual(refusals(await validateTiny({ model })), [
      `nodes.pipe: Node "pipe": Invalid scheduler config: "num_train_timesteps": expected at most 1000000 (real schedules have 1000), got number 2000000000 (in "${
        join(model, "scheduler", "scheduler_config.json")
      }")`,
    ]);
  });
});

Deno.test("a 5b transformer in a 2b folder is refused at validation, naming its file and config", async () => {
  await withTempDir(async (dir) => {
    const model = await pipelineWith(dir, "2b", {
      "transformer/model.onnx": await Deno.readFile(fixture("5b", "transformer", "model.onnx")),
    });
    assert.deepEqual(refusals(await validateTiny({ model })), [
      `nodes.sample.in.model: Model "pipe.transformer" takes rotary embeddings (image_rotary_emb_cos [video_tokens, 16]), but its config.json says use_rotary_positional_embeddings false: the model file and config.json in "${
        join(model, "transformer")
      }" come from different models`,
    ]);
  });
});
