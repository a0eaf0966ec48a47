package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

/** {@link LogProbs}: the log-probs reported next to sampled tokens. */
class SamplerLogProbsTest {

  private static final float NEG_INF = Float.NEGATIVE_INFINITY;

  @Test
  void logSoftmaxOfHandComputedValues() {
    float[] logits = {0f, 0f, (float) Math.log(2)};
    double lse = LogProbs.logSumExp(logits); // log(1 + 1 + 2)
    assertEquals(Math.log(4), lse, 1e-7);
    assertEquals(Math.log(0.25), LogProbs.logProb(logits, 0), 1e-7);
    assertEquals(Math.log(0.5), LogProbs.logProb(logits, 2, lse), 1e-7);
  }

  @Test
  void largeLogitsDoNotOverflow() {
    float[] logits = {1000f, 1000f};
    assertEquals(Math.log(0.5), LogProbs.logProb(logits, 1), 1e-9);
  }

  @Test
  void bannedTokensHaveMinusInfinity() {
    float[] logits = {NEG_INF, 1f};
    assertEquals(Double.NEGATIVE_INFINITY, LogProbs.logProb(logits, 0));
    assertEquals(0.0, LogProbs.logProb(logits, 1));
    assertEquals(Double.NEGATIVE_INFINITY, LogProbs.logSumExp(new float[] {NEG_INF, NEG_INF}));
    assertEquals(Double.NaN, LogProbs.logSumExp(new float[] {1f, Float.NaN}));
  }

  @Test
  void topKIsDescendingWithTiesByLowerId() {
    float[] logits = {1f, 3f, 2f, 3f, NEG_INF, 2f, 0f};
    double lse = LogProbs.logSumExp(logits);
    int[] ids = new int[4];
    double[] lp = new double[4];
    assertEquals(4, LogProbs.topK(logits, lse, 4, ids, lp));
    assertArrayEquals(new int[] {1, 3, 2, 5}, ids);
    assertArrayEquals(new double[] {3 - lse, 3 - lse, 2 - lse, 2 - lse}, lp, 1e-12);
  }

  @Test
  void topKListsOnlyPossibleTokens() {
    float[] logits = {NEG_INF, 5f, NEG_INF};
    int[] ids = new int[3];
    double[] lp = new double[3];
    assertEquals(1, LogProbs.topK(logits, LogProbs.logSumExp(logits), 3, ids, lp));
    assertEquals(1, ids[0]);
    assertEquals(0.0, lp[0]);
    assertEquals(0, LogProbs.topK(logits, 0, 0, new int[0], new double[0]));
    assertThrows(IllegalArgumentException.class, () -> LogProbs.topK(logits, 0, 2, new int[1], new double[2]));
  }

  @Test
  void topKMatchesAFullSortOnARandomVector() {
    java.util.SplittableRandom r = new java.util.SplittableRandom(5);
    float[] logits = new float[5000];
    for (int i = 0; i < logits.length; i++) {
      logits[i] = (float) Math.round(r.nextGaussian() * 20) / 4; // coarse values: many ties
    }
    Integer[] order = new Integer[logits.length];
    for (int i = 0; i < order.length; i++) {
      order[i] = i;
    }
    java.util.Arrays.sort(order, (a, b) -> logits[a] != logits[b] ? Float.compare(logits[b], logits[a]) : a - b);
    int[] ids = new int[20];
    LogProbs.topK(logits, LogProbs.logSumExp(logits), 20, ids, new double[20]);
    for (int j = 0; j < 20; j++) {
      assertEquals(order[j], ids[j], "rank " + j);
    }
  }
}
