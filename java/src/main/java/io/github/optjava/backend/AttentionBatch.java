package io.github.optjava.backend;

import java.util.Arrays;

/**
 * Who attends to what in one step over a ragged batch (no padding). Sequence {@code s} contributes
 * {@code queryCount[s]} consecutive query rows starting at row {@code queryStart[s]}; its query
 * {@code i} sits at position {@code contextLength[s] - queryCount[s] + i} and attends causally to
 * positions {@code 0 .. that position}, read from the KV cache through {@code blockTables[s]}
 * (position p lives in slot {@code blockTables[s][p / blockSize] * blockSize + p % blockSize}).
 * Prefill is the case queryCount = contextLength; decode is queryCount = 1.
 *
 * @param queryStart    (sequences) first query row of each sequence
 * @param queryCount    (sequences) number of query rows (new tokens) of each sequence
 * @param contextLength (sequences) tokens in the cache for each sequence, the new ones included
 * @param blockTables   (sequences)(blocks of that sequence) block ids
 */
public record AttentionBatch(int[] queryStart, int[] queryCount, int[] contextLength, int[][] blockTables) {

  public AttentionBatch {
    int n = queryStart.length;
    if (queryCount.length != n || contextLength.length != n || blockTables.length != n) {
      throw new IllegalArgumentException("AttentionBatch arrays differ in length");
    }
    for (int s = 0; s < n; s++) {
      if (queryCount[s] < 0 || queryCount[s] > contextLength[s]) {
        throw new IllegalArgumentException("sequence " + s + ": " + queryCount[s] + " queries for a context of "
            + contextLength[s]);
      }
    }
  }

  public int sequences() {
    return queryStart.length;
  }

  /** Total query rows (= new tokens) in the step. */
  public int totalQueries() {
    return Arrays.stream(queryCount).sum();
  }

  /** The cache slot of position {@code p} of sequence {@code s}. */
  public int slot(int s, int p, int blockSize) {
    return blockTables[s][p / blockSize] * blockSize + p % blockSize;
  }
}
