import assert from "node:assert/strict";
import { join } from "node:path";
import onnxProto from "onnx-proto";
import * as ort from "onnxruntime-node";
import {
  buildT5Encoder,
  readT5EncoderConfig,
  t5EncoderGraph,
  t5EncoderParts,
} from "./t5_encoder.ts";
import {
  type ComponentWeights,
  loadComponentWeights,
  readWeightBytes,
  type WeightRef,
} from "./safetensors_weights.ts";
import { relativePositionBucket, relativePositionBucketTable } from "./t5_relative_position.ts";
import { readSafetensors } from "../runtime/safetensors.ts";
import { createTensor, type Tensor } from "../runtime/tensor.ts";
import { UserError } from "../runtime/user_error.ts";
import { assertClose, ROOT } from "../tests/testing.ts";

const HF = join(ROOT, "tests", "fixtures", "tiny-cogvideox-hf");

interface Encoder {
  config: Record<string, unknown>;
  configPath: string;
  weights: ComponentWeights;
}

async function encoder(name: "2b" | "5b"): Promise<Encoder> {
  const dir = join(HF, name, "text_encoder");
  const configPath = join(dir, "config.json");
  return {
    config: JSON.parse(await Deno.readTextFile(configPath)),
    configPath,
    weights: await loadComponentWeights(dir),
  };
}

async function session(model: Encoder): Promise<ort.InferenceSession> {
  return await ort.InferenceSession.create(buildT5Encoder(model), {
    extra: { session: { model_external_initializers_file_folder_path: model.weights.folder } },
  });
}

async function encode(
  s: ort.InferenceSession,
  ids: BigInt64Array,
  dims: readonly number[],
): Promise<Tensor<"float32">> {
  const out = (await s.run({ input_ids: new ort.Tensor("int64", ids, [...dims]) }))
    .last_hidden_state;
  return createTensor("float32", [...out.dims], out.data as Float32Array);
}

/** Encodes a case's prompt and negative prompt and checks them against diffusers' embeddings. */
async function checkCase(name: "2b" | "5b", caseName: string): Promise<number[]> {
  const s = await session(await encoder(name));
  const { tensors } = await readSafetensors(join(HF, "cases", caseName, "tensors.safetensors"));
  const errors: number[] = [];
  for (
    const [ids, embeds] of [
      ["input_ids", "prompt_embeds"],
      ["negative_input_ids", "negative_prompt_embeds"],
    ]
  ) {
    const input = tensors.get(ids)!;
    const expected = tensors.get(embeds)!;
    const actual = await encode(s, input.data as BigInt64Array, input.shape);
    assert.deepEqual(actual.shape, expected.shape);
    errors.push(assertClose(actual, expected, `${caseName} ${embeds}`).maxAbs);
  }
  await s.release();
  return errors;
}

Deno.test("the 2b text encoder (float16 weights) gives diffusers' prompt embeddings", async () => {
  const errors = await checkCase("2b", "ddim-2b-49f");
  console.log(`2b max abs error: prompt ${errors[0]}, negative prompt ${errors[1]}`);
});

Deno.test("the 5b text encoder (bfloat16 shards) gives diffusers' prompt embeddings", async () => {
  const errors = await checkCase("5b", "dpm-5b-49f-nonsquare");
  console.log(`5b max abs error: prompt ${errors[0]}, negative prompt ${errors[1]}`);
});

Deno.test("the float64 reference of these tests gives diffusers' prompt embeddings", async () => {
  const model = await encoder("2b");
  const { tensors } = await readSafetensors(
    join(HF, "cases", "ddim-2b-49f", "tensors.safetensors"),
  );
  const ids = tensors.get("input_ids")!;
  const expected = tensors.get("prompt_embeds")!;
  assertClose(
    await referenceT5(model, ids.data as BigInt64Array, ids.shape),
    expected,
    "reference",
  );
});

Deno.test("every weight of the text encoder checkpoints is read", async () => {
  for (const name of ["2b", "5b"] as const) {
    const model = await encoder(name);
    const used = t5EncoderGraph(model).usedWeights();
    assert.deepEqual([...used].sort(), [...model.weights.tensors.keys()].sort(), name);
  }
});

Deno.test("a batch of two 300-token sequences matches a float64 reference", async () => {
  // Past relative_attention_max_distance (128): the clamped bucket table and a batched bias.
  const model = await encoder("2b");
  const config = readT5EncoderConfig(model.config, model.configPath);
  const length = 300;
  const ids = randomIds(2 * length, config.vocab_size, 7);
  const actual = await encode(await session(model), ids, [2, length]);
  const expected = await referenceT5(model, ids, [2, length]);
  assert.deepEqual(actual.shape, [2, length, config.d_model]);
  console.log(`300 tokens max abs error: ${assertClose(actual, expected, "300 tokens").maxAbs}`);
});

Deno.test("the text encoder in parts gives the whole graph's embeddings bit for bit", async () => {
  for (const name of ["2b", "5b"] as const) {
    const model = await encoder(name);
    const config = readT5EncoderConfig(model.config, model.configPath);
    const ids = randomIds(2 * 300, config.vocab_size, 11);
    const whole = await encode(await session(model), ids, [2, 300]);
    for (const blocksPerGroup of [1, 2]) {
      const parts = t5EncoderParts({ ...model, blocksPerGroup });
      assert.deepEqual(
        parts.map((part) => part.name),
        blocksPerGroup === 1
          ? ["part_00_prologue", "part_01_block_0", "part_02_block_1", "part_03_epilogue"]
          : ["part_00_prologue", "part_01_blocks_0_1", "part_02_epilogue"],
      );
      // Each weight is read by exactly one part.
      const used = parts.flatMap((part) => [...part.graph.usedWeights()]);
      assert.deepEqual(used.toSorted(), [...model.weights.tensors.keys()].sort());
      const available = new Map<string, ort.Tensor>([
        ["input_ids", new ort.Tensor("int64", ids, [2, 300])],
      ]);
      for (const part of parts) {
        const s = await ort.InferenceSession.create(part.graph.toBytes(), {
          extra: {
            session: { model_external_initializers_file_folder_path: model.weights.folder },
          },
        });
        const outputs = await s.run(
          Object.fromEntries(part.inputs.map((input) => [input, available.get(input)!])),
        );
        await s.release();
        assert.deepEqual(Object.keys(outputs).sort(), [...part.outputs].sort());
        for (const [output, tensor] of Object.entries(outputs)) available.set(output, tensor);
      }
      const out = available.get("last_hidden_state")!;
      assert.deepEqual(out.dims, whole.shape);
      assert.deepEqual(out.data, whole.data, `${name}, ${blocksPerGroup} blocks per part`);
    }
  }
});

Deno.test("relu, gated-relu and gelu feed-forward layers match a float64 reference", async () => {
  const base = await encoder("5b");
  for (const feedForwardProj of ["relu", "gated-relu", "gelu"]) {
    const gated = feedForwardProj.startsWith("gated-");
    const tensors = new Map<string, WeightRef>();
    for (const [key, ref] of base.weights.tensors) {
      // A plain layer's `wi` borrows the bytes of `wi_0`.
      if (!gated && key.endsWith("DenseReluDense.wi_1.weight")) continue;
      const name = gated ? key : key.replace("DenseReluDense.wi_0.", "DenseReluDense.wi.");
      tensors.set(name, { ...ref, name });
    }
    const { dense_act_fn: _, is_gated_act: __, ...rest } = base.config;
    const model = {
      ...base,
      config: { ...rest, feed_forward_proj: feedForwardProj },
      weights: { ...base.weights, tensors },
    };
    assert.deepEqual([...t5EncoderGraph(model).usedWeights()].sort(), [...tensors.keys()].sort());
    const ids = randomIds(2 * 16, 1128, 3);
    const actual = await encode(await session(model), ids, [2, 16]);
    const error = assertClose(actual, await referenceT5(model, ids, [2, 16]), feedForwardProj);
    console.log(`${feedForwardProj} max abs error: ${error.maxAbs}`);
  }
});

Deno.test("bucket boundaries are the ones torch computes", () => {
  // transformers 5.17 `T5Attention._relative_position_bucket(bidirectional=True)` on torch 2.11
  // (CPU) for relative positions -600..600: [first position of a run, its bucket].
  const torchRuns: Record<string, [number, number][]> = {
    "32/128": [
      [-600, 15],
      [-90, 14],
      [-63, 13],
      [-45, 12],
      [-31, 11],
      [-22, 10],
      [-15, 9],
      [-11, 8],
      [-7, 7],
      [-6, 6],
      [-5, 5],
      [-4, 4],
      [-3, 3],
      [-2, 2],
      [-1, 1],
      [0, 0],
      [1, 17],
      [2, 18],
      [3, 19],
      [4, 20],
      [5, 21],
      [6, 22],
      [7, 23],
      [8, 24],
      [12, 25],
      [16, 26],
      [23, 27],
      [32, 28],
      [46, 29],
      [64, 30],
      [91, 31],
    ],
    "8/128": [[-600, 3], [-15, 2], [-1, 1], [0, 0], [1, 5], [2, 6], [16, 7]],
    "12/50": [
      [-600, 5],
      [-19, 4],
      [-7, 3],
      [-2, 2],
      [-1, 1],
      [0, 0],
      [1, 7],
      [2, 8],
      [3, 9],
      [8, 10],
      [20, 11],
    ],
  };
  for (const [key, runs] of Object.entries(torchRuns)) {
    const [numBuckets, maxDistance] = key.split("/").map(Number);
    const actual: [number, number][] = [];
    for (let position = -600; position <= 600; position++) {
      const bucket = relativePositionBucket(position, { numBuckets, maxDistance });
      if (actual.length === 0 || actual[actual.length - 1][1] !== bucket) {
        actual.push([position, bucket]);
      }
    }
    assert.deepEqual(actual, runs, key);
  }
});

Deno.test("the clamped bucket table agrees with a direct port for positions -600..600", () => {
  for (const [numBuckets, maxDistance] of [[32, 128], [8, 128], [12, 50], [64, 128], [32, 256]]) {
    const { span, buckets } = relativePositionBucketTable({ numBuckets, maxDistance });
    const positions = Array.from({ length: 1201 }, (_, i) => i - 600);
    const expected = portedRelativePositionBucket(positions, numBuckets, maxDistance);
    const actual = positions.map((p) => buckets[Math.min(Math.max(p, -span), span) + span]);
    assert.deepEqual(actual, expected, `${numBuckets}/${maxDistance}`);
  }
});

Deno.test("readT5EncoderConfig reads T5-v1.1-XXL and fills in T5Config's defaults", () => {
  const xxl = readT5EncoderConfig({
    architectures: ["T5EncoderModel"],
    d_ff: 10240,
    d_kv: 64,
    d_model: 4096,
    dense_act_fn: "gelu_new",
    feed_forward_proj: "gated-gelu",
    is_gated_act: true,
    model_type: "t5",
    num_heads: 64,
    num_layers: 24,
    vocab_size: 32128,
  }, "config.json");
  assert.deepEqual(xxl, {
    vocab_size: 32128,
    d_model: 4096,
    d_kv: 64,
    d_ff: 10240,
    num_layers: 24,
    num_heads: 64,
    relative_attention_num_buckets: 32,
    relative_attention_max_distance: 128,
    layer_norm_epsilon: 1e-6,
    feed_forward_proj: "gated-gelu",
    dense_act_fn: "gelu_new",
    is_gated_act: true,
  });
  assert.equal(readT5EncoderConfig({}, "config.json").feed_forward_proj, "relu");
});

Deno.test("unsupported config values are errors naming the file and the key", () => {
  const cases: [Record<string, unknown>, string][] = [
    [
      { feed_forward_proj: "gated-silu" },
      `Unsupported "feed_forward_proj": "gated-silu" in "te/config.json": expected "relu", "gated-relu", "gelu", "gated-gelu"`,
    ],
    [
      { architectures: ["T5ForConditionalGeneration"] },
      `Unsupported "architectures": ["T5ForConditionalGeneration"] in "te/config.json": expected ["T5EncoderModel"]`,
    ],
    [
      { feed_forward_proj: "gated-gelu", is_gated_act: false },
      `Unsupported "is_gated_act": false in "te/config.json": expected true (what "feed_forward_proj": "gated-gelu" gives)`,
    ],
    [
      { d_model: 0 },
      `Unsupported "d_model": 0 in "te/config.json": expected a positive integer`,
    ],
    [
      { model_type: "umt5" },
      `Unsupported "model_type": "umt5" in "te/config.json": expected "t5"`,
    ],
  ];
  for (const [config, message] of cases) {
    assert.throws(() => readT5EncoderConfig(config, "te/config.json"), (error: Error) => {
      assert.ok(error instanceof UserError);
      assert.equal(error.message, message);
      return true;
    });
  }
});

Deno.test("a checkpoint with encoder.embed_tokens instead of shared reads that", async () => {
  const model = await encoder("2b");
  const tensors = new Map(model.weights.tensors);
  const name = "encoder.embed_tokens.weight";
  tensors.set(name, { ...tensors.get("shared.weight")!, name });
  tensors.delete("shared.weight");
  const used = t5EncoderGraph({ ...model, weights: { ...model.weights, tensors } }).usedWeights();
  assert.ok(used.has(name));
  assert.equal(used.size, tensors.size);
});

Deno.test("a missing or misshapen weight is an error naming its key", async () => {
  const model = await encoder("5b");
  const key = "encoder.block.1.layer.1.DenseReluDense.wi_1.weight";
  const tensors = new Map(model.weights.tensors);
  tensors.delete(key);
  assert.throws(
    () => buildT5Encoder({ ...model, weights: { ...model.weights, tensors } }),
    (error: Error) => error instanceof UserError && error.message.includes(`"${key}"`),
  );
  assert.throws(
    () => buildT5Encoder({ ...model, config: { ...model.config, d_ff: 40 } }),
    (error: Error) =>
      error instanceof UserError &&
      error.message.startsWith(
        `Weight "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" has shape [37, 32], but "${model.configPath}" gives [40, 32]`,
      ),
  );
});

Deno.test("float16 is refused; bfloat16 builds with a float32 output", async () => {
  const model = await encoder("5b");
  assert.throws(
    () => buildT5Encoder({ ...model, dtype: "float16" }),
    (error: Error) =>
      error instanceof UserError && error.message.includes(`in "float16": T5 overflows`),
  );
  const graph = t5EncoderGraph({ ...model, dtype: "bfloat16" });
  assert.equal(graph.usedWeights().size, model.weights.tensors.size);
  const proto = onnxProto.onnx.ModelProto.decode(graph.toBytes());
  assert.equal(proto.graph?.output?.[0].type?.tensorType?.elemType, 1);
  assert.ok(
    proto.graph?.node?.some((node) =>
      node.opType === "Cast" && Number(node.attribute?.[0].i) === 16
    ),
  );
});

/**
 * A direct port of `_relative_position_bucket(bidirectional=True)` in the shape of the torch code:
 * every tensor step stored in a Float32Array, which rounds as float32 tensors do.
 */
function portedRelativePositionBucket(
  relativePosition: number[],
  numBuckets: number,
  maxDistance: number,
): number[] {
  numBuckets = Math.floor(numBuckets / 2);
  const relativeBuckets = relativePosition.map((p) => (p > 0 ? 1 : 0) * numBuckets);
  const position = relativePosition.map(Math.abs);
  const maxExact = Math.floor(numBuckets / 2);
  const isSmall = position.map((p) => p < maxExact);
  const scaled = Float32Array.from(position).map((p) => p / maxExact).map(Math.log)
    .map((v) => v / Math.fround(Math.log(maxDistance / maxExact))).map((v) =>
      v * (numBuckets - maxExact)
    );
  const ifLarge = Array.from(scaled, (v) => Math.min(maxExact + Math.trunc(v), numBuckets - 1));
  return relativeBuckets.map((b, i) => b + (isSmall[i] ? position[i] : ifLarge[i]));
}

/** Deterministic token ids in `[0, vocab)`. */
function randomIds(count: number, vocab: number, seed: number): BigInt64Array {
  const ids = new BigInt64Array(count);
  let state = seed;
  for (let i = 0; i < count; i++) {
    state = (state * 1103515245 + 12345) % 2147483648;
    ids[i] = BigInt(state % vocab);
  }
  return ids;
}

/** `T5EncoderModel` in float64, written from modeling_t5.py without the graph builder. */
async function referenceT5(
  model: Encoder,
  ids: BigInt64Array,
  [batch, length]: readonly number[],
): Promise<Tensor<"float32">> {
  const config = readT5EncoderConfig(model.config, model.configPath);
  const weights = new Map<string, Float64Array>();
  for (const [key, ref] of model.weights.tensors) weights.set(key, await weightValues(ref));
  const w = (key: string) => weights.get(key)!;
  const { d_model: d, num_heads: heads, d_kv: dk, d_ff: dff } = config;
  const inner = heads * dk;
  const linear = (x: Float64Array, key: string, n: number, k: number) => {
    const weight = w(key);
    const out = new Float64Array(length * n);
    for (let s = 0; s < length; s++) {
      for (let o = 0; o < n; o++) {
        let sum = 0;
        for (let i = 0; i < k; i++) sum += x[s * k + i] * weight[o * k + i];
        out[s * n + o] = sum;
      }
    }
    return out;
  };
  const rmsNorm = (x: Float64Array, key: string) => {
    const weight = w(key);
    const out = new Float64Array(x.length);
    for (let s = 0; s < length; s++) {
      let variance = 0;
      for (let i = 0; i < d; i++) variance += x[s * d + i] ** 2 / d;
      const scale = 1 / Math.sqrt(variance + config.layer_norm_epsilon);
      for (let i = 0; i < d; i++) out[s * d + i] = weight[i] * x[s * d + i] * scale;
    }
    return out;
  };
  const act = (v: number) => {
    if (config.dense_act_fn === "relu") return Math.max(v, 0);
    if (config.dense_act_fn === "gelu") return 0.5 * v * (1 + erf(v / Math.SQRT2));
    return 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
  };
  const biasTable = w("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
  const bucketOptions = {
    numBuckets: config.relative_attention_num_buckets,
    maxDistance: config.relative_attention_max_distance,
  };
  const output = new Float32Array(batch * length * d);
  for (let n = 0; n < batch; n++) {
    let x = new Float64Array(length * d);
    for (let s = 0; s < length; s++) {
      const row = Number(ids[n * length + s]);
      x.set(w("shared.weight").subarray(row * d, (row + 1) * d), s * d);
    }
    for (let layer = 0; layer < config.num_layers; layer++) {
      const p = `encoder.block.${layer}.layer`;
      const normed = rmsNorm(x, `${p}.0.layer_norm.weight`);
      const q = linear(normed, `${p}.0.SelfAttention.q.weight`, inner, d);
      const k = linear(normed, `${p}.0.SelfAttention.k.weight`, inner, d);
      const v = linear(normed, `${p}.0.SelfAttention.v.weight`, inner, d);
      const attention = new Float64Array(length * inner);
      const scores = new Float64Array(length);
      for (let h = 0; h < heads; h++) {
        for (let i = 0; i < length; i++) {
          let max = -Infinity;
          for (let j = 0; j < length; j++) {
            let sum = biasTable[relativePositionBucket(j - i, bucketOptions) * heads + h];
            for (let c = 0; c < dk; c++) {
              sum += q[i * inner + h * dk + c] * k[j * inner + h * dk + c];
            }
            scores[j] = sum;
            max = Math.max(max, sum);
          }
          let total = 0;
          for (let j = 0; j < length; j++) total += scores[j] = Math.exp(scores[j] - max);
          for (let j = 0; j < length; j++) {
            for (let c = 0; c < dk; c++) {
              attention[i * inner + h * dk + c] += scores[j] / total * v[j * inner + h * dk + c];
            }
          }
        }
      }
      const attended = linear(attention, `${p}.0.SelfAttention.o.weight`, d, inner);
      x = x.map((value, i) => value + attended[i]);
      const forwarded = rmsNorm(x, `${p}.1.layer_norm.weight`);
      const dense = `${p}.1.DenseReluDense`;
      let hidden: Float64Array;
      if (config.is_gated_act) {
        const linearPart = linear(forwarded, `${dense}.wi_1.weight`, dff, d);
        hidden = linear(forwarded, `${dense}.wi_0.weight`, dff, d).map((value, i) =>
          act(value) * linearPart[i]
        );
      } else {
        hidden = linear(forwarded, `${dense}.wi.weight`, dff, d).map(act);
      }
      const fed = linear(hidden, `${dense}.wo.weight`, d, dff);
      x = x.map((value, i) => value + fed[i]);
    }
    output.set(rmsNorm(x, "encoder.final_layer_norm.weight"), n * length * d);
  }
  return createTensor("float32", [batch, length, d], output);
}

/** A stored weight's values as float64. */
async function weightValues(ref: WeightRef): Promise<Float64Array> {
  const bytes = await readWeightBytes(ref);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float64Array(ref.length / (ref.dtype === "float32" ? 4 : 2));
  const float = new Float32Array(1);
  const bits = new Uint32Array(float.buffer);
  for (let i = 0; i < out.length; i++) {
    if (ref.dtype === "float32") out[i] = view.getFloat32(4 * i, true);
    else if (ref.dtype === "bfloat16") {
      bits[0] = view.getUint16(2 * i, true) << 16;
      out[i] = float[0];
    } else out[i] = halfToNumber(view.getUint16(2 * i, true));
  }
  return out;
}

function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** `erf` (Abramowitz and Stegun 7.1.26, error below 1.5e-7). */
function erf(x: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = 1 - t * (0.254829592 +
        t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) *
      Math.exp(-x * x);
  return x < 0 ? -y : y;
}
