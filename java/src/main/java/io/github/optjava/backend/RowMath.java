package io.github.optjava.backend;

/**
 * The two reductions over a row of logits that both the engine (on the heap) and the backends (for
 * {@link Ops#argmaxRows}) need, in one place so that both give the same bits.
 */
public final class RowMath {
  private RowMath() {}

  /**
   * The first index of the maximum of {@code v[from, to)}, relative to {@code from} ({@code torch.argmax}:
   * the first NaN wins, ties go to the smaller index).
   */
  public static int argmax(float[] v, int from, int to) {
    int best = from;
    for (int i = from; i < to; i++) {
      float x = v[i];
      if (x != x) {
        return i - from;
      }
      if (x > v[best]) {
        best = i;
      }
    }
    return best - from;
  }

  /**
   * {@code log(sum(exp(v[from, to))))} in double, stable: -inf when every entry is -inf, +inf when one is
   * +inf; a NaN entry makes the result NaN.
   */
  public static double logSumExp(float[] v, int from, int to) {
    float max = Float.NEGATIVE_INFINITY;
    for (int i = from; i < to; i++) {
      float x = v[i];
      if (x != x) {
        return Double.NaN;
      }
      max = Math.max(max, x);
    }
    if (Float.isInfinite(max)) {
      return max;
    }
    double sum = 0;
    for (int i = from; i < to; i++) {
      sum += Math.exp((double) v[i] - max);
    }
    return max + Math.log(sum);
  }
}
