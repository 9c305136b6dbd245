/**
 * What the CLI prints when a run goes wrong, from a child process as a user sees it: Ctrl-C during
 * sequential offload exits 130 with the interruption message and nothing from ONNX Runtime, and a
 * failure at run time is a message without a stack trace.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, runCli, withTempDir } from "./testing.ts";

const TINY = join(ROOT, "workflows", "tiny.yaml");

Deno.test("Ctrl-C during sequential offload exits 130 with the interruption message only", async () => {
  await withTempDir(async (dir) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        join(ROOT, "mod.ts"),
        "run",
        TINY,
        "--set",
        "offload=sequential",
        "--set",
        "steps=8",
        "--set",
        `output=${join(dir, "tiny.mp4")}`,
        "--plain",
      ],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const decoder = new TextDecoder();
    let stderr = "";
    let interrupted = false;
    const reading = (async () => {
      for await (const chunk of child.stderr) {
        stderr += decoder.decode(chunk, { stream: true });
        // The first step is done: the transformer's parts are loading and running.
        if (!interrupted && /^progress sample /m.test(stderr)) {
          interrupted = true;
          child.kill("SIGINT");
        }
      }
    })();
    const [status] = await Promise.all([child.status, reading, child.stdout.cancel()]);
    assert.ok(interrupted, `no progress line came:\n${stderr}`);
    assert.equal(status.code, 130, stderr);
    assert.match(stderr, /^Interrupted$/m);
    assert.doesNotMatch(stderr, /onnxruntime|GetElementType|\[E:/i);
    assert.doesNotMatch(stderr, /^\s+at /m);
  });
});

/** A workflow whose one node fails at run time as `failure` says: an OS error or a bug. */
async function failingWorkflow(dir: string): Promise<string> {
  const mod = new URL("../mod.ts", import.meta.url).href;
  await Deno.writeTextFile(
    join(dir, "failing.ts"),
    `import { z } from "zod";
import { defineNode } from ${JSON.stringify(mod)};
export const failing = defineNode({
  type: "failing",
  version: 1,
  description: "Fails at run time",
  inputs: {},
  settings: { failure: z.enum(["os", "bug"]) },
  outputs: { value: z.number() },
  async run(_ctx, _inputs, { failure }) {
    if (failure === "os") await Deno.writeTextFile(${JSON.stringify(join(dir, "file", "x"))}, "");
    return { value: (undefined as unknown as { length: number }).length };
  },
});
`,
  );
  await Deno.writeTextFile(join(dir, "file"), "");
  const workflow = join(dir, "failing.yaml");
  await Deno.writeTextFile(
    workflow,
    `cogflow: 1
name: failing
params: { failure: { type: string, default: os } }
plugins: [./failing.ts]
nodes:
  fail: { type: failing, with: { failure: $failure } }
`,
  );
  return workflow;
}

Deno.test("a run that fails at run time prints a message without a stack trace", async () => {
  await withTempDir(async (dir) => {
    const result = await runCli(["run", await failingWorkflow(dir), "--plain"]);
    assert.equal(result.code, 1, result.stderr);
    assert.match(
      result.stderr,
      /^error: Node "fail" \(failing\) failed: Not a directory \(os error 20\)/m,
    );
    assert.doesNotMatch(result.stderr, /^\s+at /m, result.stderr);
    assert.doesNotMatch(result.stderr, /internal error/, result.stderr);
  });
});

Deno.test("a bug is an internal error, whose stack only COGFLOW_DEBUG=1 prints", async () => {
  await withTempDir(async (dir) => {
    const args = ["run", await failingWorkflow(dir), "--set", "failure=bug", "--plain"];
    const plain = await runCli(args);
    assert.equal(plain.code, 1, plain.stderr);
    assert.match(plain.stderr, /^error: internal error: Node "fail" \(failing\) failed: /m);
    assert.match(plain.stderr, /^Run with COGFLOW_DEBUG=1 to print its stack trace\.$/m);
    assert.doesNotMatch(plain.stderr, /^\s+at /m, plain.stderr);
    const debug = await runCli(args, { env: { COGFLOW_DEBUG: "1" } });
    assert.match(debug.stderr, /^\s+at .*failing\.ts/m, debug.stderr);
  });
});
