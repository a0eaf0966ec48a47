package io.github.optjava.tokenizer;

import java.util.Arrays;

/**
 * The BPE merge list as a lookup from a pair of token ids to its rank (position in merges.txt) and
 * the id of the merged token.
 *
 * <p>An open-addressing table keyed by {@code left << 32 | right}: lookups sit on the hot path of
 * every uncached word, and a {@code HashMap<Long, Integer>} would box on each probe. Immutable after
 * construction, so it is safe to share between threads.
 */
final class MergeTable {

  private static final long EMPTY = -1L; // no valid key has both halves 0xFFFFFFFF

  private final long[] keys;
  private final int[] ranks;
  private final int mask;
  private final int shift;
  private final int[] left;
  private final int[] right;
  private final int[] merged;

  /**
   * @param left left token id of each merge, in merges.txt order
   * @param right right token id of each merge
   * @param merged id of the token each merge produces
   */
  MergeTable(int[] left, int[] right, int[] merged) {
    this.left = left;
    this.right = right;
    this.merged = merged;
    int capacity = Integer.highestOneBit(Math.max(4, left.length * 2 - 1)) << 1; // load factor <= 1/2
    keys = new long[capacity];
    ranks = new int[capacity];
    mask = capacity - 1;
    shift = 64 - Integer.numberOfTrailingZeros(capacity);
    Arrays.fill(keys, EMPTY);
    for (int rank = 0; rank < left.length; rank++) {
      long key = key(left[rank], right[rank]);
      int slot = slot(key);
      while (keys[slot] != EMPTY && keys[slot] != key) {
        slot = (slot + 1) & mask;
      }
      keys[slot] = key;
      ranks[slot] = rank; // a repeated pair keeps its last rank, as the dict in Hugging Face's code does
    }
  }

  /** The rank of merging {@code leftId} with {@code rightId}, or -1 when there is no such merge. */
  int rank(int leftId, int rightId) {
    long key = key(leftId, rightId);
    for (int slot = slot(key); ; slot = (slot + 1) & mask) {
      long k = keys[slot];
      if (k == key) {
        return ranks[slot];
      }
      if (k == EMPTY) {
        return -1;
      }
    }
  }

  int left(int rank) {
    return left[rank];
  }

  int right(int rank) {
    return right[rank];
  }

  int merged(int rank) {
    return merged[rank];
  }

  private static long key(int leftId, int rightId) {
    return ((long) leftId << 32) | (rightId & 0xFFFFFFFFL);
  }

  private int slot(long key) {
    return (int) ((key * 0x9E3779B97F4A7C15L) >>> shift); // Fibonacci hashing: top bits are well mixed
  }
}
