import assert from "node:assert/strict";
import { readSafetensors } from "./safetensors.ts";
import { AutoPrepack, type PrepackPolicy, SequentialRunner } from "./sequential_runner.ts";
import { splitModel, type SplitResult } from "./onnx_split.ts";
import { SessionWorker } from "./session_client.ts";
import type { CreatedSession, WorkerSessionOptions } from "./session_worker.ts";
import { maxAbsDiff, type Tensor } from "./tensor.ts";

const FIXTURES = new URL("../tests/fixtures/tiny-cogvideox/", import.meta.url).pathname;
const transformerPath = (variant: string) => `${FIXTURES}${variant}/transformer/model.onnx`;

const CPU: WorkerSessionOptions = {
  executionProviders: ["cpu"],
  fallbackToCpu: false,
  intraOpThreads: 1,
  interOpThreads: 1,
  graphOptimizationLevel: "all",
};

/** A session worker that records which sessions it holds, for checking what is resident. */
class CountingWorker extends SessionWorker {
  /** Sessions held by all counting workers together, and the most held at once. */
  static live = new Set<string>();
  static most = 0;

  override async create(
    session: string,
    model: string | Uint8Array,
    options: WorkerSessionOptions,
    externalData?: { path: string; data: Uint8Array }[],
  ): Promise<CreatedSession> {
    CountingWorker.live.add(session);
    CountingWorker.most = Math.max(CountingWorker.most, CountingWorker.live.size);
    return await super.create(session, model, options, externalData);
  }

  override async release(session: string): Promise<void> {
    await super.release(session);
    CountingWorker.live.delete(session);
  }

  static reset() {
    CountingWorker.live.clear();
    CountingWorker.most = 0;
  }
}

/** Concatenates two float32 tensors along the batch axis. */
function batchOf(a: Tensor, b: Tensor): Tensor {
  const data = new Float32Array(a.data.length + b.data.length);
  data.set(a.data as Float32Array);
  data.set(b.data as Float32Array, a.data.length);
  return { dtype: "float32", shape: [a.shape[0] + b.shape[0], ...a.shape.slice(1)], data };
}

/** The transformer inputs of a reference case's first step, as the pipeline builds them. */
async function firstStepFeeds(variant: "2b" | "5b"): Promise<Record<string, Tensor>> {
  const name = variant === "2b" ? "ddim-2b" : "dpm-5b-dynamic-cfg";
  const { tensors } = await readSafetensors(`${FIXTURES}cases/${name}/tensors.safetensors`);
  const get = (key: string) => tensors.get(key)!;
  const latents = get("latents_init");
  const timestep = (get("timesteps").data as BigInt64Array)[0];
  const feeds: Record<string, Tensor> = {
    hidden_states: batchOf(latents, latents),
    encoder_hidden_states: batchOf(get("negative_prompt_embeds"), get("prompt_embeds")),
    timestep: { dtype: "int64", shape: [2], data: new BigInt64Array([timestep, timestep]) },
  };
  if (variant === "5b") {
    feeds.image_rotary_emb_cos = get("image_rotary_emb_cos");
    feeds.image_rotary_emb_sin = get("image_rotary_emb_sin");
  }
  return feeds;
}

/** The whole transformer's output, from one session. */
async function runWhole(variant: string, feeds: Record<string, Tensor>): Promise<Tensor> {
  return (await runWholeCalls(transformerPath(variant), [feeds]))[0];
}

/** The whole model's `sample` for each of `calls`, from one session. */
async function runWholeCalls(path: string, calls: Record<string, Tensor>[]): Promise<Tensor[]> {
  const worker = new SessionWorker();
  try {
    await worker.create("whole", path, CPU);
    const samples = [];
    for (const feeds of calls) samples.push((await worker.run("whole", feeds)).outputs.sample);
    return samples;
  } finally {
    worker.stop();
  }
}

/** Splits the fixture transformers once per variant and group size, for all tests here. */
const cacheDir = await Deno.makeTempDir({ prefix: "cogflow-sequential-" });
globalThis.addEventListener("unload", () => Deno.removeSync(cacheDir, { recursive: true }));
const splits = new Map<string, Promise<SplitResult>>();
function split(variant: string, blocksPerGroup: number): Promise<SplitResult> {
  const key = `${variant}/${blocksPerGroup}`;
  if (!splits.has(key)) {
    splits.set(key, splitModel(transformerPath(variant), { cacheDir, blocksPerGroup }));
  }
  return splits.get(key)!;
}

function runnerFor(
  result: SplitResult,
  prefetch: boolean,
  prepack?: PrepackPolicy,
): SequentialRunner {
  const workers = prefetch ? [new CountingWorker(), new CountingWorker()] : [new CountingWorker()];
  return new SequentialRunner(
    { parts: result.parts, modelOutputs: result.plan.modelOutputs },
    workers,
    { session: CPU, name: "transformer", prefetch, prepack },
  );
}

async function stop(runner: SequentialRunner) {
  await runner.close();
  for (const worker of runner.workers) worker.stop();
}

for (const variant of ["2b", "5b"] as const) {
  for (const blocksPerGroup of [1, 2]) {
    for (const prefetch of [true, false]) {
      Deno.test(
        `the ${variant} transformer run in parts of ${blocksPerGroup} block(s)${
          prefetch ? " with prefetch" : ""
        } equals the whole model`,
        async () => {
          const feeds = await firstStepFeeds(variant);
          const whole = await runWhole(variant, feeds);
          const result = await split(variant, blocksPerGroup);
          CountingWorker.reset();
          const runner = runnerFor(result, prefetch);
          try {
            // Two calls, as a denoising loop makes: the second may start from a prefetched part.
            for (let call = 0; call < 2; call++) {
              const { sample } = await runner.run(feeds);
              const diff = maxAbsDiff(sample, whole);
              assert.ok(diff < 1e-5, `max abs diff ${diff} on call ${call}`);
            }
            // The running part, and with prefetch the next one loading: never more.
            assert.equal(CountingWorker.most, prefetch ? 2 : 1);
            // The caller's feeds are copied, never moved.
            assert.equal(feeds.hidden_states.data.length, 2 * 3 * 4 * 8 * 8);
          } finally {
            await stop(runner);
          }
          assert.equal(CountingWorker.live.size, 0);
        },
      );
    }
  }
}

/** Latents of one decoder call, [1, 4, 3, h, w], with deterministic values in [-1, 1). */
function vaeTile(height: number, width: number): Record<string, Tensor> {
  const count = 4 * 3 * height * width;
  const data = Float32Array.from(
    { length: count },
    (_, i) => (((i + height) * 37) % 101) / 50.5 - 1,
  );
  return { latent_sample: { dtype: "float32", shape: [1, 4, 3, height, width], data } };
}

Deno.test("the VAE decoder run in parts equals the whole decoder, call after call of tiles", async () => {
  const path = `${FIXTURES}2b/vae_decoder/model.onnx`;
  // The calls vae_tiling makes on ddim-2b-tiled's 8 x 8 latents (tiles of 4, cut to 2 at the
  // edges), then the untiled 8 x 8.
  const calls = [[4, 4], [4, 4], [4, 2], [4, 4], [4, 4], [4, 2], [2, 4], [2, 4], [2, 2], [8, 8]]
    .map(([height, width]) => vaeTile(height, width));
  const expected = await runWholeCalls(path, calls);
  const result = await splitModel(path, { cacheDir });
  assert.equal(result.parts.length, 6);
  CountingWorker.reset();
  const runner = runnerFor(result, true);
  try {
    for (const [index, feeds] of calls.entries()) {
      const { sample } = await runner.run(feeds);
      assert.deepEqual(sample.shape, expected[index].shape);
      const diff = maxAbsDiff(sample, expected[index]);
      assert.ok(diff < 1e-5, `call ${index}: max abs diff ${diff}`);
    }
    assert.equal(CountingWorker.most, 2);
  } finally {
    await stop(runner);
  }
  assert.ok(runner.stats.every((part) => part.runs === calls.length));
});

Deno.test("only the running part and the next one are resident", async () => {
  const result = await split("2b", 1);
  const feeds = await firstStepFeeds("2b");
  CountingWorker.reset();
  const runner = runnerFor(result, true);
  const seen: string[][] = [];
  const watch = setInterval(() => seen.push(runner.residentParts()), 1);
  try {
    assert.deepEqual(runner.residentParts(), []);
    await runner.run(feeds);
    // After a call, the first part is loaded ahead for the next one.
    assert.deepEqual(runner.residentParts(), [`transformer[${result.parts[0].name}]`]);
  } finally {
    clearInterval(watch);
    await stop(runner);
  }
  assert.ok(seen.every((parts) => parts.length <= 2), JSON.stringify(seen));
  assert.deepEqual(runner.residentParts(), []);
});

Deno.test("per-part statistics count loads, runs and time", async () => {
  const result = await split("2b", 1);
  const feeds = await firstStepFeeds("2b");
  const runner = runnerFor(result, false);
  try {
    await runner.run(feeds);
    await runner.run(feeds);
  } finally {
    await stop(runner);
  }
  assert.deepEqual(
    runner.stats.map((part) => part.name),
    result.parts.map((part) => part.name),
  );
  for (const part of runner.stats) {
    // Without prefetch every part is loaded for each call and released after it.
    assert.equal(part.loads, 2, part.name);
    assert.equal(part.runs, 2, part.name);
    assert.ok(part.loadMs > 0 && part.runMs > 0, part.name);
    assert.ok(part.waitMs >= 0 && part.residentBytes >= 0, part.name);
  }
});

Deno.test("an aborted signal stops a split model between parts", async () => {
  const result = await split("2b", 1);
  const feeds = await firstStepFeeds("2b");
  const runner = runnerFor(result, true);
  const controller = new AbortController();
  try {
    controller.abort(new Error("Stopped by the test"));
    await assert.rejects(runner.run(feeds, controller.signal), /Stopped by the test/);
    assert.equal(runner.stats.reduce((runs, part) => runs + part.runs, 0), 0);
  } finally {
    await stop(runner);
  }
});

Deno.test("a part that cannot load fails the call that needs it", async () => {
  const result = await split("2b", 1);
  const parts = result.parts.map((part, index) =>
    index === 1 ? { ...part, path: `${cacheDir}/missing.onnx` } : part
  );
  const runner = new SequentialRunner(
    { parts, modelOutputs: result.plan.modelOutputs },
    [new SessionWorker()],
    { session: CPU, name: "transformer", prefetch: false },
  );
  try {
    await assert.rejects(runner.run(await firstStepFeeds("2b")), /missing\.onnx/);
  } finally {
    await stop(runner);
  }
});

Deno.test("a runner needs parts, and two workers to prefetch", () => {
  const worker = new SessionWorker();
  try {
    assert.throws(
      () =>
        new SequentialRunner({ parts: [], modelOutputs: [] }, [worker], {
          session: CPU,
          name: "t",
          prefetch: false,
        }),
      /at least one part/,
    );
  } finally {
    worker.stop();
  }
});

Deno.test("parts load packed or unpacked as the prepack policy says, with the same results", async () => {
  const result = await split("2b", 1);
  const feeds = await firstStepFeeds("2b");
  const whole = await runWhole("2b", feeds);
  for (const policy of ["always", "never", "auto"] as const) {
    const runner = runnerFor(result, true, policy);
    try {
      for (let call = 0; call < 4; call++) {
        const diff = maxAbsDiff((await runner.run(feeds)).sample, whole);
        assert.ok(diff < 1e-5, `${policy}: max abs diff ${diff} on call ${call}`);
      }
    } finally {
      await stop(runner);
    }
    const packed = runner.stats.reduce((sum, part) => sum + part.packedLoads, 0);
    const loads = runner.stats.reduce((sum, part) => sum + part.loads, 0);
    // The fixture's blocks run for well under a millisecond: auto never tries packing them.
    assert.equal(packed, policy === "always" ? loads : 0, policy);
    assert.equal(runner.prepack.packed, policy === "always");
  }
});

/** Block part statistics for AutoPrepack: `runMs` per call, 150 MB of weights. */
function blocks(runMs: number, runs: number) {
  return [0, 1].map(() => ({ runs, runMs: runMs * runs, weightBytes: 150e6 }));
}

Deno.test("auto prepacking keeps packed loads when a trial call is faster", () => {
  const auto = new AutoPrepack();
  assert.equal(auto.next(blocks(0, 0)), false);
  auto.finished(5000);
  assert.equal(auto.next(blocks(600, 1)), false);
  auto.finished(4000);
  // Blocks run 600 ms, longer than packing 150 MB could take: call 3 tries packed loads.
  assert.equal(auto.next(blocks(600, 2)), true);
  assert.equal(auto.state.settled, false);
  auto.finished(3500);
  assert.equal(auto.next(blocks(550, 3)), true);
  assert.deepEqual(auto.state, {
    packed: true,
    settled: true,
    why: "a call took 3500 ms with packed parts, 4000 ms unpacked",
  });
  auto.finished(3500);
  assert.equal(auto.next(blocks(550, 4)), true);
});

Deno.test("auto prepacking goes back to unpacked loads when the trial is not faster", () => {
  const auto = new AutoPrepack();
  for (const wall of [5000, 4000]) {
    auto.next(blocks(600, 1));
    auto.finished(wall);
  }
  assert.equal(auto.next(blocks(600, 2)), true);
  auto.finished(3900);
  assert.equal(auto.next(blocks(650, 3)), false);
  assert.equal(auto.state.settled, true);
  auto.finished(4000);
  assert.equal(auto.next(blocks(600, 4)), false);
});

Deno.test("auto prepacking skips the trial when the prefetch cannot hide packing", () => {
  const auto = new AutoPrepack();
  for (const wall of [1200, 800]) {
    auto.next(blocks(80, 1));
    auto.finished(wall);
  }
  // 80 ms of compute cannot hide packing 150 MB (150 ms at the optimistic rate).
  assert.equal(auto.next(blocks(80, 2)), false);
  assert.deepEqual(auto.state, {
    packed: false,
    settled: true,
    why: "a block runs 80 ms, less than packing it could take (150 ms)",
  });
});
