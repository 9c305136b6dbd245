import assert from "node:assert/strict";
import {
  estimateDecoding,
  estimateSampling,
  float32Bytes,
  machineMemory,
  type MemoryLimit,
  memoryProblem,
  sequenceLength,
  transformerGeometryOf,
} from "./run_estimate.ts";
import { join } from "node:path";
import { withTempDir } from "../tests/testing.ts";

const GiB = 1024 ** 3;

/** CogVideoX-2b's transformer config (the keys the estimate reads). */
const COGVIDEOX_2B = transformerGeometryOf({
  num_attention_heads: 30,
  attention_head_dim: 64,
  patch_size: 2,
  patch_size_t: null,
})!;

/** A 480 x 720 x 49 video of CogVideoX-2b: 13 latent frames of 60 x 90, 16 channels. */
const LATENTS_480P = [1, 13, 16, 60, 90];

function limit(bytes: number): MemoryLimit {
  return { bytes, what: `a test limit of ${bytes} bytes` };
}

Deno.test("the transformer's dimensions come from its config.json", () => {
  assert.deepEqual(COGVIDEOX_2B, { heads: 30, headDim: 64, patchSize: 2, patchSizeT: 1 });
  assert.equal(transformerGeometryOf({ num_attention_heads: 30 }), undefined);
  // CogVideoX-2b at 480 x 720 x 49: 13 x 30 x 45 video tokens after the text's 226.
  assert.equal(sequenceLength(LATENTS_480P, 226, COGVIDEOX_2B), 226 + 17550);
});

Deno.test("a real-size 2b step with CFG: unfused attention scores dominate, fused attention fits 24 GiB", () => {
  const shapes = { latents: LATENTS_480P, textTokens: 226, guidance: true };
  const unfused = estimateSampling({ ...shapes, transformer: COGVIDEOX_2B, attention: "unfused" });
  const scores = unfused.terms[0];
  assert.equal(scores.what, "the attention scores");
  assert.deepEqual(scores.shape, [2, 30, 17776, 17776]);
  // 2 * 30 * 17776^2 * 4 bytes: 70.6 GiB, beyond a 24 GiB machine (diffusers needs SDPA too).
  assert.ok(scores.bytes / GiB > 70 && scores.bytes / GiB < 71, `${scores.bytes / GiB} GiB`);
  assert.ok(unfused.bytes / GiB > 71 && unfused.bytes / GiB < 73, `${unfused.bytes / GiB} GiB`);

  const fused = estimateSampling({ ...shapes, transformer: COGVIDEOX_2B, attention: "fused" });
  // Hidden states, Q, K and V: 4 x [2, 17776, 1920] float32 = 1.02 GiB, plus 18 MiB of latents.
  assert.ok(fused.bytes / GiB > 1 && fused.bytes / GiB < 1.1, `${fused.bytes / GiB} GiB`);
  assert.equal(
    memoryProblem(fused, [limit(24 * GiB)], { subject: "Sampling", hint: "" }),
    undefined,
  );
});

Deno.test("a real-size 2b decode fits 24 GiB, and tiles and slices lower the activations", () => {
  const decode = (options: { slicing?: boolean; tile?: { height: number; width: number } }) =>
    estimateDecoding({
      latents: LATENTS_480P,
      temporalCompression: 4,
      spatialCompression: 8,
      decoderChannels: 128,
      slicing: options.slicing ?? false,
      tile: options.tile,
    });
  const whole = decode({});
  const frames = whole.terms.find((item) => item.what.startsWith("the decoded frames"))!;
  assert.deepEqual(frames.shape, [1, 49, 3, 480, 720]);
  assert.equal(frames.bytes, 2 * float32Bytes([1, 49, 3, 480, 720]));
  // Activations 2 x [1, 128, 8, 480, 720] (2.64 GiB) and the frames twice (0.38 GiB).
  assert.ok(whole.bytes / GiB > 2.9 && whole.bytes / GiB < 3.1, `${whole.bytes / GiB} GiB`);
  const tiled = decode({ tile: { height: 240, width: 360 } });
  assert.ok(tiled.bytes < whole.bytes / 2, "Tiles hold a quarter of the activations");
  const batch = estimateDecoding({
    latents: [4, 13, 16, 60, 90],
    temporalCompression: 4,
    spatialCompression: 8,
    decoderChannels: 128,
    slicing: true,
  });
  const activations = batch.terms.find((item) => item.what === "the decoder's activations")!;
  assert.equal(activations.shape[0], 1, "vae_slicing decodes one video at a time");
});

Deno.test("keeping every step's latents counts steps x latents", () => {
  const estimate = estimateSampling({
    latents: [1, 3, 4, 8, 8],
    textTokens: 16,
    guidance: false,
    transformer: COGVIDEOX_2B,
    attention: "fused",
    keptSteps: 1000,
  });
  const kept = estimate.terms.find((item) => item.what === "the kept step latents")!;
  assert.deepEqual(kept.shape, [1000, 1, 3, 4, 8, 8]);
});

Deno.test("a refusal names the total, the largest term with its shape, and the limit", () => {
  const estimate = estimateDecoding({
    latents: [1, 13, 16, 8192, 8192],
    temporalCompression: 4,
    spatialCompression: 8,
    decoderChannels: 128,
    slicing: false,
  });
  const message = memoryProblem(estimate, [limit(24 * GiB)], {
    subject: "Decoding",
    hint: "lower height, width or num_frames",
  });
  assert.equal(
    message,
    "Decoding needs about 36.6 TiB at once: 32.0 TiB for the decoder's activations (2 x [1, 128, 8, 65536, 65536] float32, 8 frames at a time) and 4.59 TiB for the rest, more than a test limit of 25769803776 bytes: lower height, width or num_frames",
  );
});

Deno.test("the machine's memory is read where permitted, and skipped without an error elsewhere", () => {
  const machine = machineMemory();
  const sys = Deno.permissions.querySync({ name: "sys", kind: "systemMemoryInfo" }).state;
  if (sys === "granted") {
    assert.ok(machine && machine.bytes === Deno.systemMemoryInfo().total);
    assert.match(machine.what, /^this machine's .* of memory$/);
  }
});

Deno.test("without the sys permission (the CLI's child) the machine's memory is skipped, not an error", async () => {
  const script = `import { machineMemory } from ${
    JSON.stringify(new URL("./run_estimate.ts", import.meta.url).href)
  };
console.log(JSON.stringify(machineMemory() ?? null));`;
  await withTempDir(async (dir) => {
    const path = join(dir, "machine.ts");
    await Deno.writeTextFile(path, script);
    const run = async (flags: string[]) => {
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-prompt", ...flags, path],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
      return JSON.parse(new TextDecoder().decode(output.stdout));
    };
    // No sys permission and /proc not readable: no limit, no error.
    assert.equal(await run([]), null);
    assert.ok((await run(["--allow-sys=systemMemoryInfo"])).bytes > 0);
  });
});

Deno.test("a real-size 2b CPU step with CFG: 1024-row query chunks fit 24 GiB, whole attention does not", () => {
  const shapes = {
    latents: LATENTS_480P,
    textTokens: 226,
    guidance: true,
    transformer: COGVIDEOX_2B,
    attention: "unfused" as const,
  };
  const chunked = estimateSampling({ ...shapes, attentionQueryChunk: 1024 });
  const scores = chunked.terms[0];
  assert.equal(scores.what, "the attention scores");
  assert.deepEqual(scores.shape, [2, 30, 1024, 17776]);
  assert.match(scores.note!, /1024 query rows at a time/);
  // 2 * 30 * 1024 * 17776 * 4 bytes: 4.07 GiB, plus 1.02 GiB of hidden states, Q, K and V.
  assert.ok(chunked.bytes / GiB > 5 && chunked.bytes / GiB < 5.2, `${chunked.bytes / GiB} GiB`);
  const fits = (estimate: typeof chunked) =>
    memoryProblem(estimate, [limit(24 * GiB)], { subject: "Sampling", hint: "" }) === undefined;
  assert.ok(fits(chunked));
  assert.ok(!fits(estimateSampling(shapes)));
  // A chunk longer than the sequence is the whole sequence.
  const short = estimateSampling({
    ...shapes,
    latents: [1, 1, 16, 8, 8],
    attentionQueryChunk: 1024,
  });
  assert.deepEqual(short.terms.find((item) => item.what === "the attention scores")!.shape, [
    2,
    30,
    242,
    242,
  ]);
});
