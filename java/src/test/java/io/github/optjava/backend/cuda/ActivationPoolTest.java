package io.github.optjava.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The size classes of the activation pool (pure arithmetic: no GPU needed). */
class ActivationPoolTest {

  @Test
  void classesAreFourPerOctaveAndNeverSmallerThanTheRequest() {
    assertEquals(256, ActivationPool.sizeClass(1));
    assertEquals(256, ActivationPool.sizeClass(256));
    assertEquals(320, ActivationPool.sizeClass(257)); // 5 × 64
    assertEquals(448, ActivationPool.sizeClass(400)); // 7 × 64
    assertEquals(512, ActivationPool.sizeClass(449)); // 8 × 64 = 4 × 128, the next octave
    assertEquals(5L << 20, ActivationPool.sizeClass((4L << 20) + 1));
    for (long b = 1; b < 5_000_000; b = b * 3 / 2 + 7) {
      long c = ActivationPool.sizeClass(b);
      assertTrue(c >= b && c <= Math.max(256, b * 5 / 4 + 1), b + " -> " + c); // at most 25 % waste
      long m = c >>> (63 - Long.numberOfLeadingZeros(c) - 2);
      assertTrue(m >= 4 && m <= 7 && (m << (63 - Long.numberOfLeadingZeros(c) - 2)) == c, b + " -> " + c);
      assertEquals(c, ActivationPool.sizeClass(c), "a class is its own class");
    }
  }
}
