package io.github.optjava.backend.cpu;

import io.github.optjava.checkpoint.DType;

/**
 * The loops behind {@link FastCpuOps#linear}: {@code out = x · wᵀ} for a range of output rows, with
 * {@code w} (out, in) row-major in float32 or 16-bit words (fp16 and bf16, widened through
 * 65536-entry tables). Written for HotSpot C2 on Java 17 without the
 * incubating Vector API, so every shape choice here is about what C2 compiles well (measured on the
 * project's 2-core Xeon, AVX-512):
 * <ul>
 *   <li>Few tokens (decode): a weight row is read once and dotted with every token (four at a time).
 *       C2 does not vectorize these dot products (a float reduction must keep its order), so they are
 *       scalar FMA chains with independent accumulators; memory-bound anyway at batch 1.</li>
 *   <li>Many tokens (prefill): activations are transposed to one array per input feature
 *       ({@code xt[i][token]}), and each weight element becomes a scalar multiplier of a loop over
 *       tokens, {@code y[t] += w·xt[i][t]}. C2 on Java 17 vectorizes such a loop only when every array is
 *       indexed by the bare loop variable (no per-array offsets), hence separate arrays; it then runs
 *       about 3× faster than the best scalar kernel (16 vs 6 GMAC/s per core).</li>
 * </ul>
 * All accumulation is float32; only the summation order differs from {@link CpuOps}.
 */
final class LinearKernels {
  /** From this many tokens on, the transposed kernel wins (per core: 7.9 vs 6.0 GMAC/s at 16, 4.6 vs 6.0 at 8). */
  static final int VECTOR_MIN_TOKENS = 16;

  /** Tokens per transposed block: keeps a block's activations ({@code in × 128} floats) in L2. */
  static final int TOKEN_BLOCK = 128;

  /** Output rows per unit of work in the vectorized kernel: their weights stay in cache across token blocks. */
  static final int ROW_BLOCK = 16;

  /**
   * bf16 bits → float (the upper half of a float32), as a table like {@link CpuMat#HALF_TO_FLOAT}: the
   * shift-and-reinterpret alternative measured 30% slower in decode (a register move per element).
   */
  static final float[] BF16_TO_FLOAT = new float[1 << 16];

  static {
    for (int i = 0; i < BF16_TO_FLOAT.length; i++) {
      BF16_TO_FLOAT[i] = Float.intBitsToFloat(i << 16);
    }
  }

  /** int8 bits → float, by the unsigned byte: {@code INT8_TO_FLOAT[b & 0xff] == (float) b}. */
  static final float[] INT8_TO_FLOAT = new float[256];

  static {
    for (int i = 0; i < 256; i++) {
      INT8_TO_FLOAT[i] = (byte) i;
    }
  }

  private LinearKernels() {}

  /**
   * A weight matrix as the kernels see it: float32 values, fp16/bf16 bits, or int8 integers ({@code int8}: the
   * kernels compute the sums over the integers; {@link FastCpuOps#linear} applies the row scales after them);
   * {@code halfSpecials}: fp16 with an infinity or NaN somewhere ({@link CpuMat#hasHalfSpecials}).
   */
  record Weights(float[] f32, short[] bits, byte[] int8, boolean bf16, boolean halfSpecials, int rows, int cols) {
    /** The scalar kernels' view: they widen through tables, so infinities and NaNs need no care. */
    static Weights of(CpuMat m) {
      return new Weights(m.f32, m.bits, int8Values(m), m.dtype == DType.BF16, false, m.rows, m.cols);
    }

    /** The Vector API kernels' view: whether fp16 weights hold an infinity or NaN is looked up (once per matrix). */
    static Weights forVectorKernels(CpuMat m) {
      return new Weights(m.f32, m.bits, int8Values(m), m.dtype == DType.BF16, m.hasHalfSpecials(), m.rows, m.cols);
    }

    /** A float32 matrix held in {@code values} (rows × cols, row-major). */
    static Weights ofFloats(float[] values, int rows, int cols) {
      return new Weights(values, null, null, false, false, rows, cols);
    }

    private static byte[] int8Values(CpuMat m) {
      return m.int8 == null ? null : m.int8.values();
    }

    /** Row {@code r} as float32 in {@code dst} (which is returned). */
    float[] widenRow(int r, float[] dst) {
      int base = r * cols;
      if (f32 != null) {
        System.arraycopy(f32, base, dst, 0, cols);
      } else if (int8 != null) {
        for (int i = 0; i < cols; i++) {
          dst[i] = int8[base + i];
        }
      } else {
        float[] table = bf16 ? BF16_TO_FLOAT : CpuMat.HALF_TO_FLOAT;
        for (int i = 0; i < cols; i++) {
          dst[i] = table[bits[base + i] & 0xffff];
        }
      }
      return dst;
    }

    /** Row {@code r} · {@code x[xo .. xo + cols)}. */
    float dotRow(int r, float[] x, int xo) {
      int wo = r * cols;
      if (f32 != null) {
        return dot(f32, wo, x, xo, cols);
      }
      if (int8 != null) {
        return dotBytes(int8, wo, x, xo, cols);
      }
      return dotBits(bits, wo, bf16 ? BF16_TO_FLOAT : CpuMat.HALF_TO_FLOAT, x, xo, cols);
    }
  }

  /**
   * {@code out[t, o] = out[t, o] × scales[o] + bias[o]} (then ReLU if asked) for rows {@code [from, to)} of every
   * token: the int8 Linears' scales, applied after kernels that ran without bias and ReLU.
   */
  static void scaleRows(float[] out, int n, int tokens, float[] scales, float[] bias, boolean relu, int from,
      int to) {
    for (int t = 0; t < tokens; t++) {
      int base = t * n;
      for (int o = from; o < to; o++) {
        float v = out[base + o] * scales[o];
        if (bias != null) {
          v += bias[o];
        }
        out[base + o] = finish(v, relu);
      }
    }
  }

  /** A bias (any dtype) widened to float32, or null. */
  static float[] widen(CpuMat m) {
    if (m == null) {
      return null;
    }
    if (m.dtype == DType.F32) {
      return m.f32;
    }
    float[] out = new float[m.rows * m.cols];
    for (int i = 0; i < out.length; i++) {
      out[i] = m.get(i);
    }
    return out;
  }

  // ---------------------------------------------------------------- few tokens: scalar dot products

  /**
   * Output rows {@code [from, to)} of all {@code tokens} tokens: {@code out[t, o] = x[t, :] · w[o, :] + bias[o]},
   * then ReLU if asked. Up to three tokens (decode at batch 1) dot the stored row directly; from four on,
   * the row is widened once into a float32 buffer (read from L1 after that) and dotted with four token
   * rows at a time.
   */
  static void dotRows(float[] out, float[] x, int tokens, Weights w, float[] bias, boolean relu, int from, int to) {
    int k = w.cols;
    int n = w.rows;
    float[] row = tokens >= 4 ? new float[k] : null;
    float[] sums = new float[4];
    for (int o = from; o < to; o++) {
      float b = bias == null ? 0f : bias[o];
      int t = 0;
      if (row != null) {
        w.widenRow(o, row);
        for (; t + 4 <= tokens; t += 4) {
          dot4(row, x, t * k, k, sums);
          for (int j = 0; j < 4; j++) {
            out[(t + j) * n + o] = finish(sums[j] + b, relu);
          }
        }
        for (; t < tokens; t++) {
          out[t * n + o] = finish(dot(row, 0, x, t * k, k) + b, relu);
        }
      } else {
        for (; t < tokens; t++) {
          out[t * n + o] = finish(w.dotRow(o, x, t * k) + b, relu);
        }
      }
    }
  }

  private static float finish(float v, boolean relu) {
    return relu ? Math.max(v, 0f) : v;
  }

  // The dot products below keep four independent FMA chains (one chain would be bound by FMA latency)
  // and write their main loop as "i < end" with end precomputed: C2 does not treat "i + 4 <= k" as a
  // counted loop, which measured 30% slower. Each reads its table from a static final field, so C2 knows
  // its length and drops the bounds check of every lookup (13% faster than a table passed as an argument).

  /** {@code w[wo .. wo+k) · x[xo .. xo+k)}. */
  static float dot(float[] w, int wo, float[] x, int xo, int k) {
    float a0 = 0f, a1 = 0f, a2 = 0f, a3 = 0f;
    int end = k & ~3;
    int i = 0;
    for (; i < end; i += 4) {
      a0 = Math.fma(w[wo + i], x[xo + i], a0);
      a1 = Math.fma(w[wo + i + 1], x[xo + i + 1], a1);
      a2 = Math.fma(w[wo + i + 2], x[xo + i + 2], a2);
      a3 = Math.fma(w[wo + i + 3], x[xo + i + 3], a3);
    }
    for (; i < k; i++) {
      a0 = Math.fma(w[wo + i], x[xo + i], a0);
    }
    return (a0 + a1) + (a2 + a3);
  }

  /**
   * As {@link #dot} with 16-bit weights widened through {@code table} ({@link CpuMat#HALF_TO_FLOAT} for
   * fp16, {@link #BF16_TO_FLOAT} for bf16).
   */
  static float dotBits(short[] w, int wo, float[] table, float[] x, int xo, int k) {
    float a0 = 0f, a1 = 0f, a2 = 0f, a3 = 0f;
    int end = k & ~3;
    int i = 0;
    for (; i < end; i += 4) {
      a0 = Math.fma(table[w[wo + i] & 0xffff], x[xo + i], a0);
      a1 = Math.fma(table[w[wo + i + 1] & 0xffff], x[xo + i + 1], a1);
      a2 = Math.fma(table[w[wo + i + 2] & 0xffff], x[xo + i + 2], a2);
      a3 = Math.fma(table[w[wo + i + 3] & 0xffff], x[xo + i + 3], a3);
    }
    for (; i < k; i++) {
      a0 = Math.fma(table[w[wo + i] & 0xffff], x[xo + i], a0);
    }
    return (a0 + a1) + (a2 + a3);
  }

  /** As {@link #dot} with int8 weights (each exact as a float), widened through {@link #INT8_TO_FLOAT}. */
  static float dotBytes(byte[] w, int wo, float[] x, int xo, int k) {
    float a0 = 0f, a1 = 0f, a2 = 0f, a3 = 0f;
    int end = k & ~3;
    int i = 0;
    for (; i < end; i += 4) {
      a0 = Math.fma(INT8_TO_FLOAT[w[wo + i] & 0xff], x[xo + i], a0);
      a1 = Math.fma(INT8_TO_FLOAT[w[wo + i + 1] & 0xff], x[xo + i + 1], a1);
      a2 = Math.fma(INT8_TO_FLOAT[w[wo + i + 2] & 0xff], x[xo + i + 2], a2);
      a3 = Math.fma(INT8_TO_FLOAT[w[wo + i + 3] & 0xff], x[xo + i + 3], a3);
    }
    for (; i < k; i++) {
      a0 = Math.fma(INT8_TO_FLOAT[w[wo + i] & 0xff], x[xo + i], a0);
    }
    return (a0 + a1) + (a2 + a3);
  }

  /**
   * A float32 row {@code w[0 .. k)} against four consecutive token rows of {@code x} (starting at
   * {@code xo}, {@code xo + k}, ...): each weight is loaded once for four FMAs; two chains per token.
   */
  static void dot4(float[] w, float[] x, int xo, int k, float[] sums) {
    int x1 = xo + k, x2 = x1 + k, x3 = x2 + k;
    float a0 = 0f, a1 = 0f, a2 = 0f, a3 = 0f, b0 = 0f, b1 = 0f, b2 = 0f, b3 = 0f;
    int end = k & ~1;
    int i = 0;
    for (; i < end; i += 2) {
      float u = w[i];
      float v = w[i + 1];
      a0 = Math.fma(u, x[xo + i], a0);
      a1 = Math.fma(u, x[x1 + i], a1);
      a2 = Math.fma(u, x[x2 + i], a2);
      a3 = Math.fma(u, x[x3 + i], a3);
      b0 = Math.fma(v, x[xo + i + 1], b0);
      b1 = Math.fma(v, x[x1 + i + 1], b1);
      b2 = Math.fma(v, x[x2 + i + 1], b2);
      b3 = Math.fma(v, x[x3 + i + 1], b3);
    }
    if (i < k) {
      float u = w[i];
      a0 = Math.fma(u, x[xo + i], a0);
      a1 = Math.fma(u, x[x1 + i], a1);
      a2 = Math.fma(u, x[x2 + i], a2);
      a3 = Math.fma(u, x[x3 + i], a3);
    }
    sums[0] = a0 + b0;
    sums[1] = a1 + b1;
    sums[2] = a2 + b2;
    sums[3] = a3 + b3;
  }

  // ---------------------------------------------------------------- many tokens: loops over tokens

  /**
   * Columns {@code [from, to)} of {@code x} (tokens × k, row-major), transposed into blocks of
   * {@link #TOKEN_BLOCK} tokens: {@code xt[block][i][t] = x[block * TOKEN_BLOCK + t, i]}.
   */
  static void transpose(float[][][] xt, float[] x, int tokens, int k, int from, int to) {
    for (int b = 0; b < xt.length; b++) {
      int t0 = b * TOKEN_BLOCK;
      int count = Math.min(TOKEN_BLOCK, tokens - t0);
      for (int i = from; i < to; i++) {
        float[] row = xt[b][i];
        for (int t = 0; t < count; t++) {
          row[t] = x[(t0 + t) * k + i];
        }
      }
    }
  }

  /** The transposed blocks {@link #transpose} fills: {@code ceil(tokens / TOKEN_BLOCK) × k × blockTokens}. */
  static float[][][] transposedBlocks(int tokens, int k) {
    int blocks = (tokens + TOKEN_BLOCK - 1) / TOKEN_BLOCK;
    float[][][] xt = new float[blocks][][];
    for (int b = 0; b < blocks; b++) {
      xt[b] = new float[k][Math.min(TOKEN_BLOCK, tokens - b * TOKEN_BLOCK)];
    }
    return xt;
  }

  /**
   * Output rows {@code [from, to)} of all tokens from transposed activations; same result as
   * {@link #dotRows} up to summation order.
   */
  static void vectorRows(float[] out, float[][][] xt, int tokens, Weights w, float[] bias, boolean relu,
      int from, int to) {
    int n = w.rows;
    float[] y = new float[TOKEN_BLOCK];
    float[][] rows = new float[ROW_BLOCK][w.cols];
    for (int o0 = from; o0 < to; o0 += ROW_BLOCK) {
      int o1 = Math.min(to, o0 + ROW_BLOCK);
      for (int o = o0; o < o1; o++) { // widened once, used for every token block
        w.widenRow(o, rows[o - o0]);
      }
      for (int b = 0; b < xt.length; b++) {
        float[][] block = xt[b];
        int t0 = b * TOKEN_BLOCK;
        int count = Math.min(TOKEN_BLOCK, tokens - t0); // not block[0].length: no input features, no rows
        for (int o = o0; o < o1; o++) {
          java.util.Arrays.fill(y, 0, count, 0f);
          accumulateRow(y, block, count, rows[o - o0]);
          float bo = bias == null ? 0f : bias[o];
          for (int t = 0; t < count; t++) {
            out[(t0 + t) * n + o] = finish(y[t] + bo, relu);
          }
        }
      }
    }
  }

  /** {@code y[t] += Σ_i w[i] · xt[i][t]}, four input features per pass over y. */
  private static void accumulateRow(float[] y, float[][] xt, int count, float[] w) {
    int k = xt.length;
    int end = k & ~3;
    int i = 0;
    for (; i < end; i += 4) {
      axpy4(y, xt[i], xt[i + 1], xt[i + 2], xt[i + 3], w[i], w[i + 1], w[i + 2], w[i + 3], count);
    }
    for (; i < k; i++) {
      axpy(y, xt[i], w[i], count);
    }
  }

  /** The vectorized loop: every array indexed by the bare loop variable, as C2's SuperWord needs on Java 17. */
  private static void axpy4(float[] y, float[] x0, float[] x1, float[] x2, float[] x3,
      float a, float b, float c, float d, int n) {
    for (int t = 0; t < n; t++) {
      y[t] = Math.fma(d, x3[t], Math.fma(c, x2[t], Math.fma(b, x1[t], Math.fma(a, x0[t], y[t]))));
    }
  }

  private static void axpy(float[] y, float[] x, float a, int n) {
    for (int t = 0; t < n; t++) {
      y[t] = Math.fma(a, x[t], y[t]);
    }
  }
}
