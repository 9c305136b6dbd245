import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { writeTransformer } from "../tests/synthetic_models.ts";
import { SessionError, SessionWorker, WorkerStopped } from "./session_client.ts";
import type { WorkerSessionOptions } from "./session_worker.ts";
import { createTensor, maxAbsDiff, type Tensor } from "./tensor.ts";

const FIXTURES = new URL("../tests/fixtures/tiny-cogvideox/", import.meta.url).pathname;
const TRANSFORMER_2B = `${FIXTURES}2b/transformer/model.onnx`;
const VAE_DECODER = `${FIXTURES}2b/vae_decoder/model.onnx`;

const CPU: WorkerSessionOptions = {
  executionProviders: ["cpu"],
  fallbackToCpu: false,
  intraOpThreads: 1,
  interOpThreads: 1,
  graphOptimizationLevel: "all",
};

/** Deterministic values in [-1, 1). */
function ramp(count: number, seed = 1): Float32Array {
  return Float32Array.from({ length: count }, (_, i) => (((i + seed) * 37) % 101) / 50.5 - 1);
}

/** One denoising call of the 2b transformer, batch 2 (unconditional and conditional rows). */
function transformerFeeds(textEmbedDim = 32): Record<string, Tensor> {
  return {
    hidden_states: createTensor("float32", [2, 3, 4, 8, 8], ramp(2 * 3 * 4 * 8 * 8)),
    encoder_hidden_states: createTensor(
      "float32",
      [2, 16, textEmbedDim],
      ramp(2 * 16 * textEmbedDim, 7),
    ),
    timestep: createTensor("int64", [2], new BigInt64Array([999n, 999n])),
  };
}

Deno.test("a session worker creates a session from a file, runs it and releases it", async () => {
  const worker = new SessionWorker();
  try {
    const created = await worker.create("transformer", TRANSFORMER_2B, CPU);
    assert.deepEqual(created.inputNames, ["hidden_states", "encoder_hidden_states", "timestep"]);
    assert.deepEqual(created.outputNames, ["sample"]);
    assert.equal(created.provider, "cpu");
    assert.equal(created.fallbackReason, undefined);
    assert.ok(created.createMs > 0);

    const { outputs, runMs } = await worker.run("transformer", transformerFeeds());
    assert.deepEqual(Object.keys(outputs), ["sample"]);
    assert.equal(outputs.sample.dtype, "float32");
    assert.deepEqual(outputs.sample.shape, [2, 3, 4, 8, 8]);
    assert.ok(runMs >= 0);

    await worker.release("transformer");
    await assert.rejects(
      worker.run("transformer", transformerFeeds()),
      (error) => error instanceof SessionError && /No session "transformer"/.test(error.message),
    );
  } finally {
    worker.stop();
  }
});

Deno.test("one worker holds several sessions by name", async () => {
  const worker = new SessionWorker();
  try {
    await worker.create("transformer", TRANSFORMER_2B, CPU);
    await worker.create("vae", VAE_DECODER, CPU);
    const [transformer, vae] = await Promise.all([
      worker.run("transformer", transformerFeeds()),
      worker.run("vae", {
        latent_sample: createTensor("float32", [1, 4, 3, 2, 2], ramp(48)),
      }),
    ]);
    assert.deepEqual(transformer.outputs.sample.shape, [2, 3, 4, 8, 8]);
    assert.deepEqual(vae.outputs.sample.shape, [1, 3, 9, 16, 16]);
  } finally {
    worker.stop();
  }
});

Deno.test("sessions can be created from bytes in memory, external data included", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cogflow-session-" });
  const worker = new SessionWorker();
  try {
    // A transformer with its weights in model.onnx.data, as large exports have.
    const written = await writeTransformer(join(dir, "model.onnx"), {
      hiddenSize: 32,
      numAttentionHeads: 2,
      numLayers: 1,
      mlpRatio: 2,
      inChannels: 4,
      patchSize: 2,
      textSeqLength: 16,
      textEmbedDim: 16,
      timeEmbedDim: 8,
      sampleFrames: 9,
      sampleHeight: 8,
      sampleWidth: 8,
    });
    assert.ok(written.dataPath && written.dataBytes > 0);
    const feeds = transformerFeeds(16);
    await worker.create("from file", written.path, CPU);
    const fromFile = await worker.run("from file", feeds);

    const model = await Deno.readFile(written.path);
    const data = await Deno.readFile(written.dataPath);
    // The files may go: the session is made from the bytes alone.
    await Deno.remove(dirname(written.path), { recursive: true });
    await worker.create("from memory", model, CPU, [{ path: "model.onnx.data", data }]);
    const fromMemory = await worker.run("from memory", feeds);
    assert.equal(maxAbsDiff(fromMemory.outputs.sample, fromFile.outputs.sample), 0);
  } finally {
    worker.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("inputs are copied to the worker unless listed as transferable", async () => {
  const worker = new SessionWorker();
  try {
    await worker.create("transformer", TRANSFORMER_2B, CPU);
    const kept = transformerFeeds();
    await worker.run("transformer", kept);
    assert.equal(kept.hidden_states.data.length, 2 * 3 * 4 * 8 * 8);

    const moved = transformerFeeds();
    await worker.run("transformer", moved, { transferable: new Set(["hidden_states"]) });
    // Moved: the caller's array is detached, the others are intact.
    assert.equal(moved.hidden_states.data.length, 0);
    assert.equal(moved.encoder_hidden_states.data.length, 2 * 16 * 32);
  } finally {
    worker.stop();
  }
});

Deno.test("ONNX Runtime errors come back as SessionErrors with its message", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cogflow-session-" });
  const worker = new SessionWorker();
  try {
    const corrupt = join(dir, "corrupt.onnx");
    await Deno.writeFile(corrupt, (await Deno.readFile(TRANSFORMER_2B)).subarray(0, 5000));
    await assert.rejects(worker.create("corrupt", corrupt, CPU), SessionError);

    await worker.create("transformer", TRANSFORMER_2B, CPU);
    const feeds = transformerFeeds();
    feeds.hidden_states = createTensor("float32", [2, 3, 4, 6, 6]);
    await assert.rejects(
      worker.run("transformer", feeds),
      (error) => error instanceof SessionError && /hidden_states/.test(error.message),
    );
    // The worker is still usable after a failed call.
    const { outputs } = await worker.run("transformer", transformerFeeds());
    assert.deepEqual(outputs.sample.shape, [2, 3, 4, 8, 8]);
  } finally {
    worker.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("stop() fails pending and later calls with WorkerStopped", async () => {
  const worker = new SessionWorker();
  await worker.create("vae", VAE_DECODER, CPU);
  const pending = worker.run("vae", {
    latent_sample: createTensor("float32", [1, 4, 3, 16, 16], ramp(4 * 3 * 16 * 16)),
  });
  worker.stop();
  assert.equal(worker.stopped, true);
  await assert.rejects(pending, WorkerStopped);
  await assert.rejects(worker.release("vae"), WorkerStopped);
  worker.stop(); // Stopping twice is harmless.
});

Deno.test("a session worker refuses options and files that cogflow does not allow", async () => {
  const worker = new SessionWorker();
  try {
    const options = { ...CPU, optimizedModelFilePath: "/tmp/optimized.onnx" };
    await assert.rejects(
      worker.create("vae", VAE_DECODER, options),
      (error) =>
        error instanceof SessionError &&
        /^Unknown session option "optimizedModelFilePath"/.test(error.message),
    );
    await assert.rejects(
      worker.create("vae", `${FIXTURES}missing.onnx`, CPU),
      (error) =>
        error instanceof SessionError && /^Model file ".*" does not exist/.test(error.message),
    );
    // Still usable.
    await worker.create("vae", VAE_DECODER, CPU);
  } finally {
    worker.stop();
  }
});

Deno.test("confined, this thread and Workers it starts cannot load ONNX Runtime, the host's workers can", async () => {
  // In a process of its own: the revoke is for good.
  const load = `import("npm:onnxruntime-node@1.29.0").then(() => "loaded", (error) => error.name)`;
  const script = `
    import { confineOnnxRuntime, SessionWorker } from "${new URL(
    "./session_client.ts",
    import.meta.url,
  )}";
    confineOnnxRuntime();
    const result = { main: await ${load} };
    const late = new Worker(
      "data:application/javascript," + encodeURIComponent(${
    JSON.stringify(`${load}.then(postMessage)`)
  }),
      { type: "module" },
    );
    result.late = await new Promise((resolve) => late.onmessage = (event) => resolve(event.data));
    // Workers one after another and two at once (the host's spare and a fresh one).
    const latents = { dtype: "float32", shape: [1, 4, 3, 2, 2], data: new Float32Array(48) };
    const shapes = async (workers) => {
      await Promise.all(workers.map((worker) => worker.create("vae", ${
    JSON.stringify(VAE_DECODER)
  }, ${JSON.stringify(CPU)})));
      const runs = await Promise.all(workers.map((worker) => worker.run("vae", { latent_sample: latents })));
      for (const worker of workers) worker.stop();
      return runs.map((run) => run.outputs.sample.shape);
    };
    result.shapes = [
      ...await shapes([new SessionWorker()]),
      ...await shapes([new SessionWorker(), new SessionWorker()]),
    ];
    console.log(JSON.stringify(result));
    // The host runs until the process exits.
    Deno.exit(0);
  `;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--unstable-worker-options", script],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  assert.equal(code, 0, decoder.decode(stderr));
  assert.deepEqual(JSON.parse(decoder.decode(stdout)), {
    main: "NotCapable",
    late: "NotCapable",
    shapes: [[1, 3, 9, 16, 16], [1, 3, 9, 16, 16], [1, 3, 9, 16, 16]],
  });
});

Deno.test("feeds passed as unchanged are kept by the worker: the same array is not sent again, another one is", async () => {
  const worker = new SessionWorker();
  try {
    await worker.create("transformer", TRANSFORMER_2B, CPU);
    const feeds = transformerFeeds();
    const unchanged = new Set(["encoder_hidden_states"]);
    const first = await worker.run("transformer", feeds, { unchanged });
    // Changing the kept array (which callers must not do) shows that it was not sent again.
    const text = feeds.encoder_hidden_states.data as Float32Array;
    const kept = text.slice();
    text.fill(0.5);
    const again = await worker.run("transformer", feeds, { unchanged });
    assert.deepEqual(again.outputs.sample.data, first.outputs.sample.data);
    // Another array is sent and replaces the kept one; without `unchanged`, it is sent as usual.
    const changed = {
      ...feeds,
      encoder_hidden_states: createTensor(
        "float32",
        feeds.encoder_hidden_states.shape,
        text.slice(),
      ),
    };
    const replaced = await worker.run("transformer", changed, { unchanged });
    const plain = await worker.run("transformer", changed);
    assert.deepEqual(replaced.outputs.sample.data, plain.outputs.sample.data);
    assert.notDeepEqual(replaced.outputs.sample.data, first.outputs.sample.data);
    // A new session under the name forgets what was kept.
    await worker.create("transformer", TRANSFORMER_2B, CPU);
    text.set(kept);
    const fresh = await worker.run("transformer", feeds, { unchanged });
    assert.deepEqual(fresh.outputs.sample.data, first.outputs.sample.data);
  } finally {
    worker.stop();
  }
});
