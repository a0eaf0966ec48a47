package io.github.optjava.engine;

/**
 * HF {@code MinPLogitsWarper}: with {@code p} the softmax of the scores, set to -inf every token whose probability
 * is below {@code minP * max(p)}; the most likely token always stays (HF's {@code min_tokens_to_keep} is 1 when
 * sampling without beams).
 *
 * <p>Numerics as torch in float32: each probability and the threshold {@code (float) minP * (float) max(p)} are
 * float32 (the softmax itself is summed in double here), and the comparison is strict, as HF's.
 */
public final class MinPProcessor implements LogitsProcessor {
  private final double minP;

  /** @param minP in (0, 1]: the fraction of the top probability a token needs */
  public MinPProcessor(double minP) {
    if (!(minP > 0 && minP <= 1)) {
      throw new IllegalArgumentException("min-p must be in (0, 1] (got " + minP + ")");
    }
    this.minP = minP;
  }

  @Override
  public void process(int[] inputIds, int inputLength, int promptLength, float[] logits) {
    float max = Float.NEGATIVE_INFINITY;
    int live = 0;
    for (float v : logits) {
      if (v > Float.NEGATIVE_INFINITY) { // skips NaN too
        live++;
        max = Math.max(max, v);
      }
    }
    if (live <= 1 || max == Float.POSITIVE_INFINITY) {
      return; // one token, or +inf tokens: the others have probability 0 next to them and go below
    }
    double sum = 0;
    for (float v : logits) {
      if (v > Float.NEGATIVE_INFINITY) {
        sum += Math.exp((double) v - max);
      }
    }
    float threshold = (float) minP * (float) (1 / sum); // the top token's weight is exp(0) = 1
    for (int i = 0; i < logits.length; i++) {
      float v = logits[i];
      if (v > Float.NEGATIVE_INFINITY && v != max && (float) (Math.exp((double) v - max) / sum) < threshold) {
        logits[i] = Float.NEGATIVE_INFINITY;
      }
    }
  }

  @Override
  public String toString() {
    return "MinP(" + minP + ")";
  }
}
