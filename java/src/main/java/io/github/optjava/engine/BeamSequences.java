package io.github.optjava.engine;

import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.Set;
import java.util.function.LongSupplier;

/**
 * Which KV-cache sequence holds each beam's history, and the cache work when beams are reordered.
 *
 * <p>The prompt is prefilled once into one sequence that every beam shares until the first reorder.
 * On a reorder, the first new beam that continues an old beam takes over its sequence as it is (no
 * copy); every further beam continuing the same old beam gets a fresh sequence id and a copy of all of
 * the parent's blocks ({@code kvCopyBlocks}, one call per step); old beams nobody continues are
 * released first, so the pool never holds more than {@code numBeams} histories.
 *
 * <p>Cost: a fork copies the whole history, shared prefix included. Sharing full blocks would need
 * reference-counted blocks in {@link KvCache} (then only the last, partial block is copied, as vLLM
 * does); the copy keeps {@link KvCache} simple and is small next to a decoding step for short outputs.
 */
final class BeamSequences {

  /** Copies whole KV blocks, all layers: block {@code src[i]} → {@code dst[i]}. */
  @FunctionalInterface
  interface BlockCopier {
    void copy(KvCache cache, int[] src, int[] dst);
  }

  private final KvCache cache;
  private final BlockCopier copier;
  private final LongSupplier ids;
  /** Every sequence id this search holds blocks for (or may: a fresh id before its first reserve). */
  private final Set<Long> held = new LinkedHashSet<>();
  private long[] seqOf;

  BeamSequences(KvCache cache, BlockCopier copier, LongSupplier ids, int numBeams) {
    this.cache = cache;
    this.copier = copier;
    this.ids = ids;
    this.seqOf = new long[numBeams];
  }

  /** Takes a fresh id for the prompt, shared by every beam; returns it. */
  long start() {
    long seq = fresh();
    Arrays.fill(seqOf, seq);
    return seq;
  }

  /** The sequence holding beam {@code beam}'s history. */
  long seq(int beam) {
    return seqOf[beam];
  }

  /**
   * Makes new beam {@code i} continue old beam {@code parent[i]}: afterwards {@link #seq(int) seq(i)}
   * holds exactly the cache contents old beam {@code parent[i]} had.
   */
  void reorder(int[] parent) {
    Set<Long> continued = new HashSet<>();
    for (int p : parent) {
      continued.add(seqOf[p]);
    }
    // Free the abandoned histories before forking, so the pool's peak stays numBeams histories.
    for (long seq : seqOf) {
      if (!continued.contains(seq) && held.remove(seq)) {
        cache.release(seq);
      }
    }
    long[] next = new long[parent.length];
    Set<Long> claimed = new HashSet<>();
    int[] src = new int[0];
    int[] dst = new int[0];
    for (int i = 0; i < parent.length; i++) {
      long from = seqOf[parent[i]];
      if (claimed.add(from)) {
        next[i] = from;
        continue;
      }
      long child = fresh();
      int[] fromTable = cache.table(from);
      int[] childTable = cache.reserve(child, cache.length(from));
      int n = Math.min(fromTable.length, childTable.length);
      src = append(src, fromTable, n);
      dst = append(dst, childTable, n);
      next[i] = child;
    }
    if (src.length > 0) {
      copier.copy(cache, src, dst);
    }
    seqOf = next;
  }

  /** Releases every sequence this search used; safe to call at any point, and twice. */
  void releaseAll() {
    for (long seq : held) {
      cache.release(seq);
    }
    held.clear();
  }

  private long fresh() {
    long seq = ids.getAsLong();
    if (held.contains(seq) || cache.length(seq) != 0 || cache.table(seq).length != 0) {
      throw new IllegalStateException("sequence id " + seq + " from the id supplier is already in use in the"
          + " KV cache; the supplier must hand out ids no other sequence holds");
    }
    held.add(seq);
    return seq;
  }

  private static int[] append(int[] to, int[] from, int n) {
    int[] out = Arrays.copyOf(to, to.length + n);
    System.arraycopy(from, 0, out, to.length, n);
    return out;
  }
}
