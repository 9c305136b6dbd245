/**
 * The tiny Hugging Face pipelines (`tests/fixtures/tiny-cogvideox-hf`, 49 frames) through the CLI
 * on a provider, in a dtype, with each offload mode, compared with diffusers' float32 frames: the
 * GPU issue's parity check. For the GPU machine (see `../shared/gpu/`):
 *
 * ```sh
 * NVIDIA_TF32_OVERRIDE=0 deno run -A bench/hf_gpu_parity.ts --provider cuda --dtypes float32,float16
 * deno run -A bench/hf_gpu_parity.ts --provider cpu --dtypes float32 --offloads none
 * ```
 *
 * Prints a markdown row per run and `RESULT [...]` (JSON) at the end. The fixture README's
 * tolerance is 1e-4 on the frames; float16 is reported, not judged.
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { readSafetensors } from "../runtime/safetensors.ts";
import {
  HF_FIXTURES,
  pipelineParams,
  readCase,
  reference,
  runCli,
  setArgs,
  tensorError,
  TOLERANCE,
} from "../tests/testing.ts";

/** One run's outcome. */
export interface ParityRow {
  /** The reference case. */
  name: string;
  /** The provider asked for. */
  provider: string;
  /** The compute dtype. */
  dtype: string;
  /** The tiny workflow's offload param. */
  offload: string;
  /** Largest absolute difference of the frames from diffusers', or undefined when it failed. */
  maxAbs?: number;
  /** Seconds of the whole CLI run. */
  seconds: number;
  /** The providers line the run printed, or the first line of its error. */
  note: string;
}

async function runOne(
  name: string,
  provider: string,
  dtype: string,
  offload: string,
  dir: string,
): Promise<ParityRow> {
  const referenceCase = await readCase(name, HF_FIXTURES);
  const tensorsOut = join(dir, `${name}-${provider}-${dtype}-${offload}.safetensors`);
  const started = performance.now();
  const { code, stderr, stdout } = await runCli([
    "run",
    "workflows/tiny.yaml",
    ...setArgs({
      ...pipelineParams(referenceCase, HF_FIXTURES),
      model: join(HF_FIXTURES, referenceCase.json.variant),
      max_sequence_length: referenceCase.json.pipeline_args.max_sequence_length,
      provider,
      dtype,
      offload,
      output: join(dir, `${name}-${provider}-${dtype}-${offload}.gif`),
      if_exists: "overwrite",
      tensors_out: tensorsOut,
      fps: 8,
    }),
  ]);
  const seconds = (performance.now() - started) / 1000;
  const text = `${stdout}\n${stderr}`;
  const providers = text.split("\n").find((line) => line.startsWith("providers:")) ?? "";
  if (code !== 0) {
    const error = text.split("\n").find((line) => line.startsWith("error")) ?? `exit ${code}`;
    return { name, provider, dtype, offload, seconds, note: error };
  }
  const frames = (await readSafetensors(tensorsOut)).tensors.get("frames")!;
  const expected = reference(referenceCase, "frames");
  const { maxAbs } = tensorError(frames, expected);
  return { name, provider, dtype, offload, maxAbs, seconds, note: providers };
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      provider: { type: "string", default: "cuda" },
      dtypes: { type: "string", default: "float32,float16" },
      offloads: { type: "string", default: "none,model,sequential" },
    },
  });
  const dir = await Deno.makeTempDir({ prefix: "cogflow-hf-parity-" });
  const rows: ParityRow[] = [];
  console.log(`TF32 override: ${Deno.env.get("NVIDIA_TF32_OVERRIDE") ?? "(unset: TF32 on)"}`);
  console.log(
    "| case | provider | dtype | offload | frames max abs vs diffusers | within 1e-4 | s | note |",
  );
  console.log("| --- | --- | --- | --- | ---: | --- | ---: | --- |");
  for (const dtype of values.dtypes.split(",")) {
    for (const offload of values.offloads.split(",")) {
      for (const name of ["ddim-2b-49f", "dpm-5b-49f-nonsquare"]) {
        const row = await runOne(name, values.provider, dtype, offload, dir);
        rows.push(row);
        const diff = row.maxAbs === undefined ? "failed" : row.maxAbs.toExponential(2);
        const within = row.maxAbs === undefined ? "-" : row.maxAbs <= TOLERANCE ? "yes" : "no";
        console.log(
          `| ${name} | ${values.provider} | ${dtype} | ${offload} | ${diff} | ${within} | ${
            row.seconds.toFixed(1)
          } | ${row.note} |`,
        );
      }
    }
  }
  console.log(`RESULT ${JSON.stringify(rows)}`);
  await Deno.remove(dir, { recursive: true });
}
