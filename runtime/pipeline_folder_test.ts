import assert from "node:assert/strict";
import { join } from "node:path";
import { readPipelineFolder } from "./pipeline_folder.ts";
import { UserError } from "./user_error.ts";
import { fixture, HF_FIXTURES, withTempDir } from "../tests/testing.ts";

Deno.test("a Hugging Face folder's components are safetensors, shards followed through the index", async () => {
  const folder = await readPipelineFolder(join(HF_FIXTURES, "5b"));
  assert.equal(folder.textEncoder.format, "safetensors");
  assert.equal(folder.transformer.format, "safetensors");
  assert.equal(folder.vae.format, "safetensors");
  if (folder.transformer.format !== "safetensors") return;
  assert.deepEqual(folder.transformer.weightFiles, [
    join(HF_FIXTURES, "5b", "transformer", "diffusion_pytorch_model-00001-of-00002.safetensors"),
    join(HF_FIXTURES, "5b", "transformer", "diffusion_pytorch_model-00002-of-00002.safetensors"),
  ]);
  assert.equal(folder.transformer.config.use_rotary_positional_embeddings, true);
  assert.equal(folder.vaeConfig.scaling_factor, 0.7);
});

Deno.test("a folder with ONNX files uses them", async () => {
  const folder = await readPipelineFolder(fixture("2b"));
  assert.deepEqual(folder.vae, {
    format: "onnx",
    path: fixture("2b", "vae_decoder", "model.onnx"),
    config: folder.vaeConfig,
  });
});

Deno.test("every missing file of a pipeline folder is reported at once", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(join(dir, "transformer"));
    await Deno.writeTextFile(join(dir, "transformer", "config.json"), "{}");
    await assert.rejects(
      () => readPipelineFolder(dir),
      (error: Error) => {
        assert.ok(error instanceof UserError);
        const lines = error.message.split("\n");
        assert.match(lines[0], /has 7 problems:$/);
        assert.ok(lines.some((line) => line.includes(join(dir, "model_index.json"))));
        assert.ok(lines.some((line) => line.includes("scheduler_config.json")));
        assert.ok(lines.some((line) => line.includes("Missing VAE config")));
        assert.ok(lines.some((line) => /Missing text encoder/.test(line)));
        assert.ok(
          lines.some((line) =>
            /Missing transformer: neither ".*model.onnx" nor the weights/.test(line)
          ),
        );
        assert.ok(lines.some((line) => /Missing VAE: /.test(line)));
        assert.ok(lines.some((line) => line.includes("spiece.model")));
        return true;
      },
    );
  });
});
