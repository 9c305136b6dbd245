/**
 * Numerical parity with diffusers' `CogVideoXPipeline` on the tiny fixture models, for every
 * public reference case but the tiled one. The frames come from the CLI running the library
 * workflow `workflows/tiny.yaml`; the intermediates (token ids, embeddings, noise, timesteps,
 * guidance, latents after each step, rotary tables) from `tests/workflows/parity_intermediates.yaml`
 * run through the API. Tolerances are the fixture README's and are never loosened.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { loadWorkflow, runWorkflow } from "../api/mod.ts";
import { createSchedulerStepper, type SchedulerSpec } from "../diffusion/scheduler.ts";
import { TorchGenerator } from "../diffusion/torch_generator.ts";
import type { GeneratorState } from "../nodes/ports.ts";
import { readSafetensors } from "../runtime/safetensors.ts";
import { formatShape, type Tensor } from "../runtime/tensor.ts";
import {
  assertBitEqual,
  assertClose,
  at,
  pipelineParams,
  readCase,
  reference,
  ROOT,
  rows,
  runCli,
  setArgs,
  type TensorError,
  withTempDir,
} from "./testing.ts";

const CASES = ["ddim-2b", "dpm-5b-dynamic-cfg"];

function report(name: string, what: string, error: TensorError): void {
  console.log(
    `${name} ${what}: max abs ${error.maxAbs.toExponential(2)}, relative ${
      error.relative.toExponential(2)
    }`,
  );
}

function tensorNamed(tensors: Map<string, Tensor>, name: string): Tensor {
  const tensor = tensors.get(name);
  assert.ok(tensor, `No tensor "${name}" was saved`);
  return tensor;
}

for (const name of CASES) {
  Deno.test(`${name}: frames of "cogflow run workflows/tiny.yaml" match diffusers`, async () => {
    const referenceCase = await readCase(name);
    await withTempDir(async (dir) => {
      const output = join(dir, "video.mp4");
      const tensorsOut = join(dir, "frames.safetensors");
      const { code, stdout, stderr } = await runCli([
        "run",
        "workflows/tiny.yaml",
        "--quiet",
        ...setArgs({
          ...pipelineParams(referenceCase),
          max_sequence_length: referenceCase.json.pipeline_args.max_sequence_length,
          output,
          tensors_out: tensorsOut,
        }),
      ]);
      assert.equal(code, 0, stderr);
      assert.match(stdout, /wrote .*video\.mp4/);
      assert.ok((await Deno.stat(output)).size > 0);

      const frames = tensorNamed((await readSafetensors(tensorsOut)).tensors, "frames");
      const expected = reference(referenceCase, "frames");
      // diffusers drops the batch dimension of a single video; the workflow keeps it.
      assert.deepEqual(frames.shape, [1, ...expected.shape]);
      report(name, "frames", assertClose(frames, expected, "frames"));
    });
  });

  Deno.test(`${name}: token ids, embeddings, noise, timesteps, guidance, latents and rotary tables match diffusers`, async (t) => {
    const referenceCase = await readCase(name);
    const { json } = referenceCase;
    const rotary = json.variant === "5b";
    await withTempDir(async (dir) => {
      const tensorsOut = join(dir, "intermediates.safetensors");
      const rotaryOut = join(dir, "rotary.safetensors");
      const workflow = await loadWorkflow(
        join(ROOT, "tests", "workflows", "parity_intermediates.yaml"),
        {
          params: {
            ...pipelineParams(referenceCase),
            tensors_out: tensorsOut,
            rotary_out: rotary ? rotaryOut : null,
          },
        },
      );
      const result = await runWorkflow(workflow, {
        only: ["save", "noise", "scheduler", "rotary", ...(rotary ? ["save_rotary"] : [])],
      });
      const saved = (await readSafetensors(tensorsOut)).tensors;
      const steps = json.steps.length;

      await t.step("token ids are equal", () => {
        assertBitEqual(
          tensorNamed(saved, "input_ids"),
          reference(referenceCase, "input_ids"),
          "input_ids",
        );
        assertBitEqual(
          tensorNamed(saved, "negative_input_ids"),
          reference(referenceCase, "negative_input_ids"),
          "negative_input_ids",
        );
      });

      await t.step("text encoder embeddings are within tolerance", () => {
        for (const embeds of ["prompt_embeds", "negative_prompt_embeds"]) {
          const error = assertClose(
            tensorNamed(saved, embeds),
            reference(referenceCase, embeds),
            embeds,
          );
          report(name, embeds, error);
        }
      });

      await t.step("timesteps are equal", () => {
        const timesteps = tensorNamed(saved, "timesteps");
        assertBitEqual(timesteps, reference(referenceCase, "timesteps"), "timesteps");
        assert.deepEqual(
          Array.from(timesteps.data as BigInt64Array, Number),
          json.steps.map((step: { t: number }) => step.t),
        );
      });

      await t.step("guidance of each step equals case.json within 1e-9 relative", () => {
        const guidance = tensorNamed(saved, "guidance");
        assert.equal(guidance.dtype, "float64");
        assert.equal(guidance.data.length, steps);
        let worst = 0;
        for (const [index, step] of json.steps.entries()) {
          const expected: number = step.guidance_scale;
          const actual = guidance.data[index] as number;
          const relative = Math.abs(actual - expected) / Math.abs(expected);
          assert.ok(relative <= 1e-9, `Step ${index}: guidance ${actual}, expected ${expected}`);
          // The recorded float32 value is what torch multiplied by.
          const recorded = reference(referenceCase, `guidance_step_${index}`).data[0];
          assert.equal(Math.fround(actual), recorded, `Step ${index}: float32 guidance`);
          worst = Math.max(worst, relative);
        }
        console.log(`${name} guidance: max relative ${worst.toExponential(2)}`);
      });

      await t.step(
        "the initial latents and every DPM draw come bit for bit from the noise node's generator",
        () => {
          const noise = result.outputs.get("noise")!;
          const latents = noise.latents as Tensor;
          const expected = reference(referenceCase, "latents_init");
          assertBitEqual(latents, expected, "noise.latents");
          assertBitEqual(tensorNamed(saved, "latents_init"), expected, "saved latents_init");

          // Continue the generator as the sample node does: the same seed, past the drawn shapes.
          const state = noise.generator as GeneratorState;
          assert.equal(state.seed, String(json.pipeline_args.generator.seed));
          assert.deepEqual(state.draws, [latents.shape]);
          const generator = new TorchGenerator(BigInt(state.seed));
          for (const shape of state.draws) generator.randn(shape);
          const spec = result.outputs.get("scheduler")!.scheduler as SchedulerSpec;
          const stepper = createSchedulerStepper(spec, steps);
          let draws = 0;
          for (const [index, step] of json.steps.entries()) {
            assert.equal(stepper.noiseDraws(index), step.scheduler_noise_draws, `step ${index}`);
            for (let k = 0; k < step.scheduler_noise_draws; k++) {
              const drawn = generator.randn(latents.shape);
              const recorded = rows(reference(referenceCase, `noise_step_${index}`), k);
              assertBitEqual(drawn, recorded, `draw ${k} of step ${index}`);
              draws++;
            }
          }
          assert.equal(draws, json.checks.scheduler_draws_total ?? 0);
        },
      );

      await t.step("latents after each step are within tolerance", () => {
        const stepLatents = tensorNamed(saved, "step_latents");
        const expectedShape = reference(referenceCase, "latents_step_0").shape;
        assert.deepEqual(stepLatents.shape, [steps, ...expectedShape]);
        for (let index = 0; index < steps; index++) {
          const error = assertClose(
            at(stepLatents, index),
            reference(referenceCase, `latents_step_${index}`),
            `latents after step ${index}`,
          );
          report(name, `latents after step ${index}`, error);
        }
      });

      await t.step(rotary ? "rotary tables are within tolerance" : "no rotary tables", async () => {
        const tables = result.outputs.get("rotary")!;
        if (!rotary) {
          assert.equal(tables.cos, undefined);
          assert.equal(tables.sin, undefined);
          return;
        }
        const savedTables = (await readSafetensors(rotaryOut)).tensors;
        for (const table of ["image_rotary_emb_cos", "image_rotary_emb_sin"]) {
          const actual = tensorNamed(savedTables, table);
          const expected = reference(referenceCase, table);
          assert.equal(formatShape(actual.shape), formatShape(expected.shape));
          report(name, table, assertClose(actual, expected, table));
        }
      });
    });
  });
}
