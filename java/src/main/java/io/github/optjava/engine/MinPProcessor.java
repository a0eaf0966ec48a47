package io.github.optjava.engine;

import io.github.optjava.backend.cpu.RowKernels;

/**
 * HF {@code MinPLogitsWarper}: with {@code p} the softmax of the scores, set to -inf every token whose probability
 * is below {@code minP * max(p)}; the most likely token always stays (HF's {@code min_tokens_to_keep} is 1 when
 * sampling without beams).
 *
 * <p>Numerics as torch in float32: each probability and the threshold {@code (float) minP * (float) max(p)} are
 * float32 (the weights are {@link RowKernels#exp}'s float exponentials, summed in double), and the comparison is
 * strict, as HF's. Not thread-safe (a scratch buffer): one per sequence, as every processor.
 */
public final class MinPProcessor implements LogitsProcessor {
  private final double minP;
  /** Each token's unnormalised softmax weight this step (grown to the vocabulary on the first). */
  private float[] weights = new float[0];

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
    int n = logits.length;
    if (weights.length < n) {
      weights = new float[n];
    }
    double sum;
    if (RowKernels.max(logits, 0, n) == max) { // no NaN: every weight at once (-inf ones are 0)
      sum = RowKernels.expInto(logits, 0, n, max, weights);
    } else {
      sum = 0;
      for (int i = 0; i < n; i++) {
        weights[i] = logits[i] > Float.NEGATIVE_INFINITY ? RowKernels.exp(logits[i] - max) : 0f;
        sum += weights[i];
      }
    }
    float threshold = (float) minP * (float) (1 / sum); // the top token's weight is exp(0) = 1
    for (int i = 0; i < n; i++) {
      float v = logits[i];
      if (v > Float.NEGATIVE_INFINITY && v != max && (float) (weights[i] / sum) < threshold) {
        logits[i] = Float.NEGATIVE_INFINITY;
      }
    }
  }

  @Override
  public String toString() {
    return "MinP(" + minP + ")";
  }
}
