import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { readSafetensors } from "../runtime/safetensors.ts";
import { expectDType } from "../runtime/tensor.ts";
import { classifierFreeGuidance, dynamicGuidanceScale, dynamicGuidanceTerms } from "./guidance.ts";

const CASES = new URL("../tests/fixtures/tiny-cogvideox/cases/", import.meta.url);

/** Python's `float.hex()` text back to the double (e.g. `-0x1.8d9999999999ap+7`). */
function parseHexFloat(text: string): number {
  const match = /^(-?)0x([01])\.([0-9a-f]*)p([+-]\d+)$/.exec(text);
  assert.ok(match, `not a hex float: ${text}`);
  const [, sign, lead, fraction, exponent] = match;
  const mantissa = Number(BigInt(`0x${lead}${fraction}`));
  const value = mantissa * 2 ** (Number(exponent) - 4 * fraction.length);
  return sign === "-" ? -value : value;
}

Deno.test("classifier-free guidance: uncond + g * (cond - uncond), unconditional half first", () => {
  const modelOutput = Float32Array.from([1, 2, -1, 3, 2, 0.5]); // uncond [1, 2, -1], cond [3, 2, 0.5]
  assert.deepEqual(Array.from(classifierFreeGuidance(modelOutput, 6)), [13, 2, 8]);
  assert.deepEqual(Array.from(classifierFreeGuidance(modelOutput, 1)), [3, 2, 0.5]);
  assert.throws(
    () => classifierFreeGuidance(new Float32Array(3), 6),
    /into unconditional and conditional halves/,
  );
});

Deno.test("guidance rounds like torch: g to float32, then float32 difference, product and sum", () => {
  const g = 6.8170294778420635;
  const guided = classifierFreeGuidance(Float32Array.from([0.1, 0.7]), g);
  const f = Math.fround;
  assert.equal(guided[0], f(f(0.1) + f(f(g) * f(f(0.7) - f(0.1)))));
});

Deno.test("dpm-5b-dynamic-cfg: every intermediate of the dynamic guidance is bit-exact", async () => {
  const caseJson = JSON.parse(
    await Deno.readTextFile(new URL("dpm-5b-dynamic-cfg/case.json", CASES)),
  );
  const { guidance_scale: guidanceScale, num_inference_steps: n } = caseJson.pipeline_args;
  for (const step of caseJson.steps) {
    const terms = dynamicGuidanceTerms(guidanceScale, step.t, n);
    const hex = step.dynamic_cfg_intermediates.hex;
    assert.equal(terms.base, parseHexFloat(hex.base), `base at t=${step.t}`);
    assert.equal(terms.pow5, parseHexFloat(hex.pow5), `pow5 at t=${step.t}`);
    assert.equal(terms.arg, parseHexFloat(hex.arg), `arg at t=${step.t}`);
    assert.equal(terms.cos, parseHexFloat(hex.cos), `cos at t=${step.t}`);
    assert.equal(terms.guidance, parseHexFloat(hex.guidance), `guidance at t=${step.t}`);
    const guidance = dynamicGuidanceScale(guidanceScale, step.t, n);
    assert.ok(Math.abs(guidance - step.guidance_scale) <= 1e-9 * step.guidance_scale);
  }
});

for (const name of ["ddim-2b", "dpm-5b-dynamic-cfg"]) {
  Deno.test(`${name}: guided predictions match noise_pred_step_<i>`, async () => {
    const caseJson = JSON.parse(await Deno.readTextFile(new URL(`${name}/case.json`, CASES)));
    const { tensors } = await readSafetensors(
      fileURLToPath(new URL(`${name}/tensors.safetensors`, CASES)),
    );
    const reference = (key: string) => expectDType(tensors.get(key)!, "float32", key).data;
    caseJson.steps.forEach((step: { guidance_scale: number }, i: number) => {
      assert.equal(reference(`guidance_step_${i}`)[0], Math.fround(step.guidance_scale));
      const guided = classifierFreeGuidance(
        reference(`transformer_out_step_${i}`),
        step.guidance_scale,
      );
      assert.deepEqual(guided, reference(`noise_pred_step_${i}`), `step ${i}`);
    });
  });
}

// glibc's pow (which Python's `**` calls) is not correctly rounded: at these timesteps
// (linspace N = 46, leading N = 66, linspace N = 95) its fifth power is one ulp from the
// exact one. Values from Python 3 on glibc 2.36; Math.pow calls the same C function.
Deno.test({
  name: "the fifth power rounds as the C library's pow does, not exactly",
  ignore: Deno.build.os !== "linux",
  fn() {
    const cases = [
      { n: 46, t: 111, pow5: "-0x1.688b1eec106ffp+2", guidance: 2.7784304857435083 },
      { n: 66, t: 735, pow5: "-0x1.a1feaf6cdb94fp+16", guidance: 5.6490749618894185 },
      { n: 95, t: 712, pow5: "-0x1.69200e32d452fp+13", guidance: 1.0007115444946428 },
    ];
    for (const { n, t, pow5, guidance } of cases) {
      const terms = dynamicGuidanceTerms(6, t, n);
      assert.equal(terms.pow5, parseHexFloat(pow5), `pow5 for N=${n}, t=${t}`);
      assert.ok(Math.abs(terms.guidance - guidance) <= 1e-15 * guidance);
    }
  },
});
