package io.github.optjava.engine;

import java.util.Arrays;

/**
 * HF {@code TypicalLogitsWarper} (locally typical sampling): with {@code log p} the log-softmax and {@code H} the
 * entropy, sort the tokens by {@code |-log p - H|} ascending (the most typical first), take the cumulative sum of
 * their probabilities, find the first position where it reaches {@code mass}, and set to -inf every token whose
 * distance is larger than the distance there; the most typical token always stays.
 *
 * <p>Numerics follow torch's float32: the log-probabilities, the entropy and the distances are float32 (computed
 * in double and rounded), the running sum is accumulated in double and rounded to float32 at each step (as
 * {@link TopPProcessor} does), and compared with {@code mass} rounded to float32. Ties in the distance keep the
 * same fate whatever their order (the cut compares values), except for which of them is "the most typical".
 * Cost: a sort of every live token (the whole vocabulary on a raw row).
 */
public final class TypicalProcessor implements LogitsProcessor {
  private final double mass;
  private final float massF;
  private long[] keys = new long[64]; // distance bits (non-negative float: ordered as ints) and token id
  private float[] logp = new float[64];

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
    double sum = 0;
    for (float v : logits) {
      if (v > Float.NEGATIVE_INFINITY) {
        sum += Math.exp((double) v - max);
      }
    }
    double lse = max + Math.log(sum);
    if (logp.length < logits.length) {
      logp = new float[logits.length];
    }
    double entropy = 0;
    for (int i = 0; i < logits.length; i++) {
      float v = logits[i];
      if (v > Float.NEGATIVE_INFINITY) {
        logp[i] = (float) (v - lse);
        entropy -= logp[i] * Math.exp(logp[i]); // HF's nansum: -inf tokens (0 * -inf) add nothing
      }
    }
    float h = (float) entropy;
    if (keys.length < live) {
      keys = new long[Math.max(live, 2 * keys.length)];
    }
    int m = 0;
    for (int i = 0; i < logits.length; i++) {
      if (logits[i] > Float.NEGATIVE_INFINITY) {
        float distance = Math.abs(-logp[i] - h);
        keys[m++] = ((long) Float.floatToIntBits(distance) << 32) | i;
      }
    }
    Arrays.sort(keys, 0, m);
    // The first sorted position where the cumulative probability is no longer below the mass (all of them when it
    // never gets there: then nothing is removed).
    double cumulative = 0;
    int last = m - 1;
    for (int j = 0; j < m; j++) {
      cumulative += (float) Math.exp(logp[(int) keys[j]]);
      if (!((float) cumulative < massF)) {
        last = j;
        break;
      }
    }
    float cut = Float.intBitsToFloat((int) (keys[last] >>> 32));
    for (int j = 1; j < m; j++) { // the most typical token (j = 0) always stays
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
