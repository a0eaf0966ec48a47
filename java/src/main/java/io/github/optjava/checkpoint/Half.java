package io.github.optjava.checkpoint;

/**
 * IEEE 754 binary16 conversion. Written here because Java 17 has no Float.float16ToFloat (added in 20);
 * exact for every input, including subnormals, infinities and NaN.
 */
public final class Half {
  private Half() {}

  /** Widens the binary16 value in the low 16 bits of {@code h} to float. */
  public static float toFloat(short h) {
    int bits = h & 0xffff;
    int sign = (bits & 0x8000) << 16;
    int exp = (bits >>> 10) & 0x1f;
    int mant = bits & 0x3ff;
    if (exp == 0x1f) { // inf or NaN
      return Float.intBitsToFloat(sign | 0x7f800000 | (mant << 13));
    }
    if (exp == 0) {
      if (mant == 0) {
        return Float.intBitsToFloat(sign);
      }
      // subnormal: value = mant × 2^-24
      float v = mant * 0x1p-24f;
      return sign != 0 ? -v : v;
    }
    return Float.intBitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
  }

  /**
   * Widens {@code bits} (binary16, or bfloat16 when {@code bf16}) into {@code out}, element by element as
   * {@link #toFloat} and {@code bits << 16} do; large arrays in parallel chunks (a GPU's 2,047 rows of logits are 10⁸
   * values: about 0.1 s on one thread). The result does not depend on the threads.
   */
  public static void toFloats(short[] bits, float[] out, boolean bf16) {
    if (out.length < bits.length) {
      throw new IllegalArgumentException("out holds " + out.length + " floats for " + bits.length + " values");
    }
    int chunk = 1 << 16;
    int chunks = (int) ((bits.length + (long) chunk - 1) / chunk);
    java.util.stream.IntStream range = java.util.stream.IntStream.range(0, chunks);
    if (chunks >= 16) { // below a million values the threads cost more than they save
      range = range.parallel();
    }
    range.forEach(c -> {
      int start = c * chunk; // below 2^31: c < chunks
      int end = (int) Math.min(bits.length, (c + 1L) * chunk);
      if (bf16) {
        for (int i = start; i < end; i++) {
          out[i] = Float.intBitsToFloat((bits[i] & 0xffff) << 16);
        }
      } else {
        for (int i = start; i < end; i++) {
          out[i] = toFloat(bits[i]);
        }
      }
    });
  }

  /**
   * Rounds a float to the nearest binary16 (ties to even), as PyTorch's {@code .half()} does; NaN becomes the quiet
   * NaN 0x7e00 with its sign. Branch-light bit arithmetic (F. Giesen's "float_to_half_fast3_rtne", public domain): an
   * fp16 KV cache converts every key and value it stores. {@code HalfTest} checks it against the plain
   * case-by-case rounding on every float of the ranges that matter and a sweep of all the others.
   */
  public static short fromFloat(float f) {
    int bits = Float.floatToRawIntBits(f);
    int sign = (bits >>> 16) & 0x8000;
    int abs = bits & 0x7fffffff;
    int h;
    if (abs >= 0x47800000) { // 65536 and above, infinities, NaNs
      h = abs > 0x7f800000 ? 0x7e00 : 0x7c00;
    } else if (abs < 0x38800000) { // below 2^-14, the smallest normal half: subnormal or zero
      // Adding 0.5 puts the half's 10 subnormal mantissa bits at the bottom of the float, rounded to nearest even
      // by the float addition itself; subtracting 0.5's bits leaves them.
      h = Float.floatToRawIntBits(Float.intBitsToFloat(abs) + 0.5f) - 0x3f000000;
    } else { // normal: rebias the exponent (-112 << 23), round to nearest even at bit 13, drop 13 bits
      h = (abs - 0x38000000 + 0xfff + ((abs >>> 13) & 1)) >>> 13;
    }
    return (short) (sign | h);
  }

  /** Rounds a float to the nearest bfloat16 (ties to even), as PyTorch's {@code .bfloat16()} does; NaN stays NaN. */
  public static short bfloat16FromFloat(float f) {
    int bits = Float.floatToRawIntBits(f);
    if (Float.isNaN(f)) {
      return (short) ((bits >>> 16) | 0x40);
    }
    return (short) ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16);
  }
}
