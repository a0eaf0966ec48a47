package io.github.optjava.engine;

import io.github.optjava.backend.cpu.RowKernels;
import java.util.Arrays;

/**
 * HF {@code TopPLogitsWarper} (nucleus filtering): sort the scores ascending, take the cumulative sum of
 * their softmax, and set to -inf every token whose cumulative probability is {@code <= 1 - topP}; the
 * largest token always stays.
 *
 * <p>Numerics follow torch on the CPU: each probability is a float32, the running sum is accumulated
 * in double and rounded to float32 at each step (torch's CPU {@code cumsum} accumulates float in
 * double), and it is compared with {@code 1 - topP} rounded to float32 (torch casts the Python scalar
 * to the tensor's dtype; for 0.9 that is 0.1f). The softmax's weights are float exponentials
 * ({@link RowKernels#exp}, within 2 ulp) summed in double, so a token within about 1e-7 of the cut could in theory
 * land on the other side than in HF.
 *
 * <p>Ties: {@code torch.sort} is not stable, so HF's choice between equal scores that straddle the cut
 * is unspecified. Here equal scores are ordered by token id, the lower id counting as the larger (the
 * same preference as argmax), so among tied tokens at the cut the lower ids survive.
 *
 * <p>Cost: tokens whose probability is below {@code (1 - topP) / (2 * vocabulary)} are the smallest
 * ones and together hold less than {@code (1 - topP) / 2}, so every one of them is in the removed prefix
 * whatever the rounding; they are removed without sorting, and so are tokens already at -inf. The other candidates
 * are partitioned by value around the cut (quickselect guided by their mass) and only the last few dozen around it
 * are sorted: linear in the candidates on average, where sorting them all took ≈ 1 ms per row for a flat
 * distribution.
 */
public final class TopPProcessor implements LogitsProcessor {

  private final double topP;
  private final float removeAtOrBelow;
  /** Sort keys (float order in the high word, reversed token id in the low word); grows as needed. */
  private long[] keys = new long[64];
  /** Each token's unnormalised softmax weight this step (grown to the vocabulary on the first). */
  private float[] weights = new float[0];

  /** @param topP probability mass to keep, in (0, 1]; 1 keeps every token (HF adds no warper then) */
  public TopPProcessor(double topP) {
    if (!(topP > 0 && topP <= 1)) {
      throw new IllegalArgumentException("top-p must be in (0, 1] (got " + topP + ")");
    }
    this.topP = topP;
    this.removeAtOrBelow = (float) (1 - topP);
  }

  @Override
  public void process(int[] inputIds, int inputLength, int promptLength, float[] logits) {
    if (topP == 1) {
      return;
    }
    int vocab = logits.length;
    float max = RowKernels.max(logits, 0, vocab);
    boolean nan = max != max;
    if (nan) { // the sampler will refuse the row; filter the rest as if the NaNs were not there
      max = Float.NEGATIVE_INFINITY;
      for (float v : logits) {
        max = v > max ? v : max;
      }
    }
    if (max == Float.NEGATIVE_INFINITY) {
      return;
    }
    if (weights.length < vocab) {
      weights = new float[vocab];
    }
    double sum = 0;
    if (nan || max == Float.POSITIVE_INFINITY) {
      for (int i = 0; i < vocab; i++) {
        weights[i] = logits[i] > Float.NEGATIVE_INFINITY ? (float) weight(logits[i], max) : 0f;
        sum += weights[i];
      }
    } else {
      sum = RowKernels.expInto(logits, 0, vocab, max, weights);
    }
    // Below this weight a token is "tiny": all tiny tokens together are < (1 - topP) / 2 of the mass.
    double tiny = max == Float.POSITIVE_INFINITY ? 0 : sum * (1 - topP) / (2.0 * vocab);
    int m = 0;
    double candidates = 0;
    for (int i = 0; i < vocab; i++) {
      float v = logits[i];
      if (!(v > Float.NEGATIVE_INFINITY)) {
        continue;
      }
      if (weights[i] < tiny) {
        logits[i] = Float.NEGATIVE_INFINITY;
      } else {
        if (m == keys.length) {
          keys = Arrays.copyOf(keys, 2 * m);
        }
        keys[m++] = key(v, i);
        candidates += weights[i];
      }
    }
    // The removed tokens are a prefix of the ascending order, because the cumulative sum only grows;
    // it starts with the mass of the tiny tokens removed above.
    double cumulative = (sum - candidates) / sum;
    // Partition by value until the cut lies in a short run: a run below the cut whose mass keeps the cumulative sum
    // at or under 1 - topP is removed whole (its terms are the walk's, added in another order: the double sums differ
    // by ~1e-16, far below the float comparison), a run above it is kept whole. Sorting every candidate instead took
    // 1 ms per row when thousands of tokens were candidates (a flat distribution or a high temperature).
    int lo = 0;
    int hi = m;
    while (hi - lo > 32) {
      int mid = partition(keys, lo, hi);
      double below = 0;
      for (int j = lo; j < mid; j++) {
        below += (float) (weights[tokenId(keys[j])] / sum);
      }
      if ((float) (cumulative + below) <= removeAtOrBelow) {
        cumulative += below;
        lo = mid;
      } else {
        hi = mid;
      }
    }
    Arrays.sort(keys, lo, hi);
    int removed = lo;
    while (removed < m - 1) {
      if (removed == hi) { // the walk went past the run (rounding): order the rest too
        Arrays.sort(keys, hi, m);
        hi = m;
      }
      cumulative += (float) (weights[tokenId(keys[removed])] / sum);
      if ((float) cumulative > removeAtOrBelow) {
        break;
      }
      removed++;
    }
    for (int j = 0; j < removed; j++) {
      logits[tokenId(keys[j])] = Float.NEGATIVE_INFINITY;
    }
  }

  /**
   * Reorders {@code keys[lo, hi)} (distinct, at least 3) around the median of its first, middle and last keys:
   * returns {@code mid} with the keys below that median in {@code [lo, mid)} and the others after, {@code lo < mid <
   * hi - 1} (the median is neither the least nor the greatest of the three).
   */
  static int partition(long[] keys, int lo, int hi) {
    long a = keys[lo];
    long b = keys[(lo + hi) >>> 1];
    long c = keys[hi - 1];
    long pivot = Math.max(Math.min(a, b), Math.min(Math.max(a, b), c));
    int mid = lo;
    for (int j = lo; j < hi; j++) {
      long k = keys[j];
      if (k < pivot) {
        keys[j] = keys[mid];
        keys[mid++] = k;
      }
    }
    return mid;
  }

  /** Unnormalised softmax weight; a +inf maximum is the limit where only +inf tokens have weight. */
  private static double weight(float v, float max) {
    if (max == Float.POSITIVE_INFINITY) {
      return v == max ? 1 : 0;
    }
    return RowKernels.exp(v - max); // the same weight as RowKernels.expSum's
  }

  /** Orders by value, then by descending id, so the lowest id sorts last (largest) among ties. */
  private static long key(float v, int id) {
    int bits = Float.floatToIntBits(v == 0 ? 0f : v); // -0 and +0 tie, as in torch
    int ordered = bits ^ ((bits >> 31) & 0x7fffffff);
    return ((long) ordered << 32) | (~id & 0xffffffffL);
  }

  private static float value(long key) {
    int ordered = (int) (key >> 32);
    return Float.intBitsToFloat(ordered ^ ((ordered >> 31) & 0x7fffffff));
  }

  private static int tokenId(long key) {
    return ~(int) key;
  }

  @Override
  public String toString() {
    return "TopP(" + topP + ")";
  }
}
