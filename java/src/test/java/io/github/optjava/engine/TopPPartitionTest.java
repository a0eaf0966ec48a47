package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.backend.cpu.RowKernels;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * {@link TopPProcessor} and {@link TypicalProcessor} partition their candidates around the cut instead of sorting
 * them all: they must remove exactly the tokens that sorting every live token and walking the cumulative sum removes
 * (the rules in their Javadoc).
 */
class TopPPartitionTest {
  private static final float NEG_INF = Float.NEGATIVE_INFINITY;

  @Test
  void removesWhatAFullSortRemovesOnManyRows() {
    SplittableRandom r = new SplittableRandom(5);
    int rows = 0;
    for (double topP : new double[] {0.05, 0.5, 0.9, 0.95, 0.999}) {
      for (int shape = 0; shape < 6; shape++) {
        for (int rep = 0; rep < 4; rep++) {
          float[] logits = row(r, shape, 2000 + r.nextInt(3000));
          float[] ours = logits.clone();
          new TopPProcessor(topP).process(new int[0], 0, 0, ours);
          float[] reference = logits.clone();
          fullSortTopP(topP, reference);
          assertArrayEquals(reference, ours, "top-p " + topP + ", shape " + shape + ", rep " + rep);
          rows++;
        }
      }
    }
    assertTrue(rows == 120);
  }

  @Test
  void typicalRemovesWhatAFullSortRemovesOnManyRows() {
    SplittableRandom r = new SplittableRandom(9);
    for (double mass : new double[] {0.2, 0.5, 0.9, 0.95}) {
      for (int shape = 0; shape < 6; shape++) {
        for (int rep = 0; rep < 3; rep++) {
          float[] logits = row(r, shape, 2000 + r.nextInt(3000));
          float[] ours = logits.clone();
          new TypicalProcessor(mass).process(new int[0], 0, 0, ours);
          float[] reference = logits.clone();
          fullSortTypical(mass, reference);
          assertArrayEquals(reference, ours, "typical " + mass + ", shape " + shape + ", rep " + rep);
        }
      }
    }
  }

  /** Locally typical sampling's rules with every live token sorted by its distance (then id). */
  private static void fullSortTypical(double mass, float[] logits) {
    float massF = (float) mass;
    float max = NEG_INF;
    for (float v : logits) {
      max = Math.max(max, v);
    }
    double sum = 0;
    for (float v : logits) {
      sum += v > NEG_INF ? RowKernels.exp(v - max) : 0f;
    }
    double lse = max + Math.log(sum);
    float[] logp = new float[logits.length];
    float[] prob = new float[logits.length];
    double entropy = 0;
    for (int i = 0; i < logits.length; i++) {
      logp[i] = logits[i] > NEG_INF ? (float) (logits[i] - lse) : NEG_INF;
      prob[i] = RowKernels.exp(logp[i]);
      if (logits[i] > NEG_INF) {
        entropy -= logp[i] * (double) prob[i];
      }
    }
    float h = (float) entropy;
    long[] keys = new long[logits.length];
    int m = 0;
    for (int i = 0; i < logits.length; i++) {
      if (logits[i] > NEG_INF) {
        keys[m++] = ((long) Float.floatToIntBits(Math.abs(-logp[i] - h)) << 32) | i;
      }
    }
    Arrays.sort(keys, 0, m);
    double cumulative = 0;
    int last = m - 1;
    for (int j = 0; j < m; j++) {
      cumulative += prob[(int) keys[j]];
      if (!((float) cumulative < massF)) {
        last = j;
        break;
      }
    }
    float cut = Float.intBitsToFloat((int) (keys[last] >>> 32));
    for (int j = 1; j < m; j++) {
      if (Float.intBitsToFloat((int) (keys[j] >>> 32)) > cut) {
        logits[(int) keys[j]] = NEG_INF;
      }
    }
  }

  /** Rows from peaked to flat, with ties (16-bit logits) and banned tokens. */
  private static float[] row(SplittableRandom r, int shape, int vocab) {
    float[] v = new float[vocab];
    for (int i = 0; i < vocab; i++) {
      double x = switch (shape) {
        case 0 -> r.nextGaussian() * 3; // broad: thousands of candidates
        case 1 -> r.nextGaussian() * 0.3; // nearly flat
        case 2 -> -Math.log(r.nextDouble()) * 4; // heavy tail
        case 3 -> Math.round(r.nextGaussian() * 8) / 4.0; // many exact ties
        case 4 -> r.nextInt(10) == 0 ? NEG_INF : r.nextGaussian() * 2; // banned tokens
        default -> r.nextGaussian() * 10; // peaked: few candidates
      };
      v[i] = (float) x;
    }
    return v;
  }

  /** The rules without the partition: every live token sorted (value ascending, higher id first among ties). */
  private static void fullSortTopP(double topP, float[] logits) {
    float cut = (float) (1 - topP);
    float max = NEG_INF;
    for (float v : logits) {
      max = Math.max(max, v);
    }
    double sum = 0;
    int m = 0;
    long[] keys = new long[logits.length];
    for (int i = 0; i < logits.length; i++) {
      if (logits[i] > NEG_INF) {
        sum += RowKernels.exp(logits[i] - max);
        int bits = Float.floatToIntBits(logits[i] == 0 ? 0f : logits[i]);
        keys[m++] = ((long) (bits ^ ((bits >> 31) & 0x7fffffff)) << 32) | (~i & 0xffffffffL);
      }
    }
    Arrays.sort(keys, 0, m);
    double cumulative = 0;
    int removed = 0;
    while (removed < m - 1) {
      int id = ~(int) keys[removed];
      cumulative += (float) (RowKernels.exp(logits[id] - max) / sum);
      if ((float) cumulative > cut) {
        break;
      }
      removed++;
    }
    for (int j = 0; j < removed; j++) {
      logits[~(int) keys[j]] = NEG_INF;
    }
  }
}
