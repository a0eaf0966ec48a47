package io.github.optjava.backend.cpu;

/**
 * The passes over a whole row of logits (a vocabulary of 50,272 floats for OPT) that the host's sampling and log-prob
 * code makes every step: the maximum, the first index of it, and the sum of {@code exp(v - max)}. With
 * {@code Math.exp} in double the sum alone took ≈ 250 µs per row on the build machine, more than a GPU decode step's
 * kernels at opt-125m; these take a few µs.
 *
 * <p><b>The exponential</b> is {@link #exp}, a float polynomial (Cody–Waite reduction by ln 2, then Cephes'
 * {@code expf} polynomial; the CPU attention kernel's softmax uses the same), the same operations in the scalar code
 * here and in {@link VectorRowKernels}, so one element gives the same bits on either path. It is within 2 ulp of the
 * exact value for arguments in [-87.3, 0] (the test checks it against {@code Math.exp}), 0 where the result would be
 * subnormal, and it is meant for the weights of a softmax, {@code x = v - max <= 0}. That is the precision torch's
 * float32 softmax has, which Hugging Face's processors use.
 *
 * <p><b>The sum</b> is accumulated in double, so it is as exact as its float terms whatever the order; the order
 * (lanes, then lanes added in order, then the tail) depends on the vector width, so its last bits may differ between
 * machines (≈ 1e-16 relative).
 *
 * <p>The Vector API path runs when {@link VectorSupport} says the JVM can run the Vector API kernels; otherwise the
 * scalar loops here.
 */
public final class RowKernels {
  private RowKernels() {}

  private static final boolean VECTOR = VectorSupport.AVAILABLE && VectorRowKernels.usable();

  // exp(x) = 2^n · exp(r), n = round(x / ln 2), r = x - n ln 2 in two parts (Cody and Waite), exp(r) by Cephes' expf
  // polynomial: the constants of this exp, VectorRowKernels.exp and VectorAttentionKernel.exp (each its own copy of
  // the operations, so that C2 inlines it where it is used).
  static final float LOG2E = 1.44269504f;
  static final float LN2_HI = 0.693359375f; // n · LN2_HI is exact
  static final float LN2_LO = -2.12194440e-4f;
  /** 1.5 · 2^23: adding it rounds a float below 2^22 to an integer, which its low mantissa bits then hold. */
  static final float ROUNDER = 0x1.8p23f;
  /**
   * Below this e^x is under the smallest normal float (e^-87.34 is): inputs are clamped here, which keeps 2^n at or
   * above 2^-127 (built as +0: the result is then flushed like every subnormal one).
   */
  static final float FLUSH_BELOW = -88f;
  static final float P0 = 1.9875691500e-4f;
  static final float P1 = 1.3981999507e-3f;
  static final float P2 = 8.3334519073e-3f;
  static final float P3 = 4.1665795894e-2f;
  static final float P4 = 1.6666665459e-1f;
  static final float P5 = 5.0000001201e-1f;

  /**
   * {@code e^x} for {@code x <= 0} as described above (larger x overflow or wrap): within 2 ulp, 0 where the result
   * would be below the smallest normal float, NaN for NaN. The same operations as each lane of
   * {@link VectorRowKernels#exp}, so the same bits.
   */
  public static float exp(float x) {
    float xc = Math.max(x, FLUSH_BELOW);
    float t = Math.fma(xc, LOG2E, ROUNDER);
    float n = t - ROUNDER;
    float r = Math.fma(n, -LN2_HI, xc);
    r = Math.fma(n, -LN2_LO, r);
    float p = P0;
    p = Math.fma(p, r, P1);
    p = Math.fma(p, r, P2);
    p = Math.fma(p, r, P3);
    p = Math.fma(p, r, P4);
    p = Math.fma(p, r, P5);
    p = p * (r * r) + r + 1f;
    int bits = Float.floatToRawIntBits(t) - Float.floatToRawIntBits(ROUNDER);
    float e = p * Float.intBitsToFloat((bits + 127) << 23);
    return x < FLUSH_BELOW || e < Float.MIN_NORMAL ? 0f : e;
  }

  /** The largest of {@code v[from, to)} ({@code Math.max}: NaN when one is NaN); -inf for an empty range. */
  public static float max(float[] v, int from, int to) {
    if (VECTOR) {
      return VectorRowKernels.max(v, from, to);
    }
    float m = Float.NEGATIVE_INFINITY;
    for (int i = from; i < to; i++) {
      m = Math.max(m, v[i]);
    }
    return m;
  }

  /**
   * The first index of the maximum of {@code v[from, to)}, relative to {@code from}, as {@code torch.argmax}: the
   * first NaN wins, ties (0 and -0 too) go to the smaller index, a row of -inf gives 0.
   */
  public static int argmax(float[] v, int from, int to) {
    if (to <= from) {
      return 0;
    }
    float m = max(v, from, to);
    if (m != m) { // rare: the first NaN, one by one
      for (int i = from; i < to; i++) {
        if (v[i] != v[i]) {
          return i - from;
        }
      }
    }
    return (VECTOR ? VectorRowKernels.firstEqual(v, from, to, m) : firstEqual(v, from, to, m)) - from;
  }

  static int firstEqual(float[] v, int from, int to, float value) {
    for (int i = from; i < to; i++) {
      if (v[i] == value) {
        return i;
      }
    }
    throw new IllegalArgumentException(value + " is not in the row");
  }

  /**
   * {@code sum(exp(v[i] - max))} over {@code [from, to)}, each term by {@link #exp} of the float difference, summed in
   * double. {@code max} must be finite (callers handle a row whose maximum is ±inf or NaN first); -inf entries add 0.
   */
  public static double expSum(float[] v, int from, int to, float max) {
    return VECTOR ? VectorRowKernels.expSum(v, from, to, max, null) : expSum(v, from, to, max, null, 0);
  }

  /** As {@link #expSum}, also writing each term to {@code out[i - from]} (the unnormalised softmax weights). */
  public static double expInto(float[] v, int from, int to, float max, float[] out) {
    if (out.length < to - from) {
      throw new IllegalArgumentException("out holds " + out.length + " floats, the row " + (to - from));
    }
    return VECTOR ? VectorRowKernels.expSum(v, from, to, max, out) : expSum(v, from, to, max, out, 0);
  }

  /** The scalar loop; {@code out} (may be null) receives the term of {@code v[i]} at {@code outAt + i - from}. */
  static double expSum(float[] v, int from, int to, float max, float[] out, int outAt) {
    double sum = 0;
    for (int i = from; i < to; i++) {
      float e = exp(v[i] - max);
      if (out != null) {
        out[outAt + i - from] = e;
      }
      sum += e;
    }
    return sum;
  }
}
