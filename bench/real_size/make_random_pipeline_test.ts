import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { buildCogVideoXTransformer } from "../../builders/cogvideox_transformer.ts";
import { buildCogVideoXVaeDecoder } from "../../builders/cogvideox_vae_decoder.ts";
import { loadComponentWeights } from "../../builders/safetensors_weights.ts";
import { buildT5Encoder } from "../../builders/t5_encoder.ts";
import { readPipelineFolder } from "../../runtime/pipeline_folder.ts";
import {
  cogVideoXTransformerTensors,
  cogVideoXVaeTensors,
  elementCount,
  makeRandomPipeline,
  REAL_T5,
  REAL_TRANSFORMER,
  REAL_VAE,
  t5EncoderFiles,
  type TensorSpec,
  TINY_FIXTURE,
} from "./make_random_pipeline.ts";

async function filesUnder(root: string, dir = root): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) out.push(...await filesUnder(root, path));
    else out.push(relative(root, path));
  }
  return out.sort();
}

/** A safetensors header without data offsets: name -> dtype and shape, and the metadata. */
async function headerOf(path: string): Promise<Record<string, unknown>> {
  const file = await Deno.open(path);
  try {
    const prefix = new Uint8Array(8);
    await file.read(prefix);
    const length = Number(new DataView(prefix.buffer).getBigUint64(0, true));
    const bytes = new Uint8Array(length);
    let done = 0;
    while (done < length) done += (await file.read(bytes.subarray(done))) ?? length;
    const header = JSON.parse(new TextDecoder().decode(bytes));
    return Object.fromEntries(
      Object.entries(header).map(([name, value]) => {
        if (name === "__metadata__") return [name, value];
        const { dtype, shape } = value as { dtype: string; shape: number[] };
        return [name, { dtype, shape }];
      }),
    );
  } finally {
    file.close();
  }
}

const parameters = (tensors: TensorSpec[]) =>
  tensors.reduce((sum, tensor) => sum + elementCount(tensor.shape), 0);

Deno.test("make_random_pipeline --config-from the tiny fixture: the fixture's files, tensor names, shapes and dtypes", async () => {
  const out = await Deno.makeTempDir({ prefix: "random-pipeline-" });
  try {
    await makeRandomPipeline({ out, configFrom: TINY_FIXTURE, seed: 1 });
    const files = await filesUnder(out);
    assert.deepEqual(files, await filesUnder(TINY_FIXTURE));
    for (const file of files.filter((name) => name.endsWith(".safetensors"))) {
      assert.deepEqual(
        await headerOf(join(out, file)),
        await headerOf(join(TINY_FIXTURE, file)),
        file,
      );
    }
    const index = "text_encoder/model.safetensors.index.json";
    assert.deepEqual(
      JSON.parse(await Deno.readTextFile(join(out, index))),
      JSON.parse(await Deno.readTextFile(join(TINY_FIXTURE, index))),
    );
    for (const file of files.filter((name) => name.endsWith(".json"))) {
      assert.deepEqual(
        JSON.parse(await Deno.readTextFile(join(out, file))),
        JSON.parse(await Deno.readTextFile(join(TINY_FIXTURE, file))),
        file,
      );
    }
    // cogflow reads the folder and builds every component's graph from its weights (a missing
    // or misshapen weight is an error there).
    const folder = await readPipelineFolder(out);
    for (
      const [source, build] of [
        [folder.textEncoder, buildT5Encoder],
        [folder.transformer, buildCogVideoXTransformer],
        [folder.vae, buildCogVideoXVaeDecoder],
      ] as const
    ) {
      assert.equal(source.format, "safetensors");
      if (source.format !== "safetensors") continue;
      const weights = await loadComponentWeights(source.dir);
      const bytes = build({ config: source.config, configPath: source.configPath, weights });
      assert.ok(bytes.length > 0);
    }
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("make_random_pipeline: the real configs keep the fixture's key sets, and give the real parameter counts", async () => {
  const fixture = async (path: string) =>
    JSON.parse(await Deno.readTextFile(join(TINY_FIXTURE, path)));
  const transformer = await fixture("transformer/config.json");
  const vae = await fixture("vae/config.json");
  const t5 = await fixture("text_encoder/config.json");
  for (
    const [values, config] of [[REAL_TRANSFORMER, transformer], [REAL_VAE, vae], [REAL_T5, t5]]
  ) {
    for (const key of Object.keys(values)) assert.ok(key in config, key);
  }
  assert.deepEqual(
    Object.keys(REAL_TRANSFORMER).sort(),
    Object.keys(transformer).filter((key) => !key.startsWith("_")).sort(),
  );
  assert.deepEqual(
    Object.keys(REAL_VAE).sort(),
    Object.keys(vae).filter((key) => !key.startsWith("_")).sort(),
  );
  // Counts of the torch models bench/real_width/make_components.py built with these configs
  // (2 layers; bench/real_width/results/2026-12-02-make.log).
  const t5Files = t5EncoderFiles({ ...t5, ...REAL_T5, num_layers: 2 });
  assert.equal(parameters(t5Files.flatMap((file) => file.tensors)), 517_494_784);
  assert.equal(
    parameters(cogVideoXTransformerTensors({ ...REAL_TRANSFORMER, num_layers: 2 })),
    123_500_864,
  );
  assert.equal(parameters(cogVideoXVaeTensors(REAL_VAE)), 215_583_907);
  // The real 2b transformer file is 3.39 GB of float16.
  assert.equal(parameters(cogVideoXTransformerTensors(REAL_TRANSFORMER)) * 2, 3_387_567_744);
  // The real T5 encoder holds 4.76 B parameters in two shards.
  const full = t5EncoderFiles({ ...t5, ...REAL_T5 });
  assert.deepEqual(full.map((file) => file.file), [
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
  ]);
  assert.equal(parameters(full.flatMap((file) => file.tensors)), 4_762_310_656);
});
