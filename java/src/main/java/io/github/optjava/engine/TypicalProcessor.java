package io.github.optjava.engine;

import io.github.optjava.backend.cpu.RowKernels;
import java.util.Arrays;

/**
 * HF {@code TypicalLogitsWarper} (locally typical sampling): with {@code log p} the log-softmax and {@code H} the
 * entropy, sort the tokens by {@code |-log p - H|} ascending (the most typical first), take the cumulative sum of
 * their probabilities, find the first position where it reaches {@code mass}, and set to -inf every token whose
 * distance is larger than the distance there; the most typical token always stays.
 *
 * <p>Numerics follow torch's float32: the log-probabilities, their exponentials, the entropy and the distances are
 * float32 (the exponentials {@link RowKernels#exp}'s; the sums in double, then rounded), the running sum is
 * accumulated in double and compared, rounded to float32, with {@code mass} rounded to float32. Ties in the distance
 * keep the same fate whatever their order (the cut compares values). Cost: linear in the live tokens on average (a
 * partition around the stop, then a sort of the last few dozen), where sorting them all took 3.1 ms per row.
 */
public final class TypicalProcessor implements LogitsProcessor {
  private final double mass;
  private final float massF;
  private long[] keys = new long[64]; // distance bits (non-negative float: ordered as ints) and token id
  private float[] logp = new float[64];
  private float[] prob = new float[64]; // exp(logp), float32

  /** @param mass in (0, 1): the probability mass of the typical set kept */
  public TypicalProcessor(double mass) {
    if (!(mass > 0 && mass < 1)) {
      throw new IllegalArgumentException("typical-p must be in (0, 1) (got " + mass + ")");
    }
    this.mass = mass;
    this.massF = (float) mass;
  }

  @Override
  public void process(int[] inputIds, int inputLength, int promptLength, float[] logits) {
    int n = logits.length;
    float max = Float.NEGATIVE_INFINITY;
    int live = 0;
    for (float v : logits) {
      if (v > Float.NEGATIVE_INFINITY) {
        live++;
        max = Math.max(max, v);
      }
    }
    if (live <= 1 || max == Float.POSITIVE_INFINITY) {
      return;
    }
    if (logp.length < n) {
      logp = new float[n];
      prob = new float[n];
    }
    boolean nan = RowKernels.max(logits, 0, n) != max;
    double sum = 0;
    if (nan) {
      for (float v : logits) {
        sum += v > Float.NEGATIVE_INFINITY ? RowKernels.exp(v - max) : 0f;
      }
    } else {
      sum = RowKernels.expSum(logits, 0, n, max);
    }
    double lse = max + Math.log(sum);
    for (int i = 0; i < n; i++) {
      float v = logits[i];
      logp[i] = v > Float.NEGATIVE_INFINITY ? (float) (v - lse) : Float.NEGATIVE_INFINITY; // NaN rows: -inf too
    }
    RowKernels.expInto(logp, 0, n, 0f, prob); // each probability a float, as torch's exp of the log-softmax
    double entropy = 0;
    for (int i = 0; i < n; i++) {
      if (logits[i] > Float.NEGATIVE_INFINITY) {
        entropy -= logp[i] * (double) prob[i]; // HF's nansum: -inf tokens (0 * -inf) add nothing
      }
    }
    float h = (float) entropy;
    if (keys.length < live) {
      keys = new long[Math.max(live, 2 * keys.length)];
    }
    int m = 0;
    for (int i = 0; i < n; i++) {
      if (logits[i] > Float.NEGATIVE_INFINITY) {
        float distance = Math.abs(-logp[i] - h);
        keys[m++] = ((long) Float.floatToIntBits(distance) << 32) | i;
      }
    }
    // The first position in the ascending order where the cumulative probability is no longer below the mass (the
    // last when it never gets there). Partitioned around it as TopPProcessor does, instead of sorting every live
    // token (3.1 ms per row of 50,272): a run whose mass keeps the sum below the mass lies wholly before it.
    double cumulative = 0;
    int lo = 0;
    int hi = m;
    while (hi - lo > 32) {
      int mid = TopPProcessor.partition(keys, lo, hi);
      double below = 0;
      for (int j = lo; j < mid; j++) {
        below += prob[(int) keys[j]];
      }
      if ((float) (cumulative + below) < massF) {
        cumulative += below;
        lo = mid;
      } else {
        hi = mid;
      }
    }
    Arrays.sort(keys, lo, hi);
    int last = m - 1;
    for (int j = lo; j < m; j++) {
      if (j == hi) { // past the run (rounding): order the rest too
        Arrays.sort(keys, hi, m);
        hi = m;
      }
      cumulative += prob[(int) keys[j]];
      if (!((float) cumulative < massF)) {
        last = j;
        break;
      }
    }
    // Every token farther from the entropy than the one there goes; the most typical token's distance is at most
    // that one's, so it always stays.
    float cut = Float.intBitsToFloat((int) (keys[last] >>> 32));
    for (int j = 0; j < m; j++) {
      if (Float.intBitsToFloat((int) (keys[j] >>> 32)) > cut) {
        logits[(int) keys[j]] = Float.NEGATIVE_INFINITY;
      }
    }
  }

  @Override
  public String toString() {
    return "Typical(" + mass + ")";
  }
}
