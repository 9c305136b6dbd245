import assert from "node:assert/strict";
import { join } from "node:path";
import onnxProto from "onnx-proto";
import * as ort from "onnxruntime-node";
import {
  latentSizeForVideoTokens,
  presets,
  sequenceLength,
  writeSyntheticPipeline,
  writeTransformer,
} from "./synthetic_models.ts";

type TensorProto = onnxProto.onnx.ITensorProto;

/** Deterministic values in [-1, 1). */
function ramp(count: number): Float32Array {
  return Float32Array.from({ length: count }, (_, i) => ((i * 37) % 101) / 50.5 - 1);
}

function allFinite(tensor: ort.Tensor): boolean {
  return (tensor.data as Float32Array).every(Number.isFinite);
}

function readModel(path: string): onnxProto.onnx.ModelProto {
  return onnxProto.onnx.ModelProto.decode(Deno.readFileSync(path));
}

function externalEntry(tensor: TensorProto, key: string): string | undefined {
  return tensor.externalData?.find((e) => e.key === key)?.value ?? undefined;
}

async function readExternal(dir: string, tensor: TensorProto): Promise<Uint8Array> {
  const file = await Deno.open(join(dir, externalEntry(tensor, "location")!));
  try {
    await file.seek(Number(externalEntry(tensor, "offset")), Deno.SeekMode.Start);
    const bytes = new Uint8Array(Number(externalEntry(tensor, "length")));
    let read = 0;
    while (read < bytes.length) read += (await file.read(bytes.subarray(read)))!;
    return bytes;
  } finally {
    file.close();
  }
}

async function runTransformer(path: string, latent: number[]): Promise<ort.Tensor> {
  const t = presets.small.transformer;
  const [batch] = latent;
  const count = latent.reduce((a, b) => a * b, 1);
  const textShape = [batch, t.textSeqLength, t.textEmbedDim];
  const session = await ort.InferenceSession.create(path);
  try {
    const out = await session.run({
      hidden_states: new ort.Tensor("float32", ramp(count), latent),
      encoder_hidden_states: new ort.Tensor(
        "float32",
        ramp(textShape.reduce((a, b) => a * b)),
        textShape,
      ),
      timestep: new ort.Tensor("int64", BigInt64Array.from({ length: batch }, () => 999n), [batch]),
    });
    return out.sample;
  } finally {
    await session.release();
  }
}

Deno.test("latentSizeForVideoTokens gives the fixture's 48 tokens and 4,096 tokens", () => {
  assert.deepEqual(latentSizeForVideoTokens(48), { frames: 3, height: 8, width: 8 });
  const large = latentSizeForVideoTokens(4096, { frames: 4 });
  assert.deepEqual(large, { frames: 4, height: 64, width: 64 });
  assert.equal(sequenceLength(presets.bench.transformer, large), 4096 + 226);
  assert.throws(() => latentSizeForVideoTokens(4096), /multiple of 3 frames/);
});

Deno.test("writeSyntheticPipeline writes a small pipeline that ONNX Runtime runs", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "synthetic-small-" });
  try {
    const summary = await writeSyntheticPipeline(dir, "small");
    const small = presets.small;

    await t.step("folder has the fixture layout and matching configs", async () => {
      for (
        const file of [
          "model_index.json",
          "scheduler/scheduler_config.json",
          "tokenizer/tokenizer.json",
          "vae/config.json",
          "vae_decoder/config.json",
        ]
      ) {
        assert.ok((await Deno.stat(join(dir, file))).isFile, file);
      }
      const config = JSON.parse(await Deno.readTextFile(join(dir, "transformer/config.json")));
      assert.equal(config.num_layers, small.transformer.numLayers);
      assert.equal(
        config.num_attention_heads * config.attention_head_dim,
        small.transformer.hiddenSize,
      );
      assert.equal(config.text_embed_dim, small.textEncoder.dModel);
      assert.equal(config.in_channels, small.vaeDecoder.latentChannels);
      assert.equal(config.use_rotary_positional_embeddings, false);
      const vae = JSON.parse(await Deno.readTextFile(join(dir, "vae_decoder/config.json")));
      assert.equal(vae.latent_channels, small.vaeDecoder.latentChannels);
      assert.equal(vae.temporal_compression_ratio, 4);
      const te = JSON.parse(await Deno.readTextFile(join(dir, "text_encoder/config.json")));
      assert.equal(te.d_model, small.textEncoder.dModel);
    });

    await t.step("weights live in page-aligned external data; .onnx files are small", async () => {
      for (const m of [summary.textEncoder, summary.transformer, summary.vaeDecoder]) {
        assert.ok(m.onnxBytes < 100_000, `${m.path}: ${m.onnxBytes} bytes`);
        assert.equal((await Deno.stat(m.dataPath!)).size, m.dataBytes);
        assert.ok(m.dataBytes > 4 * m.onnxBytes, m.path);
        const external = readModel(m.path).graph!.initializer!.filter((i) => i.dataLocation === 1);
        assert.ok(external.length > 0);
        for (const tensor of external) {
          assert.equal(Number(externalEntry(tensor, "offset")) % 4096, 0);
        }
      }
    });

    await t.step(
      "blocks are named like the TorchScript export and have distinct weights",
      async () => {
        const graph = readModel(summary.transformer.path).graph!;
        const names = new Set(graph.node!.map((n) => n.name));
        for (const i of [0, 1]) {
          assert.ok(names.has(`/m/transformer_blocks.${i}/attn1/to_q/MatMul`));
          assert.ok(names.has(`/m/transformer_blocks.${i}/ff/net.2/MatMul`));
        }
        const mha = graph.node!.filter((n) => n.opType === "MultiHeadAttention");
        assert.equal(mha.length, small.transformer.numLayers);
        assert.equal(mha[1].domain, "com.microsoft");
        assert.equal(mha[1].name, "/m/transformer_blocks.1/attn1/MultiHeadAttention");
        const byName = new Map(graph.initializer!.map((i) => [i.name, i]));
        const q0 = await readExternal(
          join(dir, "transformer"),
          byName.get("m.transformer_blocks.0.attn1.to_q.weight")!,
        );
        const q1 = await readExternal(
          join(dir, "transformer"),
          byName.get("m.transformer_blocks.1.attn1.to_q.weight")!,
        );
        assert.equal(q0.length, small.transformer.hiddenSize ** 2 * 4);
        assert.notDeepEqual(q0, q1);
      },
    );

    await t.step("text encoder maps [batch, seq] ids to [batch, seq, dModel]", async () => {
      const session = await ort.InferenceSession.create(summary.textEncoder.path);
      const ids = BigInt64Array.from({ length: 32 }, (_, i) => BigInt((i * 31) % 1000));
      const out = await session.run({ input_ids: new ort.Tensor("int64", ids, [2, 16]) });
      await session.release();
      assert.deepEqual(out.last_hidden_state.dims, [2, 16, small.textEncoder.dModel]);
      assert.ok(allFinite(out.last_hidden_state));
    });

    await t.step(
      "transformer keeps the latent shape, static fixture size and dynamic sizes",
      async () => {
        for (const latent of [[2, 3, 4, 8, 8], [1, 2, 4, 4, 6]]) {
          const sample = await runTransformer(summary.transformer.path, latent);
          assert.deepEqual(sample.dims, latent);
          assert.ok(allFinite(sample));
        }
      },
    );

    await t.step("VAE decoder maps [batch, C, 3, h, w] to [batch, 3, 9, 8h, 8w]", async () => {
      const session = await ort.InferenceSession.create(summary.vaeDecoder.path);
      const out = await session.run({
        latent_sample: new ort.Tensor("float32", ramp(4 * 3 * 4 * 5), [1, 4, 3, 4, 5]),
      });
      await session.release();
      assert.deepEqual(out.sample.dims, [1, 3, 9, 32, 40]);
      assert.ok(allFinite(out.sample));
    });

    await t.step("inline weights give the same model in one file", async () => {
      const path = join(dir, "inline", "model.onnx");
      const inline = await writeTransformer(path, small.transformer, { externalData: false });
      assert.equal(inline.dataPath, null);
      assert.ok(inline.onnxBytes > summary.transformer.dataBytes / 2);
      await assert.rejects(Deno.stat(`${path}.data`));
      const latent = [1, 3, 4, 8, 8];
      const a = await runTransformer(path, latent);
      const b = await runTransformer(summary.transformer.path, latent);
      assert.deepEqual(a.data, b.data);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
