/**
 * The Hugging Face layout end to end: the tiny pipelines of `tests/fixtures/tiny-cogvideox-hf`
 * (safetensors weights, sharded text encoder and 5b transformer, SentencePiece tokenizer, no
 * ONNX) run through the CLI with `workflows/tiny.yaml --set model=<folder>`, and the 49 frames
 * match the diffusers reference runs; the same folders laid out as a Hugging Face cache (snapshot
 * links into `blobs/`) and named by model id give the same frames.
 */

import assert from "node:assert/strict";
import { dirname, join, relative } from "node:path";
import { readSafetensors } from "../runtime/safetensors.ts";
import {
  assertClose,
  assertNoStackTrace,
  HF_FIXTURES,
  pipelineParams,
  readCase,
  reference,
  type ReferenceCase,
  ROOT,
  runCli,
  setArgs,
  withTempDir,
} from "./testing.ts";

/** Runs a case through `workflows/tiny.yaml` with `model` and returns the saved frames. */
async function runCase(
  referenceCase: ReferenceCase,
  dir: string,
  model: string,
  env: Record<string, string> = {},
) {
  const tensorsOut = join(dir, `frames-${crypto.randomUUID()}.safetensors`);
  const { code, stderr } = await runCli([
    "run",
    "workflows/tiny.yaml",
    "--quiet",
    ...setArgs({
      ...pipelineParams(referenceCase, HF_FIXTURES),
      model,
      max_sequence_length: referenceCase.json.pipeline_args.max_sequence_length,
      output: join(dir, "video.gif"),
      if_exists: "overwrite",
      tensors_out: tensorsOut,
      fps: 8,
    }),
  ], { env });
  assert.equal(code, 0, stderr);
  assertNoStackTrace(stderr);
  const frames = (await readSafetensors(tensorsOut)).tensors.get("frames");
  assert.ok(frames, "No frames were saved");
  return frames;
}

function compareFrames(referenceCase: ReferenceCase, frames: NonNullable<unknown>) {
  const expected = reference(referenceCase, "frames");
  const actual = frames as ReturnType<typeof reference>;
  // diffusers drops the batch dimension of a single video; the workflow keeps it.
  assert.deepEqual(actual.shape, [1, ...expected.shape]);
  const error = assertClose(actual, expected, "frames");
  console.log(
    `${referenceCase.json.name} frames: max abs ${error.maxAbs.toExponential(2)}, relative ${
      error.relative.toExponential(2)
    }`,
  );
}

for (const name of ["ddim-2b-49f", "dpm-5b-49f-nonsquare"]) {
  Deno.test(`${name}: the Hugging Face folder runs as downloaded and its 49 frames match diffusers`, async () => {
    const referenceCase = await readCase(name, HF_FIXTURES);
    await withTempDir(async (dir) => {
      const frames = await runCase(
        referenceCase,
        dir,
        join(HF_FIXTURES, referenceCase.json.variant),
      );
      compareFrames(referenceCase, frames);
    });
  });
}

/**
 * Lays `variant` out as the Hugging Face cache does: `models--<org>--<name>/blobs/<sha256>`,
 * `snapshots/<revision>/<path>` links to `../../blobs/<sha256>` (relative, as huggingface_hub
 * writes them), `refs/main` naming the revision.
 */
async function cacheLayout(cache: string, modelId: string, variant: string): Promise<string> {
  const repo = join(cache, `models--${modelId.replace("/", "--")}`);
  const revision = "0123456789abcdef0123456789abcdef01234567";
  const snapshot = join(repo, "snapshots", revision);
  await Deno.mkdir(join(repo, "blobs"), { recursive: true });
  await Deno.mkdir(join(repo, "refs"), { recursive: true });
  await Deno.writeTextFile(join(repo, "refs", "main"), revision);
  const source = join(HF_FIXTURES, variant);
  const walk = async (folder: string) => {
    for await (const entry of Deno.readDir(folder)) {
      const path = join(folder, entry.name);
      if (entry.isDirectory) {
        await walk(path);
        continue;
      }
      const bytes = await Deno.readFile(path);
      const sha = Array.from(
        new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)),
        (b) => b.toString(16).padStart(2, "0"),
      ).join("");
      const blob = join(repo, "blobs", sha);
      await Deno.writeFile(blob, bytes);
      const link = join(snapshot, relative(source, path));
      await Deno.mkdir(dirname(link), { recursive: true });
      await Deno.symlink(relative(dirname(link), blob), link);
    }
  };
  await walk(source);
  return repo;
}

Deno.test("ddim-2b-49f: the same pipeline in a Hugging Face cache, by folder and by model id, gives the same frames", async () => {
  const referenceCase = await readCase("ddim-2b-49f", HF_FIXTURES);
  await withTempDir(async (dir) => {
    const cache = join(dir, "hub");
    const repo = await cacheLayout(cache, "tiny/cogvideox-2b", "2b");
    const before = await listTree(cache);
    const byFolder = await runCase(referenceCase, dir, repo);
    compareFrames(referenceCase, byFolder);
    const byId = await runCase(referenceCase, dir, "tiny/cogvideox-2b", { HF_HUB_CACHE: cache });
    assert.deepEqual(byId.data, byFolder.data);
    // Nothing was written into the user's cache.
    assert.deepEqual(await listTree(cache), before);
  });
});

Deno.test("a model id that is not in the cache says where cogflow looked and how to get it", async () => {
  await withTempDir(async (dir) => {
    const { code, stderr } = await runCli(
      ["validate", "workflows/tiny.yaml", "--set", "model=nobody/no-such-model"],
      { env: { HF_HUB_CACHE: dir } },
    );
    assert.equal(code, 2);
    assertNoStackTrace(stderr);
    assert.match(stderr, /not in the Hugging Face cache/);
    assert.ok(stderr.includes(join(dir, "models--nobody--no-such-model")), stderr);
    assert.match(stderr, /huggingface-cli download nobody\/no-such-model/);
  });
});

async function listTree(dir: string): Promise<string[]> {
  const names: string[] = [];
  const walk = async (folder: string) => {
    for await (const entry of Deno.readDir(folder)) {
      const path = join(folder, entry.name);
      names.push(relative(dir, path));
      if (entry.isDirectory) await walk(path);
    }
  };
  await walk(dir);
  return names.sort();
}

Deno.test("under the sandboxed launcher, a model id is read from the Hugging Face cache", async () => {
  const referenceCase = await readCase("ddim-2b-49f", HF_FIXTURES);
  await withTempDir(async (dir) => {
    const cache = join(dir, "hub");
    await cacheLayout(cache, "tiny/cogvideox-2b", "2b");
    const tensorsOut = join(dir, "frames.safetensors");
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-env",
        "--allow-run",
        "cli/launch.ts",
        "run",
        "workflows/tiny.yaml",
        "--quiet",
        ...setArgs({
          ...pipelineParams(referenceCase, HF_FIXTURES),
          model: "tiny/cogvideox-2b",
          max_sequence_length: 16,
          output: join(dir, "video.gif"),
          tensors_out: tensorsOut,
        }),
      ],
      cwd: ROOT,
      env: { NO_COLOR: "1", HF_HUB_CACHE: cache },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const errors = new TextDecoder().decode(stderr);
    assert.equal(code, 0, errors);
    const frames = (await readSafetensors(tensorsOut)).tensors.get("frames");
    assert.ok(frames);
    compareFrames(referenceCase, frames);
  });
});
