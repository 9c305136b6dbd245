/**
 * A plugin's model hook on built-in models: tests/plugins/call_stats.ts counts the calls of the
 * transformer and the VAE decoder of the tiny 2b pipeline through a call wrapper, next to the
 * built-in model_offload and vae_tiling hooks on the same models, and changes nothing else.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { loadWorkflow, runWorkflow } from "../api/mod.ts";
import { readSafetensors } from "../runtime/safetensors.ts";
import type { CallTotals } from "./plugins/call_stats.ts";
import { ROOT, withTempDir } from "./testing.ts";

const WORKFLOW = join(ROOT, "tests/workflows/call_stats.yaml");

async function run(params: Record<string, string>) {
  const workflow = await loadWorkflow(WORKFLOW, { params });
  const result = await runWorkflow(workflow);
  const { tensors } = await readSafetensors(params.tensors_out);
  return { result, frames: tensors.get("frames")! };
}

Deno.test("a plugin hook counts every call of built-in models, beside built-in hooks, and changes no frame", async () => {
  await withTempDir(async (dir) => {
    const stats = join(dir, "calls.json");
    const counted = await run({ stats, tensors_out: join(dir, "counted.safetensors") });
    const plain = await run({ tensors_out: join(dir, "plain.safetensors") });

    const calls: Record<string, CallTotals> = JSON.parse(await Deno.readTextFile(stats));
    // 2 steps with classifier-free guidance in one batch; 3 x 3 tiles of 32 pixels for 64 x 64.
    assert.deepEqual(Object.keys(calls).sort(), ["transformer", "vae"]);
    assert.equal(calls.transformer.calls, 2);
    assert.equal(calls.vae.calls, 9);
    for (const entry of Object.values(calls)) assert.ok(entry.ms > 0);
    const managed = Object.fromEntries(counted.result.models.map((model) => [model.name, model]));
    assert.equal(managed.transformer.runs, calls.transformer.calls);
    assert.equal(managed.vae.runs, calls.vae.calls);
    // The built-in session plan still applies to the wrapped transformer.
    assert.equal(managed.transformer.policy, "model_offload");

    assert.deepEqual(counted.frames.shape, plain.frames.shape);
    assert.deepEqual(counted.frames.data, plain.frames.data);
  });
});
