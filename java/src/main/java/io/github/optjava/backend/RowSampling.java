package io.github.optjava.backend;

/**
 * The device sampler's rules on the host ({@code native/src/sample.cu}, {@link Ops#sampleRows}): one token from
 * softmax(row / temperature) after top-k, top-p, min-p and typical sampling, with a given uniform number. The twin
 * the GPU kernel is tested against, what {@link Ops#sampleRows} does on backends without a kernel, and what the
 * engine uses for a plain sampled sequence on a model that samples on the device even when a step's logits come to
 * the host (so a seeded request's tokens do not depend on its batch, up to rounding: the kernel's expf and summation
 * order can move a draw within ~1e-7 of a cumulative boundary to the next token; see sample.cu). Its rules differ
 * from the engine's HF-exact host path (engine.Sampler with the Temperature/TopK/TopP/MinP/Typical processors) where
 * a token lies at a cut: top-p's equal weights at the cut go together here (with 16-bit logits ties are common), the
 * masses are plain double sums, min-p compares a token's float weight {@code exp(s - max)} with {@code minP} (the top
 * token's weight is 1: the same cut as HF's {@code p < minP * max(p)} but for rounding, where HF divides both sides by
 * the sum in float32), and typical sampling orders the tokens by distances computed in double (HF's float32
 * log-probs can swap two tokens whose distances differ by less than ~1e-6).
 * Stateless: static methods, safe from any thread.
 */
public final class RowSampling {
  private RowSampling() {}

  /** What {@link #sample} returns for a row with a NaN (the caller reports it). */
  public static final int NAN = -2;
  /** What {@link #sample} returns for a row whose every value is -inf (nothing can be drawn). */
  public static final int NONE = -1;

  /** Order-preserving key of a float, as unsigned (compare with {@link Integer#compareUnsigned}). */
  static int ordered(float f) {
    int b = Float.floatToRawIntBits(f);
    return b < 0 ? ~b : b | 0x80000000;
  }

  /**
   * Draws from {@code row[offset, offset + vocab)}.
   *
   * @param temperature above 0; 0 marks a greedy row: the argmax of the row and its log-softmax, as
   *                  {@link Ops#argmaxRows} picks ({@link RowMath#pickRow}; the other parameters are ignored), so that
   *                  one step can draw some sequences and pick others greedily
   * @param topK      0 or at least vocab: no top-k
   * @param topP      1: no top-p
   * @param minP      0: no min-p; else in (0, 1] (more counts as 1): the tokens left whose weight is below minP
   *                  times the top token's go too (after top-k and top-p, as HF's order)
   * @param uniform   in [0, 1)
   * @param logprob   receives the token's log-probability under the filtered distribution at {@code at}
   *                  (NaN or -inf for {@link #NAN} / {@link #NONE}); may be null
   * @return the token (0-based in the row), or {@link #NONE} / {@link #NAN}
   */
  public static int sample(float[] row, int offset, int vocab, float temperature, int topK, float topP, float minP,
      double uniform, double[] logprob, int at) {
    return sample(row, offset, vocab, temperature, topK, topP, minP, 1f, uniform, logprob, at, 0, null, null, 0);
  }

  /**
   * Row {@code r} of {@code rows}' parameters drawn from {@code row[offset, offset + vocab)}, with typical sampling
   * too; {@code logprob}, {@code k}, {@code topIds}, {@code topLogprobs} and {@code topAt} as
   * {@link #sample(float[], int, int, float, int, float, float, float, double, double[], int, int, int[], double[],
   * int)}.
   */
  public static int sample(float[] row, int offset, int vocab, SamplingRows rows, int r, double[] logprob, int at,
      int k, int[] topIds, double[] topLogprobs, int topAt) {
    return sample(row, offset, vocab, rows.temperature()[r], rows.topK()[r], rows.topP()[r], rows.minP()[r],
        rows.typicalP()[r], rows.uniform()[r], logprob, at, k, topIds, topLogprobs, topAt);
  }

  /** Whether a typical-p value turns typical sampling on: in (0, 1) (1 or more, 0 or less, NaN: off). */
  public static boolean typicalOn(float typicalP) {
    return typicalP > 0f && typicalP < 1f;
  }

  /**
   * As {@link #sample(float[], int, int, float, int, float, float, double, double[], int)} with typical sampling after
   * min-p ({@code typicalP} in (0, 1), HF's order; else off), and the {@code k} most likely tokens of the filtered
   * distribution (those no cut removed, by {@code row / temperature} then the lower id; a greedy row lists the row's,
   * as {@link RowMath#topK}) with their log-probabilities under it into {@code topIds[topAt ..]} /
   * {@code topLogprobs[topAt ..]}: a sampled request's log-prob alternatives; -1 and NaN after the last (fewer than k
   * tokens kept, or a row with nothing to draw).
   *
   * <p>Typical sampling (HF's {@code TypicalLogitsWarper} but for rounding): with p the distribution the earlier cuts
   * left and H its entropy, a token's distance from the typical is |-log p - H| = |(s - m) - E[s - m]| (E under p).
   * The most distant tokens go, as many as hold at most (1 - typicalP) of the mass left, never all of them: the
   * largest key tau (key = 0x7fffffff minus the distance's float bits: a larger distance, a smaller key) whose tokens,
   * with every smaller key's, hold at most that mass (top-p's search, on other keys). HF keeps the most typical tokens
   * until their cumulative probability reaches typicalP: the same set, equal distances going together, but for
   * rounding (its float32 sums, the twin's and the kernel's double sums in their orders).
   */
  public static int sample(float[] row, int offset, int vocab, float temperature, int topK, float topP, float minP,
      float typicalP, double uniform, double[] logprob, int at, int k, int[] topIds, double[] topLogprobs,
      int topAt) {
    if (temperature == 0f) {
      return RowMath.pickRow(row, offset, vocab, logprob, at, k, topIds, topLogprobs, topAt);
    }
    if (k > 0) {
      java.util.Arrays.fill(topIds, topAt, topAt + k, -1);
      java.util.Arrays.fill(topLogprobs, topAt, topAt + k, Double.NaN);
    }
    float[] s = new float[vocab];
    float m = Float.NEGATIVE_INFINITY;
    for (int i = 0; i < vocab; i++) {
      s[i] = row[offset + i] / temperature;
      if (s[i] != s[i]) {
        return report(logprob, at, Double.NaN, NAN);
      }
      m = Math.max(m, s[i]);
    }
    if (m == Float.NEGATIVE_INFINITY) {
      return report(logprob, at, Double.NEGATIVE_INFINITY, NONE);
    }
    int kth = 0; // unsigned: every key >= 0
    if (topK > 0 && topK < vocab) {
      int prefix = 0;
      for (int b = 31; b >= 0; b--) {
        int candidate = prefix | (1 << b);
        int count = 0;
        for (float v : s) {
          count += Integer.compareUnsigned(ordered(v), candidate) >= 0 ? 1 : 0;
        }
        if (count >= topK) {
          prefix = candidate;
        }
      }
      kth = prefix;
    }
    double[] w = new double[vocab];
    double total = 0;
    for (int i = 0; i < vocab; i++) {
      if (Integer.compareUnsigned(ordered(s[i]), kth) < 0) {
        w[i] = 0;
      } else if (m == Float.POSITIVE_INFINITY) {
        w[i] = s[i] == Float.POSITIVE_INFINITY ? 1 : 0;
      } else {
        w[i] = (float) Math.exp(s[i] - m); // a float weight, as the kernel's expf (which may differ by an ulp)
      }
      total += w[i];
    }
    double removed = 0;
    int tau = 0;
    boolean filterP = topP < 1f;
    if (filterP) {
      double limit = (1.0 - topP) * total;
      int prefix = 0;
      for (int b = 31; b >= 0; b--) {
        int candidate = prefix | (1 << b);
        double mass = 0;
        for (double x : w) {
          if (x > 0 && Integer.compareUnsigned(Float.floatToRawIntBits((float) x), candidate) <= 0) {
            mass += x;
          }
        }
        if (mass <= limit && mass < total) { // never every token: the heaviest stay (p so small 1 - p rounds to 1)
          prefix = candidate;
          removed = mass;
        }
      }
      tau = prefix;
    }
    // min-p over what top-k and top-p left: the top token's weight is exp(0) = 1, so p < minP * max(p) is w < minP
    // (above 1 it is 1: the top tokens always stay, as HF's min_tokens_to_keep)
    float mp = Math.min(minP, 1f);
    boolean filterMin = mp > 0f;
    if (filterMin) {
      for (int i = 0; i < vocab; i++) {
        double x = w[i];
        if (x > 0 && !(filterP && Integer.compareUnsigned(Float.floatToRawIntBits((float) x), tau) <= 0)
            && (float) x < mp) {
          removed += x;
        }
      }
    }
    final int tauKey = tau;
    java.util.function.IntPredicate keptBeforeTypical = i -> w[i] > 0
        && !(filterP && Integer.compareUnsigned(Float.floatToRawIntBits((float) w[i]), tauKey) <= 0)
        && !(filterMin && (float) w[i] < mp);
    // typical sampling over what the cuts before it left (+inf tokens: every kept one is at +inf, all equally typical)
    boolean filterTypical = typicalOn(typicalP) && m != Float.POSITIVE_INFINITY;
    int typicalTau = 0;
    double mean = 0;
    double keptMass = total - removed;
    if (filterTypical) {
      // the mass left summed itself, in the order of the search's sums (not total - removed, which can differ by
      // rounding): a candidate holding every token sums to exactly it, so "never every token" holds for any typicalP
      double left = 0;
      double sum = 0;
      for (int i = 0; i < vocab; i++) {
        if (keptBeforeTypical.test(i)) {
          left += w[i];
          sum += w[i] * ((double) s[i] - m);
        }
      }
      mean = sum / left;
      double limit = (1.0 - typicalP) * left;
      int prefix = 0;
      double cut = 0;
      for (int b = 31; b >= 0; b--) {
        int candidate = prefix | (1 << b);
        double mass = 0;
        for (int i = 0; i < vocab; i++) {
          if (keptBeforeTypical.test(i) && Integer.compareUnsigned(typicalKey(s[i], m, mean), candidate) <= 0) {
            mass += w[i];
          }
        }
        if (mass <= limit && mass < left) { // never every token: the most typical stay
          prefix = candidate;
          cut = mass;
        }
      }
      typicalTau = prefix;
      keptMass = left - cut;
    }
    // the kept tokens: drawn from, and listed as the alternatives
    final int typicalCut = typicalTau;
    final double typicalMean = mean;
    final float max = m;
    java.util.function.IntPredicate kept = i -> keptBeforeTypical.test(i)
        && !(filterTypical && Integer.compareUnsigned(typicalKey(s[i], max, typicalMean), typicalCut) <= 0);
    double logMass = Math.log(keptMass);
    if (k > 0) {
      // Listed: what no cut removed, as HF lists what its warpers left above -inf. Top-p and min-p remove zero weights
      // too (as HF's do); without them every token at or above top-k's cut is listed, even one whose float weight
      // underflowed to 0 (at a low temperature a token 110 below the top still has a log-prob).
      final int kthKey = kth;
      boolean noCut = !filterP && !filterMin && !filterTypical && m != Float.POSITIVE_INFINITY;
      java.util.function.IntPredicate listable = noCut
          ? i -> s[i] > Float.NEGATIVE_INFINITY && Integer.compareUnsigned(ordered(s[i]), kthKey) >= 0 : kept;
      listKept(s, m, logMass, listable, k, topIds, topLogprobs, topAt);
    }
    double target = uniform * keptMass;
    double cumulative = 0;
    int last = -1;
    for (int i = 0; i < vocab; i++) {
      if (!kept.test(i)) {
        continue;
      }
      last = i;
      cumulative += w[i];
      if (cumulative > target) {
        return report(logprob, at, (m == Float.POSITIVE_INFINITY ? 0 : (double) s[i] - m) - logMass, i);
      }
    }
    return report(logprob, at, (m == Float.POSITIVE_INFINITY ? 0 : (double) s[last] - m) - logMass, last);
  }

  /**
   * Typical sampling's key of a token: 0x7fffffff minus the float bits of its distance |(s - m) - mean| (computed in
   * double, then rounded to float, as the kernel does), so that the most distant tokens have the smallest keys.
   */
  static int typicalKey(float s, float m, double mean) {
    return 0x7fffffff - Float.floatToRawIntBits((float) Math.abs((double) s - m - mean));
  }

  /**
   * The {@code k} best listable tokens by {@code s} then the lower id (insertion into a sorted prefix: a later equal
   * value never passes an earlier, lower id), each with the draw's log-probability {@code (s - m) - log(kept mass)}.
   */
  private static void listKept(float[] s, float m, double logMass, java.util.function.IntPredicate listable, int k,
      int[] ids, double[] lps, int at) {
    float[] best = new float[k];
    int count = 0;
    for (int i = 0; i < s.length; i++) {
      if ((count == k && s[i] <= best[k - 1]) || !listable.test(i)) {
        continue;
      }
      int pos = count < k ? count++ : k - 1;
      while (pos > 0 && best[pos - 1] < s[i]) {
        best[pos] = best[pos - 1];
        ids[at + pos] = ids[at + pos - 1];
        pos--;
      }
      best[pos] = s[i];
      ids[at + pos] = i;
    }
    for (int j = 0; j < count; j++) {
      lps[at + j] = (m == Float.POSITIVE_INFINITY ? 0 : (double) best[j] - m) - logMass;
    }
  }

  private static int report(double[] logprob, int at, double value, int token) {
    if (logprob != null) {
      logprob[at] = value;
    }
    return token;
  }
}
