import assert from "node:assert/strict";
import { checkSameLength, checkStepIndex, predictOriginalSample } from "./scheduler_step.ts";

const sample = Float32Array.from([1, -2, 0.5]);
const modelOutput = Float32Array.from([0.25, 1, -4]);

Deno.test("v_prediction: x0 = sqrt(alphaBar) * sample - sqrt(1 - alphaBar) * v", () => {
  const x0 = predictOriginalSample("v_prediction", 0.64, sample, modelOutput);
  const a = Math.fround(0.8);
  const b = Math.fround(Math.sqrt(1 - 0.64));
  const f = Math.fround;
  assert.deepEqual(
    Array.from(x0),
    [0, 1, 2].map((i) => f(f(a * sample[i]) - f(b * modelOutput[i]))),
  );
});

Deno.test("v_prediction at zero SNR (alphaBar = 0) gives x0 = -v exactly", () => {
  const x0 = predictOriginalSample("v_prediction", 0, sample, modelOutput);
  assert.deepEqual(Array.from(x0), [-0.25, -1, 4]);
});

Deno.test("epsilon: x0 = (sample - sqrt(1 - alphaBar) * eps) / sqrt(alphaBar)", () => {
  const x0 = predictOriginalSample("epsilon", 0.25, sample, modelOutput);
  const b = Math.fround(Math.sqrt(0.75));
  const f = Math.fround;
  assert.deepEqual(
    Array.from(x0),
    [0, 1, 2].map((i) => f(f(sample[i] - f(b * modelOutput[i])) / 0.5)),
  );
});

Deno.test("sample: x0 is the model output, copied", () => {
  const x0 = predictOriginalSample("sample", 0.5, sample, modelOutput);
  assert.deepEqual(x0, modelOutput);
  assert.notEqual(x0, modelOutput);
});

Deno.test("float32 schedules round each scalar to float32 first", () => {
  const x0 = predictOriginalSample("v_prediction", 0.3, sample, modelOutput, Math.fround);
  const f = Math.fround;
  const a = f(Math.sqrt(0.3));
  const b = f(Math.sqrt(f(1 - 0.3)));
  assert.equal(x0[0], f(f(a * 1) - f(b * 0.25)));
});

Deno.test("mismatched lengths and step indices are errors", () => {
  assert.throws(
    () => predictOriginalSample("v_prediction", 0.5, sample, new Float32Array(2)),
    /Scheduler model output has 2 elements but the sample has 3/,
  );
  assert.throws(() => checkSameLength(sample, new Float32Array(4), "noise"), /noise has 4/);
  assert.throws(
    () => checkStepIndex(4, [999, 499]),
    /Invalid scheduler step 4: expected an integer from 0 to 1/,
  );
  checkStepIndex(1, [999, 499]);
});
