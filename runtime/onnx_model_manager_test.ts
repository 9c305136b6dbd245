import assert from "node:assert/strict";
import { join } from "node:path";
import { measureSessionChurn, transformerFeeds as churnFeeds } from "../bench/session_churn.ts";
import { presets, writeSyntheticPipeline, writeTransformer } from "../tests/synthetic_models.ts";
import { describeModel } from "./model_files.ts";
import type { ModelHandle } from "./model_handle.ts";
import { budgetOffloadHook } from "../nodes/budget_offload.ts";
import { modelOffloadHook } from "../nodes/model_offload.ts";
import { sequentialOffloadHook } from "../nodes/sequential_offload.ts";
import { vaeSlicingHook } from "../nodes/vae_slicing.ts";
import { OnnxModelManager, workerSessionOptions } from "./onnx_model_manager.ts";
import { createTensor, maxAbsDiff, type Tensor } from "./tensor.ts";
import { UserError } from "./user_error.ts";

const FIXTURES = new URL("../tests/fixtures/tiny-cogvideox/", import.meta.url).pathname;

/** The fixture models, one thread each so that tests running side by side stay fast. */
function fixture(path: string, name: string, role = name): Promise<ModelHandle> {
  return describeModel(`${FIXTURES}${path}`, { name, role, session: { intraOpThreads: 1 } });
}
const textEncoder = await fixture("2b/text_encoder/model.onnx", "text_encoder"); // 243 KB
const transformer = await fixture("2b/transformer/model.onnx", "transformer"); // 233 KB
const transformer5b = await fixture("5b/transformer/model.onnx", "transformer_5b"); // 316 KB
const vae = await fixture("2b/vae_decoder/model.onnx", "vae"); // 556 KB

/** Deterministic values in [-1, 1). */
function ramp(count: number, seed = 1): Float32Array {
  return Float32Array.from({ length: count }, (_, i) => (((i + seed) * 37) % 101) / 50.5 - 1);
}

const textFeeds = () => ({
  input_ids: createTensor(
    "int64",
    [1, 16],
    BigInt64Array.from({ length: 16 }, (_, i) => BigInt(i)),
  ),
});
const transformerFeeds = (textEmbedDim = 32): Record<string, Tensor> => ({
  hidden_states: createTensor("float32", [2, 3, 4, 8, 8], ramp(2 * 3 * 4 * 8 * 8)),
  encoder_hidden_states: createTensor("float32", [2, 16, textEmbedDim], ramp(32 * textEmbedDim)),
  timestep: createTensor("int64", [2], new BigInt64Array([999n, 999n])),
});
const rotaryFeeds = () => ({
  image_rotary_emb_cos: createTensor("float32", [48, 16], ramp(48 * 16, 3)),
  image_rotary_emb_sin: createTensor("float32", [48, 16], ramp(48 * 16, 5)),
});
const vaeFeeds = (size = 8) => ({
  latent_sample: createTensor("float32", [1, 4, 3, size, size], ramp(4 * 3 * size * size)),
});

const offload = (model: ModelHandle, keepInRam = false) =>
  modelOffloadHook.wrap(model, { node: "offload", keepInRam });
const budget = (model: ModelHandle, maxMemoryBytes: number, node = "budget") =>
  budgetOffloadHook.wrap(model, { node, maxMemoryBytes });
const sequential = (model: ModelHandle, blocksPerGroup: number, prefetch = true) =>
  sequentialOffloadHook.wrap(model, { node: "parts", blocksPerGroup, prefetch });

function statsOf(manager: OnnxModelManager, name: string) {
  const stats = manager.stats().find((entry) => entry.name === name);
  assert.ok(stats, `no stats for "${name}"`);
  return stats;
}

Deno.test("sessions are created on first use, counted, and resident until close()", async () => {
  const manager = new OnnxModelManager();
  assert.deepEqual(manager.residentSessions(), []);
  const first = await manager.run(transformer, transformerFeeds());
  const second = await manager.run(transformer, transformerFeeds());
  assert.equal(maxAbsDiff(first.sample, second.sample), 0);
  await manager.run(vae, vaeFeeds());
  assert.deepEqual(manager.residentSessions().sort(), ["transformer", "vae"]);

  // Without an offload hook, releasing the last handle keeps the session.
  await manager.retain(transformer);
  await manager.release(transformer);
  assert.deepEqual(manager.residentSessions().sort(), ["transformer", "vae"]);

  const stats = statsOf(manager, "transformer");
  assert.equal(stats.policy, "resident");
  assert.equal(stats.loads, 1);
  assert.equal(stats.runs, 2);
  assert.equal(stats.provider, "cpu");
  assert.ok(stats.loadMs > 0 && stats.runMs > 0);

  await manager.close();
  assert.deepEqual(manager.residentSessions(), []);
  await manager.close(); // Closing twice is harmless.
  await assert.rejects(manager.run(transformer, transformerFeeds()), /closed/);
});

Deno.test("model_offload releases a session after the last release of its live handles", async () => {
  const manager = new OnnxModelManager();
  try {
    // The executor retains each node output: the loaded model and the hook's copy of it.
    const hooked = offload(transformer);
    await manager.retain(transformer);
    await manager.retain(hooked);
    await manager.run(hooked, transformerFeeds());
    assert.deepEqual(manager.residentSessions(), ["transformer"]);

    await manager.release(transformer);
    assert.deepEqual(manager.residentSessions(), ["transformer"], "a handle is still live");
    await manager.release(hooked);
    assert.deepEqual(manager.residentSessions(), []);

    // Used again (a later run of a cached graph, say): created again.
    await manager.run(hooked, transformerFeeds());
    assert.deepEqual(manager.residentSessions(), ["transformer"]);
    const stats = statsOf(manager, "transformer");
    assert.equal(stats.policy, "model_offload");
    assert.equal(stats.loads, 2);
    assert.equal(stats.runs, 2);
  } finally {
    await manager.close();
  }
});

Deno.test("keep_in_ram creates sessions from bytes in memory, external data included", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cogflow-manager-" });
  let manager = new OnnxModelManager();
  try {
    // The synthetic "small" transformer keeps its weights in model.onnx.data.
    const written = await writeSyntheticPipeline(dir, "small");
    assert.ok(written.transformer.dataPath);
    const model = await describeModel(written.transformer.path, {
      name: "transformer",
      session: { intraOpThreads: 1 },
    });
    const inRam = offload(model, true);
    const fromFile = await manager.run(model, transformerFeeds(64));
    await manager.close();

    manager = new OnnxModelManager();
    await manager.retain(inRam);
    const first = await manager.run(inRam, transformerFeeds(64));
    await manager.release(inRam);
    assert.deepEqual(manager.residentSessions(), []);
    // With the files gone, the session is created again from the bytes kept in memory.
    await Deno.remove(written.transformer.path);
    await Deno.remove(written.transformer.dataPath);
    await manager.retain(inRam);
    const second = await manager.run(inRam, transformerFeeds(64));
    await manager.release(inRam);
    assert.equal(maxAbsDiff(first.sample, fromFile.sample), 0);
    assert.equal(maxAbsDiff(second.sample, fromFile.sample), 0);
    assert.equal(statsOf(manager, "transformer").loads, 2);

    // Without keep_in_ram the file is read again, and its absence is an error naming it.
    const fromDisk = offload(model);
    await assert.rejects(
      manager.run(fromDisk, transformerFeeds(64)),
      (error) => error instanceof UserError && error.message.includes(written.transformer.path),
    );
  } finally {
    await manager.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("budget_offload evicts the least recently used sessions to stay within max_memory", async () => {
  const manager = new OnnxModelManager();
  const maxMemory = 600_000;
  const models = [textEncoder, transformer, transformer5b].map((model) => budget(model, maxMemory));
  const [text, transformer2b, transformer5bBudget] = models;
  const residentBytes = () =>
    models
      .filter((model) => manager.residentSessions().includes(model.name))
      .reduce((sum, model) => sum + model.bytes, 0);
  try {
    await manager.run(text, textFeeds());
    await manager.run(transformer2b, transformerFeeds());
    assert.deepEqual(manager.residentSessions(), ["text_encoder", "transformer"]);
    // The text encoder is used again, so the 2b transformer is now the least recently used.
    await manager.run(text, textFeeds());
    await manager.run(transformer5bBudget, { ...transformerFeeds(), ...rotaryFeeds() });
    assert.deepEqual(manager.residentSessions().sort(), ["text_encoder", "transformer_5b"]);
    assert.ok(residentBytes() <= maxMemory, `${residentBytes()} bytes resident`);

    await manager.run(transformer2b, transformerFeeds());
    assert.ok(residentBytes() <= maxMemory, `${residentBytes()} bytes resident`);
    assert.equal(statsOf(manager, "transformer").loads, 2);
    assert.equal(statsOf(manager, "text_encoder").loads, 1);
    assert.equal(statsOf(manager, "transformer").policy, "budget_offload");

    // Another budget node is another group: it evicts nothing of this one.
    await manager.run(budget(vae, 1_000_000, "other budget"), vaeFeeds());
    assert.equal(manager.residentSessions().length, 3);
  } finally {
    await manager.close();
  }
});

Deno.test("budget_offload refuses a model larger than the budget, suggesting sequential_offload", async () => {
  const manager = new OnnxModelManager();
  try {
    await assert.rejects(
      manager.run(budget(vae, 500_000), vaeFeeds()),
      (error) =>
        error instanceof UserError &&
        error.message.includes('"vae" needs about 543 KiB, more than max_memory 488 KiB') &&
        /sequential_offload/.test(error.message),
    );
    assert.deepEqual(manager.residentSessions(), []);
  } finally {
    await manager.close();
  }
});

for (const blocksPerGroup of [1, 2]) {
  Deno.test(`sequential_offload in groups of ${blocksPerGroup} gives the whole model's output`, async () => {
    const splitCacheDir = await Deno.makeTempDir({ prefix: "cogflow-split-" });
    const manager = new OnnxModelManager({ splitCacheDir });
    try {
      const inParts = sequential(transformer, blocksPerGroup);
      await manager.retain(inParts);
      const parts = await manager.run(inParts, transformerFeeds());
      // Resident now: only the first part, loaded ahead for the next call.
      assert.deepEqual(manager.residentSessions(), ["transformer[part_00_prologue]"]);
      await manager.run(inParts, transformerFeeds());

      const stats = statsOf(manager, "transformer");
      assert.equal(stats.policy, "sequential_offload");
      assert.equal(stats.parts, blocksPerGroup === 1 ? 4 : 3);
      assert.equal(stats.runs, 2);
      // Each part loaded once per call, the first one ahead of the second call; the first part of
      // a third call may also be counted already, depending on when its load ends.
      assert.ok(
        stats.loads === 2 * stats.parts! || stats.loads === 2 * stats.parts! + 1,
        `${stats.loads} loads of ${stats.parts} parts`,
      );
      assert.ok(stats.runMs > 0 && stats.loadMs > 0 && stats.waitMs! >= 0);

      // The last release of the handle unloads every part.
      await manager.release(inParts);
      assert.deepEqual(manager.residentSessions(), []);

      const whole = new OnnxModelManager();
      const expected = await whole.run(transformer, transformerFeeds()).finally(() =>
        whole.close()
      );
      const diff = maxAbsDiff(parts.sample, expected.sample);
      assert.ok(diff < 1e-5, `max abs diff ${diff}`);
    } finally {
      await manager.close();
      await Deno.remove(splitCacheDir, { recursive: true });
    }
  });
}

Deno.test("sequential_offload runs the VAE decoder in parts, its up blocks one at a time", async () => {
  const splitCacheDir = await Deno.makeTempDir({ prefix: "cogflow-split-" });
  const manager = new OnnxModelManager({ splitCacheDir });
  try {
    const inParts = sequential(vae, 1);
    await manager.retain(inParts);
    const parts = [await manager.run(inParts, vaeFeeds()), await manager.run(inParts, vaeFeeds(4))];
    const stats = statsOf(manager, "vae");
    assert.equal(stats.policy, "sequential_offload");
    // conv_in and the mid block, 4 up blocks, norm_out and conv_out.
    assert.equal(stats.parts, 6);
    assert.equal(stats.runs, 2);
    await manager.release(inParts);
    assert.deepEqual(manager.residentSessions(), []);

    const whole = new OnnxModelManager();
    try {
      for (const [index, size] of [8, 4].entries()) {
        const expected = await whole.run(vae, vaeFeeds(size));
        assert.deepEqual(parts[index].sample.shape, [1, 3, 9, 8 * size, 8 * size]);
        assert.equal(maxAbsDiff(parts[index].sample, expected.sample), 0);
      }
    } finally {
      await whole.close();
    }
  } finally {
    await manager.close();
    await Deno.remove(splitCacheDir, { recursive: true });
  }
});

Deno.test("sequential_offload on a model without blocks is an error naming the pattern", async () => {
  const splitCacheDir = await Deno.makeTempDir({ prefix: "cogflow-split-" });
  const manager = new OnnxModelManager({ splitCacheDir });
  try {
    // The T5 encoder's blocks are "encoder.block.N", which the default pattern does not match.
    await assert.rejects(
      manager.run(sequential(textEncoder, 1), textFeeds()),
      (error) =>
        error instanceof UserError && /Cannot split model "text_encoder"/.test(error.message) &&
        error.message.includes("(?:transformer_blocks|up_blocks)"),
    );
  } finally {
    await manager.close();
    await Deno.remove(splitCacheDir, { recursive: true });
  }
});

Deno.test("aborting a running model rejects at once, and the manager still closes", async () => {
  const manager = new OnnxModelManager();
  try {
    await manager.run(vae, vaeFeeds()); // The session exists: what is aborted is the run.
    const controller = new AbortController();
    const running = manager.run(vae, vaeFeeds(24), { signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const aborted = performance.now();
    controller.abort(new Error("Stopped by the test"));
    await assert.rejects(running, /Stopped by the test/);
    const waited = performance.now() - aborted;
    assert.ok(waited < 200, `rejected ${waited} ms after the abort`);
    assert.equal(statsOf(manager, "vae").runs, 1, "the aborted run did not finish");
    // The worker running it was stopped: the next call creates the session again.
    await manager.run(vae, vaeFeeds());
    assert.equal(statsOf(manager, "vae").loads, 2);
  } finally {
    await manager.close();
  }
  assert.deepEqual(manager.residentSessions(), []);
});

Deno.test("aborting while a session is created rejects without waiting for it", async () => {
  const manager = new OnnxModelManager();
  try {
    const controller = new AbortController();
    const running = manager.run(vae, vaeFeeds(), { signal: controller.signal });
    setTimeout(() => controller.abort(new Error("Stopped by the test")), 5);
    await assert.rejects(running, /Stopped by the test/);
    assert.equal(statsOf(manager, "vae").loads, 0, "rejected before the session was made");
  } finally {
    await manager.close();
  }
});

Deno.test("aborting a split model rejects at once, and the manager still closes", async () => {
  const splitCacheDir = await Deno.makeTempDir({ prefix: "cogflow-split-" });
  const manager = new OnnxModelManager({ splitCacheDir });
  try {
    const inParts = sequential(transformer, 1);
    const expected = await manager.run(inParts, transformerFeeds());
    const controller = new AbortController();
    const running = manager.run(inParts, transformerFeeds(), { signal: controller.signal });
    controller.abort(new Error("Stopped by the test"));
    await assert.rejects(running, /Stopped by the test/);
    // A later call works again, with new workers.
    const again = await manager.run(inParts, transformerFeeds());
    assert.equal(maxAbsDiff(again.sample, expected.sample), 0);
  } finally {
    await manager.close();
    await Deno.remove(splitCacheDir, { recursive: true });
  }
  assert.deepEqual(manager.residentSessions(), []);
});

Deno.test("a corrupt model file is a UserError naming its path", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cogflow-manager-" });
  const manager = new OnnxModelManager();
  try {
    const path = join(dir, "model.onnx");
    await Deno.writeFile(path, (await Deno.readFile(vae.path)).subarray(0, 10_000));
    await assert.rejects(
      manager.run({ ...vae, path }, vaeFeeds()),
      (error) =>
        error instanceof UserError &&
        error.message.startsWith(`Cannot load model "vae" from "${path}": `),
    );
    assert.deepEqual(manager.residentSessions(), []);
    // A failed model does not break the manager.
    await manager.run(vae, vaeFeeds());
  } finally {
    await manager.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("inputs the model rejects are a UserError naming the model", async () => {
  const manager = new OnnxModelManager();
  try {
    await assert.rejects(
      manager.run(vae, { latent_sample: createTensor("float32", [1, 4, 2, 8, 8]) }),
      (error) => error instanceof UserError && /Model "vae" failed to run: /.test(error.message),
    );
    await assert.rejects(manager.run({ path: "x" }, {}), /Expected a model handle/);
  } finally {
    await manager.close();
  }
});

Deno.test("the main thread stays responsive while a model runs in its worker", async () => {
  const manager = new OnnxModelManager();
  try {
    await manager.run(vae, vaeFeeds());
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const started = performance.now();
    try {
      await manager.run(vae, vaeFeeds(24));
    } finally {
      clearInterval(timer);
    }
    const ms = performance.now() - started;
    // A blocked thread would tick once at most, after the run.
    assert.ok(ticks >= 5, `${ticks} ticks in ${ms} ms`);
  } finally {
    await manager.close();
  }
});

Deno.test("hooks other than offload hooks keep the default policy", async () => {
  const manager = new OnnxModelManager();
  try {
    const sliced = vaeSlicingHook.wrap(vae, { node: "slicing" });
    await manager.retain(sliced);
    await manager.run(sliced, vaeFeeds());
    await manager.release(sliced);
    assert.deepEqual(manager.residentSessions(), ["vae"]);
    assert.equal(statsOf(manager, "vae").policy, "resident");
  } finally {
    await manager.close();
  }
});

Deno.test("creating and releasing a session again and again does not leak it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cogflow-manager-" });
  try {
    const options = { ...presets.small.transformer, hiddenSize: 256 }; // 7 MiB of weights
    const written = await writeTransformer(join(dir, "model.onnx"), options);
    const model = await describeModel(written.path, { name: "transformer" });
    const cycles = 20;
    const result = await measureSessionChurn(model, churnFeeds(options.textEmbedDim), {
      cycles,
      warmup: 3,
    });
    assert.equal(result.loads, cycles + 3);
    // The allocator keeps about one model's worth (bench/session_churn.ts measures the 5% target);
    // a session leaked per cycle would add 20 models' worth and more.
    const growth = (result.rssAfter - result.rssBefore) / model.bytes;
    assert.ok(growth < 5, `resident memory grew by ${growth.toFixed(1)} model sizes`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the VAE's sessions run without a memory pattern (its input shapes change), the others with one", () => {
  assert.equal(workerSessionOptions(vae).memoryPattern, false);
  assert.equal(workerSessionOptions(transformer).memoryPattern, undefined);
  assert.equal(workerSessionOptions(textEncoder).memoryPattern, undefined);
});
