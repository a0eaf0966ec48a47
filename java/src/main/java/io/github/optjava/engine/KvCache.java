package io.github.optjava.engine;

import io.github.optjava.backend.KvStore;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.Map;

/**
 * The paged KV cache's bookkeeping (PagedAttention style): a fixed pool of blocks of
 * {@code blockSize} token slots in a backend {@link KvStore}, and a block table per sequence that grows
 * one block at a time. Memory use is proportional to the tokens in flight, not to batch × max length;
 * sequences of any lengths share the pool without copies. Not thread-safe: the engine's step loop owns it.
 *
 * <p>Prefix caching (vLLM's automatic prefix caching): full blocks whose tokens the engine {@link #publish}es are
 * indexed by their content, the tokens of the block and of every block before it. When such a block's last holder
 * releases it, it stays indexed, unused but not yet free, until the pool needs it (least recently released first,
 * and within one release the later blocks of a sequence first: a block is useless once the one before it is
 * gone). A new sequence with the same leading tokens {@link #attachPrefix attaches} those blocks instead of
 * computing them again. The cache only appends, so a full block is never written again, whoever holds it.
 */
public final class KvCache implements AutoCloseable {
  private final KvStore store;
  private final ArrayDeque<Integer> free = new ArrayDeque<>();
  private final Map<Long, int[]> tables = new HashMap<>();
  private final Map<Long, Integer> lengths = new HashMap<>();
  private final int[] refs; // sequences holding each block: full blocks can be shared after a fork
  private final boolean ownsStore;
  // Prefix caching. A content id names one token prefix (a block's tokens and all before them), never reused.
  private final long[] contentOf; // per block: the content id of the prefix it ends, 0 when not known
  private final BlockKey[] keyOf;  // per block: its key in the index, null unless the index points to it
  private final Map<BlockKey, Integer> index = new HashMap<>(); // (content before, block tokens) -> block
  private final LinkedHashSet<Integer> cached = new LinkedHashSet<>(); // indexed, no holder: evictable, LRU first
  private long contents;
  private int paddingBlock = -1; // paddingBlock(): taken by a padded decode step, free for sequences (taken last)

  /** A block's content: the content id of the prefix before it (0 at the start) and its own tokens. */
  private record BlockKey(long before, int[] tokens) {
    @Override
    public boolean equals(Object o) {
      return o instanceof BlockKey k && k.before == before && Arrays.equals(k.tokens, tokens);
    }

    @Override
    public int hashCode() {
      return 31 * Long.hashCode(before) + Arrays.hashCode(tokens);
    }
  }

  public KvCache(KvStore store) {
    this.store = store;
    this.ownsStore = true;
    this.refs = new int[store.blocks()];
    this.contentOf = new long[store.blocks()];
    this.keyOf = new BlockKey[store.blocks()];
    for (int b = 0; b < store.blocks(); b++) {
      free.add(b);
    }
  }

  private KvCache(KvStore store, boolean ownsStore) {
    this.store = store;
    this.ownsStore = ownsStore;
    this.refs = new int[store.blocks()];
    this.contentOf = new long[store.blocks()];
    this.keyOf = new BlockKey[store.blocks()];
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

  /**
   * Blocks not held by any sequence (among them the cached prefixes no sequence holds, and the padding block, taken
   * when needed).
   */
  public int freeBlocks() {
    return free.size() + cached.size() + (paddingBlock >= 0 ? 1 : 0);
  }

  /** Blocks that hold a cached prefix and no sequence: free for use, and reusable until used. */
  public int cachedBlocks() {
    return cached.size();
  }

  /**
   * A block for a sequence to write: a never-indexed one first, else the least recently released cached one, else
   * the padding block (it holds nothing between steps; the next padded step takes another or runs unpadded).
   */
  private int allocate() {
    Integer b = free.poll();
    if (b == null && cached.isEmpty() && paddingBlock >= 0) {
      b = paddingBlock;
      paddingBlock = -1;
    } else if (b == null) {
      Iterator<Integer> lru = cached.iterator();
      b = lru.next(); // callers check freeBlocks() first
      lru.remove();
      forget(b);
    }
    refs[b] = 1;
    return b;
  }

  /** Drops {@code block} from the prefix index (it is about to be rewritten or freed). */
  private void forget(int block) {
    if (keyOf[block] != null) {
      index.remove(keyOf[block]);
      keyOf[block] = null;
    }
    contentOf[block] = 0;
  }

  /**
   * A block that belongs to no sequence, for the padding rows of a decode step padded to a bucket size ({@code
   * Ops.decodeBatchBucket}): they write their key and value there and read nothing else. Call it after the step's
   * reservations: what it holds is worth nothing once the step is done, so it still counts as free ({@link
   * #freeBlocks}) and a sequence gets it when no other block is left, instead of being preempted or failing (a
   * request that fits the empty cache must run). Taken from the pool when needed; -1 when no other block is free
   * (the step then runs unpadded).
   */
  public int paddingBlock() {
    if (paddingBlock < 0 && free.size() + cached.size() > 0) {
      paddingBlock = allocate();
    }
    return paddingBlock;
  }

  /** Blocks needed to hold {@code tokens} tokens. */
  public int blocksFor(int tokens) {
    return (tokens + store.blockSize() - 1) / store.blockSize();
  }

  /** Whether {@code seq} (new or existing) could grow to {@code tokens} tokens now. */
  public boolean canHold(long seq, int tokens) {
    int have = tables.getOrDefault(seq, new int[0]).length;
    return blocksFor(tokens) - have <= freeBlocks();
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
      if (need - table.length > freeBlocks()) {
        throw new IllegalStateException("KV cache full: " + (need - table.length) + " blocks needed, "
            + freeBlocks() + " free of " + store.blocks() + "; raise the KV-cache size or lower the batch");
      }
      int old = table.length;
      table = Arrays.copyOf(table, need);
      for (int i = old; i < need; i++) {
        table[i] = allocate();
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

  /**
   * Returns {@code seq}'s blocks to the pool (a shared block when its last holder goes). An indexed block stays
   * cached for {@link #attachPrefix} until the pool needs it.
   */
  public void release(long seq) {
    int[] table = tables.remove(seq);
    lengths.remove(seq);
    if (table != null) {
      for (int i = table.length - 1; i >= 0; i--) { // the last block first: it is evicted first
        drop(table[i]);
      }
    }
  }

  /** One holder fewer for block {@code b}: with none left it is cached (if indexed) or free. */
  private void drop(int b) {
    if (--refs[b] == 0) {
      if (keyOf[b] != null) {
        cached.add(b);
      } else {
        contentOf[b] = 0; // never indexed, or a copy of an indexed block's content
        free.add(b);
      }
    }
  }

  /**
   * Shortens {@code seq} to its first {@code tokens} tokens, giving back the blocks past them: what speculative
   * decoding does with the rows of rejected draft tokens. The slots past {@code tokens} in its last block are
   * written again by its next step (the cache appends at the length).
   */
  public void truncate(long seq, int tokens) {
    int length = length(seq);
    if (tokens < 0 || tokens > length) {
      throw new IllegalArgumentException("cannot truncate sequence " + seq + " of " + length + " tokens to " + tokens);
    }
    int[] table = tables.get(seq);
    int keep = blocksFor(tokens);
    if (tokens % store.blockSize() != 0 && (refs[table[keep - 1]] > 1 || keyOf[table[keep - 1]] != null)) {
      // its slots past tokens would be written again while another sequence or the index relies on them
      throw new IllegalStateException("cannot truncate sequence " + seq + " to " + tokens
          + " tokens: its block there is shared");
    }
    if (keep < table.length) {
      for (int i = table.length - 1; i >= keep; i--) {
        drop(table[i]);
      }
      tables.put(seq, Arrays.copyOf(table, keep));
    }
    lengths.put(seq, tokens);
  }

  /**
   * Indexes the full blocks of {@code seq} not yet indexed, whose tokens are {@code tokens[0 .. length(seq))}
   * (the tokens the sequence fed so far: its KV cache holds exactly those). Call after every step; a block whose
   * content another block already holds (two sequences computed the same prefix at once) stays unindexed.
   */
  public void publish(long seq, int[] tokens) {
    int[] table = tables.get(seq);
    if (table == null) {
      return;
    }
    int size = store.blockSize();
    int full = length(seq) / size;
    if (tokens.length < full * size) {
      throw new IllegalArgumentException("sequence " + seq + " holds " + length(seq) + " tokens but " + tokens.length
          + " were given");
    }
    long before = 0;
    for (int i = 0; i < full; i++) {
      int b = table[i];
      if (contentOf[b] == 0) {
        BlockKey key = new BlockKey(before, Arrays.copyOfRange(tokens, i * size, (i + 1) * size));
        Integer holder = index.get(key);
        if (holder == null) {
          index.put(key, b);
          keyOf[b] = key;
          contentOf[b] = ++contents;
        } else {
          contentOf[b] = contentOf[holder]; // the same content: what follows chains on it
        }
      }
      before = contentOf[b];
    }
  }

  /**
   * Gives {@code seq} (holding nothing) the cached blocks that hold the longest prefix of {@code tokens} within
   * its first {@code maxTokens} tokens, whole blocks only, and records that length: those tokens need no
   * computing. Returns how many tokens it attached (a multiple of the block size, possibly 0).
   */
  public int attachPrefix(long seq, int[] tokens, int maxTokens) {
    if (tables.containsKey(seq) || lengths.containsKey(seq)) {
      throw new IllegalStateException("attach a prefix to sequence " + seq + ", which already holds KV blocks");
    }
    int size = store.blockSize();
    int blocks = Math.min(maxTokens, tokens.length) / size;
    int[] table = new int[blocks];
    int found = 0;
    long before = 0;
    while (found < blocks) {
      Integer b = index.get(new BlockKey(before, Arrays.copyOfRange(tokens, found * size, (found + 1) * size)));
      if (b == null) {
        break;
      }
      if (refs[b]++ == 0) {
        cached.remove(b);
      }
      table[found++] = b;
      before = contentOf[b];
    }
    if (found > 0) {
      tables.put(seq, Arrays.copyOf(table, found));
      lengths.put(seq, found * size);
    }
    return found * size;
  }

  /** Whether {@link #fork} of {@code src} can get the one block it may need now. */
  public boolean canFork(long src) {
    return length(src) % store.blockSize() == 0 || freeBlocks() > 0;
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
        int fresh = allocate();
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
