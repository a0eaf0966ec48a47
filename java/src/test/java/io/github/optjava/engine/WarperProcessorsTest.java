package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Edge cases of temperature, top-k and top-p beyond the HF fixture. */
class WarperProcessorsTest {

  private static final float NEG_INF = Float.NEGATIVE_INFINITY;
  private static final int[] NO_IDS = {};

  private static float[] run(LogitsProcessor p, float... logits) {
    float[] copy = logits.clone();
    p.process(NO_IDS, 0, 0, copy);
    return copy;
  }

  @Test
  void temperatureDividesInFloat32() {
    assertArrayEquals(new float[] {1f / 0.7f, -2f / 0.7f, NEG_INF},
        run(new TemperatureProcessor(0.7), 1f, -2f, NEG_INF));
    assertThrows(IllegalArgumentException.class, () -> new TemperatureProcessor(0));
  }

  @Test
  void topKKeepsTheKLargest() {
    assertArrayEquals(new float[] {NEG_INF, 3f, NEG_INF, 4f},
        run(new TopKProcessor(2), 1f, 3f, 2f, 4f));
  }

  @Test
  void topKKeepsAllTiesWithTheKthValue() {
    // k = 2: the 2nd largest value is 3, shared by three tokens; all stay (torch.topk + '<').
    assertArrayEquals(new float[] {3f, 5f, 3f, NEG_INF, 3f},
        run(new TopKProcessor(2), 3f, 5f, 3f, 1f, 3f));
  }

  @Test
  void topKCountsDuplicatesOfTheMaximum() {
    // The two 5s fill k = 2, so 4 is below the 2nd largest (5) and goes.
    assertArrayEquals(new float[] {5f, NEG_INF, 5f}, run(new TopKProcessor(2), 5f, 4f, 5f));
  }

  @Test
  void topKAtOrAboveVocabularySizeChangesNothing() {
    assertArrayEquals(new float[] {1f, 2f, 3f}, run(new TopKProcessor(3), 1f, 2f, 3f));
    assertArrayEquals(new float[] {1f, 2f, 3f}, run(new TopKProcessor(50), 1f, 2f, 3f));
  }

  @Test
  void topKWithAllEqualLogitsKeepsEverything() {
    assertArrayEquals(new float[] {7f, 7f, 7f, 7f}, run(new TopKProcessor(1), 7f, 7f, 7f, 7f));
  }

  @Test
  void topKTreatsMinusInfinityAsAValue() {
    // Three -inf among five: the 3rd largest is -inf, so nothing finite is removed.
    assertArrayEquals(new float[] {NEG_INF, 1f, NEG_INF, 2f, NEG_INF},
        run(new TopKProcessor(3), NEG_INF, 1f, NEG_INF, 2f, NEG_INF));
    assertThrows(IllegalArgumentException.class, () -> new TopKProcessor(0));
  }

  @Test
  void topPOfOneChangesNothing() {
    assertArrayEquals(new float[] {-30f, 0f, 10f}, run(new TopPProcessor(1.0), -30f, 0f, 10f));
  }

  @Test
  void topPKeepsTheSmallestSetReachingTheMass() {
    // softmax(ln 0.5, ln 0.3, ln 0.15, ln 0.05): ascending cumsum 0.05, 0.2, 0.5, 1.0.
    float[] logits = {(float) Math.log(0.5), (float) Math.log(0.3), (float) Math.log(0.15), (float) Math.log(0.05)};
    // p = 0.75: remove cum <= 0.25 -> the 0.05 and 0.15 tokens go.
    assertArrayEquals(new float[] {logits[0], logits[1], NEG_INF, NEG_INF}, run(new TopPProcessor(0.75), logits));
    // p = 0.4: remove cum <= 0.6 -> only the 0.5 token stays.
    assertArrayEquals(new float[] {logits[0], NEG_INF, NEG_INF, NEG_INF}, run(new TopPProcessor(0.4), logits));
  }

  @Test
  void topPAlwaysKeepsTheLargestToken() {
    assertArrayEquals(new float[] {NEG_INF, 10f, NEG_INF}, run(new TopPProcessor(1e-9), 0f, 10f, 9f));
  }

  @Test
  void topPWithAllEqualLogitsKeepsLowestIdsFirst() {
    // Ten equal tokens of 0.1 each; p = 0.55 removes cum <= 0.45f: four tokens, the highest ids.
    float[] logits = new float[10];
    float[] expected = new float[10];
    for (int i = 6; i < 10; i++) {
      expected[i] = NEG_INF;
    }
    assertArrayEquals(expected, run(new TopPProcessor(0.55), logits));
  }

  @Test
  void topPIgnoresTokensAlreadyBanned() {
    // Banned tokens have probability 0; the remaining two split 0.5/0.5, and p = 0.5 keeps only the lower id.
    assertArrayEquals(new float[] {NEG_INF, 2f, NEG_INF, NEG_INF},
        run(new TopPProcessor(0.5), NEG_INF, 2f, 2f, NEG_INF));
    assertThrows(IllegalArgumentException.class, () -> new TopPProcessor(0));
    assertThrows(IllegalArgumentException.class, () -> new TopPProcessor(1.5));
  }

  @Test
  void topPTreatsPositiveInfinityAsTheWholeMass() {
    float inf = Float.POSITIVE_INFINITY;
    assertArrayEquals(new float[] {NEG_INF, inf, NEG_INF}, run(new TopPProcessor(0.9), 3f, inf, 5f));
  }

  @Test
  void processorsCanBeReusedAcrossVocabularySizes() {
    TopPProcessor p = new TopPProcessor(0.5);
    assertArrayEquals(new float[] {NEG_INF, 5f}, run(p, 0f, 5f));
    assertArrayEquals(new float[] {NEG_INF, 5f, NEG_INF, NEG_INF}, run(p, 0f, 5f, 1f, 2f));
  }

  /**
   * TopPProcessor removes its "tiny" tokens without sorting them; over random vocabularies of real size
   * it must give exactly the mask of HF's plain algorithm (sort everything, cumsum, compare).
   */
  @Test
  void topPMatchesTheUnoptimisedAlgorithmOnRandomVocabularies() {
    SplittableRandom random = new SplittableRandom(99);
    for (double scale : new double[] {0.1, 1, 3, 8, 20}) {
      for (double p : new double[] {0.05, 0.5, 0.9, 0.99}) {
        float[] logits = new float[50272];
        for (int i = 0; i < logits.length; i++) {
          logits[i] = i % 7 == 0 ? NEG_INF : (float) (random.nextGaussian() * scale);
        }
        assertArrayEquals(plainTopP(logits, p), run(new TopPProcessor(p), logits), "scale " + scale + ", p " + p);
      }
    }
  }

  /** HF's TopPLogitsWarper written out directly: ascending sort (ties: higher id first), cumsum, mask. */
  private static float[] plainTopP(float[] logits, double p) {
    Integer[] order = new Integer[logits.length];
    Arrays.setAll(order, i -> i);
    Arrays.sort(order, (a, b) -> logits[a] != logits[b] ? Float.compare(logits[a], logits[b]) : b - a);
    float max = logits[order[order.length - 1]];
    double sum = 0;
    for (float v : logits) {
      sum += Math.exp((double) v - max);
    }
    float[] out = logits.clone();
    double cumulative = 0;
    for (int j = 0; j < order.length - 1; j++) {
      cumulative += (float) (Math.exp((double) logits[order[j]] - max) / sum);
      if ((float) cumulative > (float) (1 - p)) {
        break;
      }
      out[order[j]] = NEG_INF;
    }
    return out;
  }
}
