package io.github.optjava.backend.cpu;

import io.github.optjava.backend.AttentionBatch;
import java.util.ArrayList;
import java.util.List;

/**
 * The loops behind {@link FastCpuOps#attention}: causal attention of a block of one sequence's queries,
 * for a group of heads, over the paged cache. Same arithmetic as {@link CpuOps#attention} (float32
 * scores, max subtracted before {@code exp}, normalised at the end), but:
 * <ul>
 *   <li>slot offsets are computed once per work item instead of per element;</li>
 *   <li>positions are the outer loop and the group's heads the inner one, so each cached key and value
 *       row is read as one contiguous run. In decode the cache does not stay in CPU caches between
 *       steps (the weights stream through them); contiguous runs made decode attention 15–20% faster;</li>
 *   <li>weights that would be subnormal floats are flushed to zero (see {@link #run}).</li>
 *   <li>a block of at least {@link #BLOCK_MIN_QUERIES} queries (prefill) computes its scores as one small GEMM
 *       per head through {@link LinearKernels#vectorRows} (positions as the vectorised dimension) and adds up
 *       its value rows with vectorised loops over the head dimension ({@link #runBlock}): C2 on Java 17
 *       vectorises neither a float dot product nor a loop over offset arrays.</li>
 *   <li>with the Vector API ({@code vector}): blocks go to {@link VectorAttentionKernel}, and the per-query loops
 *       take their scores from {@link VectorLinearKernels#dot} (batch-4 decode at a 1024-token context: 72.8 →
 *       65.3 ms per step on opt-125m, 2 cores).</li>
 * </ul>
 */
final class AttentionKernel {
  /** Queries per work item: enough work to amortise the slot table, small enough to balance threads. */
  static final int QUERY_BLOCK = 32;

  /** From this many queries in an item on, {@link #runBlock} (vectorised) instead of the per-query loops. */
  static final int BLOCK_MIN_QUERIES = 8;

  /** {@code -Dopt.cpu.blockAttention=false}: always the per-query loops (to compare). */
  static final boolean BLOCK_ATTENTION = !"false".equalsIgnoreCase(System.getProperty("opt.cpu.blockAttention"));

  private AttentionKernel() {}

  /** One unit of parallel work: queries {@code [qFrom, qTo)} of sequence {@code seq}, heads {@code [hFrom, hTo)}. */
  record Item(int seq, int qFrom, int qTo, int hFrom, int hTo) {}

  /**
   * Splits a step into items: sequences × query blocks × head groups, with head groups as wide as
   * possible (longer contiguous reads) while still giving every thread about four items.
   */
  static List<Item> items(AttentionBatch batch, int heads, int threads) {
    int blocks = 0;
    for (int s = 0; s < batch.sequences(); s++) {
      blocks += (batch.queryCount()[s] + QUERY_BLOCK - 1) / QUERY_BLOCK;
    }
    int groups = Math.min(heads, Math.max(1, (4 * threads + blocks - 1) / Math.max(1, blocks)));
    int groupSize = (heads + groups - 1) / groups;
    List<Item> items = new ArrayList<>();
    for (int s = 0; s < batch.sequences(); s++) {
      for (int q = 0; q < batch.queryCount()[s]; q += QUERY_BLOCK) {
        for (int h = 0; h < heads; h += groupSize) {
          int qTo = Math.min(batch.queryCount()[s], q + QUERY_BLOCK);
          items.add(new Item(s, q, qTo, h, Math.min(heads, h + groupSize)));
        }
      }
    }
    return items;
  }

  /**
   * Computes the {@code out} rows of one item.
   *
   * @param q      (queries, width) this step's queries
   * @param store  the cache: layer {@code layer}'s key and value slots, {@code width} elements each, float32 or
   *               fp16 (widened exactly as they are read, so an fp16 cache gives the float32 arithmetic on its
   *               rounded values). A block of queries ({@link #usesBlock}) needs a float32 store: for an fp16
   *               cache FastCpuOps widens the sequence's rows into one first ({@link #widenedForBlocks}).
   * @param vector whether {@link VectorAttentionKernel} may run (the JVM has the Vector API)
   */
  static void run(Item item, float[] out, float[] q, CpuKvStore store, int layer, AttentionBatch batch,
      int headDim, float scale, boolean vector) {
    if (usesBlock(item.qTo() - item.qFrom())) {
      if (store.half()) {
        throw new IllegalArgumentException("the block kernels read float32 rows: widen the fp16 cache first");
      }
      if (vector && VectorAttentionKernel.supports(headDim)) {
        VectorAttentionKernel.runBlock(item, out, q, store, layer, batch, headDim, scale);
      } else {
        runBlock(item, out, q, store, layer, batch, headDim, scale);
      }
    } else {
      runPerQuery(item, out, q, store, layer, batch, headDim, scale, vector);
    }
  }

  /** Whether an item of {@code queries} queries runs {@link #runBlock} (or the Vector API one). */
  static boolean usesBlock(int queries) {
    return BLOCK_ATTENTION && queries >= BLOCK_MIN_QUERIES;
  }

  /**
   * For an fp16 cache: the sequences of {@code batch} that have a block of queries ({@link #usesBlock}) with their
   * rows of layer {@code layer} widened into a one-layer float32 store, and the batch with their block tables
   * renumbered into it (the other sequences' tables unchanged); null when no sequence has one. Widening a prefill's
   * rows once per layer costs less than widening them in every block of queries that reads them (a 1024-token
   * prefill's attention went ≈ 11 % slower that way).
   */
  static Widened widenedForBlocks(CpuKvStore store, int layer, AttentionBatch batch, boolean vector) {
    int n = batch.sequences();
    boolean[] widened = new boolean[n];
    int blocks = 0;
    for (int s = 0; s < n; s++) {
      if (usesBlock(Math.min(QUERY_BLOCK, batch.queryCount()[s]))) {
        widened[s] = true;
        blocks += (batch.contextLength()[s] + store.blockSize - 1) / store.blockSize;
      }
    }
    if (blocks == 0) {
      return null;
    }
    CpuKvStore f32 = new CpuKvStore(1, blocks, store.blockSize, store.width);
    int[][] tables = batch.blockTables().clone();
    int blockElements = store.blockSize * store.width;
    int next = 0;
    for (int s = 0; s < n; s++) {
      if (!widened[s]) {
        continue;
      }
      int used = (batch.contextLength()[s] + store.blockSize - 1) / store.blockSize;
      int[] table = new int[used];
      for (int b = 0; b < used; b++) {
        int from = batch.blockTables()[s][b] * blockElements;
        table[b] = next;
        widenHalves(store.halfKeys[layer], from, f32.keys[0], next * blockElements, blockElements, vector);
        widenHalves(store.halfValues[layer], from, f32.values[0], next * blockElements, blockElements, vector);
        next++;
      }
      tables[s] = table;
    }
    return new Widened(widened, f32,
        new AttentionBatch(batch.queryStart(), batch.queryCount(), batch.contextLength(), tables));
  }

  /** {@link #widenedForBlocks}'s result: which sequences read {@code store} (layer 0) through {@code batch}. */
  record Widened(boolean[] sequences, CpuKvStore store, AttentionBatch batch) {}

  /**
   * {@code n} fp16 values from {@code src[off ..)} into {@code dst[dstOff ..)} as float32, exactly (infinities and
   * NaNs too).
   */
  static void widenHalves(short[] src, int off, float[] dst, int dstOff, int n, boolean vector) {
    if (vector) {
      VectorLinearKernels.widenHalves(src, off, dst, dstOff, n);
      return;
    }
    for (int i = 0; i < n; i++) {
      dst[dstOff + i] = CpuMat.HALF_TO_FLOAT[src[off + i] & 0xffff];
    }
  }

  /** {@link #run} one query at a time (decode, and small blocks). */
  private static void runPerQuery(Item item, float[] out, float[] q, CpuKvStore store, int layer,
      AttentionBatch batch, int headDim, float scale, boolean vector) {
    int blockSize = store.blockSize;
    int width = store.width;
    boolean half = store.half();
    float[] keys = half ? null : store.keys[layer];
    float[] values = half ? null : store.values[layer];
    float[] lanes = vector ? new float[VectorLinearKernels.FLOATS.length()] : null;
    int s = item.seq();
    int past = batch.contextLength()[s] - batch.queryCount()[s];
    int positions = past + item.qTo(); // positions [0, positions) are read by this item
    int group = item.hTo() - item.hFrom();
    int groupOff = item.hFrom() * headDim;
    int[] slotOff = new int[positions]; // where each position's row (this group's part) starts
    int[] table = batch.blockTables()[s];
    for (int p = 0; p < positions; p++) {
      slotOff[p] = (table[p / blockSize] * blockSize + p % blockSize) * width + groupOff;
    }
    float[] scores = new float[group * positions]; // (head in group, position)
    float[] acc = new float[group * headDim];
    // fp16 cache: with the Vector API its rows are widened in registers (dot16, addScaledHalves: the same floats,
    // so the same sums as float32 rows); the scalar loops widen each position's row of the group into L1 first.
    boolean halfInRegisters = half && vector;
    float[] row = half && !vector ? new float[group * headDim] : null;
    float[] max = new float[group];
    float[] sum = new float[group];
    for (int i = item.qFrom(); i < item.qTo(); i++) {
      int qOff = (batch.queryStart()[s] + i) * width + groupOff;
      int visible = past + i + 1; // causal: positions 0 .. past + i
      java.util.Arrays.fill(max, Float.NEGATIVE_INFINITY);
      for (int p = 0; p < visible; p++) {
        float[] k = keys;
        int kBase = slotOff[p];
        if (row != null) {
          widenHalves(store.halfKeys[layer], slotOff[p], row, 0, row.length, false);
          k = row;
          kBase = 0;
        }
        for (int h = 0; h < group; h++) {
          float sc = (halfInRegisters
              ? VectorLinearKernels.dot16(store.halfKeys[layer], kBase + h * headDim, VectorLinearKernels.HALF, q,
                  qOff + h * headDim, headDim, lanes)
              : vector
              ? VectorLinearKernels.dot(k, kBase + h * headDim, q, qOff + h * headDim, headDim, lanes)
              : LinearKernels.dot(k, kBase + h * headDim, q, qOff + h * headDim, headDim)) * scale;
          scores[h * positions + p] = sc;
          max[h] = Math.max(max[h], sc);
        }
      }
      for (int h = 0; h < group; h++) {
        sum[h] = softmaxNumerators(scores, h * positions, visible, max[h]);
      }
      java.util.Arrays.fill(acc, 0f);
      for (int p = 0; p < visible; p++) {
        float[] v = values;
        int vBase = slotOff[p];
        if (row != null) {
          widenHalves(store.halfValues[layer], slotOff[p], row, 0, row.length, false);
          v = row;
          vBase = 0;
        }
        for (int h = 0; h < group; h++) {
          float sc = scores[h * positions + p];
          if (sc == 0f) {
            continue; // a flushed weight: its value row cannot contribute
          }
          int vo = vBase + h * headDim;
          int ao = h * headDim;
          if (halfInRegisters) {
            VectorLinearKernels.addScaledHalves(acc, ao, sc, store.halfValues[layer], vo, headDim);
            continue;
          }
          for (int d = 0; d < headDim; d++) {
            acc[ao + d] = Math.fma(sc, v[vo + d], acc[ao + d]);
          }
        }
      }
      for (int h = 0; h < group; h++) {
        for (int d = 0; d < headDim; d++) {
          out[qOff + h * headDim + d] = acc[h * headDim + d] / sum[h];
        }
      }
    }
  }

  /**
   * {@link #run} for a block of queries, one head at a time: the scores {@code q_b · k_p} of every query b and
   * position p as a GEMM with the positions as the vector dimension (the head's key rows transposed into
   * {@link LinearKernels#transposedBlocks}), softmax per query as in {@link #run}, then each value row added to
   * every query's accumulator that sees it, a loop over the head dimension with bare indexes. Same arithmetic
   * as {@link #run} up to the order of the sums.
   */
  private static void runBlock(Item item, float[] out, float[] q, CpuKvStore store, int layer,
      AttentionBatch batch, int headDim, float scale) {
    int blockSize = store.blockSize;
    int width = store.width;
    float[] keys = store.keys[layer]; // float32: FastCpuOps widens an fp16 cache's prefill rows first
    float[] values = store.values[layer];
    int s = item.seq();
    int past = batch.contextLength()[s] - batch.queryCount()[s];
    int positions = past + item.qTo();
    int queries = item.qTo() - item.qFrom();
    int[] table = batch.blockTables()[s];
    int[] slotRow = new int[positions]; // where each position's row starts
    for (int p = 0; p < positions; p++) {
      slotRow[p] = (table[p / blockSize] * blockSize + p % blockSize) * width;
    }
    float[][][] kt = LinearKernels.transposedBlocks(positions, headDim); // [block][d][position in block]
    float[] qh = new float[queries * headDim];
    float[] scoresT = new float[positions * queries]; // (position, query), as vectorRows writes them
    float[][] acc = new float[queries][headDim];
    float[] vRow = new float[headDim];
    float[] sum = new float[queries];
    int firstRow = batch.queryStart()[s] + item.qFrom();
    for (int h = item.hFrom(); h < item.hTo(); h++) {
      int off = h * headDim;
      for (int b = 0; b < kt.length; b++) {
        int p0 = b * LinearKernels.TOKEN_BLOCK;
        float[][] block = kt[b];
        int count = block[0].length;
        for (int t = 0; t < count; t++) {
          int k0 = slotRow[p0 + t] + off;
          for (int d = 0; d < headDim; d++) {
            block[d][t] = keys[k0 + d];
          }
        }
      }
      for (int i = 0; i < queries; i++) {
        System.arraycopy(q, (firstRow + i) * width + off, qh, i * headDim, headDim);
      }
      LinearKernels.vectorRows(scoresT, kt, positions,
          LinearKernels.Weights.ofFloats(qh, queries, headDim),
          null, false, 0, queries);
      for (int i = 0; i < queries; i++) {
        int visible = past + item.qFrom() + i + 1; // causal: positions 0 .. past + i
        float m = Float.NEGATIVE_INFINITY;
        for (int p = 0; p < visible; p++) {
          float sc = scoresT[p * queries + i] * scale;
          scoresT[p * queries + i] = sc;
          m = Math.max(m, sc);
        }
        float total = 0f;
        for (int p = 0; p < visible; p++) {
          total += scoresT[p * queries + i] = weight(scoresT[p * queries + i], m);
        }
        sum[i] = total;
        java.util.Arrays.fill(acc[i], 0f);
      }
      for (int p = 0; p < positions; p++) {
        System.arraycopy(values, slotRow[p] + off, vRow, 0, headDim);
        int firstSeeing = Math.max(0, p - past - item.qFrom()); // query i sees p when p <= past + qFrom + i
        for (int i = firstSeeing; i < queries; i++) {
          float w = scoresT[p * queries + i];
          if (w != 0f) { // a flushed weight: its value row cannot contribute
            addScaled(acc[i], vRow, w, headDim);
          }
        }
      }
      for (int i = 0; i < queries; i++) {
        int o = (firstRow + i) * width + off;
        for (int d = 0; d < headDim; d++) {
          out[o + d] = acc[i][d] / sum[i];
        }
      }
    }
  }

  /** {@code acc[d] += w · v[d]}: every array indexed by the bare loop variable, which C2 vectorises. */
  private static void addScaled(float[] acc, float[] v, float w, int n) {
    for (int d = 0; d < n; d++) {
      acc[d] = Math.fma(w, v[d], acc[d]);
    }
  }

  /** A softmax numerator {@code exp(score - max)}, flushed to zero where it would be subnormal (see below). */
  private static float weight(float score, float max) {
    float d = score - max;
    float e = d > -88f ? (float) Math.exp(d) : 0f;
    return e < Float.MIN_NORMAL ? 0f : e;
  }

  /**
   * Replaces {@code scores[from .. from + n)} by {@code exp(score - max)} and returns their sum (≥ 1: the
   * maximum contributes exp(0)). Weights below 2^-126 (scores 87 below the max, common with peaked
   * attention) would be subnormal floats, and every x86 FMA touching one takes a microcode assist of about
   * a hundred cycles (measured: 4× slower attention), as does {@code exp} far below its range; flushed to
   * zero they change the result by under 1e-37 relative.
   */
  private static float softmaxNumerators(float[] scores, int from, int n, float max) {
    float sum = 0f;
    for (int p = from; p < from + n; p++) {
      float e = weight(scores[p], max);
      scores[p] = e;
      sum += e;
    }
    return sum;
  }
}
