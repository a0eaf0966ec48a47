package io.github.optjava.backend;

/**
 * The batch sizes a backend that replays decode steps as CUDA graphs pads a decode step to ({@link
 * Ops#decodeBatchBucket}): 1, 2, 4, 8, then every multiple of 8. Under continuous batching the batch size changes
 * whenever a request joins or leaves; each new size is a new graph (one step run op by op, one captured, their
 * workspaces kept). Buckets bound the sizes: 1 to 256 sequences take 35 sizes instead of 256, and a batch that
 * shrinks from 32 to 25 keeps replaying the graph of 32. A padding row costs little where it pads: small batches
 * read the weights once whatever their rows (decode is bound by the weights' bytes), and above 8 at most 7 rows
 * are added.
 */
public final class BatchBuckets {
  private BatchBuckets() {}

  /**
   * The bucket of {@code n} sequences: the smallest of 1, 2, 4, 8, 16, 24, 32, ... that holds them.
   *
   * @throws IllegalArgumentException when n is not positive
   */
  public static int of(int n) {
    if (n < 1) {
      throw new IllegalArgumentException("a batch of " + n + " sequences");
    }
    if (n <= 8) {
      return Integer.highestOneBit(n * 2 - 1);
    }
    return Math.addExact(n, 7) / 8 * 8;
  }
}
