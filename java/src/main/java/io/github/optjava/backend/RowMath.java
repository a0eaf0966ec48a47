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
   * The {@code k} most likely tokens of {@code v[from, to)}, most likely first, ties to the lower id, tokens at -inf
   * (and NaN) never listed: their ids (relative to {@code from}) into {@code ids[at ..]} and their log-probs
   * ({@code v - lse}) into {@code lps[at ..]}; returns how many were written ({@code min(k, listable tokens)}). The
   * order and rules of {@code opt_top_logprobs_f32}.
   */
  public static int topK(float[] v, int from, int to, double lse, int k, int[] ids, double[] lps, int at) {
    // Insertion into a sorted prefix: O(V) while the k-th best is rarely beaten, which is the usual case.
    // lps holds the raw scores until the end; a later equal score never passes an earlier (lower) id.
    int count = 0;
    for (int i = from; i < to && k > 0; i++) {
      float x = v[i];
      if (!(x > Float.NEGATIVE_INFINITY) || (count == k && x <= lps[at + k - 1])) {
        continue;
      }
      int pos = count < k ? count++ : k - 1;
      while (pos > 0 && lps[at + pos - 1] < x) {
        lps[at + pos] = lps[at + pos - 1];
        ids[at + pos] = ids[at + pos - 1];
        pos--;
      }
      lps[at + pos] = x;
      ids[at + pos] = i - from;
    }
    for (int j = 0; j < count; j++) {
      lps[at + j] -= lse;
    }
    return count;
  }

  /**
   * Each row's argmax, its log-prob into {@code logprobs} (when not null) and, for {@code k > 0}, its {@code k} most
   * likely tokens with their log-probs into {@code topIds[r * k ..]} / {@code topLogprobs[r * k ..]} (-1 and NaN after
   * the last listed): what {@link Ops#argmaxRows(Mat, double[], LogitEdits, int, int[], double[])} computes, over rows
   * on the heap. The log-sum-exp is computed only when a log-prob is wanted.
   */
  public static int[] pickRows(float[] v, int rows, int cols, double[] logprobs, int k, int[] topIds,
      double[] topLogprobs) {
    int[] out = new int[rows];
    for (int r = 0; r < rows; r++) {
      out[r] = pickRow(v, r * cols, cols, logprobs, r, k, topIds, topLogprobs, r * k);
    }
    return out;
  }

  /**
   * One row of {@link #pickRows}: the argmax of {@code v[from, from + vocab)} (relative to {@code from}), its log-prob
   * into {@code logprobs[at]} (when not null) and, for {@code k > 0}, its {@code k} most likely tokens with their
   * log-probs into {@code topIds[topAt ..]} / {@code topLogprobs[topAt ..]} (-1 and NaN after the last listed). Also
   * {@link RowSampling}'s greedy rows (temperature 0), so that a greedy sequence gets the same bits in a sampled step.
   */
  public static int pickRow(float[] v, int from, int vocab, double[] logprobs, int at, int k, int[] topIds,
      double[] topLogprobs, int topAt) {
    int token = argmax(v, from, from + vocab);
    if (logprobs == null && k == 0) {
      return token;
    }
    double lse = logSumExp(v, from, from + vocab);
    if (logprobs != null) {
      logprobs[at] = v[from + token] - lse;
    }
    if (k > 0) {
      int listed = topK(v, from, from + vocab, lse, k, topIds, topLogprobs, topAt);
      java.util.Arrays.fill(topIds, topAt + listed, topAt + k, -1);
      java.util.Arrays.fill(topLogprobs, topAt + listed, topAt + k, Double.NaN);
    }
    return token;
  }

  /**
   * The float32 {@code log(sum(exp(v - max)))} of torch's {@code log_softmax} over {@code v[from, to)} whose maximum
   * {@code max} is finite: {@code log_softmax(v)[i] = (v[i] - max) - logSumShifted} in float arithmetic. The
   * exponentials are {@link RowKernels#exp}'s, summed in double; beam search's host path and {@link #beamTopK} share
   * it so that both give the same bits.
   */
  public static float logSumShifted(float[] v, int from, int to, float max) {
    return (float) Math.log(RowKernels.expSum(v, from, to, max));
  }

  /**
   * Beam search's candidates from one row (Hugging Face's {@code log_softmax(row) + beam_score} in float32, then
   * {@code topk}): the {@code k} best of {@code s[i] = ((v[i] - max) - logSum) + base} ({@link #logSumShifted}),
   * best first, equal scores to the lower id, -inf scores listed too. Their ids (relative to {@code from}) go to
   * {@code ids[at ..]} and their scores to {@code scores[at ..]}, -1 and NaN after the last listed. Returns how many
   * were listed: {@code min(k, to - from)}, or 0 for a row whose log-softmax is NaN (a NaN or +inf logit) or that is
   * all -inf. The order and rules of {@code opt_beam_topk_f32}.
   */
  public static int beamTopK(float[] v, int from, int to, float base, int k, int[] ids, float[] scores, int at) {
    java.util.Arrays.fill(ids, at, at + k, -1);
    java.util.Arrays.fill(scores, at, at + k, Float.NaN);
    float max = RowKernels.max(v, from, to);
    if (!Float.isFinite(max)) { // NaN (a NaN logit), +inf (log_softmax is NaN) or -inf (nothing to pick)
      return 0;
    }
    return listBest(v, from, to, max, logSumShifted(v, from, to, max), base, k, ids, scores, at);
  }

  /**
   * As {@link #beamTopK(float[], int, int, float, int, int[], float[], int)} over a row of log-probabilities already
   * ({@link #logSoftmaxRows}, then a beam's processors as edits): the keys are {@code v[i] + base}, every value but
   * NaN listed; 0 for a row holding a NaN.
   */
  public static int beamTopKOfLogProbs(float[] v, int from, int to, float base, int k, int[] ids, float[] scores,
      int at) {
    java.util.Arrays.fill(ids, at, at + k, -1);
    java.util.Arrays.fill(scores, at, at + k, Float.NaN);
    if (RowKernels.max(v, from, to) != RowKernels.max(v, from, to)) { // a NaN (Math.max propagates it)
      return 0;
    }
    return listBest(v, from, to, 0f, 0f, base, k, ids, scores, at); // ((v - 0) - 0) + base is v + base, bit for bit
  }

  /** The k best of {@code ((v[i] - shift) - logSum) + base} into ids / scores at {@code at}; returns how many. */
  private static int listBest(float[] v, int from, int to, float shift, float logSum, float base, int k, int[] ids,
      float[] scores, int at) {
    // Insertion into a sorted prefix, as topK: a later equal score never passes an earlier (lower) id.
    int count = 0;
    for (int i = from; i < to && k > 0; i++) {
      float s = ((v[i] - shift) - logSum) + base;
      if (count == k && s <= scores[at + k - 1]) {
        continue;
      }
      int pos = count < k ? count++ : k - 1;
      while (pos > 0 && scores[at + pos - 1] < s) {
        scores[at + pos] = scores[at + pos - 1];
        ids[at + pos] = ids[at + pos - 1];
        pos--;
      }
      scores[at + pos] = s;
      ids[at + pos] = i - from;
    }
    return count;
  }

  /**
   * {@link #beamTopK} for each {@code j} over row {@code rows[j]} of {@code v} (row-major, {@code vocab} wide) with
   * {@code base[j]}, into {@code ids[j * k ..]} / {@code scores[j * k ..]}: {@link Ops#beamTopK} over rows on the heap.
   */
  public static void beamTopK(float[] v, int vocab, int[] rows, float[] base, int k, int[] ids, float[] scores) {
    for (int j = 0; j < rows.length; j++) {
      beamTopK(v, rows[j] * vocab, (rows[j] + 1) * vocab, base[j], k, ids, scores, j * k);
    }
  }

  /** {@link #beamTopKOfLogProbs} for each {@code j} over row {@code rows[j]} of {@code v} with {@code base[j]}. */
  public static void beamTopKOfLogProbs(float[] v, int vocab, int[] rows, float[] base, int k, int[] ids,
      float[] scores) {
    for (int j = 0; j < rows.length; j++) {
      beamTopKOfLogProbs(v, rows[j] * vocab, (rows[j] + 1) * vocab, base[j], k, ids, scores, j * k);
    }
  }

  /**
   * Each row of {@code v} ({@code rows × vocab}) replaced by its float32 log-softmax, {@code (x - max) - logSum}
   * ({@link #logSumShifted}: beam search's host path computes the same bits); a row holding a NaN or +inf, or all
   * -inf, becomes NaN. The twin of {@code opt_log_softmax_rows_f32}.
   */
  public static void logSoftmaxRows(float[] v, int rows, int vocab) {
    for (int r = 0; r < rows; r++) {
      int from = r * vocab;
      int to = from + vocab;
      float max = RowKernels.max(v, from, to);
      if (!Float.isFinite(max)) {
        java.util.Arrays.fill(v, from, to, Float.NaN);
        continue;
      }
      float logSum = logSumShifted(v, from, to, max);
      for (int i = from; i < to; i++) {
        v[i] = (v[i] - max) - logSum;
      }
    }
  }

  /** Checks the arguments of {@link Ops#beamTopK} against logits of {@code logitRows} rows. */
  public static void requireBeamLists(int[] rows, float[] base, int k, int[] ids, float[] scores, int logitRows) {
    if (k < 1) {
      throw new IllegalArgumentException("beam top-k needs k >= 1 (got " + k + ")");
    }
    if (base.length != rows.length || ids.length != (long) rows.length * k || scores.length != ids.length) {
      throw new IllegalArgumentException("beam top-k over " + rows.length + " rows with k = " + k + " needs "
          + rows.length + " bases and " + rows.length * k + " ids and scores (got " + base.length + ", "
          + ids.length + ", " + scores.length + ")");
    }
    for (int r : rows) {
      if (r < 0 || r >= logitRows) {
        throw new IllegalArgumentException("beam top-k reads row " + r + " of logits with " + logitRows + " rows");
      }
    }
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
