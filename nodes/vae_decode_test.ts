import assert from "node:assert/strict";
import { join } from "node:path";
import { encodeSafetensors } from "../runtime/safetensors.ts";
import { createTensor, type Tensor } from "../runtime/tensor.ts";
import {
  assertClose,
  outputsOf,
  readCase,
  reference,
  runYaml,
  validationErrors,
  withTempDir,
} from "../tests/testing.ts";
import { runDecoder, toFrames } from "./vae_decode.ts";
import { dirname } from "node:path";
import { buildModelFile } from "../builders/built_model.ts";
import { videoDecoderModel } from "../builders/video_decoder_model.ts";
import { buildCogVideoXVaeDecoder } from "../builders/cogvideox_vae_decoder.ts";
import { loadComponentWeights } from "../builders/safetensors_weights.ts";
import { describeModel } from "../runtime/model_files.ts";
import type { ModelManager } from "../runtime/model_manager.ts";
import { OnnxModelManager } from "../runtime/onnx_model_manager.ts";
import { readSafetensors } from "../runtime/safetensors.ts";
import { fixture, ROOT } from "../tests/testing.ts";

/** Decodes the latents `name` of a case file with the VAE of `model`. */
function decodeWorkflow(model: string, file: string, name: string, settings = "{}"): string {
  return `
cogflow: 1
name: vae_decode_test
nodes:
  pipe: { type: load_pipeline, with: { path: ${model} } }
  latents: { type: load_tensor, with: { path: "${file}", name: ${name} } }
  decode:
    type: vae_decode
    in: { model: pipe.vae, latents: latents }
    with: ${settings}
`;
}

async function decodedFrames(workflow: string): Promise<Tensor> {
  const run = await runYaml(workflow, { only: ["decode"] });
  return outputsOf(run, "decode").frames as Tensor;
}

Deno.test("vae_decode divides by the VAE's scaling factor and decodes to diffusers' frames", async () => {
  // The two pipelines share the decoder file but not the scaling factor (1.15258426 and 0.7).
  const ddim = await readCase("ddim-2b");
  const frames2b = await decodedFrames(
    decodeWorkflow("2b", "cases/ddim-2b/tensors.safetensors", "latents_step_3"),
  );
  assert.deepEqual(frames2b.shape, [1, 9, 3, 64, 64]);
  assertClose(frames2b, reference(ddim, "frames"), "2b frames");

  const dpm = await readCase("dpm-5b-dynamic-cfg");
  const frames5b = await decodedFrames(
    decodeWorkflow("5b", "cases/dpm-5b-dynamic-cfg/tensors.safetensors", "latents_step_4"),
  );
  assertClose(frames5b, reference(dpm, "frames"), "5b frames");
});

Deno.test("vae_decode takes a scaling_factor setting over the VAE config's", async () => {
  const ddim = await readCase("ddim-2b");
  const frames = await decodedFrames(
    decodeWorkflow(
      "5b",
      "cases/ddim-2b/tensors.safetensors",
      "latents_step_3",
      "{ scaling_factor: 1.15258426 }",
    ),
  );
  assertClose(frames, reference(ddim, "frames"), "frames");
});

Deno.test("toFrames maps the decoder output to [0, 1] frames first: clamp(x * 0.5 + 0.5, 0, 1)", async () => {
  const sample = createTensor("float32", [1, 3, 2, 1, 1], new Float32Array([-3, -1, 0, 0.5, 1, 3]));
  // [batch, 3, frames, h, w] to [batch, frames, 3, h, w].
  const frames = toFrames(sample);
  assert.deepEqual(frames.shape, [1, 2, 3, 1, 1]);
  assert.deepEqual(Array.from(frames.data as Float32Array), [0, 0.5, 1, 0, 0.75, 1]);

  // The fixture decoder's output reaches about +-8: a part of the frames is clamped.
  const ddim = await readCase("ddim-2b");
  const decoded = toFrames(reference(ddim, "vae_decoder_output") as Tensor<"float32">);
  assertClose(decoded, reference(ddim, "frames"), "frames", 1e-7);
  const clamped = (decoded.data as Float32Array).filter((value) => value === 0 || value === 1);
  assert.ok(clamped.length > 0);
});

Deno.test("vae_decode refuses latents whose channels the decoder does not take, before running", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "latents.safetensors");
    const latents = createTensor("float32", [1, 3, 8, 8, 8]);
    await Deno.writeFile(file, encodeSafetensors([["latents", latents]]));
    const errors = await validationErrors(decodeWorkflow("2b", file, "latents"));
    assert.deepEqual(errors.map((error) => error.replace(/^.*?nodes\./, "nodes.")), [
      'nodes.decode.in.latents: VAE decoder "pipe.vae" expects latent_sample [batch, 4, 3, latent_height, latent_width] (channels before frames), but "latents.tensor" gives tensor<float32, [1, 3, 8, 8, 8]> as [batch, frames, channels, height, width] (input "latents" of "decode")',
    ]);
  });
});

/** A model manager that records the frames and cache inputs of every call it passes on. */
function recording(manager: ModelManager) {
  const calls: { frames: number; cacheFrames: number[] }[] = [];
  const recorder: ModelManager = {
    run(model, feeds, options) {
      const [latents, ...caches] = Object.values(feeds);
      calls.push({ frames: latents.shape[2], cacheFrames: caches.map((cache) => cache.shape[2]) });
      return manager.run(model, feeds, options);
    },
  };
  return { recorder, calls };
}

Deno.test("runDecoder gives a decoder without cache inputs all frames in one call (ONNX fixture)", async () => {
  const ddim = await readCase("ddim-2b");
  const model = await describeModel(fixture("2b", "vae_decoder", "model.onnx"), { name: "vae" });
  const manager = new OnnxModelManager();
  try {
    const { recorder, calls } = recording(manager);
    const z = reference(ddim, "vae_decoder_input") as Tensor<"float32">;
    const sample = await runDecoder(recorder, model, z, new AbortController().signal);
    assert.deepEqual(calls, [{ frames: z.shape[2], cacheFrames: [] }]);
    assertClose(sample, reference(ddim, "vae_decoder_output"), "decoder output");
  } finally {
    await manager.close();
  }
});

Deno.test("runDecoder decodes a built decoder in diffusers' temporal chunks with its caches", async () => {
  await withTempDir(async (dir) => {
    const hf = join(ROOT, "tests", "fixtures", "tiny-cogvideox-hf");
    const vaeDir = join(hf, "2b", "vae");
    const configPath = join(vaeDir, "config.json");
    const built = await buildModelFile({
      name: "vae",
      build: buildCogVideoXVaeDecoder,
      config: JSON.parse(await Deno.readTextFile(configPath)),
      configPath,
      weights: await loadComponentWeights(vaeDir),
      cacheDir: dir,
    });
    const model = await describeModel(built.path, {
      name: "vae",
      externalDataFolder: built.externalDataFolder,
    });
    const { tensors } = await readSafetensors(
      join(hf, "cases", "ddim-2b-49f", "tensors.safetensors"),
    );
    const manager = new OnnxModelManager();
    try {
      const { recorder, calls } = recording(manager);
      const z = tensors.get("vae_decoder_input") as Tensor<"float32">;
      const sample = await runDecoder(recorder, model, z, new AbortController().signal);
      // 13 latent frames: 3, 2, 2, 2, 2, 2; the first chunk's caches are empty, later ones hold 2.
      assert.deepEqual(calls.map((call) => call.frames), [3, 2, 2, 2, 2, 2]);
      assert.ok(calls[0].cacheFrames.length > 0);
      assert.ok(calls[0].cacheFrames.every((frames) => frames === 0));
      assert.ok(calls.slice(1).every((call) => call.cacheFrames.every((frames) => frames === 2)));
      const frames = toFrames(sample);
      assertClose(
        createTensor("float32", frames.shape.slice(1), frames.data),
        tensors.get("frames")!,
        "frames",
      );
    } finally {
      await manager.close();
    }
  });
});

Deno.test("a built VAE decodes all of a video's chunks in one call with its whole-video graph, to the bits of the chunk loop", async () => {
  await withTempDir(async (dir) => {
    const hf = join(ROOT, "tests", "fixtures", "tiny-cogvideox-hf");
    const vaeDir = join(hf, "2b", "vae");
    const configPath = join(vaeDir, "config.json");
    const config = JSON.parse(await Deno.readTextFile(configPath));
    const built = await buildModelFile({
      name: "vae",
      build: buildCogVideoXVaeDecoder,
      config,
      configPath,
      weights: await loadComponentWeights(vaeDir),
      cacheDir: dir,
    });
    const described = await describeModel(built.path, {
      name: "vae",
      externalDataFolder: built.externalDataFolder,
    });
    // As load_pipeline makes it: the handle says how its graph was built.
    const model = {
      ...described,
      build: {
        component: "cogvideox_vae_decoder",
        config,
        configPath,
        weightFiles: [join(vaeDir, "diffusion_pytorch_model.safetensors")],
        dtype: "float32" as const,
      },
    };
    const { tensors } = await readSafetensors(
      join(hf, "cases", "ddim-2b-49f", "tensors.safetensors"),
    );
    const z = tensors.get("vae_decoder_input") as Tensor<"float32">;
    const manager = new OnnxModelManager();
    try {
      const { recorder, calls } = recording(manager);
      const chunked = await runDecoder(recorder, model, z, new AbortController().signal);
      assert.equal(calls.length, 6);

      const decoder = await videoDecoderModel(model, z.shape[2]);
      assert.equal(dirname(dirname(decoder.path)), dir);
      assert.notEqual(decoder.path, model.path);
      assert.deepEqual(decoder.signature.inputs.map((input) => input.name), ["latent_sample"]);
      assert.deepEqual(decoder.signature.inputs[0].shape?.[2], 13);
      assert.equal(decoder.name, "vae");
      assert.deepEqual(decoder.build, model.build);
      // Stored once per content: the same file for the same number of frames.
      assert.equal((await videoDecoderModel(model, 13)).path, decoder.path);
      assert.notEqual((await videoDecoderModel(model, 7)).path, decoder.path);

      calls.length = 0;
      const sample = await runDecoder(recorder, decoder, z, new AbortController().signal);
      assert.deepEqual(calls, [{ frames: 13, cacheFrames: [] }]);
      assert.deepEqual(sample.shape, chunked.shape);
      assert.deepEqual(sample.data, chunked.data);
    } finally {
      await manager.close();
    }
  });
});

Deno.test("videoDecoderModel leaves a decoder cogflow did not build as it is", async () => {
  const model = await describeModel(fixture("2b", "vae_decoder", "model.onnx"), { name: "vae" });
  assert.equal(await videoDecoderModel(model, 13), model);
});
