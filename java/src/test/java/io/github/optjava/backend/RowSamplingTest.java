package io.github.optjava.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The device sampler's rules on the host, against a plain sort-based statement of them: top-k keeps the k largest
 * (ties at the k-th kept), top-p drops the lightest tokens while they hold at most 1 - p of the mass (equal weights
 * together), min-p drops those whose weight is below min-p times the top token's, and the draw walks the kept weights
 * in token order; plus the edge rows and the distribution itself.
 */
class RowSamplingTest {

  /** The rules, the obvious way: sort, cut, walk. */
  private static int reference(float[] row, float t, int k, float p, float minP, double u, double[] logprob) {
    return reference(row, t, k, p, minP, u, logprob, 0, null, null);
  }

  /** As above, and the {@code list} kept tokens of largest s (then the lower id) with their log-probs. */
  private static int reference(float[] row, float t, int k, float p, float minP, double u, double[] logprob, int list,
      int[] ids, double[] lps) {
    int n = row.length;
    float[] s = new float[n];
    float m = Float.NEGATIVE_INFINITY;
    for (int i = 0; i < n; i++) {
      s[i] = row[i] / t;
      m = Math.max(m, s[i]);
    }
    List<Integer> order = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      order.add(i);
    }
    order.sort(Comparator.comparingDouble((Integer i) -> s[i]).reversed());
    float kth = k > 0 && k < n ? s[order.get(k - 1)] : Float.NEGATIVE_INFINITY;
    double[] w = new double[n];
    double total = 0;
    for (int i = 0; i < n; i++) {
      w[i] = s[i] >= kth ? (float) Math.exp(s[i] - m) : 0;
      total += w[i];
    }
    if (p < 1f) {
      // lightest first; remove whole groups of equal weight while the removed mass stays <= (1 - p) total
      double limit = (1.0 - p) * total;
      List<Integer> asc = new ArrayList<>(order);
      asc.sort(Comparator.comparingDouble((Integer i) -> w[i]));
      double removed = 0;
      int j = 0;
      while (j < asc.size()) {
        double value = w[asc.get(j)];
        int end = j;
        double group = 0;
        while (end < asc.size() && w[asc.get(end)] == value) {
          group += w[asc.get(end)];
          end++;
        }
        if (removed + group > limit) {
          break;
        }
        for (int q = j; q < end; q++) {
          w[asc.get(q)] = 0;
        }
        removed += group;
        j = end;
      }
      total -= removed;
    }
    keepAtLeastMinP(w, minP);
    total = 0;
    for (double x : w) {
      total += x;
    }
    // listed: what no cut removed (without top-p and min-p: every token at or above top-k's cut, weight 0 or not)
    boolean noCut = p >= 1f && minP <= 0;
    List<Integer> kept = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      if (noCut ? s[i] >= kth && s[i] > Float.NEGATIVE_INFINITY : w[i] > 0) {
        kept.add(i);
      }
    }
    kept.sort(Comparator.comparingDouble((Integer i) -> -s[i]).thenComparingInt(i -> i));
    for (int j = 0; j < list; j++) {
      ids[j] = j < kept.size() ? kept.get(j) : -1;
      lps[j] = j < kept.size() ? (double) s[kept.get(j)] - m - Math.log(total) : Double.NaN;
    }
    double target = u * total;
    double c = 0;
    int last = -1;
    for (int i = 0; i < n; i++) {
      if (w[i] > 0) {
        last = i;
        c += w[i];
        if (c > target) {
          logprob[0] = (double) s[i] - m - Math.log(total);
          return i;
        }
      }
    }
    logprob[0] = (double) s[last] - m - Math.log(total);
    return last;
  }

  /** Min-p on weights relative to the top token's (1): those below minP go. */
  private static void keepAtLeastMinP(double[] w, float minP) {
    for (int i = 0; i < w.length; i++) {
      if (minP > 0 && w[i] > 0 && (float) w[i] < minP) {
        w[i] = 0;
      }
    }
  }

  @Test
  void agreesWithTheSortBasedRulesOnRandomRows() {
    Random r = new Random(42);
    double[] got = new double[1];
    double[] want = new double[1];
    int checked = 0;
    for (int trial = 0; trial < 400; trial++) {
      int n = 1 + r.nextInt(300);
      float[] row = new float[n];
      for (int i = 0; i < n; i++) {
        row[i] = r.nextInt(10) == 0 ? Float.NEGATIVE_INFINITY : (float) (r.nextGaussian() * 3);
      }
      row[r.nextInt(n)] = 1f; // at least one finite value
      if (r.nextBoolean() && n > 3) {
        row[1] = row[2]; // a tie
      }
      float t = new float[] {1f, 0.7f, 1.5f}[r.nextInt(3)];
      int k = new int[] {0, 1, 5, 50, n}[r.nextInt(5)];
      float p = new float[] {1f, 0.9f, 0.5f, 0.05f}[r.nextInt(4)];
      float minP = new float[] {0f, 0f, 0.05f, 0.3f, 1f}[r.nextInt(5)];
      double u = r.nextDouble();
      int list = new int[] {0, 1, 3, 10}[r.nextInt(4)];
      int[] ids = new int[list + 2];
      double[] lps = new double[list + 2];
      int[] wantIds = new int[list];
      double[] wantLps = new double[list];
      int token = RowSampling.sample(row, 0, n, t, k, p, minP, 1f, u, got, 0, list, ids, lps, 1);
      int expected = reference(row, t, k, p, minP, u, want, list, wantIds, wantLps);
      assertEquals(expected, token, "trial " + trial);
      assertEquals(want[0], got[0], 1e-9, "log-prob, trial " + trial);
      for (int j = 0; j < list; j++) {
        assertEquals(wantIds[j], ids[1 + j], "alternative " + j + ", trial " + trial);
        assertEquals(wantLps[j], lps[1 + j], 1e-9, "alternative " + j + ", trial " + trial);
      }
      assertEquals(0, ids[0] + ids[list + 1], "nothing written outside the list");
      checked++;
    }
    assertEquals(400, checked);
  }

  /**
   * The min-p cut on weights ({@code (float) exp(s - max) < minP}, this class's and the kernel's rule) removes the
   * same tokens as Hugging Face's {@code p < minP * max(p)} in float32 ({@code engine.MinPProcessor}, the host path)
   * on random rows: they differ only for a token within rounding of the cut.
   */
  @Test
  void minPCutsWhereHuggingFaceCuts() {
    Random r = new Random(3);
    int compared = 0;
    for (int trial = 0; trial < 200; trial++) {
      int n = 50 + r.nextInt(5000);
      float t = new float[] {1f, 0.7f, 1.5f}[r.nextInt(3)];
      float minP = new float[] {0.01f, 0.05f, 0.1f, 0.3f}[r.nextInt(4)];
      float[] s = new float[n];
      float m = Float.NEGATIVE_INFINITY;
      for (int i = 0; i < n; i++) {
        s[i] = (float) (r.nextGaussian() * 3) / t;
        m = Math.max(m, s[i]);
      }
      double[] w = new double[n];
      for (int i = 0; i < n; i++) {
        w[i] = (float) Math.exp(s[i] - m);
      }
      keepAtLeastMinP(w, minP);
      float[] hf = s.clone();
      new io.github.optjava.engine.MinPProcessor(minP).process(new int[0], 0, 0, hf);
      for (int i = 0; i < n; i++) {
        assertEquals(hf[i] > Float.NEGATIVE_INFINITY, w[i] > 0, "trial " + trial + " token " + i + " weight "
            + (float) Math.exp(s[i] - m) + " min-p " + minP);
        compared++;
      }
    }
    assertTrue(compared > 200 * 50);
  }

  /**
   * The alternatives' edges: ties at the k-th place go to the lower ids; without top-p and min-p a token whose weight
   * underflows to 0 is still listed (HF lists every token its warpers left above -inf), with top-p it is cut.
   */
  @Test
  void alternativesAtTheirEdges() {
    double[] lp = new double[1];
    int[] ids = new int[5];
    double[] lps = new double[5];
    float[] ties = {1f, 3f, 3f, 2f, 3f};
    RowSampling.sample(ties, 0, 5, 1f, 0, 1f, 0f, 1f, 0.5, lp, 0, 2, ids, lps, 0);
    assertEquals(List.of(1, 2), List.of(ids[0], ids[1]), "ties at the k-th place: the lower ids");
    RowSampling.sample(ties, 0, 5, 1f, 0, 1f, 0f, 1f, 0.5, lp, 0, 1, ids, lps, 0);
    assertEquals(1, ids[0]);

    float[] spread = {0f, -200f, -150f, Float.NEGATIVE_INFINITY, 5f};
    double logMass = Math.log(1 + Math.exp(-5.0));
    RowSampling.sample(spread, 0, 5, 1f, 0, 1f, 0f, 1f, 0.5, lp, 0, 5, ids, lps, 0);
    assertEquals(List.of(4, 0, 2, 1, -1), List.of(ids[0], ids[1], ids[2], ids[3], ids[4]));
    assertEquals(-logMass, lps[0], 1e-9);
    assertEquals(-155 - logMass, lps[2], 1e-9);
    assertEquals(-205 - logMass, lps[3], 1e-9);
    assertTrue(Double.isNaN(lps[4]));
    RowSampling.sample(spread, 0, 5, 1f, 3, 1f, 0f, 1f, 0.5, lp, 0, 5, ids, lps, 0); // top-k 3: -200 is cut
    assertEquals(List.of(4, 0, 2, -1, -1), List.of(ids[0], ids[1], ids[2], ids[3], ids[4]));
    RowSampling.sample(spread, 0, 5, 1f, 0, 0.99f, 0f, 1f, 0.5, lp, 0, 5, ids, lps, 0); // top-p removes the tail
    assertEquals(List.of(4, -1), List.of(ids[0], ids[1]));
    assertEquals(0, lps[0], 1e-12);
  }

  /**
   * Temperature 0 is a greedy row (session 21: a step that draws some sequences and picks others): the same bits as
   * {@link RowMath#pickRows}, the greedy path's pick, whatever the other parameters say; on random rows at an offset,
   * with ties, NaN, -inf and +inf rows, with and without alternatives.
   */
  @Test
  void temperatureZeroIsTheGreedyPick() {
    Random r = new Random(21);
    int vocab = 300;
    float inf = Float.POSITIVE_INFINITY;
    java.util.List<float[]> rows = new java.util.ArrayList<>();
    for (int i = 0; i < 30; i++) {
      float[] row = new float[vocab];
      for (int j = 0; j < vocab; j++) {
        row[j] = i % 3 == 0 ? (float) Math.round(r.nextGaussian() * 2) : (float) (r.nextGaussian() * 4); // ties
      }
      rows.add(row);
    }
    float[] nan = new float[vocab];
    nan[7] = Float.NaN;
    float[] allMinusInf = new float[vocab];
    java.util.Arrays.fill(allMinusInf, -inf);
    float[] plusInf = new float[vocab];
    plusInf[9] = inf;
    plusInf[200] = inf;
    rows.addAll(List.of(nan, allMinusInf, plusInf));
    for (int k : new int[] {0, 1, 4}) {
      for (float[] row : rows) {
        float[] at = new float[vocab + 5]; // an offset into a longer array
        System.arraycopy(row, 0, at, 5, vocab);
        double[] want = new double[1];
        int[] wantIds = new int[Math.max(k, 1)];
        double[] wantLps = new double[Math.max(k, 1)];
        int token = RowMath.pickRows(row, 1, vocab, want, k, wantIds, wantLps)[0];
        double[] got = new double[2];
        int[] ids = new int[k + 1];
        double[] lps = new double[k + 1];
        assertEquals(token, RowSampling.sample(at, 5, vocab, 0f, 3, 0.5f, 0.2f, 1f, 0.999, got, 1, k, ids, lps, 1));
        assertEquals(Double.doubleToRawLongBits(want[0]), Double.doubleToRawLongBits(got[1]), "log-prob");
        for (int j = 0; j < k; j++) {
          assertEquals(wantIds[j], ids[1 + j], "alternative " + j);
          assertEquals(Double.doubleToRawLongBits(wantLps[j]), Double.doubleToRawLongBits(lps[1 + j]));
        }
      }
    }
    assertEquals(7, RowSampling.sample(nan, 0, vocab, 0f, 0, 1f, 0f, 0.5, null, 0), "NaN is the largest (argmax)");
    assertEquals(9, RowSampling.sample(plusInf, 0, vocab, 0f, 0, 1f, 0f, 0.5, null, 0), "the first +inf");
  }

  @Test
  void edgeRows() {
    double[] lp = new double[1];
    assertEquals(RowSampling.NAN, RowSampling.sample(new float[] {1f, Float.NaN}, 0, 2, 1f, 0, 1f, 0f, 0.5, lp, 0));
    assertTrue(Double.isNaN(lp[0]));
    float inf = Float.NEGATIVE_INFINITY;
    assertEquals(RowSampling.NONE, RowSampling.sample(new float[] {inf, inf}, 0, 2, 1f, 0, 1f, 0f, 0.5, lp, 0));
    // +inf (an overflowed temperature division): uniform among the +inf tokens
    float[] twoInf = {0f, Float.POSITIVE_INFINITY, 3f, Float.POSITIVE_INFINITY};
    assertEquals(1, RowSampling.sample(twoInf, 0, 4, 1f, 0, 1f, 0f, 0.25, lp, 0));
    assertEquals(3, RowSampling.sample(twoInf, 0, 4, 1f, 0, 1f, 0.5f, 0.75, lp, 0));
    assertEquals(Math.log(0.5), lp[0], 1e-12);
    // a top-p so small that 1 - p rounds to 1: the heaviest token still stays (never an empty set)
    for (float tiny : new float[] {1e-17f, 1e-30f, Float.MIN_VALUE}) {
      assertEquals(2, RowSampling.sample(new float[] {0f, 1f, 5f, 2f}, 0, 4, 1f, 0, tiny, 0f, 0.999, lp, 0));
      assertEquals(0, lp[0], 1e-12);
    }
    // top-k 1 is the argmax whatever the draw; an offset into a longer array
    float[] wide = {9f, 9f, 0.1f, 2f, -1f, 0.3f};
    assertEquals(1, RowSampling.sample(wide, 2, 4, 1f, 1, 1f, 0f, 0.99, lp, 0));
    assertEquals(0, lp[0], 1e-12);
    // min-p 1 keeps the top tokens only (here two equal ones), whatever the draw
    float[] topTwo = {3f, 1f, 3f, 2.999f};
    assertEquals(0, RowSampling.sample(topTwo, 0, 4, 1f, 0, 1f, 1f, 0.49, lp, 0));
    assertEquals(2, RowSampling.sample(topTwo, 0, 4, 1f, 0, 1f, 1f, 0.51, lp, 0));
    assertEquals(Math.log(0.5), lp[0], 1e-12);
  }

  @Test
  void drawsFollowTheFilteredSoftmax() {
    float[] row = {2f, 1f, 0.5f, -1f, 0f};
    float t = 0.8f;
    int k = 4;
    float p = 0.9f;
    double[] lp = new double[1];
    int draws = 200_000;
    int[] counts = new int[row.length];
    Random r = new Random(7);
    for (int d = 0; d < draws; d++) {
      counts[RowSampling.sample(row, 0, row.length, t, k, p, 0f, r.nextDouble(), lp, 0)]++;
    }
    // by hand: s = row / 0.8, top-4 drops -1 (index 3); top-p 0.9 then drops the lightest while <= 10 % of mass
    double[] w = new double[row.length];
    double total = 0;
    for (int i = 0; i < row.length; i++) {
      w[i] = i == 3 ? 0 : Math.exp(row[i] / t - row[0] / t);
      total += w[i];
    }
    // ascending: index 4 (0/0.8) 0.082, index 2 0.154, index 1 0.287, index 0 1: index 4 holds 0.082/1.523 = 5.4 %
    // and with index 2 15.5 % > 10 %: only index 4 goes
    double kept = total - w[4];
    for (int i : new int[] {0, 1, 2}) {
      double prob = w[i] / kept;
      assertEquals(prob, counts[i] / (double) draws, 0.005, "token " + i);
    }
    assertEquals(0, counts[3]);
    assertEquals(0, counts[4]);
  }

  /**
   * Min-p's draws by hand: {2, 1, 0.5, -1, 0} at temperature 1 weigh 1, 0.368, 0.223, 0.050, 0.135 (exp(x - 2)); min-p
   * 0.3 keeps tokens 0 and 1 only, drawn 0.731 / 0.269; a min-p above 1 keeps the top token (as 1 does).
   */
  @Test
  void minPDrawsFollowTheKeptWeights() {
    float[] row = {2f, 1f, 0.5f, -1f, 0f};
    double[] lp = new double[1];
    int draws = 200_000;
    int[] counts = new int[row.length];
    Random r = new Random(11);
    for (int d = 0; d < draws; d++) {
      counts[RowSampling.sample(row, 0, row.length, 1f, 0, 1f, 0.3f, r.nextDouble(), lp, 0)]++;
    }
    double kept = 1 + Math.exp(-1);
    assertEquals(1 / kept, counts[0] / (double) draws, 0.005);
    assertEquals(Math.exp(-1) / kept, counts[1] / (double) draws, 0.005);
    assertEquals(0, counts[2] + counts[3] + counts[4]);
    assertEquals(0, RowSampling.sample(row, 0, row.length, 1f, 0, 1f, 1.5f, 0.99, lp, 0));
    assertEquals(0, lp[0], 1e-12);
  }
  /**
   * Typical sampling's cut (distance keys, top-p's search; session 23) keeps the same tokens as Hugging Face's
   * {@code TypicalLogitsWarper} ({@code engine.TypicalProcessor}, the host path) on random rows, alone and after top-k,
   * top-p and min-p, for typical-p values down to 1e-30 (the most typical token alone), but for tokens at the cut: HF orders the tokens by float32 distances, whose log-probs are good to about
   * 1e-6 (an ulp of a log-prob near -8), so two tokens whose exact distances differ by less can swap places there. The
   * test allows a different fate only to a token whose distance (in double) is within 1e-5 of the twin's cut, and at
   * most one token in a thousand compared. The kept set is the listing of every alternative.
   */
  @Test
  void typicalCutsWhereHuggingFaceCuts() {
    Random r = new Random(5);
    int compared = 0;
    int atTheCut = 0;
    for (int trial = 0; trial < 200; trial++) {
      int n = 50 + r.nextInt(3000);
      // (1e-20 and 1e-30: a review found that such a typical-p after top-p could cut every token)
      float typical = new float[] {0.2f, 0.5f, 0.9f, 0.95f, 0.99f, 1e-20f, 1e-30f}[r.nextInt(7)];
      int topK = r.nextInt(3) == 0 ? 1 + r.nextInt(n) : 0;
      float topP = r.nextInt(3) == 0 ? 0.9f : 1f;
      float minP = r.nextInt(3) == 0 ? 0.01f : 0f;
      float[] s = new float[n];
      for (int i = 0; i < n; i++) {
        s[i] = (float) (r.nextGaussian() * (1 + trial % 4));
      }
      int[] ids = new int[n];
      double[] lps = new double[n];
      double[] lp = new double[1];
      assertTrue(RowSampling.sample(s, 0, n, 1f, topK, topP, minP, typical, 0.5, lp, 0, n, ids, lps, 0) >= 0);
      boolean[] kept = new boolean[n];
      for (int id : ids) {
        if (id >= 0) {
          kept[id] = true;
        }
      }
      float[] hf = s.clone();
      if (topK > 0) {
        new io.github.optjava.engine.TopKProcessor(topK).process(new int[0], 0, 0, hf);
      }
      if (topP < 1) {
        new io.github.optjava.engine.TopPProcessor(topP).process(new int[0], 0, 0, hf);
      }
      if (minP > 0) {
        new io.github.optjava.engine.MinPProcessor(minP).process(new int[0], 0, 0, hf);
      }
      float[] left = hf.clone(); // what the cuts before typical sampling left
      new io.github.optjava.engine.TypicalProcessor(typical).process(new int[0], 0, 0, hf);
      double[] distance = typicalDistances(left);
      double cut = 0; // the twin's: the largest distance it keeps
      for (int i = 0; i < n; i++) {
        cut = kept[i] ? Math.max(cut, distance[i]) : cut;
      }
      for (int i = 0; i < n; i++) {
        if ((hf[i] > Float.NEGATIVE_INFINITY) != kept[i]) {
          assertTrue(Math.abs(distance[i] - cut) <= 1e-5, "trial " + trial + " token " + i + " of " + n + ", typical "
              + typical + ", top-k " + topK + ", top-p " + topP + ", min-p " + minP + ": distance " + distance[i]
              + ", cut " + cut);
          atTheCut++;
        }
        compared++;
      }
    }
    assertTrue(compared > 200 * 50);
    assertTrue(atTheCut <= compared / 1000, atTheCut + " of " + compared + " at the cut");
  }

  /** |-log p - H| of every finite logit, in double (p: the softmax of the finite ones); NaN for -inf. */
  private static double[] typicalDistances(float[] logits) {
    double max = Double.NEGATIVE_INFINITY;
    for (float v : logits) {
      max = Math.max(max, v);
    }
    double sum = 0;
    for (float v : logits) {
      sum += v > Float.NEGATIVE_INFINITY ? Math.exp(v - max) : 0;
    }
    double entropy = 0;
    for (float v : logits) {
      entropy -= v > Float.NEGATIVE_INFINITY ? Math.exp(v - max) / sum * (v - max - Math.log(sum)) : 0;
    }
    double[] d = new double[logits.length];
    for (int i = 0; i < d.length; i++) {
      d[i] = logits[i] > Float.NEGATIVE_INFINITY ? Math.abs(-(logits[i] - max - Math.log(sum)) - entropy) : Double.NaN;
    }
    return d;
  }

  /**
   * Typical sampling by hand: {2, 1, 0, -1, -3} has p = 0.641, 0.236, 0.087, 0.032, 0.004 and entropy H = 0.971; the
   * distances |-log p - H| are 0.527, 0.473, 1.473, 2.473, 4.473, so the most typical token is 1, not the most likely.
   * Typical 0.2 keeps token 1 alone (0.236 >= 0.2); 0.5 keeps 1 and 0 (0.877), drawn 0.269 / 0.731; 0.9 adds token 2
   * (0.964); 1 is off.
   */
  @Test
  void typicalByHand() {
    float[] row = {2f, 1f, 0f, -1f, -3f};
    double[] lp = new double[1];
    for (double u : new double[] {0, 0.3, 0.99}) {
      assertEquals(1, RowSampling.sample(row, 0, 5, 1f, 0, 1f, 0f, 0.2f, u, lp, 0, 0, null, null, 0));
      assertEquals(0, lp[0], 1e-7, "the only token kept (the kept mass: the total less the cut, in double)");
    }
    int draws = 200_000;
    int[] counts = new int[row.length];
    Random r = new Random(13);
    for (int d = 0; d < draws; d++) {
      counts[RowSampling.sample(row, 0, 5, 1f, 0, 1f, 0f, 0.5f, r.nextDouble(), lp, 0, 0, null, null, 0)]++;
    }
    double kept = Math.exp(2) + Math.exp(1);
    assertEquals(Math.exp(2) / kept, counts[0] / (double) draws, 0.005);
    assertEquals(Math.exp(1) / kept, counts[1] / (double) draws, 0.005);
    assertEquals(0, counts[2] + counts[3] + counts[4]);
    int[] ids = new int[5];
    double[] lps = new double[5];
    RowSampling.sample(row, 0, 5, 1f, 0, 1f, 0f, 0.9f, 0.5, lp, 0, 5, ids, lps, 0);
    assertEquals(List.of(0, 1, 2, -1, -1), List.of(ids[0], ids[1], ids[2], ids[3], ids[4]), "typical 0.9");
    double mass = Math.exp(2) + Math.exp(1) + 1;
    assertEquals(2 - Math.log(mass), lps[0], 1e-6, "the log-prob under the kept distribution");
    for (float off : new float[] {1f, 0f, 1.5f, Float.NaN}) {
      RowSampling.sample(row, 0, 5, 1f, 0, 1f, 0f, off, 0.5, lp, 0, 5, ids, lps, 0);
      assertEquals(List.of(0, 1, 2, 3, 4), List.of(ids[0], ids[1], ids[2], ids[3], ids[4]), "typical " + off + ": off");
    }
  }
}
