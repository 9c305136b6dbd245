import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import {
  buildCogVideoXTransformer,
  cogVideoXTransformerParts,
} from "../builders/cogvideox_transformer.ts";
import { loadComponentWeights } from "../builders/safetensors_weights.ts";
import type { ComponentWeights } from "../builders/safetensors_weights.ts";
import { streamedParts } from "../builders/streamed_part.ts";
import { chainParts, type ChainPlan, StreamedChain } from "./streamed_chain.ts";
import { createTensor, type Tensor } from "./tensor.ts";
import { testInWholeFfiChild, WHOLE_FFI } from "../tests/whole_ffi.ts";

const FOLDER = fileURLToPath(
  new URL("../tests/fixtures/tiny-cogvideox-hf/2b/transformer", import.meta.url),
);

/**
 * The tiny 2b transformer with a third block that reads block 1's stored weights, so that two
 * middle blocks (0 and 1: both pass text tokens on) have the same shape.
 */
async function threeBlocks(): Promise<
  { config: Record<string, unknown>; weights: ComponentWeights }
> {
  const config = JSON.parse(await Deno.readTextFile(join(FOLDER, "config.json")));
  const weights = await loadComponentWeights(FOLDER);
  for (const [key, ref] of [...weights.tensors]) {
    if (!key.startsWith("transformer_blocks.1.")) continue;
    const copy = key.replace("transformer_blocks.1.", "transformer_blocks.2.");
    weights.tensors.set(copy, { ...ref, name: copy });
  }
  return { config: { ...config, num_layers: 3 }, weights };
}

/** The chain plan of the transformer's streamed parts. */
function chainPlan(
  config: Record<string, unknown>,
  weights: ComponentWeights,
  attentionQueryChunk?: number,
): ChainPlan {
  const parts = cogVideoXTransformerParts({
    config,
    configPath: join(FOLDER, "config.json"),
    weights,
    attentionQueryChunk,
  });
  return {
    parts: chainParts(streamedParts(parts, weights, "transformer_blocks"), weights.folder),
    modelOutputs: ["sample"],
    provider: "cpu",
  };
}

function feeds(): Record<string, Tensor> {
  const ramp = (n: number, seed: number) =>
    Float32Array.from({ length: n }, (_, i) => (((i + seed) * 37) % 101) / 50.5 - 1);
  const tokens = 3 * 4 * 4;
  return {
    hidden_states: createTensor("float32", [2, 3, 4, 8, 8], ramp(2 * 3 * 4 * 8 * 8, 1)),
    encoder_hidden_states: createTensor("float32", [2, 16, 32], ramp(2 * 16 * 32, 7)),
    timestep: createTensor("int64", [2], new BigInt64Array([999n, 999n])),
    pos_embedding: createTensor("float32", [tokens, 32], ramp(tokens * 32, 3)),
  };
}

Deno.test("streamed parts hold no weights, name no block, and two middle blocks give the same graph", async () => {
  const { config, weights } = await threeBlocks();
  const plan = chainPlan(config, weights);
  assert.deepEqual(plan.parts.map((part) => part.name), [
    "part_00_prologue",
    "part_01_block_0",
    "part_02_block_1",
    "part_03_block_2",
    "part_04_epilogue",
  ]);
  const [, first, second, last] = plan.parts;
  assert.deepEqual(first.graph, second.graph);
  assert.notDeepEqual(second.graph, last.graph, "the last block passes no text tokens on");
  assert.deepEqual(first.inputs.map((named) => named.tensor).slice(0, 2), [
    "patch_embed.hidden_states",
    "patch_embed.encoder_hidden_states",
  ]);
  assert.deepEqual(second.inputs.map((named) => named.graph), first.inputs.map((n) => n.graph));
  assert.ok(second.weights.every((w) => w.input.startsWith("transformer_blocks.@0.")));
  assert.equal(
    second.weights.find((w) => w.input === "transformer_blocks.@0.attn1.to_q.weight")?.offset,
    weights.tensors.get("transformer_blocks.1.attn1.to_q.weight")!.offset,
  );
  const text = new TextDecoder("latin1").decode(second.graph);
  assert.ok(!/transformer_blocks\.\d/.test(text), "a block index is left in the graph");
  // Attending in query chunks (a Loop, as on the CPU): its body is named by the block too.
  const chunked = chainPlan(config, weights, 16).parts;
  assert.deepEqual(chunked[1].graph, chunked[2].graph);
  assert.notDeepEqual(chunked[1].graph, first.graph, "no Loop in the chunked block");
  const stored = [...weights.tensors.values()].reduce((sum, ref) => sum + ref.length, 0);
  const streamed = plan.parts.flatMap((part) => part.weights)
    .reduce((sum, weight) => sum + weight.length, 0);
  assert.equal(streamed, stored, "every weight is streamed once");
});

testInWholeFfiChild(
  "the streamed chain's tests pass in a child with the whole ffi permission",
  import.meta.url,
  2,
);

if (WHOLE_FFI) {
  Deno.test("a streamed chain gives the whole graph's sample, with one session for both middle blocks, with and without its weights staged ahead", async () => {
    const { config, weights } = await threeBlocks();
    const whole = buildCogVideoXTransformer({
      config,
      configPath: join(FOLDER, "config.json"),
      weights,
    });
    const reference = await ort.InferenceSession.create(whole, {
      extra: { session: { model_external_initializers_file_folder_path: weights.folder } },
    });
    const inputs = feeds();
    const expected = await reference.run(
      Object.fromEntries(
        Object.entries(inputs).map(([name, t]) => [name, new ort.Tensor(t.dtype, t.data, t.shape)]),
      ),
    );
    await reference.release();

    // A second positional table, for a kept feed replaced by another tensor.
    const halved = {
      ...inputs,
      pos_embedding: createTensor(
        "float32",
        inputs.pos_embedding.shape,
        (inputs.pos_embedding.data as Float32Array).map((v) => v / 2),
      ),
    };
    const session = await ort.InferenceSession.create(whole, {
      extra: { session: { model_external_initializers_file_folder_path: weights.folder } },
    });
    const expectedHalved = await session.run(
      Object.fromEntries(
        Object.entries(halved).map(([name, t]) => [name, new ort.Tensor(t.dtype, t.data, t.shape)]),
      ),
    );
    await session.release();

    for (const prefetch of [false, true]) {
      const chain = await StreamedChain.create({ ...chainPlan(config, weights), prefetch });
      try {
        // The prologue's, the blocks' and the epilogue's weight shapes.
        assert.equal(chain.stagerCount, prefetch ? 3 : 0);
        await checkChain(chain, expected.sample, weights, inputs);
        // Kept feeds stay in ONNX Runtime between runs, and another tensor replaces one.
        const kept = new Set(["encoder_hidden_states", "pos_embedding"]);
        assertNear((await chain.run(inputs, kept)).outputs.sample, expected.sample, "kept");
        assertNear((await chain.run(inputs, kept)).outputs.sample, expected.sample, "kept again");
        assertNear(
          (await chain.run(halved, kept)).outputs.sample,
          expectedHalved.sample,
          "a kept feed replaced",
        );
      } finally {
        chain.release();
      }
    }
  });
}

/** Checks `got` against onnxruntime-node's `want` within 1e-6. */
function assertNear(got: Tensor, want: ort.Tensor, what: string) {
  assert.deepEqual(got.shape, [...want.dims], what);
  const a = got.data as Float32Array;
  const b = want.data as Float32Array;
  let maxAbs = 0;
  for (let i = 0; i < b.length; i++) maxAbs = Math.max(maxAbs, Math.abs(a[i] - b[i]));
  assert.ok(maxAbs <= 1e-6, `${what}: max abs ${maxAbs}`);
}

/** Runs `chain` twice on `inputs`, checking its sample against `expected`. */
async function checkChain(
  chain: StreamedChain,
  expected: ort.Tensor,
  weights: ComponentWeights,
  inputs: Record<string, Tensor>,
) {
  assert.equal(chain.sessionCount, 4);
  const stored = [...weights.tensors.values()].reduce((sum, ref) => sum + ref.length, 0);
  assert.equal(chain.hostBytes, stored);
  for (let call = 0; call < 2; call++) {
    const { outputs, stats } = await chain.run(inputs);
    assert.equal(stats.partMs.length, 5);
    assertNear(outputs.sample, expected, `call ${call}`);
  }
}
