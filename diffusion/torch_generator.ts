/**
 * A bit-exact reimplementation of `torch.Generator("cpu")` for
 * `torch.randn(shape, generator=g, dtype=torch.float32)`, as torch 2.11 computes it in its
 * x86-64 Linux wheels.
 *
 * The generator is a 32-bit Mersenne Twister seeded with the low 32 bits of the seed. `randn`
 * takes one of two paths, like torch's CPU `normal_kernel`:
 *
 * - Fewer than 16 elements: Box-Muller in float64 per pair of 53-bit uniforms, returning the
 *   cosine sample and caching the sine sample in the generator for the next element, even
 *   across calls (`normal_distribution<double>`).
 * - 16 or more elements: one 24-bit uniform float per element, then Box-Muller over blocks of 16
 *   (the first 8 values give radii, the next 8 angles) in float32 with the AVX2 kernel's
 *   cephes-style `log` and `sincos` approximations (`normal_fill_AVX2`). When the size is not a
 *   multiple of 16, 16 fresh uniforms overwrite the last 16 elements and are transformed again.
 *
 * @module
 */

import { createTensor, type Tensor } from "../runtime/tensor.ts";

const MT_STATE_SIZE = 624;
const MT_SHIFT_SIZE = 397;
const MT_MATRIX_A = 0x9908b0df;
const MT_UPPER_MASK = 0x80000000;
const MT_LOWER_MASK = 0x7fffffff;

/** The 32-bit Mersenne Twister (MT19937) that drives torch's CPU generator. */
export class Mt19937 {
  readonly #state = new Uint32Array(MT_STATE_SIZE);
  #index = MT_STATE_SIZE;

  /** Seeds the state from a 32-bit unsigned integer, as `std::mt19937(seed)` does. */
  constructor(seed: number) {
    const state = this.#state;
    state[0] = seed >>> 0;
    for (let i = 1; i < MT_STATE_SIZE; i++) {
      const previous = state[i - 1] ^ (state[i - 1] >>> 30);
      state[i] = Math.imul(1812433253, previous) + i;
    }
  }

  /** The next 32-bit unsigned output. */
  nextUint32(): number {
    if (this.#index >= MT_STATE_SIZE) this.#twist();
    let y = this.#state[this.#index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** Regenerates all 624 words; the three loops avoid a modulo per word. */
  #twist(): void {
    const state = this.#state;
    const mix = (i: number, next: number, shifted: number) => {
      const y = (state[i] & MT_UPPER_MASK) | (state[next] & MT_LOWER_MASK);
      state[i] = state[shifted] ^ (y >>> 1) ^ ((y & 1) * MT_MATRIX_A);
    };
    const split = MT_STATE_SIZE - MT_SHIFT_SIZE;
    for (let i = 0; i < split; i++) mix(i, i + 1, i + MT_SHIFT_SIZE);
    for (let i = split; i < MT_STATE_SIZE - 1; i++) mix(i, i + 1, i - split);
    mix(MT_STATE_SIZE - 1, 0, MT_SHIFT_SIZE - 1);
    this.#index = 0;
  }
}

/** A uniform float in [0, 1) from the low 24 bits of one output (`uniform_real<float>`). */
export function uniformFloat24(bits: number): number {
  return (bits & 0xffffff) / 0x1000000;
}

/**
 * A uniform double in [0, 1) from two outputs joined high word first, keeping the low 53 bits
 * (`uniform_real_distribution<double>` over `random64()`).
 */
export function uniformDouble53(high: number, low: number): number {
  return ((high & 0x1fffff) * 0x100000000 + (low >>> 0)) / 2 ** 53;
}

const bitsScratch = new Float32Array(1);
const intScratch = new Int32Array(bitsScratch.buffer);

/** The float32 next to `x` in the direction of `toward` (`nextafterf`, for finite `x`). */
function nextFloat32(x: number, toward: number): number {
  if (x === 0) return toward > 0 ? 2 ** -149 : -(2 ** -149);
  bitsScratch[0] = x;
  intScratch[0] += (toward > x) === (x > 0) ? 1 : -1;
  return bitsScratch[0];
}

/**
 * `fmaf(a, b, c)`: a * b + c rounded once to float32, for float32 inputs.
 *
 * The product of two floats is exact in float64; the float64 sum may round, and rounding that
 * again to float32 is wrong only when it lands exactly halfway between two floats, where the
 * sign of the lost remainder decides.
 */
export function fmaFloat32(a: number, b: number, c: number): number {
  const product = a * b;
  const sum = product + c;
  const rounded = Math.fround(sum);
  if (rounded === sum) return rounded;
  const cPart = sum - product;
  const remainder = (product - (sum - cPart)) + (c - cPart);
  if (remainder === 0) return rounded;
  const other = nextFloat32(rounded, sum);
  if ((rounded + other) / 2 !== sum) return rounded;
  return (remainder > 0) === (other > rounded) ? other : rounded;
}

// The AVX2 kernel's float32 math (torch's avx_mathfun.h, after Julien Pommier's sse_mathfun, itself
// after cephes), one lane at a time, every step rounded to float32. Which formula torch used was
// settled by the fixture vectors, not by reading: float64 Math.log/cos/sin rounded to float32, and
// the scalar `normal_fill_16` (float logf/cosf/sinf), both miss a third or more of the values by an
// ulp or so; these approximations match all of them, but only with the FMAs that GCC (which builds
// torch's Linux wheels) makes by contracting an intrinsic multiply whose only use is an add. When
// an add has two products the earlier one is fused. Without those FMAs, or with the other product
// fused, up to one value in a hundred differs by an ulp, and so does the f64 sum of the large draw.
// Torch on a CPU without AVX2 (or on ARM) takes the scalar path and gives other bits; this module
// follows the x86-64 AVX2 wheels.

const f32 = Math.fround;
const LOG_POLYNOMIAL = [
  7.0376836292e-2,
  -1.1514610310e-1,
  1.1676998740e-1,
  -1.2420140846e-1,
  1.4249322787e-1,
  -1.6668057665e-1,
  2.0000714765e-1,
  -2.4999993993e-1,
  3.3333331174e-1,
].map(f32);
const LOG_Q1 = f32(-2.12194440e-4);
const LOG_Q2 = f32(0.693359375);
const SQRT_HALF = f32(0.707106781186547524);
const MIN_NORMAL_FLOAT32 = 2 ** -126;

/** Natural log of a float32 as torch's AVX2 `log256_ps` computes it (NaN for x <= 0). */
export function logFloat32Avx2(x: number): number {
  if (!(x > 0)) return NaN;
  bitsScratch[0] = Math.max(x, MIN_NORMAL_FLOAT32);
  const bits = intScratch[0];
  // Split x into a mantissa in [0.5, 1) and an exponent.
  intScratch[0] = (bits & ~0x7f800000) | 0x3f000000;
  let m = bitsScratch[0];
  let e = (bits >>> 23) - 127 + 1;
  if (m < SQRT_HALF) {
    e -= 1;
    m = f32(f32(m - 1) + m);
  } else {
    m = f32(m - 1);
  }
  const z = f32(m * m);
  let y = LOG_POLYNOMIAL[0];
  for (let i = 1; i < LOG_POLYNOMIAL.length; i++) y = fmaFloat32(y, m, LOG_POLYNOMIAL[i]);
  y = f32(y * m);
  y = fmaFloat32(y, z, f32(e * LOG_Q1));
  y = fmaFloat32(z, -0.5, y);
  return fmaFloat32(e, LOG_Q2, f32(m + y));
}

const FOUR_OVER_PI = f32(1.27323954473516);
const MINUS_DP1 = f32(-0.78515625);
const MINUS_DP2 = f32(-2.4187564849853515625e-4);
const MINUS_DP3 = f32(-3.77489497744594108e-8);
const SIN_P0 = f32(-1.9515295891e-4);
const SIN_P1 = f32(8.3321608736e-3);
const SIN_P2 = f32(-1.6666654611e-1);
const COS_P0 = f32(2.443315711809948e-5);
const COS_P1 = f32(-1.388731625493765e-3);
const COS_P2 = f32(4.166664568298827e-2);

/** A sine and a cosine of one angle. */
export interface SinCos {
  /** The sine. */
  sin: number;
  /** The cosine. */
  cos: number;
}

/**
 * Sine and cosine of a float32 as torch's AVX2 `sincos256_ps` computes them, written into
 * `out` (so that hot loops allocate nothing). Accurate for |x| < 8192.
 */
export function sinCosFloat32Avx2(x: number, out: SinCos): SinCos {
  let r = Math.abs(x);
  // Octant j (made even), then r reduced to [-pi/4, pi/4] in three exact-ish steps.
  const j = ((Math.trunc(f32(r * FOUR_OVER_PI)) | 0) + 1) & ~1;
  r = fmaFloat32(j, MINUS_DP1, r);
  r = fmaFloat32(j, MINUS_DP2, r);
  r = fmaFloat32(j, MINUS_DP3, r);
  const z = f32(r * r);

  let cosPoly = fmaFloat32(fmaFloat32(COS_P0, z, COS_P1), z, COS_P2);
  cosPoly = f32(cosPoly * z);
  cosPoly = f32(fmaFloat32(cosPoly, z, -f32(z * 0.5)) + 1);
  let sinPoly = fmaFloat32(fmaFloat32(SIN_P0, z, SIN_P1), z, SIN_P2);
  sinPoly = fmaFloat32(f32(sinPoly * z), r, r);

  // The kernel selects by masking and adding, so a -0 comes out as +0 before the sign flips.
  const sinFirst = (j & 2) === 0;
  const sinAbs = (sinFirst ? sinPoly : cosPoly) + 0;
  const cosAbs = (sinFirst ? cosPoly : sinPoly) + 0;
  const sinNegative = (x < 0 || Object.is(x, -0)) !== ((j & 4) !== 0);
  const cosNegative = (~(j - 2) & 4) !== 0;
  out.sin = sinNegative ? -sinAbs : sinAbs;
  out.cos = cosNegative ? -cosAbs : cosAbs;
  return out;
}

const TWO_PI_FLOAT32 = f32(2 * Math.PI);

/**
 * Turns 16 uniforms at `data[offset..offset + 16)` into 16 standard normals in place
 * (`normal_fill_16_AVX2` with mean 0 and std 1).
 */
function normalFill16(data: Float32Array, offset: number, angle: SinCos): void {
  for (let j = offset; j < offset + 8; j++) {
    // 1 - u maps [0, 1) to (0, 1] for the log.
    const radius = f32(Math.sqrt(f32(-2 * logFloat32Avx2(f32(1 - data[j])))));
    sinCosFloat32Avx2(f32(TWO_PI_FLOAT32 * data[j + 8]), angle);
    // The kernel's fmadd(n, std, mean) with std 1 and mean 0 is n + 0.
    data[j] = f32(radius * angle.cos) + 0;
    data[j + 8] = f32(radius * angle.sin) + 0;
  }
}

/** Throws unless `seed` is an integer in [0, 2^64); returns it as a bigint. */
function checkSeed(seed: number | bigint): bigint {
  const valid = typeof seed === "bigint"
    ? seed >= 0n && seed < 2n ** 64n
    : typeof seed === "number" && Number.isInteger(seed) && seed >= 0 && seed < 2 ** 64;
  if (!valid) {
    throw new RangeError(`Invalid seed "${String(seed)}": expected an integer from 0 to 2^64 - 1`);
  }
  return BigInt(seed);
}

/**
 * `torch.Generator("cpu")`: a seeded stream of standard normal draws that reproduces
 * `torch.randn(shape, generator=g, dtype=torch.float32)` bit for bit, including the state that
 * carries over from one draw to the next.
 *
 * ```ts
 * const generator = new TorchGenerator(42);
 * const latents = generator.randn([1, 13, 16, 60, 90]);
 * const noise = generator.randn([1, 13, 16, 60, 90]); // continues the same stream
 * ```
 */
export class TorchGenerator {
  #seed = 0n;
  #engine: Mt19937 = new Mt19937(0);
  #cachedNormal: number | undefined;
  readonly #angle: SinCos = { sin: 0, cos: 0 };

  /** Seeds the generator, as `torch.Generator("cpu").manual_seed(seed)`. */
  constructor(seed: number | bigint) {
    this.manualSeed(seed);
  }

  /** The seed last given, as `initial_seed()` returns it. */
  get initialSeed(): bigint {
    return this.#seed;
  }

  /**
   * Reseeds the generator and forgets the cached normal sample, as `manual_seed(seed)` does.
   * Only the low 32 bits of the seed reach the Mersenne Twister.
   */
  manualSeed(seed: number | bigint): this {
    this.#seed = checkSeed(seed);
    this.#engine = new Mt19937(Number(this.#seed & 0xffffffffn));
    this.#cachedNormal = undefined;
    return this;
  }

  /** Draws a float32 tensor of standard normals, as `torch.randn(shape, generator=this)`. */
  randn(shape: readonly number[]): Tensor<"float32"> {
    const tensor = createTensor("float32", shape);
    const data = tensor.data;
    if (data.length < 16) this.#fillNormalScalar(data);
    else this.#fillNormalBlocks(data);
    return tensor;
  }

  /**
   * The path for fewer than 16 elements: float64 Box-Muller with a cached second sample.
   * V8's float64 log1p/sin/cos can differ from glibc's in the last bit, but that reaches the
   * float32 result only when a value lies within a float64 ulp of a float32 rounding boundary.
   */
  #fillNormalScalar(data: Float32Array): void {
    for (let i = 0; i < data.length; i++) {
      if (this.#cachedNormal !== undefined) {
        data[i] = this.#cachedNormal + 0;
        this.#cachedNormal = undefined;
        continue;
      }
      const u1 = this.#uniformDouble();
      const u2 = this.#uniformDouble();
      const radius = Math.sqrt(-2 * Math.log1p(-u2));
      const theta = 2 * Math.PI * u1;
      this.#cachedNormal = radius * Math.sin(theta);
      data[i] = radius * Math.cos(theta) + 0;
    }
  }

  /** The path for 16 or more elements: float32 uniforms, transformed 16 at a time. */
  #fillNormalBlocks(data: Float32Array): void {
    const size = data.length;
    this.#fillUniformFloats(data, 0, size);
    for (let offset = 0; offset + 16 <= size; offset += 16) {
      normalFill16(data, offset, this.#angle);
    }
    if (size % 16 !== 0) {
      // Torch redraws the last 16 values, overlapping the last full block.
      this.#fillUniformFloats(data, size - 16, size);
      normalFill16(data, size - 16, this.#angle);
    }
  }

  #fillUniformFloats(data: Float32Array, start: number, end: number): void {
    const engine = this.#engine;
    for (let i = start; i < end; i++) data[i] = uniformFloat24(engine.nextUint32());
  }

  #uniformDouble(): number {
    const high = this.#engine.nextUint32();
    const low = this.#engine.nextUint32();
    return uniformDouble53(high, low);
  }
}
