package io.github.optjava.backend;

import io.github.optjava.backend.cpu.RowKernels;

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
    return RowKernels.argmax(v, from, to);
  }

  /**
   * {@code log(sum(exp(v[from, to))))}, stable: -inf when every entry is -inf, +inf when one is +inf; a NaN
   * entry makes the result NaN. The exponentials are {@link RowKernels#exp}'s (float, within 2 ulp), summed in
   * double: torch's float32 {@code log_softmax} is no more exact, and {@code Math.exp} took ≈ 250 µs per vocabulary.
   */
  public static double logSumExp(float[] v, int from, int to) {
    float max = RowKernels.max(v, from, to);
    if (max != max) {
      return Double.NaN;
    }
    if (Float.isInfinite(max)) {
      return max;
    }
    return max + Math.log(RowKernels.expSum(v, from, to, max));
  }

  /**
   * {@code log_softmax(row r)[tokens[r]]} for the rows r &lt; tokens.length of {@code v} (row-major, {@code vocab}
   * wide): an echoed prompt's scores. NaN for a token outside {@code [0, vocab)} (-1: a row nobody scores, skipped).
   * Many rows go several at a time (each is a vocabulary of exponentials); the result does not depend on the threads.
   */
  public static double[] tokenLogprobs(float[] v, int vocab, int[] tokens) {
    double[] out = new double[tokens.length];
    java.util.stream.IntStream rows = java.util.stream.IntStream.range(0, tokens.length);
    (tokens.length > 16 ? rows.parallel() : rows).forEach(r -> {
      int t = tokens[r];
      out[r] = t < 0 || t >= vocab ? Double.NaN : v[r * vocab + t] - logSumExp(v, r * vocab, (r + 1) * vocab);
    });
    return out;
  }
}
