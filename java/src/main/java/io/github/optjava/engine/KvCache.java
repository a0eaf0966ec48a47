package io.github.optjava.engine;

import io.github.optjava.backend.KvStore;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * The paged KV cache's bookkeeping (PagedAttention style): a fixed pool of blocks of
 * {@code blockSize} token slots in a backend {@link KvStore}, and a block table per sequence that grows
 * one block at a time. Memory use is proportional to the tokens in flight, not to batch × max length;
 * sequences of any lengths share the pool without copies. Not thread-safe: the engine's step loop owns it.
 */
public final class KvCache implements AutoCloseable {
  private final KvStore store;
  private final ArrayDeque<Integer> free = new ArrayDeque<>();
  private final Map<Long, int[]> tables = new HashMap<>();
  private final Map<Long, Integer> lengths = new HashMap<>();
  private final int[] refs; // sequences holding each block: full blocks can be shared after a fork
  private final boolean ownsStore;

  public KvCache(KvStore store) {
    this.store = store;
    this.ownsStore = true;
    this.refs = new int[store.blocks()];
    for (int b = 0; b < store.blocks(); b++) {
      free.add(b);
    }
  }

  private KvCache(KvStore store, boolean ownsStore) {
    this.store = store;
    this.ownsStore = ownsStore;
    this.refs = new int[store.blocks()];
  }

  /**
   * A view of this cache's bookkeeping over another store of the same geometry, for one tensor-parallel
   * rank: it holds the block tables that the sequences in {@code lengths} have now, with the given lengths,
   * and no free blocks, so reserve in this cache (on the thread that owns it) before handing views to the
   * ranks. Every rank thus reads and writes its own store through the same block tables. A view is private
   * to its rank (no state shared with this cache); closing it leaves the store open.
   */
  public KvCache rankView(KvStore rankStore, Map<Long, Integer> lengths) {
    if (rankStore.blocks() != store.blocks() || rankStore.blockSize() != store.blockSize()) {
      throw new IllegalArgumentException("a rank's KV store of " + rankStore.blocks() + " blocks of "
          + rankStore.blockSize() + " tokens does not match the cache's " + store.blocks() + " of " + store.blockSize());
    }
    KvCache view = new KvCache(rankStore, false);
    for (Map.Entry<Long, Integer> e : lengths.entrySet()) {
      int[] table = tables.get(e.getKey());
      if (table != null) {
        view.tables.put(e.getKey(), table.clone());
      }
      if (e.getValue() > 0) {
        view.lengths.put(e.getKey(), e.getValue());
      }
    }
    return view;
  }

  /**
   * A view over {@code rankStore} holding exactly the given block tables and lengths, with no free blocks: what
   * a worker process of a multi-process model gets from the driver's bookkeeping for one step (as
   * {@link #rankView}, built from the tables sent over the wire).
   */
  public static KvCache viewOf(KvStore rankStore, Map<Long, int[]> tables, Map<Long, Integer> lengths) {
    KvCache view = new KvCache(rankStore, false);
    for (Map.Entry<Long, int[]> e : tables.entrySet()) {
      for (int b : e.getValue()) {
        if (b < 0 || b >= rankStore.blocks()) {
          throw new IllegalArgumentException("block " + b + " of sequence " + e.getKey() + " is outside the store's "
              + rankStore.blocks() + " blocks");
        }
      }
      view.tables.put(e.getKey(), e.getValue().clone());
    }
    for (Map.Entry<Long, Integer> e : lengths.entrySet()) {
      if (e.getValue() > 0) {
        view.lengths.put(e.getKey(), e.getValue());
      }
    }
    return view;
  }

  public KvStore store() {
    return store;
  }

  public int blockSize() {
    return store.blockSize();
  }

  /** Blocks not held by any sequence. */
  public int freeBlocks() {
    return free.size();
  }

  /** Blocks needed to hold {@code tokens} tokens. */
  public int blocksFor(int tokens) {
    return (tokens + store.blockSize() - 1) / store.blockSize();
  }

  /** Whether {@code seq} (new or existing) could grow to {@code tokens} tokens now. */
  public boolean canHold(long seq, int tokens) {
    int have = tables.getOrDefault(seq, new int[0]).length;
    return blocksFor(tokens) - have <= free.size();
  }

  /**
   * Grows {@code seq}'s block table to hold {@code tokens} tokens and records that length.
   *
   * @throws IllegalStateException if the pool has too few free blocks (check {@link #canHold} first)
   */
  public int[] reserve(long seq, int tokens) {
    int[] table = tables.getOrDefault(seq, new int[0]);
    int need = blocksFor(tokens);
    if (need > table.length) {
      if (need - table.length > free.size()) {
        throw new IllegalStateException("KV cache full: " + (need - table.length) + " blocks needed, "
            + free.size() + " free of " + store.blocks() + "; raise the KV-cache size or lower the batch");
      }
      int old = table.length;
      table = Arrays.copyOf(table, need);
      for (int i = old; i < need; i++) {
        table[i] = free.poll();
        refs[table[i]] = 1;
      }
      tables.put(seq, table);
    }
    lengths.put(seq, Math.max(tokens, lengths.getOrDefault(seq, 0)));
    return table;
  }

  /** The block table of {@code seq} (empty if it holds nothing). */
  public int[] table(long seq) {
    return tables.getOrDefault(seq, new int[0]);
  }

  /** Tokens currently cached for {@code seq}. */
  public int length(long seq) {
    return lengths.getOrDefault(seq, 0);
  }

  /** Returns {@code seq}'s blocks to the pool (a block shared after a {@link #fork} when its last holder goes). */
  public void release(long seq) {
    int[] table = tables.remove(seq);
    lengths.remove(seq);
    if (table != null) {
      for (int b : table) {
        if (--refs[b] == 0) {
          free.add(b);
        }
      }
    }
  }

  /** Whether {@link #fork} of {@code src} can get the one block it may need now. */
  public boolean canFork(long src) {
    return length(src) % store.blockSize() == 0 || !free.isEmpty();
  }

  /**
   * Gives {@code dst} (holding nothing) what {@code src} holds, without recomputing it: {@code dst} shares
   * src's full blocks (never written again: the cache only appends) and gets a fresh block for src's
   * partially filled last one, whose contents the caller copies ({@code Ops.kvCopyBlocks}) before either
   * sequence appends. The prompt of {@code n} completions is thus prefilled once.
   *
   * @return {@code {srcBlock, dstBlock}} to copy, or an empty array when src ends on a block boundary
   * @throws IllegalStateException if dst holds blocks or no block is free for the copy ({@link #canFork})
   */
  public int[] fork(long src, long dst) {
    if (tables.containsKey(dst) || lengths.containsKey(dst)) {
      throw new IllegalStateException("fork into sequence " + dst + ", which already holds KV blocks");
    }
    if (!canFork(src)) {
      throw new IllegalStateException("KV cache full: no block free for the fork of sequence " + src);
    }
    int[] table = tables.getOrDefault(src, new int[0]).clone();
    int length = length(src);
    int[] copy = new int[0];
    for (int i = 0; i < table.length; i++) {
      boolean partial = i == table.length - 1 && length % store.blockSize() != 0;
      if (partial) {
        int fresh = free.poll();
        refs[fresh] = 1;
        copy = new int[] {table[i], fresh};
        table[i] = fresh;
      } else {
        refs[table[i]]++;
      }
    }
    tables.put(dst, table);
    lengths.put(dst, length);
    return copy;
  }

  @Override
  public void close() {
    if (ownsStore) {
      store.close();
    }
  }
}
