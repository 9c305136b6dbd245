import assert from "node:assert/strict";
import {
  convolutionCacheValues,
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

Deno.test("a real-size 2b decode fits 24 GiB in tiles, as measured, and refuses whole frames", () => {
  const decode = (
    options: { latentFrames?: number; slicing?: boolean; tile?: { height: number; width: number } },
  ) =>
    estimateDecoding({
      latents: [1, options.latentFrames ?? 13, 16, 60, 90],
      temporalCompression: 4,
      spatialCompression: 8,
      blockOutChannels: [128, 256, 256, 512],
      layersPerBlock: 3,
      slicing: options.slicing ?? false,
      tile: options.tile,
    });
  const tile = { height: 240, width: 360 };
  const whole = decode({});
  const frames = whole.terms.find((item) => item.what.startsWith("the decoded frames"))!;
  assert.deepEqual(frames.shape, [1, 49, 3, 480, 720]);
  assert.equal(frames.bytes, 2 * float32Bytes([1, 49, 3, 480, 720]));
  const activations = whole.terms.find((item) => item.what === "the decoder's activations")!;
  assert.deepEqual(activations.shape, [1, 256, 9, 480, 720], "the first chunk's 9 frames");
  assert.ok(whole.bytes > 24 * GiB, "a whole 480x720 frame does not fit 24 GiB on the CPU");
  // bench/vae_video_decoder_memory.ts at a real 240x360 tile (CPU, float32): 6.33 GiB over the
  // start for one chunk of 3 latent frames, 9.57 GiB for 13 latent frames (6 chunks). The
  // estimate leans low, within 10%.
  const one = decode({ latentFrames: 3, tile });
  const thirteen = decode({ tile });
  const tileOnly = (estimate: typeof one) =>
    estimate.bytes - estimate.terms.find((t) => t.what.startsWith("the decoded frames"))!.bytes;
  for (const [estimate, measured] of [[one, 6.33], [thirteen, 9.57]] as const) {
    const gib = tileOnly(estimate) / GiB;
    assert.ok(gib <= measured && gib > 0.9 * measured, `${gib} GiB against ${measured}`);
  }
  assert.ok(thirteen.bytes < 24 * GiB);
  const batch = estimateDecoding({
    latents: [4, 13, 16, 60, 90],
    temporalCompression: 4,
    spatialCompression: 8,
    blockOutChannels: [128, 256, 256, 512],
    layersPerBlock: 3,
    slicing: true,
  });
  const sliced = batch.terms.find((item) => item.what === "the decoder's activations")!;
  assert.equal(sliced.shape[0], 1, "vae_slicing decodes one video at a time");
});

Deno.test("the decoder's convolution caches count 2 frames of every 3x3x3 convolution's input", () => {
  // conv_in 16, mid 4 x 512, up block 0 8 x 512, then 512 + 7 x 256 at 2x, 8 x 256 at 4x,
  // 256 + 7 x 128 at 8x, conv_out 128 at 8x; 2 frames of a 1 x 1 latent tile.
  const expected = 2 * (16 + 4 * 512 + 8 * 512 + 4 * (512 + 7 * 256) + 16 * 8 * 256 +
    64 * (256 + 7 * 128) + 64 * 128);
  assert.equal(convolutionCacheValues([128, 256, 256, 512], 3, 16, 1, 1), expected);
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
    blockOutChannels: [128, 256, 256, 512],
    layersPerBlock: 3,
    slicing: false,
  });
  const message = memoryProblem(estimate, [limit(24 * GiB)], {
    subject: "Decoding",
    hint: "lower height, width or num_frames",
  });
  assert.equal(
    message,
    "Decoding needs about 429 TiB at once: 234 TiB for the decoder's activations (6.5 x [1, 256, 9, 65536, 65536] float32, 6 chunks of latent frames) and 195 TiB for the rest, more than a test limit of 25769803776 bytes: lower height, width or num_frames",
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
