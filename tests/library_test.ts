/**
 * The workflow library (`workflows/`): every file validates (a param left for the user to set is
 * not an error), `cogflow validate workflows/*.yaml` exits 0 as the README says, the variants are
 * short, each workflow keeps the params and defaults it had before it became a variant of
 * `workflows/lib/cogvideox.yaml` (scripts and tests set them), and the core computes what
 * `workflows/tiny.yaml` (through which the reference cases run) computes.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { builtinRegistry, loadWorkflow } from "../api/mod.ts";
import { main } from "../cli/main.ts";
import { composeWorkflow, planRun } from "../engine/mod.ts";
import { ROOT } from "./testing.ts";

const LIBRARY = join(ROOT, "workflows");

async function libraryFiles(dir = LIBRARY): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) files.push(...await libraryFiles(path));
    else if (entry.name.endsWith(".yaml")) files.push(path);
  }
  return files.sort();
}

/** The params each library workflow had as a standalone file, with their defaults. */
const REQUIRED = "<required>";
const COMMON = {
  model: REQUIRED,
  prompt: REQUIRED,
  negative_prompt: "",
  seed: 42,
  steps: 50,
  guidance_scale: 6,
  height: 480,
  width: 720,
  num_frames: 49,
  max_sequence_length: 226,
  if_exists: "increment",
  provider: "cpu",
};
const LOW_MEMORY = {
  text_encoder_offload: "sequential",
  transformer_offload: "sequential",
  blocks_per_group: 2,
  tile_sample_min_height: 240,
  tile_sample_min_width: 360,
};
const KEPT: Record<string, Record<string, unknown>> = {
  "cogvideox-2b": { ...COMMON, output: "out/cogvideox-2b.mp4" },
  "cogvideox-5b": { ...COMMON, use_dynamic_cfg: true, output: "out/cogvideox-5b.mp4" },
  "cogvideox-2b-low-memory": {
    ...COMMON,
    ...LOW_MEMORY,
    output: "out/cogvideox-2b-low-memory.mp4",
  },
  "cogvideox-5b-low-memory": {
    ...COMMON,
    ...LOW_MEMORY,
    use_dynamic_cfg: true,
    output: "out/cogvideox-5b-low-memory.mp4",
  },
  tiny: {
    model: "../tests/fixtures/tiny-cogvideox/2b",
    prompt: "a red ball rolls across a table",
    negative_prompt: "",
    seed: 0,
    steps: 4,
    guidance_scale: 6,
    use_dynamic_cfg: false,
    scheduler: "ddim",
    height: 64,
    width: 64,
    num_frames: 9,
    max_sequence_length: 16,
    fps: 8,
    output: "out/tiny.mp4",
    tensors_out: null,
    if_exists: "increment",
    provider: "cpu",
    on_unavailable_provider: "error",
    offload: "none",
    max_memory: "8GiB",
    blocks_per_group: 1,
    vae_slicing: false,
    vae_tiling: false,
    tile_sample_min_height: 240,
    tile_sample_min_width: 360,
    tile_overlap_factor_height: 0.16666666666666666,
    tile_overlap_factor_width: 0.2,
  },
};

Deno.test("every library workflow validates; the params it leaves unset are listed", async () => {
  const files = await libraryFiles();
  assert.ok(files.length >= 6);
  for (const file of files) {
    const workflow = await loadWorkflow(file, { allowMissingParams: true });
    const needs = workflow.missingParams!.map((diagnostic) => diagnostic.path?.[1]);
    const name = relative(LIBRARY, file);
    assert.deepEqual(needs, name === "tiny.yaml" ? [] : ["model", "prompt"], name);
  }
});

Deno.test("`cogflow validate workflows/*.yaml` exits 0, and 2 with --strict", async () => {
  const files = (await libraryFiles()).filter((file) => !file.includes("/lib/"));
  const output: string[] = [];
  const io = {
    stdout: { write: (text: string) => void output.push(text) },
    stderr: { write: (text: string) => void output.push(text) },
    stderrIsTerminal: false,
    columns: 80,
  };
  assert.equal(await main(["validate", ...files], io), 0);
  assert.match(
    output.join(""),
    /cogvideox-2b\.yaml: ok \(9 nodes\); to run it, set model, prompt \(--set name=value\)\n/,
  );
  assert.equal(await main(["validate", "--strict", files[0]], io), 2);
});

Deno.test("the library's workflows keep their params and defaults, and the variants are short", async () => {
  for (const [name, expected] of Object.entries(KEPT)) {
    const file = join(LIBRARY, `${name}.yaml`);
    const text = await Deno.readTextFile(file);
    const composed = await composeWorkflow(text, file, LIBRARY, {
      registry: await builtinRegistry(),
      cwd: ROOT,
      overrides: new Map(),
    });
    const params = Object.fromEntries(
      composed.paramSources.map((source) => [
        source.name,
        source.declaration.hasDefault ? source.declaration.default : REQUIRED,
      ]),
    );
    for (const [param, value] of Object.entries(expected)) {
      assert.deepEqual(params[param], value, `${name}: ${param}`);
    }
    if (name === "tiny") continue;
    assert.match(text, /^extends: /m, name);
    const lines = text.split("\n").filter((line) => line.trim() && !line.startsWith("#"));
    assert.ok(lines.length <= 45, `${name} has ${lines.length} lines`);
  }
});

Deno.test("the core, through cogvideox-2b.yaml, gives the frames tiny.yaml gives (equal cache keys)", async () => {
  const tiny = await loadWorkflow(join(LIBRARY, "tiny.yaml"));
  const core = await loadWorkflow(join(LIBRARY, "cogvideox-2b.yaml"), {
    params: {
      model: join(ROOT, "tests", "fixtures", "tiny-cogvideox", "2b"),
      prompt: "a red ball rolls across a table",
      seed: 0,
      steps: 4,
      scheduler: "ddim",
      height: 64,
      width: 64,
      num_frames: 9,
      max_sequence_length: 16,
    },
  });
  const keys = (workflow: typeof tiny) => planRun(workflow.graph, { only: ["decode"] }).keys;
  assert.equal(keys(core).get("decode"), keys(tiny).get("decode"));
});
