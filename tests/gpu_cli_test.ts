/**
 * `--set provider=cuda` from the command line on a machine where CUDA cannot load (this one, CI):
 * the run fails before sampling with a message saying what to install, or falls back to the CPU
 * when asked to, and the end of every run says which provider each model really got (terminal,
 * `--json`'s `run_end`, `--memory-report`).
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { missingProviderFiles } from "../runtime/cuda_provider.ts";
import { assertNoStackTrace, HF_FIXTURES, ROOT, runCli, withTempDir } from "./testing.ts";

const TINY = join(ROOT, "workflows", "tiny.yaml");
const MODEL = `model=${join(HF_FIXTURES, "2b")}`;

/** Where the provider is installed and CUDA's libraries are on the path, CUDA may well load. */
const CUDA_MAY_LOAD = missingProviderFiles(ROOT)?.length === 0 &&
  Boolean(Deno.env.get("LD_LIBRARY_PATH"));

Deno.test({
  name: "provider=cuda without CUDA fails before sampling, saying what to install",
  ignore: CUDA_MAY_LOAD,
  fn: () =>
    withTempDir(async (dir) => {
      // Through the launcher, as users run it: the CLI sees node_modules only with read access.
      const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-read",
          "--allow-env",
          "--allow-run",
          "cli/launch.ts",
          "run",
          TINY,
          "--set",
          MODEL,
          "--set",
          "provider=cuda",
          "--set",
          `output=${join(dir, "tiny.mp4")}`,
          "--plain",
        ],
        cwd: ROOT,
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const errors = new TextDecoder().decode(stderr);
      assert.equal(code, 1, errors);
      assert.equal(new TextDecoder().decode(stdout), "");
      assert.doesNotMatch(errors, /^start sample/m);
      const message = errors.split("\n").find((line) => line.startsWith("error: ")) ?? "";
      assert.match(
        message,
        /^error: Node "encode" \(text_encode\) failed: Cannot load model "text_encoder": the cuda execution provider is unavailable \(/,
      );
      // What to do: install the provider, or the CUDA libraries it names; or the CPU.
      assert.match(message, /run "deno task install-cuda"|"deno task install-cuda --check"/);
      assert.match(message, /on_unavailable_provider: fallback/);
      assert.match(message, /--set provider=cpu/);
      assertNoStackTrace(errors);
    }),
});

Deno.test({
  name: "provider=cuda with fallback runs on the CPU and says so, with --json too",
  ignore: CUDA_MAY_LOAD,
  fn: () =>
    withTempDir(async (dir) => {
      const { code, stdout, stderr } = await runCli([
        "run",
        TINY,
        "--set",
        MODEL,
        "--set",
        "provider=cuda",
        "--set",
        "on_unavailable_provider=fallback",
        "--set",
        `output=${join(dir, "tiny.mp4")}`,
        "--json",
      ]);
      assert.equal(code, 0, stderr);
      const events = stdout.trim().split("\n").map((line) => JSON.parse(line));
      const warnings = events.filter((event) =>
        event.type === "node_log" && event.level === "warn"
      );
      assert.ok(
        warnings.some((event) =>
          /^Model "vae": cuda is unavailable, using the CPU/.test(event.message)
        ),
        JSON.stringify(warnings),
      );
      // The last line, run_end, names the provider each model got.
      const summary = events.at(-1);
      assert.equal(summary.type, "run_end");
      assert.equal(summary.status, "ok");
      assert.deepEqual(
        summary.models.map((
          model: { name: string; provider: string },
        ) => [model.name, model.provider]),
        [["text_encoder", "cpu"], ["transformer", "cpu"], ["vae", "cpu"]],
      );
      for (const model of summary.models) assert.match(model.fallbackReason, /\S/);
    }),
});

Deno.test("provider=cpu: the run's end and --memory-report name each model's provider", async () => {
  await withTempDir(async (dir) => {
    const { code, stderr } = await runCli([
      "run",
      TINY,
      "--set",
      MODEL,
      "--set",
      `output=${join(dir, "tiny.mp4")}`,
      "--plain",
      "--memory-report",
    ]);
    assert.equal(code, 0, stderr);
    assert.match(stderr, /^providers: text_encoder, transformer, vae: cpu$/m);
    assert.match(stderr, /^model text_encoder \(resident\): .*, on cpu$/m);
    assert.match(stderr, /^model vae \(resident\): .*, on cpu$/m);
  });
});

Deno.test("the library's dtype param: bfloat16 needs provider cuda, float32 stays the default", async () => {
  const validate = (...set: string[]) =>
    runCli([
      "validate",
      join(ROOT, "workflows", "cogvideox-2b.yaml"),
      "--set",
      MODEL,
      ...set.flatMap((value) => ["--set", value]),
    ]);
  const cpu = await validate("dtype=bfloat16");
  assert.equal(cpu.code, 2, cpu.stderr);
  assert.match(
    cpu.stderr,
    /^error: .*cogvideox\.yaml:\d+:\d+: nodes\.pipe\.with\.dtype: dtype "bfloat16" needs a GPU provider: .*--set dtype=float32 or --set provider=cuda\)$/m,
  );
  const cuda = await validate("dtype=bfloat16", "provider=cuda");
  assert.equal(cuda.code, 0, cuda.stderr);
  const printed = await runCli([
    "run",
    join(ROOT, "workflows", "cogvideox-2b.yaml"),
    "--set",
    MODEL,
    "--print-params",
  ]);
  assert.match(printed.stdout, /^dtype\s.*float32.*default/m);
});
