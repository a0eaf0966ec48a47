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
 * </ul>
 */
final class AttentionKernel {
  /** Queries per work item: enough work to amortise the slot table, small enough to balance threads. */
  static final int QUERY_BLOCK = 32;

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
   * @param keys   one layer's key slots, {@code width} floats each
   * @param values one layer's value slots
   */
  static void run(Item item, float[] out, float[] q, float[] keys, float[] values, AttentionBatch batch,
      int blockSize, int width, int headDim, float scale) {
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
    float[] max = new float[group];
    float[] sum = new float[group];
    for (int i = item.qFrom(); i < item.qTo(); i++) {
      int qOff = (batch.queryStart()[s] + i) * width + groupOff;
      int visible = past + i + 1; // causal: positions 0 .. past + i
      java.util.Arrays.fill(max, Float.NEGATIVE_INFINITY);
      for (int p = 0; p < visible; p++) {
        for (int h = 0; h < group; h++) {
          float sc = LinearKernels.dot(keys, slotOff[p] + h * headDim, q, qOff + h * headDim, headDim) * scale;
          scores[h * positions + p] = sc;
          max[h] = Math.max(max[h], sc);
        }
      }
      for (int h = 0; h < group; h++) {
        sum[h] = softmaxNumerators(scores, h * positions, visible, max[h]);
      }
      java.util.Arrays.fill(acc, 0f);
      for (int p = 0; p < visible; p++) {
        for (int h = 0; h < group; h++) {
          float sc = scores[h * positions + p];
          if (sc == 0f) {
            continue; // a flushed weight: its value row cannot contribute
          }
          int vo = slotOff[p] + h * headDim;
          int ao = h * headDim;
          for (int d = 0; d < headDim; d++) {
            acc[ao + d] = Math.fma(sc, values[vo + d], acc[ao + d]);
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
   * Replaces {@code scores[from .. from + n)} by {@code exp(score - max)} and returns their sum (≥ 1: the
   * maximum contributes exp(0)). Weights below 2^-126 (scores 87 below the max, common with peaked
   * attention) would be subnormal floats, and every x86 FMA touching one takes a microcode assist of about
   * a hundred cycles (measured: 4× slower attention), as does {@code exp} far below its range; flushed to
   * zero they change the result by under 1e-37 relative.
   */
  private static float softmaxNumerators(float[] scores, int from, int n, float max) {
    float sum = 0f;
    for (int p = from; p < from + n; p++) {
      float d = scores[p] - max;
      float e = d > -88f ? (float) Math.exp(d) : 0f;
      e = e < Float.MIN_NORMAL ? 0f : e;
      scores[p] = e;
      sum += e;
    }
    return sum;
  }
}
