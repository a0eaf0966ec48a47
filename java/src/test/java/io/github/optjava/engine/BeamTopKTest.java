package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.github.optjava.backend.Mat;
import io.github.optjava.backend.Ops;
import io.github.optjava.backend.RowMath;
import io.github.optjava.backend.cpu.CpuOps;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Random;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Beam search's candidates where the logits are ({@link RowMath#beamTopK}, {@link Ops#beamTopK}) against a full sort
 * of beam search's host scores: {@code log_softmax} in place as {@code BeamSearch} computes it, plus the beam's score,
 * ordered by score then id. The rows are built to tie: within a row (equal logits), and after adding a large beam
 * score, where distinct log-probs round to one float.
 */
class BeamTopKTest {

  @ParameterizedTest
  @ValueSource(floats = {0f, -3.25f, -1e9f, -7e4f})
  void theBestKOfTheScoresInOrder(float base) {
    Random r = new Random(Float.floatToIntBits(base));
    for (int trial = 0; trial < 40; trial++) {
      int vocab = 1 + r.nextInt(300);
      float[] row = new float[vocab];
      for (int i = 0; i < vocab; i++) { // few distinct values: ties within the row; some -inf
        row[i] = r.nextInt(10) == 0 ? Float.NEGATIVE_INFINITY : (r.nextInt(24) - 12) / 4f + r.nextInt(3) * 1e-6f;
      }
      row[r.nextInt(vocab)] = 1f; // at least one finite logit
      for (int k : new int[] {1, 2, 8, vocab, vocab + 3}) {
        assertMatchesSort(row, base, k);
      }
    }
  }

  @Test
  void sortsAtTheRowsEndsAndOffsets() {
    float[] v = {9, 9, 0.5f, 2, 2, 1, 9, 9}; // the row is v[2, 6); the 9s outside must not count
    int[] ids = new int[5];
    float[] scores = new float[5];
    assertEquals(4, RowMath.beamTopK(v, 2, 6, 0f, 4, ids, scores, 1));
    // ties to the lower id; ids relative to the row; nothing written before index 1
    assertArrayEquals(new int[] {0, 1, 2, 3, 0}, ids);
    float[] want = hostScores(Arrays.copyOfRange(v, 2, 6), 0f);
    assertArrayEquals(new float[] {0f, want[1], want[2], want[3], want[0]}, scores);
  }

  @Test
  void aRowWithoutAProperLogSoftmaxListsNothing() {
    float[][] rows = {
        {0f, Float.NaN, 1f},
        {0f, Float.POSITIVE_INFINITY, 1f},
        {Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY},
    };
    for (float[] row : rows) {
      int[] ids = {7, 7};
      float[] scores = {7f, 7f};
      assertEquals(0, RowMath.beamTopK(row, 0, row.length, 0f, 2, ids, scores, 0), Arrays.toString(row));
      assertArrayEquals(new int[] {-1, -1}, ids);
      assertArrayEquals(new float[] {Float.NaN, Float.NaN}, scores);
    }
  }

  /** The op reads one row for several beams (the first step's) and refuses rows or arrays that do not fit. */
  @Test
  void theOpListsPerBeamAndChecksItsArguments() {
    Ops ops = new CpuOps();
    Random r = new Random(5);
    int vocab = 50;
    float[] logits = new float[3 * vocab];
    for (int i = 0; i < logits.length; i++) {
      logits[i] = (float) r.nextGaussian();
    }
    int[] rows = {2, 0, 0};
    float[] base = {-1f, 0f, -1e9f};
    int k = 6;
    int[] ids = new int[rows.length * k];
    float[] scores = new float[rows.length * k];
    try (Mat m = ops.alloc(3, vocab)) {
      ops.write(m, logits);
      ops.beamTopK(m, rows, base, k, ids, scores);
      for (int j = 0; j < rows.length; j++) {
        float[] row = Arrays.copyOfRange(logits, rows[j] * vocab, (rows[j] + 1) * vocab);
        Integer[] want = sortedIds(row, base[j]);
        float[] s = hostScores(row, base[j]);
        for (int i = 0; i < k; i++) {
          assertEquals(want[i], ids[j * k + i], "beam " + j + " rank " + i);
          assertEquals(s[want[i]], scores[j * k + i], "beam " + j + " rank " + i);
        }
      }
      assertThrows(IllegalArgumentException.class, () -> ops.beamTopK(m, new int[] {3}, new float[1], 1,
          new int[1], new float[1]));
      assertThrows(IllegalArgumentException.class, () -> ops.beamTopK(m, new int[] {0}, new float[1], 2,
          new int[1], new float[1]));
      assertThrows(IllegalArgumentException.class, () -> ops.beamTopK(m, new int[] {0}, new float[1], 0,
          new int[0], new float[0]));
    }
  }

  /**
   * A backend whose overload without edits comes to the one with them, and whose fallback is {@link Ops}' default
   * (CudaOps with {@code -Dopt.cuda.deviceBeams=false}): the default computes on the host, it does not call back (it
   * did, and looped until the stack overflowed: the H200 run of session 21).
   */
  @Test
  void theDefaultWithEditsDoesNotCallBackTheOtherOverload() {
    Ops ops = new CpuOps() {
      @Override
      public void beamTopK(Mat logits, int[] rows, float[] base, int k, int[] ids, float[] scores) {
        beamTopK(logits, rows, base, k, ids, scores, io.github.optjava.backend.LogitEdits.NONE);
      }

      @Override
      public void beamTopK(Mat logits, int[] rows, float[] base, int k, int[] ids, float[] scores,
          io.github.optjava.backend.LogitEdits edits) {
        super.beamTopK(logits, rows, base, k, ids, scores, edits); // the fallback: Ops' default
      }
    };
    float[] row = {0.5f, 2f, -1f, 2f, 0f};
    int[] ids = new int[3];
    float[] scores = new float[3];
    try (Mat m = ops.alloc(1, row.length)) {
      ops.write(m, row);
      ops.beamTopK(m, new int[] {0}, new float[] {-2f}, 3, ids, scores);
    }
    assertArrayEquals(new int[] {1, 3, 0}, ids);
    float[] want = hostScores(row, -2f);
    assertArrayEquals(new float[] {want[1], want[3], want[0]}, scores);
  }

  private static void assertMatchesSort(float[] row, float base, int k) {
    Integer[] order = sortedIds(row, base);
    float[] s = hostScores(row, base);
    int[] ids = new int[k];
    float[] scores = new float[k];
    int listed = RowMath.beamTopK(row, 0, row.length, base, k, ids, scores, 0);
    assertEquals(Math.min(k, row.length), listed);
    for (int i = 0; i < k; i++) {
      if (i < listed) {
        assertEquals(order[i], ids[i], "rank " + i + " of k=" + k + " base " + base);
        assertEquals(Float.floatToIntBits(s[order[i]]), Float.floatToIntBits(scores[i]), "score bits at rank " + i);
      } else {
        assertEquals(-1, ids[i]);
        assertEquals(Float.NaN, scores[i]);
      }
    }
  }

  /** Every id, by score then id: a full sort of {@link #hostScores}. */
  private static Integer[] sortedIds(float[] row, float base) {
    float[] s = hostScores(row, base);
    return IntStream.range(0, row.length).boxed()
        .sorted(Comparator.<Integer>comparingDouble(i -> -s[i]).thenComparingInt(i -> i)).toArray(Integer[]::new);
  }

  /** The host path's scores: BeamSearch's log-softmax in place, then the beam's score added in float32. */
  private static float[] hostScores(float[] row, float base) {
    float[] x = row.clone();
    BeamSearch.logSoftmaxInPlace(x);
    for (int i = 0; i < x.length; i++) {
      x[i] += base;
    }
    return x;
  }
}
