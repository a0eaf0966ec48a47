package io.github.optjava.engine;

import java.util.Arrays;

/**
 * HF {@code TopPLogitsWarper} (nucleus filtering): sort the scores ascending, take the cumulative sum of
 * their softmax, and set to -inf every token whose cumulative probability is {@code <= 1 - topP}; the
 * largest token always stays.
 *
 * <p>Numerics follow torch on the CPU: each probability is a float32, the running sum is accumulated
 * in double and rounded to float32 at each step (torch's CPU {@code cumsum} accumulates float in
 * double), and it is compared with {@code 1 - topP} rounded to float32 (torch casts the Python scalar
 * to the tensor's dtype; for 0.9 that is 0.1f). The softmax itself is computed in double, so a token
 * within about 1e-7 of the cut could in theory land on the other side than in HF.
 *
 * <p>Ties: {@code torch.sort} is not stable, so HF's choice between equal scores that straddle the cut
 * is unspecified. Here equal scores are ordered by token id, the lower id counting as the larger (the
 * same preference as argmax), so among tied tokens at the cut the lower ids survive.
 *
 * <p>Cost: tokens whose probability is below {@code (1 - topP) / (2 * live tokens)} are the smallest
 * ones and together hold less than {@code (1 - topP) / 2}, so every one of them is in the removed prefix
 * whatever the rounding; they are removed without sorting, and so are tokens already at -inf. After top-k this sorts at most k entries; over a raw vocabulary typically a few
 * hundred to a few thousand. A flat distribution is the worst case (everything is sorted).
 */
public final class TopPProcessor implements LogitsProcessor {

  private final double topP;
  private final float removeAtOrBelow;
  /** Sort keys (float order in the high word, reversed token id in the low word); grows as needed. */
  private long[] keys = new long[64];

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
    float max = Float.NEGATIVE_INFINITY;
    int live = 0;
    for (float v : logits) {
      if (v > Float.NEGATIVE_INFINITY) { // also skips NaN, which HF would not sort sensibly
        live++;
        max = Math.max(max, v);
      }
    }
    if (live <= 1) {
      return;
    }
    double sum = 0;
    for (float v : logits) {
      if (v > Float.NEGATIVE_INFINITY) {
        sum += weight(v, max);
      }
    }
    // Below this log-weight a token is "tiny": all tiny tokens together are < (1 - topP) / 2 of the mass.
    double logTiny = max == Float.POSITIVE_INFINITY
        ? Double.NEGATIVE_INFINITY : Math.log(sum * (1 - topP) / (2.0 * live));
    int m = 0;
    for (int i = 0; i < logits.length; i++) {
      float v = logits[i];
      if (!(v > Float.NEGATIVE_INFINITY)) {
        continue;
      }
      if ((double) v - max < logTiny) {
        logits[i] = Float.NEGATIVE_INFINITY;
      } else {
        if (m == keys.length) {
          keys = Arrays.copyOf(keys, 2 * m);
        }
        keys[m++] = key(v, i);
      }
    }
    Arrays.sort(keys, 0, m);
    double candidates = 0;
    for (int j = 0; j < m; j++) {
      candidates += weight(value(keys[j]), max);
    }
    // The removed tokens are a prefix of the ascending order, because the cumulative sum only grows;
    // it starts with the mass of the tiny tokens removed above.
    double cumulative = (sum - candidates) / sum;
    int removed = 0;
    while (removed < m - 1) {
      cumulative += (float) (weight(value(keys[removed]), max) / sum);
      if ((float) cumulative > removeAtOrBelow) {
        break;
      }
      removed++;
    }
    for (int j = 0; j < removed; j++) {
      logits[tokenId(keys[j])] = Float.NEGATIVE_INFINITY;
    }
  }

  /** Unnormalised softmax weight; a +inf maximum is the limit where only +inf tokens have weight. */
  private static double weight(float v, float max) {
    if (max == Float.POSITIVE_INFINITY) {
      return v == max ? 1 : 0;
    }
    return Math.exp((double) v - max);
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
