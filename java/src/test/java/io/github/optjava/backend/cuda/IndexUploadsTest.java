package io.github.optjava.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.bytedeco.javacpp.IntPointer;
import org.junit.jupiter.api.Test;

/** The address arithmetic of the index arena, on host memory (no GPU needed). */
class IndexUploadsTest {

  @Test
  void pointerAtAnOffsetAddressesThatElement() {
    try (IntPointer base = new IntPointer(64)) {
      base.fill(0);
      IntPointer p = IndexUploads.at(base, 8);
      assertEquals(base.address() + 32, p.address());
      p.put(new int[] {7, 8, 9}, 0, 3);
      int[] back = new int[12];
      base.get(back);
      assertArrayEquals(new int[] {0, 0, 0, 0, 0, 0, 0, 0, 7, 8, 9, 0}, back);
      assertEquals(base.address(), IndexUploads.at(base, 0).address());

      // CudaOps.read views its pinned buffer (a Pointer with no JavaCPP limit) as floats or shorts and
      // bulk-gets it: that must read the memory, not stop at the unknown limit.
      base.put(0, Float.floatToIntBits(1.5f)).put(1, (3 << 16) | 2);
      float[] f = new float[1];
      new org.bytedeco.javacpp.FloatPointer(IndexUploads.at(base, 0)).get(f);
      assertEquals(1.5f, f[0]);
      short[] h = new short[2];
      new org.bytedeco.javacpp.ShortPointer(IndexUploads.at(base, 1)).get(h);
      assertArrayEquals(new short[] {2, 3}, h);
    }
  }
}
