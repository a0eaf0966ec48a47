package io.github.optjava.model;

import io.github.optjava.backend.KvStore;
import io.github.optjava.engine.KvCache;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * The KV-cache bookkeeping shared by the models that run over several ops at once ({@link ParallelOptModel}'s
 * ranks, {@link PipelineOptModel}'s stages): the engine holds ONE {@link KvCache} whose store is part 0's;
 * this class remembers every part's store for it, and before a step reserves the step's blocks in that cache
 * on the calling thread, then hands each part a {@link KvCache#rankView} over its own store with the same
 * block tables, so that only the calling thread ever changes the bookkeeping.
 */
final class SplitKvStores {
  private final String owner; // for messages: "tensor-parallel model", "pipeline"
  private final Map<KvStore, KvStore[]> stores = new IdentityHashMap<>();

  SplitKvStores(String owner) {
    this.owner = owner;
  }

  /** Registers the parts' stores and returns the engine's cache over part 0's. */
  synchronized KvCache cacheOver(KvStore[] parts) {
    stores.put(parts[0], parts);
    return new KvCache(parts[0]);
  }

  /** Every registered cache's stores (for closing them). */
  synchronized List<KvStore[]> all() {
    return List.copyOf(stores.values());
  }

  /**
   * Checks the step's lengths, reserves its blocks in {@code cache}, and returns one view per part.
   *
   * @throws IllegalArgumentException for a cache this model did not make, or a sequence past the positions
   */
  KvCache[] prepareStep(List<OptModel.SeqStep> seqs, KvCache cache, int maxPositions) {
    KvStore[] parts = partsOf(cache);
    Map<Long, Integer> past = new HashMap<>();
    for (OptModel.SeqStep q : seqs) {
      int length = cache.length(q.seqId()) + q.newTokens().length;
      if (length > maxPositions) {
        throw new IllegalArgumentException("sequence of " + length + " tokens exceeds the model's " + maxPositions
            + " positions");
      }
      past.put(q.seqId(), cache.length(q.seqId()));
    }
    for (OptModel.SeqStep q : seqs) { // on this thread, before any part runs: the parts never grow a table
      cache.reserve(q.seqId(), past.get(q.seqId()) + q.newTokens().length);
    }
    KvCache[] views = new KvCache[parts.length];
    for (int i = 0; i < parts.length; i++) {
      views[i] = cache.rankView(parts[i], past);
    }
    return views;
  }

  /** The stores of a cache made by {@link #cacheOver}. */
  KvStore[] partsOf(KvCache cache) {
    KvStore[] parts;
    synchronized (this) {
      parts = stores.get(cache.store());
    }
    if (parts == null) {
      throw new IllegalArgumentException("a KV cache this " + owner + " did not make: use newCache()");
    }
    return parts;
  }
}
