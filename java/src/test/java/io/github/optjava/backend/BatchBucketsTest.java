package io.github.optjava.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class BatchBucketsTest {
  @Test
  void bucketsArePowersOfTwoToEightThenMultiplesOfEight() {
    int[] expected = {1, 2, 4, 4, 8, 8, 8, 8, 16, 16, 16, 16, 16, 16, 16, 16, 24};
    for (int n = 1; n <= expected.length; n++) {
      assertEquals(expected[n - 1], BatchBuckets.of(n), "n = " + n);
    }
    assertEquals(32, BatchBuckets.of(32));
    assertEquals(136, BatchBuckets.of(129));
    java.util.Set<Integer> sizes = new java.util.HashSet<>();
    for (int n = 1; n <= 256; n++) {
      int b = BatchBuckets.of(n);
      assertTrue(b >= n && b - n <= Math.max(7, n - 1), n + " -> " + b); // never more than doubles, +7 above 8
      sizes.add(b);
    }
    assertEquals(35, sizes.size(), "sizes for 1..256 sequences");
    assertThrows(IllegalArgumentException.class, () -> BatchBuckets.of(0));
  }
}
