package io.github.optjava.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import org.junit.jupiter.api.Test;

class CpuOpsTest {

  @Test
  void embeddingCopiesRowsAndZeroesInvalidIds() {
    // table rows: id 0 = [1, 2], id 1 = [3, 4], id 2 = [5, 6]
    float[] table = {1, 2, 3, 4, 5, 6};
    float[] out = new float[8];
    java.util.Arrays.fill(out, Float.NaN); // poison: every element must be written
    new CpuOps().embedding(out, table, new int[] {2, 0, 3, -1}, 4, 2, 3);
    assertArrayEquals(new float[] {5, 6, 1, 2, 0, 0, 0, 0}, out);
  }
}
