package io.github.optjava.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Random;
import org.junit.jupiter.api.Test;

/** {@link LogitEdits}: the builder's one edit per (row, token), the packed layout and the float operations. */
class LogitEditsTest {

  @Test
  void eachOperationIsOneRoundedFloatOperationInTheFixedOrder() {
    float[] x = {3f, -3f, 0f, -0f, Float.POSITIVE_INFINITY, Float.NaN, 1e-30f};
    Random r = new Random(2);
    for (float v : x) {
      float bias = (float) r.nextGaussian();
      float penalty = 1.3f;
      float frequency = 0.37f;
      float presence = 0.11f;
      float expected = v + bias;
      expected = expected < 0 ? expected * penalty : expected / penalty;
      expected = expected - frequency - presence;
      LogitEdits e = new LogitEdits.Builder(4).row(1).bias(2, bias).repetitionPenalty(2, penalty)
          .presenceFrequency(2, frequency, presence).build();
      float[] row = new float[8];
      row[6] = v;
      e.applyTo(row);
      assertEquals(Float.floatToIntBits(expected), Float.floatToIntBits(row[6]), "x = " + v);
    }
  }

  @Test
  void oneEditPerRowAndTokenPackedAsTheKernelReadsIt() {
    LogitEdits.Builder b = new LogitEdits.Builder(10);
    b.row(0).repetitionPenalty(3, 2f).repetitionPenalty(3, 2f).ban(4);
    b.row(2).bias(3, 1.5f).ban(3);
    LogitEdits e = b.build();
    assertEquals(3, e.count(), "token 3 of row 0 once, token 4, token 3 of row 2");
    assertArrayEquals(new int[] {3, 4, 23}, e.index());
    int[] p = e.packed();
    assertEquals(18, p.length);
    assertArrayEquals(new int[] {LogitEdits.PENALTY, LogitEdits.BAN, LogitEdits.BIAS | LogitEdits.BAN},
        java.util.Arrays.copyOfRange(p, 3, 6));
    assertEquals(1.5f, Float.intBitsToFloat(p[6 + 2]));
    assertEquals(2f, Float.intBitsToFloat(p[9]));
    float[] logits = new float[30];
    java.util.Arrays.fill(logits, 4f);
    e.applyTo(logits);
    assertEquals(2f, logits[3]);
    assertEquals(Float.NEGATIVE_INFINITY, logits[4]);
    assertEquals(Float.NEGATIVE_INFINITY, logits[23]);
    assertEquals(4f, logits[13], "row 1 untouched");
    assertEquals(LogitEdits.NONE, b.build(), "the builder is empty again");
    assertEquals(LogitEdits.NONE, new LogitEdits.Builder(10).row(3).build(), "a row without edits");
  }

  @Test
  void growsPastItsFirstArraysWhateverTheKindAndClears() {
    LogitEdits.Builder b = new LogitEdits.Builder(1000).row(0);
    for (int t = 0; t < 200; t++) {
      b.ban(t);
    }
    b.row(1).repetitionPenalty(5, 2f);
    b.clear();
    assertEquals(LogitEdits.NONE, b.build(), "clear() forgets a half-built step");
    b.row(0);
    for (int t = 0; t < 300; t++) {
      b.bias(t, 1f);
    }
    assertEquals(300, b.build().count());
  }

  @Test
  void badInputIsRefused() {
    LogitEdits.Builder b = new LogitEdits.Builder(10);
    assertThrows(IllegalStateException.class, () -> b.ban(1), "no row chosen");
    assertThrows(IllegalArgumentException.class, () -> b.row(0).ban(10));
    assertThrows(IllegalArgumentException.class, () -> b.row(0).ban(-1));
    assertThrows(IllegalArgumentException.class, () -> new LogitEdits.Builder(0));
    LogitEdits e = new LogitEdits.Builder(10).row(5).ban(1).build();
    assertThrows(IllegalArgumentException.class, () -> e.applyTo(new float[20]), "row 5 lies outside 2 rows");
  }
}
