package io.github.optjava.backend.cpu;

import io.github.optjava.backend.AttentionBatch;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link AttentionKernel}'s block path (prefill: a block of one sequence's queries, a group of heads) on the JDK's
 * Vector API, used with {@link VectorLinearKernels} when the JVM has {@code jdk.incubator.vector} and the head
 * dimension is a whole number of vectors (every OPT size: 64, 80 or 128). Same arithmetic as
 * {@link CpuOps#attention} up to float32 rounding: scores {@code q·k × scale}, the maximum subtracted before
 * {@code exp}, weights that would be subnormal flushed to zero (as {@link AttentionKernel} does, for the same
 * reason), the value rows summed with those weights and divided by their sum at the end. Per head:
 * <ol>
 *   <li>the head's key rows are transposed into {@code kt[d][position]} (positions as the vector dimension, so no
 *       score needs a sum across lanes);</li>
 *   <li>scores in tiles of 4 queries × 2 vectors of positions, causal: only positions the tile's last query
 *       sees;</li>
 *   <li>softmax per query with a vector {@code exp} ({@link #exp}: a polynomial in float32, so compiled and
 *       interpreted code give the same bits, which the Vector API's own {@code EXP} does not promise);</li>
 *   <li>weights × value rows in tiles of 4 queries × 4 vectors of the head dimension (16 accumulators; each value
 *       vector loaded once for four queries).</li>
 * </ol>
 * The rounding order of every output is fixed by the code (it does not depend on threads).
 */
final class VectorAttentionKernel {
  private static final VectorSpecies<Float> FLOATS = VectorLinearKernels.FLOATS;
  private static final int LANES = FLOATS.length();

  private VectorAttentionKernel() {}

  /** Whether this kernel handles heads of {@code headDim}: a whole number of vectors. */
  static boolean supports(int headDim) {
    return headDim > 0 && headDim % LANES == 0;
  }

  /** Same contract as {@link AttentionKernel#run} for a block of queries. */
  static void runBlock(AttentionKernel.Item item, float[] out, float[] q, CpuKvStore store, int layer,
      AttentionBatch batch, int headDim, float scale) {
    int blockSize = store.blockSize;
    int width = store.width;
    float[] keys = store.keys[layer]; // float32: FastCpuOps widens an fp16 cache's prefill rows first
    float[] values = store.values[layer];
    int s = item.seq();
    int past = batch.contextLength()[s] - batch.queryCount()[s];
    int queries = item.qTo() - item.qFrom();
    int positions = past + item.qTo(); // positions [0, positions) are read by this item
    int padded = roundUp(positions, 2 * LANES); // a row of scores or of transposed keys
    int[] table = batch.blockTables()[s];
    int[] slotRow = new int[positions];
    for (int p = 0; p < positions; p++) {
      slotRow[p] = (table[p / blockSize] * blockSize + p % blockSize) * width;
    }
    float[] kt = new float[headDim * padded]; // [d][position]; the padding stays zero
    float[] scores = new float[queries * padded]; // [query][position]: scores, then softmax weights
    float[] sums = new float[queries];
    float[] lanes = new float[LANES];
    int firstRow = batch.queryStart()[s] + item.qFrom();
    int firstVisible = past + item.qFrom() + 1; // positions the block's first query sees
    for (int h = item.hFrom(); h < item.hTo(); h++) {
      int off = h * headDim;
      for (int p = 0; p < positions; p++) {
        int k0 = slotRow[p] + off;
        for (int d = 0; d < headDim; d++) {
          kt[d * padded + p] = keys[k0 + d];
        }
      }
      for (int i0 = 0; i0 < queries; i0 += 4) {
        int n = Math.min(4, queries - i0);
        int end = roundUp(firstVisible + i0 + n - 1, 2 * LANES); // what the tile's last query sees, rounded up
        for (int p0 = 0; p0 < end; p0 += 2 * LANES) {
          if (n == 4) {
            scoreTile4(scores, padded, i0, p0, kt, q, (firstRow + i0) * width + off, width, headDim, scale);
          } else {
            for (int b = 0; b < n; b++) {
              scoreTile1(scores, padded, i0 + b, p0, kt, q, (firstRow + i0 + b) * width + off, headDim, scale);
            }
          }
        }
      }
      for (int i = 0; i < queries; i++) {
        int rowEnd = roundUp(firstVisible + (i | 3), 2 * LANES); // the end of its tile's scores
        sums[i] = softmax(scores, i * padded, firstVisible + i, Math.min(rowEnd, padded), lanes);
      }
      for (int i0 = 0; i0 < queries; i0 += 4) {
        int n = Math.min(4, queries - i0);
        for (int c = 0; c < headDim; c += 4 * LANES) {
          if (n == 4 && c + 4 * LANES <= headDim) {
            valueTile4x4(out, (firstRow + i0) * width + off + c, width, scores, i0 * padded, padded,
                firstVisible + i0, values, slotRow, off + c, sums, i0);
          } else {
            for (int b = 0; b < n; b++) {
              for (int v = c; v < Math.min(headDim, c + 4 * LANES); v += LANES) {
                valueTile1(out, (firstRow + i0 + b) * width + off + v, scores, (i0 + b) * padded,
                    firstVisible + i0 + b, values, slotRow, off + v, sums[i0 + b]);
              }
            }
          }
        }
      }
    }
  }

  private static int roundUp(int n, int multiple) {
    return (n + multiple - 1) / multiple * multiple;
  }

  // ------------------------------------------------------------------ scores

  /**
   * Scores of queries {@code i0 .. i0+3} (rows of {@code q} from {@code q0}, {@code width} apart) at the two vectors
   * of positions from {@code p0}.
   */
  private static void scoreTile4(float[] scores, int padded, int i0, int p0, float[] kt, float[] q, int q0, int width,
      int headDim, float scale) {
    int q1 = q0 + width;
    int q2 = q1 + width;
    int q3 = q2 + width;
    FloatVector a0 = FloatVector.zero(FLOATS), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0, a3 = a0, b3 = a0;
    for (int d = 0; d < headDim; d++) {
      FloatVector k0 = FloatVector.fromArray(FLOATS, kt, d * padded + p0);
      FloatVector k1 = FloatVector.fromArray(FLOATS, kt, d * padded + p0 + LANES);
      FloatVector x = FloatVector.broadcast(FLOATS, q[q0 + d]);
      a0 = k0.fma(x, a0);
      b0 = k1.fma(x, b0);
      x = FloatVector.broadcast(FLOATS, q[q1 + d]);
      a1 = k0.fma(x, a1);
      b1 = k1.fma(x, b1);
      x = FloatVector.broadcast(FLOATS, q[q2 + d]);
      a2 = k0.fma(x, a2);
      b2 = k1.fma(x, b2);
      x = FloatVector.broadcast(FLOATS, q[q3 + d]);
      a3 = k0.fma(x, a3);
      b3 = k1.fma(x, b3);
    }
    int r = i0 * padded + p0;
    a0.mul(scale).intoArray(scores, r);
    b0.mul(scale).intoArray(scores, r + LANES);
    a1.mul(scale).intoArray(scores, r + padded);
    b1.mul(scale).intoArray(scores, r + padded + LANES);
    a2.mul(scale).intoArray(scores, r + 2 * padded);
    b2.mul(scale).intoArray(scores, r + 2 * padded + LANES);
    a3.mul(scale).intoArray(scores, r + 3 * padded);
    b3.mul(scale).intoArray(scores, r + 3 * padded + LANES);
  }

  /** As {@link #scoreTile4} for one query {@code i} (row of {@code q} at {@code qi}); the same sums. */
  private static void scoreTile1(float[] scores, int padded, int i, int p0, float[] kt, float[] q, int qi, int headDim,
      float scale) {
    FloatVector a = FloatVector.zero(FLOATS);
    FloatVector b = a;
    for (int d = 0; d < headDim; d++) {
      FloatVector x = FloatVector.broadcast(FLOATS, q[qi + d]);
      a = FloatVector.fromArray(FLOATS, kt, d * padded + p0).fma(x, a);
      b = FloatVector.fromArray(FLOATS, kt, d * padded + p0 + LANES).fma(x, b);
    }
    a.mul(scale).intoArray(scores, i * padded + p0);
    b.mul(scale).intoArray(scores, i * padded + p0 + LANES);
  }

  // ------------------------------------------------------------------ softmax

  /**
   * Row {@code [from, from + rowEnd)} of scores: the first {@code visible} become {@code exp(score - max)} (flushed
   * to zero below the smallest normal float), the rest 0; returns the sum of the weights (≥ 1).
   */
  private static float softmax(float[] scores, int from, int visible, int rowEnd, float[] lanes) {
    int whole = visible / LANES * LANES;
    FloatVector max = FloatVector.broadcast(FLOATS, Float.NEGATIVE_INFINITY);
    for (int p = 0; p < whole; p += LANES) {
      max = max.max(FloatVector.fromArray(FLOATS, scores, from + p));
    }
    float m = max.reduceLanes(VectorOperators.MAX); // a maximum does not depend on the order
    for (int p = whole; p < visible; p++) {
      m = Math.max(m, scores[from + p]);
    }
    FloatVector sum = FloatVector.zero(FLOATS);
    for (int p = 0; p < visible; p += LANES) {
      FloatVector w = exp(FloatVector.fromArray(FLOATS, scores, from + p).sub(m));
      VectorMask<Float> seen = FLOATS.indexInRange(p, visible);
      w = w.blend(0f, seen.not());
      w.intoArray(scores, from + p);
      sum = sum.add(w);
    }
    Arrays.fill(scores, from + roundUp(visible, LANES), from + rowEnd, 0f);
    sum.intoArray(lanes, 0);
    float total = lanes[0];
    for (int j = 1; j < LANES; j++) {
      total += lanes[j];
    }
    return total;
  }

  // The exponential's constants are RowKernels' (the same values this kernel always had).
  private static final float LOG2E = RowKernels.LOG2E;
  private static final float LN2_HI = RowKernels.LN2_HI;
  private static final float LN2_LO = RowKernels.LN2_LO;
  private static final float ROUNDER = RowKernels.ROUNDER;
  private static final float FLUSH_BELOW = RowKernels.FLUSH_BELOW;

  /**
   * (The same exponential as {@link VectorRowKernels#exp} and its scalar twin {@link RowKernels#exp}, kept as a copy on
   * purpose: one method shared by this loop and the row kernels' is compiled on its own once both are hot, and C2 then
   * no longer inlines it, so every vector is boxed: a review measured the attention's exp 10 times slower.)
   *
   * {@code e^x} for {@code x ≤ 0} (a score minus the row's maximum; larger x would overflow or wrap), to about 1 ulp
   * (a review checked every float in [-88, 0]: at most 0.98 ulp): {@code x = n·ln 2 + r},
   * Cephes' degree-6 polynomial for {@code e^r} on {@code |r| ≤ ln 2 / 2}, times {@code 2^n} built from its exponent
   * bits. Results below the smallest normal float (and NaN-free inputs below {@link #FLUSH_BELOW}) are 0.
   */
  static FloatVector exp(FloatVector x) {
    VectorMask<Float> tiny = x.compare(VectorOperators.LT, FLUSH_BELOW);
    FloatVector xc = x.max(FLUSH_BELOW);
    FloatVector t = xc.fma(LOG2E, ROUNDER); // n + 1.5 · 2^23: n in the low mantissa bits
    FloatVector n = t.sub(ROUNDER);
    FloatVector r = n.fma(FloatVector.broadcast(FLOATS, -LN2_HI), xc);
    r = n.fma(FloatVector.broadcast(FLOATS, -LN2_LO), r);
    FloatVector p = FloatVector.broadcast(FLOATS, RowKernels.P0);
    p = p.fma(r, FloatVector.broadcast(FLOATS, RowKernels.P1));
    p = p.fma(r, FloatVector.broadcast(FLOATS, RowKernels.P2));
    p = p.fma(r, FloatVector.broadcast(FLOATS, RowKernels.P3));
    p = p.fma(r, FloatVector.broadcast(FLOATS, RowKernels.P4));
    p = p.fma(r, FloatVector.broadcast(FLOATS, RowKernels.P5));
    p = p.mul(r.mul(r)).add(r).add(1f);
    IntVector bits = t.reinterpretAsInts().sub(Float.floatToRawIntBits(ROUNDER)); // n as an integer
    FloatVector twoToN = bits.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
    FloatVector e = p.mul(twoToN);
    return e.blend(0f, tiny.or(e.compare(VectorOperators.LT, Float.MIN_NORMAL)));
  }

  // ------------------------------------------------------------------ weights × values

  /**
   * Outputs of queries {@code i0 .. i0+3} (rows {@code width} apart from {@code o0}), head dimensions {@code [v0,
   * v0 + 4 vectors)} of the cache rows: {@code Σ_p w[i][p] · value[p]}, divided by the weights' sum. The first
   * query sees {@code visible} positions, each next one a position more; a query never reads a value row it does
   * not see (a weight of 0 would not do: 0 × inf is NaN, and the reference never reads that row).
   */
  private static void valueTile4x4(float[] out, int o0, int width, float[] weights, int w0, int padded, int visible,
      float[] values, int[] slotRow, int v0, float[] sums, int i0) {
    FloatVector c00 = FloatVector.zero(FLOATS), c01 = c00, c02 = c00, c03 = c00;
    FloatVector c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    FloatVector c20 = c00, c21 = c00, c22 = c00, c23 = c00;
    FloatVector c30 = c00, c31 = c00, c32 = c00, c33 = c00;
    for (int p = 0; p < visible; p++) {
      int row = slotRow[p] + v0;
      FloatVector v0v = FloatVector.fromArray(FLOATS, values, row);
      FloatVector v1v = FloatVector.fromArray(FLOATS, values, row + LANES);
      FloatVector v2v = FloatVector.fromArray(FLOATS, values, row + 2 * LANES);
      FloatVector v3v = FloatVector.fromArray(FLOATS, values, row + 3 * LANES);
      FloatVector w = FloatVector.broadcast(FLOATS, weights[w0 + p]);
      c00 = v0v.fma(w, c00);
      c01 = v1v.fma(w, c01);
      c02 = v2v.fma(w, c02);
      c03 = v3v.fma(w, c03);
      w = FloatVector.broadcast(FLOATS, weights[w0 + padded + p]);
      c10 = v0v.fma(w, c10);
      c11 = v1v.fma(w, c11);
      c12 = v2v.fma(w, c12);
      c13 = v3v.fma(w, c13);
      w = FloatVector.broadcast(FLOATS, weights[w0 + 2 * padded + p]);
      c20 = v0v.fma(w, c20);
      c21 = v1v.fma(w, c21);
      c22 = v2v.fma(w, c22);
      c23 = v3v.fma(w, c23);
      w = FloatVector.broadcast(FLOATS, weights[w0 + 3 * padded + p]);
      c30 = v0v.fma(w, c30);
      c31 = v1v.fma(w, c31);
      c32 = v2v.fma(w, c32);
      c33 = v3v.fma(w, c33);
    }
    int o1 = o0 + width;
    int o2 = o1 + width;
    int o3 = o2 + width;
    c00.intoArray(out, o0);
    c01.intoArray(out, o0 + LANES);
    c02.intoArray(out, o0 + 2 * LANES);
    c03.intoArray(out, o0 + 3 * LANES);
    c10.intoArray(out, o1);
    c11.intoArray(out, o1 + LANES);
    c12.intoArray(out, o1 + 2 * LANES);
    c13.intoArray(out, o1 + 3 * LANES);
    c20.intoArray(out, o2);
    c21.intoArray(out, o2 + LANES);
    c22.intoArray(out, o2 + 2 * LANES);
    c23.intoArray(out, o2 + 3 * LANES);
    c30.intoArray(out, o3);
    c31.intoArray(out, o3 + LANES);
    c32.intoArray(out, o3 + 2 * LANES);
    c33.intoArray(out, o3 + 3 * LANES);
    // The positions only the later queries see (query b also sees visible .. visible + b - 1), added to the stored
    // sums in the same order, then every row divided by its weights' sum.
    for (int b = 0; b < 4; b++) {
      int ob = o0 + b * width;
      for (int p = visible; p < visible + b; p++) {
        FloatVector w = FloatVector.broadcast(FLOATS, weights[w0 + b * padded + p]);
        int row = slotRow[p] + v0;
        for (int j = 0; j < 4 * LANES; j += LANES) {
          FloatVector.fromArray(FLOATS, values, row + j).fma(w, FloatVector.fromArray(FLOATS, out, ob + j))
              .intoArray(out, ob + j);
        }
      }
      for (int j = 0; j < 4 * LANES; j += LANES) {
        FloatVector.fromArray(FLOATS, out, ob + j).div(sums[i0 + b]).intoArray(out, ob + j);
      }
    }
  }

  /** One query's output, one vector of the head dimension (the tails of {@link #valueTile4x4}). */
  private static void valueTile1(float[] out, int o, float[] weights, int w0, int visible, float[] values,
      int[] slotRow, int v, float sum) {
    FloatVector c = FloatVector.zero(FLOATS);
    for (int p = 0; p < visible; p++) {
      c = FloatVector.fromArray(FLOATS, values, slotRow[p] + v).fma(FloatVector.broadcast(FLOATS, weights[w0 + p]), c);
    }
    c.div(sum).intoArray(out, o);
  }
}
