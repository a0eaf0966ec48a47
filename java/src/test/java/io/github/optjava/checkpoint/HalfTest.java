package io.github.optjava.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class HalfTest {

  @Test
  void knownValues() {
    assertEquals(1.0f, Half.toFloat((short) 0x3c00));
    assertEquals(-2.0f, Half.toFloat((short) 0xc000));
    assertEquals(65504.0f, Half.toFloat((short) 0x7bff));
    assertEquals(0x1p-24f, Half.toFloat((short) 0x0001)); // smallest subnormal
    assertEquals(Float.POSITIVE_INFINITY, Half.toFloat((short) 0x7c00));
    assertEquals(true, Float.isNaN(Half.toFloat((short) 0x7e00)));
    assertEquals(-0.0f, Half.toFloat((short) 0x8000));
  }

  @Test
  void everyHalfRoundTripsThroughFloat() {
    for (int h = 0; h < 0x10000; h++) {
      float f = Half.toFloat((short) h);
      if (Float.isNaN(f)) {
        continue;
      }
      assertEquals(h, Half.fromFloat(f) & 0xffff, "half 0x" + Integer.toHexString(h));
    }
  }

  @Test
  void roundsToNearestEven() {
    // 1 + 2^-11 lies halfway between 1 (0x3c00, even) and 1 + 2^-10 (0x3c01): ties go to even.
    assertEquals(0x3c00, Half.fromFloat(1f + 0x1p-11f) & 0xffff);
    // 1 + 3 × 2^-11 lies halfway between 0x3c01 (odd) and 0x3c02 (even).
    assertEquals(0x3c02, Half.fromFloat(1f + 3 * 0x1p-11f) & 0xffff);
    assertEquals(0x7c00, Half.fromFloat(65520f) & 0xffff); // overflow rounds to inf
    assertEquals(0x7bff, Half.fromFloat(65519f) & 0xffff);
  }

  /**
   * The bit-arithmetic {@link Half#fromFloat} against the plain case-by-case rounding below: every float next to a
   * normal half's rounding point (the 13 dropped bits at 0x0fff, 0x1000 and 0x1001, every exponent and sign; a
   * subnormal half drops more bits, so there this is only a sample) and a sweep of one float in 257 of all 2^32.
   * (All 2^32 floats were compared once, session 10, and again by a review: equal.)
   */
  @Test
  void fastRoundingEqualsThePlainOne() {
    for (long hi = 0; hi < 1L << 19; hi++) {
      for (int low : new int[] {0, 1, 0xfff, 0x1000, 0x1001, 0x1fff}) {
        int bits = (int) (hi << 13) | low;
        assertSame(bits);
      }
    }
    for (long bits = 0; bits < 1L << 32; bits += 257) {
      assertSame((int) bits);
    }
  }

  private static void assertSame(int bits) {
    float f = Float.intBitsToFloat(bits);
    short expected = plainFromFloat(f);
    short actual = Half.fromFloat(f);
    if (expected != actual) {
      assertEquals(expected & 0xffff, actual & 0xffff, "float bits 0x" + Integer.toHexString(bits));
    }
  }

  /** Round to nearest even, case by case (the implementation before session 10): the oracle. */
  static short plainFromFloat(float f) {
    int bits = Float.floatToRawIntBits(f);
    int sign = (bits >>> 16) & 0x8000;
    int abs = bits & 0x7fffffff;
    if (abs >= 0x7f800000) { // inf or NaN
      return (short) (sign | 0x7c00 | (abs > 0x7f800000 ? 0x200 : 0));
    }
    if (abs >= 0x477ff000) { // rounds to >= 65520: overflow to inf
      return (short) (sign | 0x7c00);
    }
    if (abs < 0x38800000) { // below the smallest normal half (2^-14): subnormal or zero
      float a = Float.intBitsToFloat(abs);
      int m = Math.round(a * 0x1p24f); // Math.round is half-up; ties to even below
      float exact = a * 0x1p24f;
      if (exact - Math.floor(exact) == 0.5 && (m & 1) == 1) {
        m--;
      }
      return (short) (sign | m);
    }
    int exp = ((abs >>> 23) - 112) << 10;
    int mant = abs & 0x7fffff;
    int half = exp | (mant >>> 13);
    int rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1) == 1)) {
      half++;
    }
    return (short) (sign | half);
  }

  @Test
  void arraysWidenEveryValueAsOneAtATimeInParallelChunks() {
    short[] bits = new short[(1 << 16) * 20 + 123]; // 21 chunks: the parallel path, with a partial last chunk
    java.util.SplittableRandom r = new java.util.SplittableRandom(9);
    for (int i = 0; i < bits.length; i++) {
      bits[i] = (short) r.nextInt(0x10000);
    }
    for (boolean bf16 : new boolean[] {false, true}) {
      float[] out = new float[bits.length];
      Half.toFloats(bits, out, bf16);
      for (int i = 0; i < bits.length; i++) {
        float want = bf16 ? Float.intBitsToFloat((bits[i] & 0xffff) << 16) : Half.toFloat(bits[i]);
        assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(out[i]), "value " + i + " bf16=" + bf16);
      }
    }
    float[] small = new float[3];
    Half.toFloats(new short[] {0x3c00, (short) 0xc000, 0x7bff}, small, false); // the sequential path
    assertEquals(1.0f, small[0]);
    assertEquals(-2.0f, small[1]);
    assertEquals(65504.0f, small[2]);
  }
}
