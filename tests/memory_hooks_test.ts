/**
 * Memory hooks end to end: `cogflow run` on workflows/tiny.yaml (the tiny fixture models) in a
 * temporary folder, with every offload mode and VAE hook. Hooks change when sessions exist and how
 * the VAE is called, never the video.
 */

import assert from "node:assert/strict";
import { readSafetensors } from "../runtime/safetensors.ts";
import { maxAbsDiff, type Tensor } from "../runtime/tensor.ts";

const REPO = new URL("../", import.meta.url).pathname;
const TINY = `${REPO}workflows/tiny.yaml`;
const WORKFLOWS = `${REPO}tests/workflows/`;
const TILED_CASE = `${REPO}tests/fixtures/tiny-cogvideox/cases/ddim-2b-tiled/tensors.safetensors`;

// One folder for the whole file: outputs, and the split cache of sequential offload (.cache/split).
const cwd = await Deno.makeTempDir({ prefix: "cogflow-memory-hooks-" });
globalThis.addEventListener("unload", () => Deno.removeSync(cwd, { recursive: true }));

interface CliRun {
  code: number;
  stderr: string;
}

// The machine may be shared: at most two CLI processes at a time.
let running = 0;
const waiting: (() => void)[] = [];

/** Runs `cogflow <args>` in the temporary folder. */
async function cogflow(args: string[]): Promise<CliRun> {
  while (running >= 2) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", `${REPO}deno.json`, `${REPO}mod.ts`, ...args],
      cwd,
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: output.code, stderr: new TextDecoder().decode(output.stderr) };
  } finally {
    running--;
    waiting.shift()?.();
  }
}

/** A model's line of the memory report: `model vae (model_offload): 9 loads in ..., 9 runs in ...`. */
interface ModelLine {
  policy: string;
  loads: number;
  runs: number;
}

interface VideoRun {
  frames: Tensor<"float32">;
  models: Map<string, ModelLine>;
}

const videos = new Map<string, Promise<VideoRun>>();

/**
 * Runs a workflow with `--set` params and returns its saved `frames` and the memory report's model
 * lines. Runs with the same arguments are shared by the tests of this file.
 */
function video(
  params: Record<string, string | number | boolean>,
  workflow = TINY,
  extra: string[] = [],
): Promise<VideoRun> {
  const key = JSON.stringify([workflow, params, extra]);
  let run = videos.get(key);
  if (!run) {
    const out = `${cwd}/frames-${videos.size}.safetensors`;
    const sets = Object.entries({ ...params, tensors_out: out })
      .flatMap(([name, value]) => ["--set", `${name}=${value}`]);
    const only = workflow === TINY ? ["--only", "save_frames"] : [];
    run = cogflow(["run", workflow, ...sets, ...only, ...extra, "--quiet", "--memory-report"])
      .then(async ({ code, stderr }) => {
        assert.equal(code, 0, `cogflow run ${key} failed:\n${stderr}`);
        const { tensors } = await readSafetensors(out);
        const models = new Map<string, ModelLine>();
        for (
          const match of stderr.matchAll(/^model (\S+) \((\w+)\): (\d+) loads? .*?(\d+) runs? /gm)
        ) {
          models.set(match[1], {
            policy: match[2],
            loads: Number(match[3]),
            runs: Number(match[4]),
          });
        }
        return { frames: tensors.get("frames") as Tensor<"float32">, models };
      });
    videos.set(key, run);
  }
  return run;
}

/** Whether two float32 tensors have the same shape and the same bits. */
function bitIdentical(a: Tensor, b: Tensor): boolean {
  if (a.shape.join() !== b.shape.join()) return false;
  const left = new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const right = new Uint8Array(b.data.buffer, b.data.byteOffset, b.data.byteLength);
  return left.length === right.length && left.every((byte, i) => byte === right[i]);
}

// ddim-2b-tiled's tiling: 32-pixel tiles, overlap 1/4 (3 x 3 tiles on the 8 x 8 latent).
const TILING_32 = {
  vae_tiling: true,
  tile_sample_min_height: 32,
  tile_sample_min_width: 32,
  tile_overlap_factor_height: 0.25,
  tile_overlap_factor_width: 0.25,
};

const OFFLOAD_MODES: Record<string, Record<string, string | number>> = {
  "none": { offload: "none" },
  "model": { offload: "model" },
  "sequential, 1 block per group": { offload: "sequential", blocks_per_group: 1 },
  "sequential, 2 blocks per group": { offload: "sequential", blocks_per_group: 2 },
  // 600 KB holds the VAE (556 KB) alone: every other model must be out when it loads.
  "budget 600KB": { offload: "budget", max_memory: "600KB" },
  "budget 8GiB": { offload: "budget", max_memory: "8GiB" },
};

const VAE_HOOKS: Record<string, Record<string, string | number | boolean>> = {
  "no VAE hook": {},
  "vae_slicing": { vae_slicing: true },
  "vae_tiling": TILING_32,
  "vae_slicing and vae_tiling": { vae_slicing: true, ...TILING_32 },
};

/** The policy each model of tiny.yaml gets in an offload mode. */
function expectedPolicies(offload: string | number): Record<string, string> {
  switch (offload) {
    case "model":
      return { text_encoder: "model_offload", transformer: "model_offload", vae: "model_offload" };
    case "sequential":
      return {
        text_encoder: "model_offload",
        transformer: "sequential_offload",
        vae: "sequential_offload",
      };
    case "budget":
      return {
        text_encoder: "budget_offload",
        transformer: "budget_offload",
        vae: "budget_offload",
      };
    default:
      return { text_encoder: "resident", transformer: "resident", vae: "resident" };
  }
}

Deno.test("frames are bit-identical whatever the offload mode and VAE hooks", async () => {
  const plain = video({});
  const tiled = video(TILING_32);
  const runs = [];
  for (const [modeName, mode] of Object.entries(OFFLOAD_MODES)) {
    for (const [hooksName, hooks] of Object.entries(VAE_HOOKS)) {
      runs.push({ modeName, mode, hooksName, hooks, run: video({ ...mode, ...hooks }) });
    }
  }
  for (const { modeName, mode, hooksName, hooks, run } of runs) {
    const { frames, models } = await run;
    const label = `offload ${modeName} with ${hooksName}`;
    assert.deepEqual(frames.shape, [1, 9, 3, 64, 64], label);
    const expected = hooks.vae_tiling ? await tiled : await plain;
    assert.ok(bitIdentical(frames, expected.frames), `${label}: frames differ`);

    // The hooks did apply: each model ran under its policy, the VAE in 9 tiles when tiled.
    const policies = Object.fromEntries([...models].map(([name, line]) => [name, line.policy]));
    assert.deepEqual(policies, expectedPolicies(mode.offload), label);
    assert.equal(models.get("vae")!.runs, hooks.vae_tiling ? 9 : 1, label);
    if (mode.offload === "sequential") {
      // Every part is loaded for each of the 4 denoising calls, and each of the VAE's 6 parts
      // (its 4 up blocks, one per part, whatever blocks_per_group says) for each VAE call.
      const parts = mode.blocks_per_group === 1 ? 4 : 3;
      assert.ok(models.get("transformer")!.loads >= 4 * parts, label);
      assert.ok(models.get("vae")!.loads >= 6 * models.get("vae")!.runs, label);
    } else {
      assert.equal(models.get("transformer")!.loads, 1, label);
    }
  }
});

Deno.test("tiled and untiled frames match diffusers' ddim-2b-tiled reference", async () => {
  const { tensors } = await readSafetensors(TILED_CASE);
  const reference = tensors.get("frames")!;
  const referenceUntiled = tensors.get("frames_untiled")!;
  assert.deepEqual(reference.shape, [9, 3, 64, 64]);
  for (const mode of [OFFLOAD_MODES["none"], OFFLOAD_MODES["sequential, 1 block per group"]]) {
    const tiled = await video({ ...mode, ...TILING_32 });
    const untiled = await video(mode);
    // The saved frames have a batch axis of 1; the reference of a single video has none.
    assert.ok(maxAbsDiff(tiled.frames.data, reference.data as Float32Array) < 1e-4);
    assert.ok(maxAbsDiff(untiled.frames.data, referenceUntiled.data as Float32Array) < 1e-4);
  }
});

Deno.test("offload=sequential composes model_offload, sequential_offload, slicing and tiling", async () => {
  const { models } = await video({
    offload: "sequential",
    blocks_per_group: 2,
    vae_slicing: true,
    ...TILING_32,
  });
  assert.deepEqual(models.get("text_encoder"), { policy: "model_offload", loads: 1, runs: 2 });
  assert.equal(models.get("transformer")!.policy, "sequential_offload");
  assert.equal(models.get("transformer")!.runs, 4);
  // Each of the 9 tiles runs the VAE's 6 parts; the first part of a next call may be loaded ahead.
  const vae = models.get("vae")!;
  assert.equal(vae.policy, "sequential_offload");
  assert.equal(vae.runs, 9);
  assert.ok(vae.loads === 9 * 6 || vae.loads === 9 * 6 + 1, `${vae.loads} VAE part loads`);
  // The split parts were cached in the working folder.
  const cached = [...Deno.readDirSync(`${cwd}/.cache/split`)];
  assert.ok(cached.length >= 1);
});

Deno.test("a batch of two prompts decodes the same with vae_slicing as without", async () => {
  const prompts = { prompt: "[a red ball rolls across a table, a blue cube on a green floor]" };
  const whole = await video(prompts);
  const sliced = await video({ ...prompts, vae_slicing: true });
  assert.deepEqual(whole.frames.shape, [2, 9, 3, 64, 64]);
  assert.ok(bitIdentical(sliced.frames, whole.frames));
  assert.equal(whole.models.get("vae")!.runs, 1);
  assert.equal(sliced.models.get("vae")!.runs, 2, "one VAE call per video");

  const tiled = await video({ ...prompts, ...TILING_32 });
  const slicedTiled = await video({ ...prompts, vae_slicing: true, ...TILING_32 });
  // Not to the bit: on some tile sizes (2 x 2 latents here) ONNX Runtime's CPU kernels round
  // differently for a batch of 2 than for 1 (up to about 5e-7 on the decoder output).
  assert.ok(maxAbsDiff(slicedTiled.frames.data, tiled.frames.data) < 1e-6);
  assert.equal(slicedTiled.models.get("vae")!.runs, 18);
  // The two videos differ: the batch is not one video twice.
  const size = 9 * 3 * 64 * 64;
  assert.ok(
    maxAbsDiff(whole.frames.data.subarray(0, size), whole.frames.data.subarray(size)) > 0.1,
  );
});

Deno.test("budget_offload evicts to stay within max_memory without changing the frames", async () => {
  const workflow = `${WORKFLOWS}budget_evictions.yaml`;
  // One node at a time: the first decode then runs while the transformer is still needed.
  const serial = ["--concurrency", "1"];
  const small = await video({ max_memory: "600KB" }, workflow, serial);
  const large = await video({ max_memory: "8GiB" }, workflow, serial);
  const none = await video({ offload: "none" }, workflow, serial);
  assert.ok(bitIdentical(small.frames, none.frames));
  assert.ok(bitIdentical(large.frames, none.frames));
  // Transformer and VAE (233 KB + 556 KB) do not fit 600 KB together: each evicts the other.
  assert.equal(small.models.get("transformer")!.loads, 2);
  assert.equal(small.models.get("vae")!.loads, 2);
  assert.equal(large.models.get("transformer")!.loads, 1);
  assert.equal(large.models.get("vae")!.loads, 1);
});

Deno.test("a budget smaller than one model is a validation error suggesting sequential_offload", async () => {
  const { code, stderr } = await cogflow([
    "run",
    TINY,
    "--set",
    "offload=budget",
    "--set",
    "max_memory=100KB",
  ]);
  assert.equal(code, 2, stderr);
  assert.match(stderr, /Model "transformer" needs about 228 KiB, more than max_memory 97\.7 KiB/);
  assert.match(stderr, /sequential_offload/);
});

Deno.test("invalid hook combinations are validation errors", async () => {
  const cases: [string, RegExp][] = [
    [
      "two_offload_hooks.yaml",
      /nodes\.budget\.wraps\[0\]: "pipe\.transformer" is already wrapped by "offload", another offload hook/,
    ],
    [
      "vae_tiling_on_transformer.yaml",
      /Hook "tiling" \(vae_tiling\) cannot wrap "pipe\.transformer": expected model<vae>, got model<transformer>/,
    ],
    [
      "sequential_offload_on_text_encoder.yaml",
      /Cannot run model "text_encoder" in parts: no blocks found with pattern "\(\?:\^\|\[\/\.\]\)\(\?:transformer_blocks\|up_blocks\)\\\.\(\\d\+\)\(\?=\[\/\.\]\|\$\)"/,
    ],
  ];
  const runs = cases.map(([file]) => cogflow(["run", `${WORKFLOWS}${file}`]));
  // And tiles too small for their overlap, before anything runs rather than when decoding.
  const small = await cogflow([
    "run",
    TINY,
    ...["--set", "vae_tiling=true", "--set", "tile_sample_min_height=16"],
    ...["--set", "tile_overlap_factor_height=0.75"],
  ]);
  assert.equal(small.code, 2, small.stderr);
  assert.match(
    small.stderr,
    /tile_sample_min_height: Tiles of 16 pixels with overlap factor 0\.75 leave no stride between tiles: int\(2 \* \(1 - 0\.75\)\) is 0 latents/,
  );
  for (const [index, [file, message]] of cases.entries()) {
    const { code, stderr } = await runs[index];
    assert.equal(code, 2, `${file}: ${stderr}`);
    assert.match(stderr, message, file);
    assert.match(stderr, new RegExp(`${file}:\\d+:\\d+: `), "the error points into the file");
  }
});

/**
 * How much the rows (or columns) of `tiled` jump across `boundary` beyond what the untiled decode
 * does there, relative to the median of that excess over the whole picture: a seam stands out.
 */
function seam(
  tiled: Tensor<"float32">,
  untiled: Tensor<"float32">,
  axis: "row" | "column",
  boundary: number,
): number {
  const [batch, frames, channels, height, width] = tiled.shape;
  const planes = batch * frames * channels;
  const lines = axis === "row" ? height : width;
  const excess = new Float64Array(lines - 1);
  for (let line = 0; line < lines - 1; line++) {
    let sum = 0;
    for (let p = 0; p < planes; p++) {
      for (let k = 0; k < (axis === "row" ? width : height); k++) {
        const [y, x] = axis === "row" ? [line, k] : [k, line];
        const here = (p * height + y) * width + x;
        const next = axis === "row" ? here + width : here + 1;
        const jump = tiled.data[next] - tiled.data[here];
        const expected = untiled.data[next] - untiled.data[here];
        sum += Math.abs(jump - expected);
      }
    }
    excess[line] = sum;
  }
  const median = [...excess].sort((a, b) => a - b)[Math.floor(excess.length / 2)];
  return Math.max(excess[boundary - 1], excess[boundary]) / median;
}

Deno.test("tiles whose stride and row_limit disagree still give the requested size, without seams", async () => {
  // 48-pixel tiles with 1/5 overlap: stride int(6 * 0.8) = 4 latents = 32 pixels, but diffusers
  // keeps row_limit = 48 - int(48 * 0.2) = 39 pixels of each tile and returns a larger video.
  const { frames } = await video({
    vae_tiling: true,
    tile_sample_min_height: 48,
    tile_sample_min_width: 48,
    tile_overlap_factor_height: 0.2,
    tile_overlap_factor_width: 0.2,
  });
  assert.deepEqual(frames.shape, [1, 9, 3, 64, 64]);
  const untiled = (await video({})).frames;
  // Tiles join at pixel 32; blending rows of other places of the picture would jump there
  // (about 9 times the median, measured with the blend misaligned by diffusers' 7 pixels).
  for (const axis of ["row", "column"] as const) {
    const ratio = seam(frames, untiled, axis, 32);
    assert.ok(ratio < 3, `${axis} seam: ${ratio.toFixed(2)} times the median jump`);
  }
  // Tiling changes the picture about as much as the consistent 32-pixel tiling does.
  const tiled32 = (await video(TILING_32)).frames;
  const diff48 = maxAbsDiff(frames.data, untiled.data);
  const diff32 = maxAbsDiff(tiled32.data, untiled.data);
  assert.ok(diff48 < 2 * diff32, `48-pixel tiles: ${diff48}, 32-pixel tiles: ${diff32}`);
});
