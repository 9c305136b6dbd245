import assert from "node:assert/strict";
import {
  decodeWithHooks,
  decodingShapesWithHooks,
  defineModelHook,
  type ModelHook,
  runWithHooks,
  sessionPlanOf,
} from "./model_hooks.ts";
import type { ModelHandle } from "./model_handle.ts";
import { DEFAULT_SESSION_SETTINGS } from "./model_handle.ts";
import { createTensor, type Tensor } from "./tensor.ts";
import { concatBatch, sliceBatch } from "./tensor_ops.ts";
import { UserError } from "./user_error.ts";

const model: ModelHandle = {
  kind: "onnx_model",
  name: "vae",
  role: "vae",
  path: "/models/vae.onnx",
  bytes: 1,
  fingerprint: "",
  signature: { inputs: [], outputs: [] },
  config: {},
  session: DEFAULT_SESSION_SETTINGS,
  hooks: [],
};

interface TagHook extends ModelHook {
  kind: "test_tag";
  tag: string;
}

const seen: string[] = [];
const tagHook = defineModelHook<TagHook>({
  kind: "test_tag",
  call: async ({ hook, feeds }, next) => {
    seen.push(`${hook.tag} in`);
    const outputs = await next(feeds);
    seen.push(`${hook.tag} out`);
    return outputs;
  },
});

interface HalvesHook extends ModelHook {
  kind: "test_halves";
}

/** A decode strategy: the batch in two halves. */
const halvesHook = defineModelHook<HalvesHook>({
  kind: "test_halves",
  session: () => ({ policy: "test_halves", releaseAfterLastUse: true }),
  decode: async (latents, next, call) => {
    call.pieces(2);
    const half = latents.shape[0] / 2;
    return concatBatch([
      await next(sliceBatch(latents, 0, half)),
      await next(sliceBatch(latents, half, 2 * half)),
    ]);
  },
  estimateDecoding: (shapes) => ({ ...shapes, slicing: true }),
});

Deno.test("call wrappers run outermost first: the hook added last sees the call first", async () => {
  seen.length = 0;
  const wrapped = tagHook.wrap(tagHook.wrap(model, { node: "a", tag: "inner" }), {
    node: "b",
    tag: "outer",
  });
  const outputs = await runWithHooks(wrapped, {}, () => {
    seen.push("model");
    return Promise.resolve({ y: createTensor("float32", [1]) });
  });
  assert.deepEqual(Object.keys(outputs), ["y"]);
  assert.deepEqual(seen, ["outer in", "inner in", "model", "inner out", "outer out"]);
});

Deno.test("hook data stays plain JSON on the handle; behaviour is found by kind", () => {
  const wrapped = halvesHook.wrap(tagHook.wrap(model, { node: "t", tag: "x" }), { node: "h" });
  assert.deepEqual(JSON.parse(JSON.stringify(wrapped.hooks)), [
    { node: "t", tag: "x", kind: "test_tag" },
    { node: "h", kind: "test_halves" },
  ]);
  assert.equal(model.hooks.length, 0);
  assert.deepEqual(sessionPlanOf(wrapped), { policy: "test_halves", releaseAfterLastUse: true });
  assert.equal(sessionPlanOf(model), undefined);
});

Deno.test("decode strategies split a decode call and say into how many pieces", async () => {
  const wrapped = halvesHook.wrap(model, { node: "h" });
  const latents = createTensor("float32", [4, 1, 1, 1, 1], Float32Array.from([1, 2, 3, 4]));
  const calls: number[][] = [];
  const pieces: number[] = [];
  const decoded = await decodeWithHooks(wrapped, latents, (piece: Tensor<"float32">) => {
    calls.push([...piece.data]);
    return Promise.resolve(piece);
  }, { signal: new AbortController().signal, onPieces: (count) => pieces.push(count) });
  assert.deepEqual(calls, [[1, 2], [3, 4]]);
  assert.deepEqual(pieces, [2]);
  assert.deepEqual([...decoded.data], [1, 2, 3, 4]);
  const shapes = decodingShapesWithHooks(wrapped, {
    latents: [4, 3, 16, 8, 8],
    temporalCompression: 4,
    spatialCompression: 8,
    blockOutChannels: [128, 256, 256, 512],
    layersPerBlock: 3,
    slicing: false,
  });
  assert.equal(shapes.slicing, true);
});

Deno.test("a hook kind without a behaviour is a UserError naming its node", () => {
  const unknown = { ...model, hooks: [{ kind: "nowhere", node: "mystery" }] };
  assert.throws(() => sessionPlanOf(unknown), (error: Error) => {
    assert.ok(error instanceof UserError);
    assert.match(error.message, /^Unknown model hook "nowhere" of node "mystery"/);
    return true;
  });
});

Deno.test("a hook kind cannot be defined twice", () => {
  assert.throws(
    () => defineModelHook<TagHook>({ kind: "test_tag" }),
    /Model hook "test_tag" is defined twice/,
  );
});
