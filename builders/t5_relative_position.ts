/**
 * T5's relative position buckets (transformers' `T5Attention._relative_position_bucket`, the
 * bidirectional form the encoder uses), computed in TypeScript with float32 rounding at every
 * step, as torch computes them: near a bucket boundary a float64 `log` would move positions into
 * the neighbouring bucket (at 64 with 32 buckets and distance 128 the float32 value is exactly 6).
 *
 * Checked against torch 2.11 / transformers 5.17 on CPU for every relative position in
 * [-600, 600] and six bucket configurations (t5_encoder_test.ts holds the recorded results).
 *
 * @module
 */

/** The bucket options of T5's relative attention. */
export interface RelativePositionBucketOptions {
  /** `relative_attention_num_buckets` (at least 4). */
  numBuckets: number;
  /** `relative_attention_max_distance` (larger than a quarter of `numBuckets`). */
  maxDistance: number;
}

/**
 * The bucket of `relativePosition` (memory position minus query position), bidirectional: half
 * the buckets for positive positions; in each half, exact buckets for small distances and
 * logarithmic ones up to `maxDistance`, beyond which all fall in the last one.
 */
export function relativePositionBucket(
  relativePosition: number,
  options: RelativePositionBucketOptions,
): number {
  const f = Math.fround;
  const numBuckets = Math.floor(options.numBuckets / 2);
  const relativeBuckets = relativePosition > 0 ? numBuckets : 0;
  const position = Math.abs(relativePosition);
  const maxExact = Math.floor(numBuckets / 2);
  if (position < maxExact) return relativeBuckets + position;
  // torch: log of a float32 tensor, divided by the float64 scalar cast to float32, times an int.
  const ratio = f(
    f(Math.log(f(position / maxExact))) / f(Math.log(options.maxDistance / maxExact)),
  );
  const ifLarge = maxExact + Math.trunc(f(ratio * (numBuckets - maxExact)));
  return relativeBuckets + Math.min(ifLarge, numBuckets - 1);
}

/** Buckets of every relative position in `[-span, span]`; outside, the bucket at the nearer end. */
export interface RelativePositionBucketTable {
  /** Relative positions beyond `±span` have the bucket of `±span`. */
  span: number;
  /** `buckets[relativePosition + span]`. */
  buckets: Int32Array;
}

/**
 * The buckets of relative positions `-span..span` with `span = maxDistance + 1`: past
 * `maxDistance` every position is in the last bucket of its half (the float32 steps are monotonic,
 * so once `maxDistance + 1` reaches it all farther positions do), which lets a graph clamp relative
 * positions into the table and take any sequence length.
 */
export function relativePositionBucketTable(
  options: RelativePositionBucketOptions,
): RelativePositionBucketTable {
  const span = options.maxDistance + 1;
  const buckets = new Int32Array(2 * span + 1);
  for (let i = 0; i < buckets.length; i++) {
    buckets[i] = relativePositionBucket(i - span, options);
  }
  const half = Math.floor(options.numBuckets / 2);
  if (buckets[0] !== half - 1 || buckets[2 * span] !== 2 * half - 1) {
    throw new Error(
      `Relative position buckets (${options.numBuckets}, ${options.maxDistance}): positions past the maximum distance are not in the last bucket`,
    );
  }
  return { span, buckets };
}
