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
import type { Tensor } from "../runtime/tensor.ts";

const root = new URL("..", import.meta.url).pathname;
const casesDir = join(root, "tests/fixtures/tiny-cogvideox/cases");

interface CaseArgs {
  prompt: string;
  negative_prompt: string;
  num_inference_steps: number;
  guidance_scale: number;
  use_dynamic_cfg?: boolean;
  generator: { seed: number };
}

async function runCase(name: string, provider: string, offload: string, out: string) {
  const info = JSON.parse(await Deno.readTextFile(join(casesDir, name, "case.json")));
  const args = info.pipeline_args as CaseArgs;
  const tensorsOut = join(out, `${name}-${provider}-${offload}.safetensors`);
  const workflow = await loadWorkflow(join(root, "workflows/tiny.yaml"), {
    params: {
      model: join(root, "tests/fixtures/tiny-cogvideox", info.variant),
      prompt: args.prompt,
      negative_prompt: args.negative_prompt,
      seed: args.generator.seed,
      steps: args.num_inference_steps,
      guidance_scale: args.guidance_scale,
      use_dynamic_cfg: args.use_dynamic_cfg ?? false,
      scheduler: info.scheduler_class === "CogVideoXDPMScheduler" ? "dpm" : "ddim",
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
  const reference = (await readSafetensors(join(casesDir, name, "tensors.safetensors"))).tensors
    .get("frames")!;
  const providers = [...new Set(result.models.map((model) => model.provider))].join("+");
  return { name, provider, offload, providers, wall, maxAbs: maxAbsDiff(frames, reference) };
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  const left = a.data as Float32Array;
  const right = b.data as Float32Array;
  if (left.length !== right.length) throw new Error("Frames of different sizes");
  let max = 0;
  for (let i = 0; i < left.length; i++) max = Math.max(max, Math.abs(left[i] - right[i]));
  return max;
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
