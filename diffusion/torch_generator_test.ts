import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { readSafetensors } from "../runtime/safetensors.ts";
import { expectDType, type Tensor } from "../runtime/tensor.ts";
import {
  fmaFloat32,
  logFloat32Avx2,
  Mt19937,
  sinCosFloat32Avx2,
  TorchGenerator,
  uniformDouble53,
  uniformFloat24,
} from "./torch_generator.ts";

const FIXTURE = fileURLToPath(
  new URL("../tests/fixtures/tiny-cogvideox/rng/torch_randn.safetensors", import.meta.url),
);
const fixture = await readSafetensors(FIXTURE);
const LARGE_SHAPE = [1, 13, 16, 60, 90];

function expected(name: string): Tensor<"float32"> {
  const tensor = fixture.tensors.get(name);
  assert.ok(tensor, `fixture has no tensor "${name}"`);
  return expectDType(tensor, "float32", name);
}

/** Compares float32 values by their bits, naming the first difference. */
function assertSameBits(actual: Float32Array, wanted: Float32Array, what: string): void {
  assert.equal(actual.length, wanted.length, `${what}: length`);
  const actualBits = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const wantedBits = new Uint32Array(wanted.buffer, wanted.byteOffset, wanted.length);
  for (let i = 0; i < actualBits.length; i++) {
    if (actualBits[i] !== wantedBits[i]) {
      assert.fail(`${what}: element ${i} is ${actual[i]}, torch gives ${wanted[i]}`);
    }
  }
}

Deno.test("randn matches torch for every seed and shape in the fixture", () => {
  const pattern = /^seed(\d+)_(\d+(?:x\d+)*)$/;
  let checked = 0;
  for (const name of fixture.tensors.keys()) {
    const match = pattern.exec(name);
    if (!match) continue;
    const shape = match[2].split("x").map(Number);
    const wanted = expected(name);
    assert.deepEqual(wanted.shape, shape, `${name}: fixture shape`);
    const drawn = new TorchGenerator(BigInt(match[1])).randn(shape);
    assert.deepEqual(drawn.shape, shape);
    assertSameBits(drawn.data, wanted.data, name);
    checked++;
  }
  assert.equal(checked, 4 * 6, "4 seeds times 6 shapes");
});

Deno.test("randn matches torch on a full-size CogVideoX latent", () => {
  const drawn = new TorchGenerator(0).randn(LARGE_SHAPE).data;
  assert.equal(drawn.length, 1_123_200);
  assertSameBits(
    drawn.subarray(0, 256),
    expected("seed0_1x13x16x60x90_first256").data,
    "first 256",
  );
  assertSameBits(drawn.subarray(-256), expected("seed0_1x13x16x60x90_last256").data, "last 256");
  let sum = 0;
  for (const value of drawn) sum += value;
  const wantedSum = expectDType(fixture.tensors.get("seed0_1x13x16x60x90_sum_f64")!, "float64");
  assert.equal(sum, wantedSum.data[0]);
  assert.equal(sum, Number(fixture.metadata["seed0_1x13x16x60x90_sum_f64"]));
});

Deno.test("one generator continues its stream across draws", () => {
  const generator = new TorchGenerator(42);
  assertSameBits(
    generator.randn([1, 3, 4, 8, 8]).data,
    expected("seq_seed42_0_1x3x4x8x8").data,
    "draw 0",
  );
  assertSameBits(
    generator.randn([2, 3, 4, 8, 8]).data,
    expected("seq_seed42_1_2x3x4x8x8").data,
    "draw 1",
  );
  assertSameBits(generator.randn([5]).data, expected("seq_seed42_2_5").data, "draw 2");
});

Deno.test("small draws carry the cached second Box-Muller sample into the next draw", () => {
  const whole = new TorchGenerator(7).randn([8]).data;
  const generator = new TorchGenerator(7);
  const parts = [...generator.randn([5]).data, ...generator.randn([3]).data];
  assertSameBits(Float32Array.from(parts), whole, "5 then 3");
});

Deno.test("manualSeed restarts the stream and drops the cached sample", () => {
  const generator = new TorchGenerator(3);
  const first = generator.randn([3]).data;
  generator.randn([40]);
  assertSameBits(generator.manualSeed(3).randn([3]).data, first, "after reseeding");
});

Deno.test("only the low 32 bits of a seed reach the Mersenne Twister", () => {
  const five = new TorchGenerator(5).randn([20]).data;
  assertSameBits(new TorchGenerator(2 ** 40 + 5).randn([20]).data, five, "number seed");
  assertSameBits(new TorchGenerator(2n ** 40n + 5n).randn([20]).data, five, "bigint seed");
  assertSameBits(new TorchGenerator(2n ** 64n - 2n ** 32n + 5n).randn([20]).data, five, "top seed");
  assert.equal(new TorchGenerator(2 ** 40 + 5).initialSeed, 1099511627781n);
});

Deno.test("invalid seeds are refused", () => {
  for (const seed of [-1, 1.5, NaN, Infinity, 2 ** 64, -1n, 2n ** 64n]) {
    assert.throws(() => new TorchGenerator(seed), /Invalid seed ".*": expected an integer/);
  }
});

Deno.test("randn handles scalar and empty shapes and refuses invalid ones", () => {
  const generator = new TorchGenerator(0);
  assert.deepEqual(generator.randn([]).shape, []);
  assert.equal(generator.randn([]).data.length, 1);
  assert.equal(generator.randn([0, 4]).data.length, 0);
  assert.throws(() => generator.randn([2, -1]), /Invalid tensor shape/);
});

Deno.test("Mt19937 gives the reference outputs of the C++ standard", () => {
  const engine = new Mt19937(5489);
  assert.equal(engine.nextUint32(), 3499211612);
  for (let i = 2; i < 10000; i++) engine.nextUint32();
  assert.equal(engine.nextUint32(), 4123659995);
});

Deno.test("uniforms keep 24 or 53 low bits", () => {
  assert.equal(uniformFloat24(0xff000000), 0);
  assert.equal(uniformFloat24(0xffffffff), 1 - 2 ** -24);
  assert.equal(uniformDouble53(0xffe00000, 0), 0);
  assert.equal(uniformDouble53(0xffffffff, 0xffffffff), 1 - 2 ** -53);
});

Deno.test("fmaFloat32 rounds once where float64 then float32 would round twice", () => {
  const a = 1 + 2 ** -12;
  // a * a = 1 + 2^-11 + 2^-24 lies halfway between two floats; a tiny addend breaks the tie.
  assert.equal(fmaFloat32(a, a, 2 ** -80), 1 + 2 ** -11 + 2 ** -23);
  assert.equal(fmaFloat32(a, a, -(2 ** -80)), 1 + 2 ** -11);
  assert.equal(fmaFloat32(a, a, 0), 1 + 2 ** -11);
  assert.equal(fmaFloat32(3, 0.5, 0.25), 1.75);
});

Deno.test("the AVX2 log and sincos stay within a few ulp of the true values", () => {
  assert.equal(logFloat32Avx2(1), 0);
  assert.ok(Number.isNaN(logFloat32Avx2(0)));
  const angle = { sin: 0, cos: 0 };
  for (const x of [2 ** -24, 0.001, 0.3, 0.5, 0.70710677, 0.9999999]) {
    const log = logFloat32Avx2(Math.fround(x));
    assert.ok(Math.abs(log - Math.log(Math.fround(x))) <= 4e-7 * Math.abs(log) + 1e-12, `log ${x}`);
  }
  for (const x of [0, 0.1, 1, 2, 3, 4, 5, 6, 6.28]) {
    sinCosFloat32Avx2(Math.fround(x), angle);
    assert.ok(Math.abs(angle.sin - Math.sin(Math.fround(x))) < 3e-7, `sin ${x}`);
    assert.ok(Math.abs(angle.cos - Math.cos(Math.fround(x))) < 3e-7, `cos ${x}`);
  }
});
