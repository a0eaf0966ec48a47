package io.github.optjava.tokenizer;

import java.util.Arrays;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Byte-level BPE of one pre-tokenizer piece, with a shared cache of recent pieces.
 *
 * <p>The result equals Hugging Face's {@code GPT2Tokenizer.bpe}: start from one token per UTF-8
 * byte; repeatedly take the adjacent pair with the lowest merge rank and merge <em>all</em> its
 * occurrences left to right (non-overlapping); stop when no adjacent pair has a merge. Here each such
 * round is driven by a min-heap of (rank, position) entries, so a word of n bytes costs O(n log n)
 * instead of the O(n²) of rescanning, which matters for long runs such as a line of 10,000 dashes.
 *
 * <p>Thread-safe: the merge table is immutable and the cache is a {@link ConcurrentHashMap}.
 */
final class BytePairEncoder {

  /** Pieces kept in the cache; when full it is emptied, which keeps memory bounded. */
  static final int CACHE_CAPACITY = 1 << 16;
  /** Longer pieces are rarely repeated and not worth their memory. */
  private static final int MAX_CACHED_LENGTH = 64;
  private static final int DEAD = -1;

  private final int[] byteTokenIds;
  private final MergeTable merges;
  private final ConcurrentHashMap<String, int[]> cache = new ConcurrentHashMap<>();

  /**
   * @param byteTokenIds the vocabulary id of the single-byte token of each byte value 0..255
   * @param merges the merge list
   */
  BytePairEncoder(int[] byteTokenIds, MergeTable merges) {
    this.byteTokenIds = byteTokenIds.clone();
    this.merges = merges;
  }

  /** Appends the token ids of the piece {@code text[start..end)} to {@code out}. */
  void encode(String text, int start, int end, IntList out) {
    if (end - start > MAX_CACHED_LENGTH) {
      out.addAll(encodeUncached(text, start, end));
      return;
    }
    String piece = text.substring(start, end);
    int[] ids = cache.get(piece);
    if (ids == null) {
      ids = encodeUncached(text, start, end);
      if (cache.size() >= CACHE_CAPACITY) {
        cache.clear();
      }
      cache.put(piece, ids);
    }
    out.addAll(ids);
  }

  /** Number of pieces in the cache. */
  int cachedPieces() {
    return cache.size();
  }

  private int[] encodeUncached(String text, int start, int end) {
    byte[] utf8 = new byte[3 * (end - start)];
    int n = Utf8.encode(text, start, end, utf8);
    return merge(utf8, n);
  }

  /** BPE of the bytes {@code utf8[0..n)}, n >= 1. */
  private int[] merge(byte[] utf8, int n) {
    // The word as a linked list over positions: a merge keeps its left position, kills the right one.
    int[] symbol = new int[n];
    int[] next = new int[n];
    int[] prev = new int[n];
    for (int i = 0; i < n; i++) {
      symbol[i] = byteTokenIds[utf8[i] & 0xFF];
      next[i] = i + 1;
      prev[i] = i - 1;
    }
    LongHeap heap = new LongHeap(2 * n);
    for (int i = 0; i + 1 < n; i++) {
      pushPair(heap, symbol, i, i + 1);
    }
    int[] touched = new int[n];
    int alive = n;
    while (!heap.isEmpty()) {
      // One round: every occurrence of the lowest-ranked pair, in position order (the heap orders
      // equal ranks by position). No merge of this round can create another occurrence of the same
      // pair (a merged token is longer than both halves), so the round sees exactly the occurrences
      // present when it starts, as Hugging Face's rescan does.
      int rank = (int) (heap.peek() >>> 32);
      int a = merges.left(rank);
      int b = merges.right(rank);
      int touchedCount = 0;
      while (!heap.isEmpty() && (int) (heap.peek() >>> 32) == rank) {
        int pos = (int) heap.pop();
        int right = next[pos];
        // Stale entries (a side was merged or killed since the entry was pushed) fail this check.
        if (symbol[pos] != a || right == n || symbol[right] != b) {
          continue;
        }
        symbol[pos] = merges.merged(rank);
        symbol[right] = DEAD;
        next[pos] = next[right];
        if (next[pos] < n) {
          prev[next[pos]] = pos;
        }
        touched[touchedCount++] = pos;
        alive--;
      }
      // New neighbours are queued only after the round, so that a lower-ranked pair they form cannot
      // interrupt it (possible only with a merge list that uses a token before creating it).
      for (int t = 0; t < touchedCount; t++) {
        int pos = touched[t];
        if (prev[pos] >= 0) {
          pushPair(heap, symbol, prev[pos], pos);
        }
        if (next[pos] < n) {
          pushPair(heap, symbol, pos, next[pos]);
        }
      }
    }
    int[] ids = new int[alive];
    for (int pos = 0, k = 0; pos < n; pos = next[pos]) { // position 0 is never killed
      ids[k++] = symbol[pos];
    }
    return ids;
  }

  private void pushPair(LongHeap heap, int[] symbol, int leftPos, int rightPos) {
    int rank = merges.rank(symbol[leftPos], symbol[rightPos]);
    if (rank >= 0) {
      heap.push(((long) rank << 32) | leftPos);
    }
  }

  /** A binary min-heap of longs (rank in the high half, position in the low half). */
  private static final class LongHeap {
    private long[] items;
    private int size;

    LongHeap(int capacity) {
      items = new long[Math.max(4, capacity)];
    }

    boolean isEmpty() {
      return size == 0;
    }

    long peek() {
      return items[0];
    }

    void push(long item) {
      if (size == items.length) {
        items = Arrays.copyOf(items, size * 2);
      }
      int i = size++;
      while (i > 0) {
        int parent = (i - 1) >>> 1;
        if (items[parent] <= item) {
          break;
        }
        items[i] = items[parent];
        i = parent;
      }
      items[i] = item;
    }

    long pop() {
      long top = items[0];
      long last = items[--size];
      int i = 0;
      while (true) {
        int child = 2 * i + 1;
        if (child >= size) {
          break;
        }
        if (child + 1 < size && items[child + 1] < items[child]) {
          child++;
        }
        if (last <= items[child]) {
          break;
        }
        items[i] = items[child];
        i = child;
      }
      items[i] = last;
      return top;
    }
  }
}
