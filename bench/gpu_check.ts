/**
 * Runs the reference cases through `workflows/tiny.yaml` on the CPU and on the CUDA execution
 * provider (sessions in Workers), with each offload mode, and compares the frames with diffusers'.
 * For a GPU machine: `deno run -A bench/gpu_check.ts` (see `../shared/gpu/` for carrying the CUDA
 * provider libraries); `NVIDIA_TF32_OVERRIDE=0` turns off TF32 matrix products.
 *
 * @module
 */

import { join } from "node:path";
import { loadWorkflow, runWorkflow } from "../mod.ts";
import { readSafetensors } from "../runtime/safetensors.ts";
import { pipelineParams, readCase, reference, ROOT, tensorError } from "../tests/testing.ts";

async function runCase(name: string, provider: string, offload: string, out: string) {
  const referenceCase = await readCase(name);
  const tensorsOut = join(out, `${name}-${provider}-${offload}.safetensors`);
  const workflow = await loadWorkflow(join(ROOT, "workflows/tiny.yaml"), {
    params: {
      ...pipelineParams(referenceCase),
      provider,
      offload,
      output: join(out, `${name}-${provider}-${offload}.mp4`),
      tensors_out: tensorsOut,
      if_exists: "overwrite",
    },
  });
  const started = performance.now();
  const result = await runWorkflow(workflow, { splitCacheDir: join(out, "split") });
  const wall = performance.now() - started;
  const frames = (await readSafetensors(tensorsOut)).tensors.get("frames")!;
  const { maxAbs } = tensorError(frames, reference(referenceCase, "frames"));
  const providers = [...new Set(result.models.map((model) => model.provider))].join("+");
  return { name, provider, offload, providers, wall, maxAbs };
}

if (import.meta.main) {
  const out = await Deno.makeTempDir({ prefix: "cogflow-gpu-check-" });
  console.log(`TF32 override: ${Deno.env.get("NVIDIA_TF32_OVERRIDE") ?? "(unset: TF32 on)"}`);
  console.log(
    "| case | provider asked | providers used | offload | frames max abs diff vs diffusers | wall |",
  );
  console.log("| --- | --- | --- | --- | ---: | ---: |");
  for (const provider of ["cpu", "cuda"]) {
    for (const name of ["ddim-2b", "dpm-5b-dynamic-cfg"]) {
      for (const offload of ["none", "model", "sequential"]) {
        try {
          const row = await runCase(name, provider, offload, out);
          console.log(
            `| ${row.name} | ${row.provider} | ${row.providers} | ${row.offload} | ${
              row.maxAbs.toExponential(2)
            } | ${(row.wall / 1000).toFixed(2)} s |`,
          );
        } catch (error) {
          console.log(
            `| ${name} | ${provider} | - | ${offload} | failed: ${
              (error as Error).message.split("\n")[0]
            } | - |`,
          );
        }
      }
    }
  }
  await Deno.remove(out, { recursive: true });
}
