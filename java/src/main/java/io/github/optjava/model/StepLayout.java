package io.github.optjava.model;

import io.github.optjava.backend.AttentionBatch;
import io.github.optjava.backend.Ops;
import io.github.optjava.engine.KvCache;
import io.github.optjava.model.OptModel.SeqStep;
import java.util.Arrays;
import java.util.List;

/**
 * Where the tokens of one {@link OptModel} step go, the bookkeeping kept out of the model's math: each sequence's
 * rows in the flat batch (ragged, no padding), their ids, positions and KV-cache slots, the block tables, the rows
 * whose logits are wanted, and whether the backend may replay the step as a CUDA graph ({@link Ops#graphStep}).
 *
 * <p>A graph step repeats op for op at its batch size: a decode step (one new token per sequence, last logits only),
 * or a step of drafts (every sequence the same number of new tokens, up to {@link OptModel#MAX_GRAPH_TOKENS}, every
 * row's logits, as prompt lookup feeds them). Its block tables are padded (-1) to a power of two so that the
 * attention kernel's table width stays the same for many steps (the graph's variant). A decode step is also padded
 * to the batch size the backend's graphs are captured for ({@link Ops#decodeBatchBucket}): rows
 * {@code sequences ..} are padding, each a one-token sequence (the pad token at position 0) whose key and value go
 * to the cache's padding block ({@link KvCache#paddingBlock}), the only block it reads; their logits are computed
 * and dropped by the caller.
 *
 * @param batch             the attention batch over every row, padding rows included
 * @param ids               (total) token ids
 * @param positions         (total) positions
 * @param slots             (total) KV-cache slots the tokens' keys and values are written to
 * @param outputRows        (outRows) the rows whose logits are wanted, in sequence order
 * @param total             token rows of the step
 * @param outRows           logit rows of the step
 * @param sequences         the caller's sequences (the batch's first rows; the rest are padding)
 * @param graphStep         whether the step may be declared to the backend as a graph step
 * @param tokensPerSequence new tokens of every sequence in a graph step
 * @param tableWidth        the padded block-table width of a graph step (1 otherwise)
 */
record StepLayout(AttentionBatch batch, int[] ids, int[] positions, int[] slots, int[] outputRows, int total,
    int outRows, int sequences, boolean graphStep, int tokensPerSequence, int tableWidth) {

  /** Sequences plus padding rows: the batch size the step runs at. */
  int rows() {
    return batch.sequences();
  }

  /** Whether padding rows were added ({@link Ops#decodeBatchBucket}). */
  boolean padded() {
    return rows() > sequences;
  }

  /**
   * Lays out a step and reserves its tokens' cache blocks ({@link KvCache#reserve}).
   *
   * @param graphable whether this model's steps may be graph steps at all (one pipeline stage, no tensor-parallel
   *                  communication)
   * @param scored    whether the step scores tokens ({@link OptModel#forwardScored}): never padded, never drafts
   * @throws IllegalArgumentException if a sequence would exceed the model's positions
   */
  static StepLayout plan(List<SeqStep> seqs, KvCache cache, OptConfig config, Ops ops, boolean graphable,
      boolean scored) {
    int n = seqs.size();
    int[] queryStart = new int[n];
    int[] queryCount = new int[n];
    int[] contextLength = new int[n];
    int[][] tables = new int[n][];
    int total = 0;
    int outRows = 0;
    for (int s = 0; s < n; s++) {
      SeqStep q = seqs.get(s);
      int past = cache.length(q.seqId());
      queryStart[s] = total;
      queryCount[s] = q.newTokens().length;
      contextLength[s] = past + queryCount[s];
      if (contextLength[s] > config.maxPositionEmbeddings()) {
        throw new IllegalArgumentException("sequence of " + contextLength[s] + " tokens exceeds the model's "
            + config.maxPositionEmbeddings() + " positions");
      }
      tables[s] = cache.reserve(q.seqId(), contextLength[s]);
      total += queryCount[s];
      outRows += q.allLogits() ? queryCount[s] : 1;
    }
    int perSeq = n > 0 ? queryCount[0] : 0;
    for (int c : queryCount) {
      perSeq = c == perSeq ? perSeq : -1;
    }
    boolean drafts = perSeq > 1 && perSeq <= OptModel.MAX_GRAPH_TOKENS && outRows == total && !scored;
    boolean graphStep = graphable && n > 0 && ((total == n && outRows == n) || drafts);
    int tableWidth = 1;
    if (graphStep) {
      for (int[] t : tables) {
        tableWidth = Math.max(tableWidth, Integer.highestOneBit(Math.max(t.length, 1) * 2 - 1));
      }
      for (int s = 0; s < n; s++) {
        if (tables[s].length < tableWidth) {
          int[] padded = Arrays.copyOf(tables[s], tableWidth);
          Arrays.fill(padded, tables[s].length, tableWidth, -1);
          tables[s] = padded;
        }
      }
    }
    int rows = n;
    int paddingBlock = -1;
    if (graphStep && perSeq == 1 && !scored) {
      int bucket = ops.decodeBatchBucket(n);
      paddingBlock = bucket > n ? cache.paddingBlock() : -1; // -1: no block left, run unpadded
      if (paddingBlock >= 0) {
        rows = bucket;
        queryStart = Arrays.copyOf(queryStart, rows);
        queryCount = Arrays.copyOf(queryCount, rows);
        contextLength = Arrays.copyOf(contextLength, rows);
        tables = Arrays.copyOf(tables, rows);
        int[] padTable = new int[tableWidth];
        Arrays.fill(padTable, -1);
        padTable[0] = paddingBlock;
        for (int s = n; s < rows; s++) {
          queryStart[s] = total++;
          queryCount[s] = 1;
          contextLength[s] = 1;
          tables[s] = padTable;
          outRows++;
        }
      }
    }
    AttentionBatch batch = new AttentionBatch(queryStart, queryCount, contextLength, tables);
    int[] ids = new int[total];
    int[] positions = new int[total];
    int[] slots = new int[total];
    int[] outputRows = new int[outRows];
    for (int s = 0, r = 0; s < n; s++) {
      SeqStep q = seqs.get(s);
      int past = contextLength[s] - queryCount[s];
      for (int i = 0; i < queryCount[s]; i++) {
        int t = queryStart[s] + i;
        ids[t] = q.newTokens()[i];
        positions[t] = past + i;
        slots[t] = batch.slot(s, past + i, cache.blockSize());
        if (q.allLogits() || i == queryCount[s] - 1) {
          outputRows[r++] = t;
        }
      }
    }
    for (int s = n; s < rows; s++) { // padding rows (a decode step: one row each, every row's logits)
      int t = queryStart[s];
      ids[t] = config.padTokenId();
      positions[t] = 0;
      slots[t] = paddingBlock * cache.blockSize();
      outputRows[t] = t;
    }
    return new StepLayout(batch, ids, positions, slots, outputRows, total, outRows, n, graphStep, perSeq,
        tableWidth);
  }
}
