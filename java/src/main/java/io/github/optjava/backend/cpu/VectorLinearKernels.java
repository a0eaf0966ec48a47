package io.github.optjava.backend.cpu;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link FastCpuOps#linear} written with the JDK's Vector API ({@code jdk.incubator.vector}, incubating since
 * Java 16): the same {@code out = x · wᵀ + bias} as {@link LinearKernels}, with explicit SIMD where C2 alone
 * vectorises neither the fp16 widening nor a float dot product. Used only when the JVM runs with
 * {@code --add-modules jdk.incubator.vector} ({@link VectorSupport}); nothing else may touch this class, so that
 * it is never loaded without the module.
 *
 * <p>One rounding order for every (token, output row) pair, whatever the kernel, the tile or the thread split:
 * one vector accumulator over the input features ({@code acc = w·x + acc} per lane, features {@code i ≡ j} mod
 * the lane count in lane {@code j}), its lanes added in lane order, the features past the last whole
 * vector added one by one with {@code Math.fma}, then the bias. int8 weights ({@link LinearKernels.Weights#int8})
 * are summed as their integers, in the same order; their row scales come after these kernels
 * ({@link LinearKernels#scaleRows}). So a token's outputs do not depend on how many
 * tokens share the call (a decode step and a prefill of the same token give the same bits), unlike the scalar
 * kernels. The lanes are summed through an array rather than {@code reduceLanes}, whose order the API leaves
 * open (it may differ between interpreted and compiled code).
 *
 * <p>Kernels (measured on the build machine's AVX-512 Xeon, Java 17, one thread; see {@code docs/perf.md}):
 * <ul>
 *   <li>Up to three tokens (decode): each fp16/bf16 weight vector is widened in registers and dotted at once;
 *       memory-bound (one thread, a prototype of this loop: 7.8 GB/s of fp16 weights from memory against 4.4
 *       for the table lookups).</li>
 *   <li>More tokens: four weight rows are widened once into a float buffer, then tiles of 4 tokens × 4 rows
 *       keep 16 accumulators in registers (each loaded weight and activation vector feeds four FMAs):
 *       ≈ 30 GMAC/s per core against 7–16 for the transposed scalar kernel.</li>
 * </ul>
 */
final class VectorLinearKernels {
  static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
  private static final VectorSpecies<Integer> INTS = FLOATS.withLanes(int.class);
  /** As many 16-bit lanes as {@link #FLOATS} has floats: half its width. */
  private static final VectorSpecies<Short> SHORTS =
      VectorSpecies.of(short.class, VectorShape.forBitSize(Math.max(64, FLOATS.vectorBitSize() / 2)));
  private static final int LANES = FLOATS.length();
  /**
   * Bytes for int8 weights: a quarter of {@link #FLOATS}'s width, but at least 64 bits (the smallest shape), so
   * with 128-bit floats it has twice their lanes and {@link #FIRST_LANES} masks the load to the ones used.
   */
  private static final VectorSpecies<Byte> BYTES =
      VectorSpecies.of(byte.class, VectorShape.forBitSize(Math.max(64, FLOATS.vectorBitSize() / 4)));
  private static final VectorMask<Byte> FIRST_LANES = BYTES.indexInRange(0, LANES);

  /** From this many tokens on, weights are widened once into a buffer and multiplied in tiles. */
  static final int TILE_MIN_TOKENS = 4;

  /** Activations per token block: {@code tokens × in} floats kept in a core's L2 (1 MiB) while rows stream past. */
  private static final int BLOCK_FLOATS = 1 << 18;

  private VectorLinearKernels() {}

  /** Whether this machine's preferred vector shape suits these kernels (at least 4 floats, matching shorts). */
  static boolean usable() {
    return LANES >= 4 && SHORTS.length() == LANES && INTS.length() == LANES;
  }

  /** A description for logs, e.g. "512-bit, 16 floats". */
  static String describe() {
    return FLOATS.vectorBitSize() + "-bit, " + LANES + " floats";
  }

  /**
   * Output rows {@code [from, to)} of all {@code tokens} tokens: {@code out[t, o] = x[t, :] · w[o, :] + bias[o]},
   * then ReLU if asked; same contract as {@link LinearKernels#dotRows}.
   */
  static void rows(float[] out, float[] x, int tokens, LinearKernels.Weights w, float[] bias, boolean relu,
      int from, int to) {
    float[] lanes = new float[LANES];
    if (w.int8() != null && tokens < TILE_MIN_TOKENS) {
      for (int o = from; o < to; o++) {
        for (int t = 0; t < tokens; t++) {
          float s = dot8(w.int8(), o * w.cols(), x, t * w.cols(), w.cols(), lanes);
          out[t * w.rows() + o] = finish(s, bias, o, relu);
        }
      }
      return;
    }
    if (w.f32() == null && tokens < TILE_MIN_TOKENS) {
      int kind = kind(w);
      for (int o = from; o < to; o++) {
        for (int t = 0; t < tokens; t++) {
          float s = dot16(w.bits(), o * w.cols(), kind, x, t * w.cols(), w.cols(), lanes);
          out[t * w.rows() + o] = finish(s, bias, o, relu);
        }
      }
      return;
    }
    int k = w.cols();
    int blockTokens = Math.max(4, (BLOCK_FLOATS / Math.max(1, k)) & ~3);
    float[] widened = w.f32() == null ? new float[4 * k] : null;
    for (int t0 = 0; t0 < tokens; t0 += blockTokens) {
      int t1 = Math.min(tokens, t0 + blockTokens);
      for (int o0 = from; o0 < to; o0 += 4) {
        int count = Math.min(4, to - o0);
        float[] rowsArray;
        int rowsOff;
        if (widened == null) {
          rowsArray = w.f32();
          rowsOff = o0 * k;
        } else {
          for (int r = 0; r < count; r++) {
            widenRow(w, o0 + r, widened, r * k);
          }
          rowsArray = widened;
          rowsOff = 0;
        }
        block(out, w.rows(), x, k, t0, t1, rowsArray, rowsOff, o0, count, bias, relu, lanes);
      }
    }
  }

  /** Rows {@code o0 .. o0 + count} (at most 4, stored from {@code wo}) of tokens {@code [t0, t1)}. */
  private static void block(float[] out, int n, float[] x, int k, int t0, int t1, float[] w, int wo, int o0,
      int count, float[] bias, boolean relu, float[] lanes) {
    int t = t0;
    if (count == 4) {
      for (; t + 4 <= t1; t += 4) {
        tile4x4(out, n, x, k, t, w, wo, o0, bias, relu, lanes);
      }
    }
    for (; t < t1; t++) {
      for (int r = 0; r < count; r++) {
        out[t * n + o0 + r] = finish(dot(w, wo + r * k, x, t * k, k, lanes), bias, o0 + r, relu);
      }
    }
  }

  private static float finish(float s, float[] bias, int o, boolean relu) {
    float v = bias == null ? s : s + bias[o];
    return relu ? Math.max(v, 0f) : v;
  }

  // ------------------------------------------------------------------ widening 16-bit weights

  /** How 16-bit weights widen: fp16 known to be finite (the fast way), any fp16, bf16. */
  static final int FINITE_HALF = 0;
  static final int HALF = 1;
  static final int BF16 = 2;

  static int kind(LinearKernels.Weights w) {
    return w.bf16() ? BF16 : w.halfSpecials() ? HALF : FINITE_HALF;
  }

  /**
   * {@code LANES} 16-bit weights from {@code bits[offset ..)} widened to float32, exactly as
   * {@link io.github.optjava.checkpoint.Half#toFloat} (fp16) or {@code bits << 16} (bf16).
   *
   * <p>fp16: the sign-extended bits shifted left by 13 put the exponent and mantissa in a float's place
   * (exponent field = the half's), and the mask keeps the sign and clears the sign extension; that float is
   * {@code value × 2⁻¹¹²} for normal and subnormal halves alike, so one multiply by 2¹¹² rescales both (three
   * operations in all, which decode at batch 1 needs: a longer sequence made it compute-bound). Exponent 31
   * (inf, NaN) would come out finite, so {@link #HALF} then takes an all-ones float exponent and the payload.
   */
  static FloatVector widen(short[] bits, int offset, int kind) {
    IntVector h = (IntVector) ShortVector.fromArray(SHORTS, bits, offset).convertShape(VectorOperators.S2I, INTS, 0);
    if (kind == BF16) {
      return h.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }
    IntVector placed = h.lanewise(VectorOperators.LSHL, 13).and(0x8fffe000);
    FloatVector scaled = placed.reinterpretAsFloats().mul(0x1p112f);
    if (kind == FINITE_HALF) {
      return scaled;
    }
    IntVector special = placed.or(0x7f800000);
    return scaled.reinterpretAsInts()
        .blend(special, h.and(0x7c00).compare(VectorOperators.EQ, 0x7c00))
        .reinterpretAsFloats();
  }

  /** One 16-bit weight widened as {@link #widen} does. */
  private static float widen(short bits, int kind) {
    return kind == BF16 ? Float.intBitsToFloat(bits << 16) : CpuMat.HALF_TO_FLOAT[bits & 0xffff];
  }

  /**
   * {@code LANES} int8 weights from {@code values[offset ..)} as float32 (exact: sign-extended, then converted).
   * With 128-bit floats the byte vector is wider than needed, and its load is masked so as not to read past
   * the array.
   */
  static FloatVector widen8(byte[] values, int offset) {
    ByteVector b = BYTES.length() == LANES ? ByteVector.fromArray(BYTES, values, offset)
        : ByteVector.fromArray(BYTES, values, offset, FIRST_LANES);
    return (FloatVector) b.convertShape(VectorOperators.B2F, FLOATS, 0);
  }

  /** {@code n} fp16 values from {@code src[off ..)} into {@code dst[dstOff ..)}, exactly (the {@link #HALF} way). */
  static void widenHalves(short[] src, int off, float[] dst, int dstOff, int n) {
    int end = FLOATS.loopBound(n);
    int i = 0;
    for (; i < end; i += LANES) {
      widen(src, off + i, HALF).intoArray(dst, dstOff + i);
    }
    for (; i < n; i++) {
      dst[dstOff + i] = CpuMat.HALF_TO_FLOAT[src[off + i] & 0xffff];
    }
  }

  /**
   * {@code acc[ao + d] = fma(w, v[vo + d], acc[ao + d])} for {@code d < n}, the fp16 {@code v} widened in registers
   * (exactly, the {@link #HALF} way): element by element the same result as the float32 loop over widened values.
   */
  static void addScaledHalves(float[] acc, int ao, float w, short[] v, int vo, int n) {
    FloatVector wv = FloatVector.broadcast(FLOATS, w);
    int end = FLOATS.loopBound(n);
    int d = 0;
    for (; d < end; d += LANES) {
      wv.fma(widen(v, vo + d, HALF), FloatVector.fromArray(FLOATS, acc, ao + d)).intoArray(acc, ao + d);
    }
    for (; d < n; d++) {
      acc[ao + d] = Math.fma(w, CpuMat.HALF_TO_FLOAT[v[vo + d] & 0xffff], acc[ao + d]);
    }
  }

  /** Row {@code r} of {@code w} as float32 into {@code dst[off .. off + cols)}. */
  static void widenRow(LinearKernels.Weights w, int r, float[] dst, int off) {
    int k = w.cols();
    int base = r * k;
    int end = FLOATS.loopBound(k);
    int i = 0;
    if (w.int8() != null) {
      for (; i < end; i += LANES) {
        widen8(w.int8(), base + i).intoArray(dst, off + i);
      }
      for (; i < k; i++) {
        dst[off + i] = w.int8()[base + i];
      }
      return;
    }
    int kind = kind(w);
    for (; i < end; i += LANES) {
      widen(w.bits(), base + i, kind).intoArray(dst, off + i);
    }
    for (; i < k; i++) {
      dst[off + i] = widen(w.bits()[base + i], kind);
    }
  }

  // ------------------------------------------------------------------ dot products (one rounding order)

  /**
   * The lanes of {@code acc} added in lane order (through {@code lanes}, a scratch array). A pairwise tree written
   * as two nested loops made the 4 × 4 tile kernel a third slower (20 against 31 GMAC/s per core).
   */
  private static float sum(FloatVector acc, float[] lanes) {
    acc.intoArray(lanes, 0);
    float s = lanes[0];
    for (int j = 1; j < LANES; j++) {
      s += lanes[j];
    }
    return s;
  }

  /** {@code w[wo ..) · x[xo ..)} over {@code k} features, float32 weights. */
  static float dot(float[] w, int wo, float[] x, int xo, int k, float[] lanes) {
    FloatVector acc = FloatVector.zero(FLOATS);
    int end = FLOATS.loopBound(k);
    for (int i = 0; i < end; i += LANES) {
      acc = FloatVector.fromArray(FLOATS, w, wo + i).fma(FloatVector.fromArray(FLOATS, x, xo + i), acc);
    }
    float s = sum(acc, lanes);
    for (int i = end; i < k; i++) {
      s = Math.fma(w[wo + i], x[xo + i], s);
    }
    return s;
  }

  /** As {@link #dot} with 16-bit weights widened in registers: the same floats, so the same sum. */
  static float dot16(short[] w, int wo, int kind, float[] x, int xo, int k, float[] lanes) {
    FloatVector acc = FloatVector.zero(FLOATS);
    int end = FLOATS.loopBound(k);
    for (int i = 0; i < end; i += LANES) {
      acc = widen(w, wo + i, kind).fma(FloatVector.fromArray(FLOATS, x, xo + i), acc);
    }
    float s = sum(acc, lanes);
    for (int i = end; i < k; i++) {
      s = Math.fma(widen(w[wo + i], kind), x[xo + i], s);
    }
    return s;
  }

  /** As {@link #dot} with int8 weights widened in registers: the same floats, so the same sum. */
  static float dot8(byte[] w, int wo, float[] x, int xo, int k, float[] lanes) {
    FloatVector acc = FloatVector.zero(FLOATS);
    int end = FLOATS.loopBound(k);
    for (int i = 0; i < end; i += LANES) {
      acc = widen8(w, wo + i).fma(FloatVector.fromArray(FLOATS, x, xo + i), acc);
    }
    float s = sum(acc, lanes);
    for (int i = end; i < k; i++) {
      s = Math.fma(w[wo + i], x[xo + i], s);
    }
    return s;
  }

  /**
   * Tokens {@code t .. t+3} × rows {@code o0 .. o0+3} (weights from {@code wo}, rows {@code k} apart): 16
   * accumulators, so each loaded vector feeds four FMAs. Each pair's sum is rounded exactly as {@link #dot}.
   * A method of its own (not inlined into the loops above) so that C2 compiles it whole early on: compiled
   * on-stack-replacement of a long-running loop nest kept the vectors boxed in a prototype, 20× slower.
   */
  private static void tile4x4(float[] out, int n, float[] x, int k, int t, float[] w, int wo, int o0,
      float[] bias, boolean relu, float[] lanes) {
    int w0 = wo, w1 = w0 + k, w2 = w1 + k, w3 = w2 + k;
    int x0 = t * k, x1 = x0 + k, x2 = x1 + k, x3 = x2 + k;
    FloatVector c00 = FloatVector.zero(FLOATS), c01 = c00, c02 = c00, c03 = c00;
    FloatVector c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    FloatVector c20 = c00, c21 = c00, c22 = c00, c23 = c00;
    FloatVector c30 = c00, c31 = c00, c32 = c00, c33 = c00;
    int end = FLOATS.loopBound(k);
    for (int i = 0; i < end; i += LANES) {
      FloatVector a0 = FloatVector.fromArray(FLOATS, w, w0 + i);
      FloatVector a1 = FloatVector.fromArray(FLOATS, w, w1 + i);
      FloatVector a2 = FloatVector.fromArray(FLOATS, w, w2 + i);
      FloatVector a3 = FloatVector.fromArray(FLOATS, w, w3 + i);
      FloatVector b = FloatVector.fromArray(FLOATS, x, x0 + i);
      c00 = a0.fma(b, c00);
      c01 = a1.fma(b, c01);
      c02 = a2.fma(b, c02);
      c03 = a3.fma(b, c03);
      b = FloatVector.fromArray(FLOATS, x, x1 + i);
      c10 = a0.fma(b, c10);
      c11 = a1.fma(b, c11);
      c12 = a2.fma(b, c12);
      c13 = a3.fma(b, c13);
      b = FloatVector.fromArray(FLOATS, x, x2 + i);
      c20 = a0.fma(b, c20);
      c21 = a1.fma(b, c21);
      c22 = a2.fma(b, c22);
      c23 = a3.fma(b, c23);
      b = FloatVector.fromArray(FLOATS, x, x3 + i);
      c30 = a0.fma(b, c30);
      c31 = a1.fma(b, c31);
      c32 = a2.fma(b, c32);
      c33 = a3.fma(b, c33);
    }
    // Sixteen explicit calls, so that no vector has to live in an array (which would box it).
    store(out, n, t, o0, c00, w, w0, x, x0, end, k, bias, relu, lanes);
    store(out, n, t, o0 + 1, c01, w, w1, x, x0, end, k, bias, relu, lanes);
    store(out, n, t, o0 + 2, c02, w, w2, x, x0, end, k, bias, relu, lanes);
    store(out, n, t, o0 + 3, c03, w, w3, x, x0, end, k, bias, relu, lanes);
    store(out, n, t + 1, o0, c10, w, w0, x, x1, end, k, bias, relu, lanes);
    store(out, n, t + 1, o0 + 1, c11, w, w1, x, x1, end, k, bias, relu, lanes);
    store(out, n, t + 1, o0 + 2, c12, w, w2, x, x1, end, k, bias, relu, lanes);
    store(out, n, t + 1, o0 + 3, c13, w, w3, x, x1, end, k, bias, relu, lanes);
    store(out, n, t + 2, o0, c20, w, w0, x, x2, end, k, bias, relu, lanes);
    store(out, n, t + 2, o0 + 1, c21, w, w1, x, x2, end, k, bias, relu, lanes);
    store(out, n, t + 2, o0 + 2, c22, w, w2, x, x2, end, k, bias, relu, lanes);
    store(out, n, t + 2, o0 + 3, c23, w, w3, x, x2, end, k, bias, relu, lanes);
    store(out, n, t + 3, o0, c30, w, w0, x, x3, end, k, bias, relu, lanes);
    store(out, n, t + 3, o0 + 1, c31, w, w1, x, x3, end, k, bias, relu, lanes);
    store(out, n, t + 3, o0 + 2, c32, w, w2, x, x3, end, k, bias, relu, lanes);
    store(out, n, t + 3, o0 + 3, c33, w, w3, x, x3, end, k, bias, relu, lanes);
  }

  /** One pair of a tile: its lanes summed, the features past {@code end} added, as {@link #dot} does. */
  private static void store(float[] out, int n, int t, int o, FloatVector acc, float[] w, int wo, float[] x, int xo,
      int end, int k, float[] bias, boolean relu, float[] lanes) {
    float s = sum(acc, lanes);
    for (int i = end; i < k; i++) {
      s = Math.fma(w[wo + i], x[xo + i], s);
    }
    out[t * n + o] = finish(s, bias, o, relu);
  }
}
