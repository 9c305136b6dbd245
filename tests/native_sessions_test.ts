/**
 * Built models in sessions made through ONNX Runtime's C API (runtime/ort_native.ts; the model
 * manager's `nativeSessions`, by default for models on a GPU provider): on the CPU, forced with
 * `always`, the tiny Hugging Face 2b and 5b pipelines through `workflows/tiny.yaml` give the frames
 * onnxruntime-node's sessions give, bit for bit, with the models resident and under
 * model_offload.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { loadWorkflow, runWorkflow } from "../api/mod.ts";
import { OnnxModelManager } from "../runtime/onnx_model_manager.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { HF_FIXTURES, pipelineParams, readCase, ROOT, withTempDir } from "./testing.ts";
import { testInWholeFfiChild, WHOLE_FFI } from "./whole_ffi.ts";

const CASES = { "2b": "ddim-2b-49f", "5b": "dpm-5b-49f-nonsquare" } as const;

/** The frames of a case's run with `nativeSessions`, and the manager's statistics. */
async function framesWith(
  variant: keyof typeof CASES,
  nativeSessions: "always" | "never",
  offload: "none" | "model",
) {
  const referenceCase = await readCase(CASES[variant], HF_FIXTURES);
  return await withTempDir(async (dir) => {
    const workflow = await loadWorkflow(join(ROOT, "workflows", "tiny.yaml"), {
      params: {
        ...pipelineParams(referenceCase, HF_FIXTURES),
        max_sequence_length: referenceCase.json.pipeline_args.max_sequence_length,
        output: join(dir, "video.gif"),
        offload,
      },
    });
    const models = new OnnxModelManager({ nativeSessions });
    try {
      const result = await runWorkflow(workflow, { models, only: ["decode"] });
      const frames = result.outputs.get("decode")!.frames as Tensor;
      return { frames, stats: models.stats() };
    } finally {
      await models.close();
    }
  });
}

testInWholeFfiChild(
  "the native sessions' tests pass in a child with the whole ffi permission",
  import.meta.url,
  1,
);

if (WHOLE_FFI) {
  Deno.test("built models in native sessions give onnxruntime-node's frames, resident and under model_offload", async () => {
    for (const variant of ["2b", "5b"] as const) {
      for (const offload of ["none", "model"] as const) {
        const node = await framesWith(variant, "never", offload);
        const native = await framesWith(variant, "always", offload);
        assert.deepEqual(native.frames.shape, node.frames.shape);
        assert.deepEqual(native.frames.data, node.frames.data, `${variant} offload=${offload}`);
        for (const stats of native.stats) {
          assert.equal(stats.nativeFallback, undefined, `${stats.name}: ${stats.nativeFallback}`);
          assert.equal(stats.native, true, `${stats.name} was not made through the C API`);
        }
        assert.ok(node.stats.every((stats) => !stats.native));
      }
    }
  });
}
