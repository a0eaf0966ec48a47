package io.github.optjava.model;

import io.github.optjava.backend.KvStore;
import io.github.optjava.backend.Ops;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.engine.KvCache;
import io.github.optjava.parallel.LocalTpGroup;
import io.github.optjava.parallel.Shard;
import io.github.optjava.parallel.TpGroup;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.IntFunction;

/**
 * Tensor parallelism in one process: {@code world} ranks, each an {@link OptModel} slice with its own
 * {@link Ops} and KV store, joined by a {@link LocalTpGroup}, each running on its own thread (every call
 * into a rank's ops comes from that thread). To the engine it is one {@link CausalLm}: the engine keeps one
 * {@link KvCache} (the block tables and lengths; its store is rank 0's), this class reserves the step's
 * blocks in it on the calling thread, then hands each rank a {@link KvCache#rankView} over its own store
 * with the same block tables, so the bookkeeping is identical on every rank and only the calling thread
 * ever mutates it. Every rank computes the same logits (replicated lm_head after the all-reduces); rank
 * 0's are returned.
 */
public final class ParallelOptModel implements CausalLm {
  private final OptConfig config;
  private final List<TpGroup> group;
  private final List<ExecutorService> threads = new ArrayList<>();
  private final List<Ops> ops = new ArrayList<>();
  private final List<OptModel> ranks = new ArrayList<>();
  /** Per cache made by {@link #newCache} (keyed by its store, rank 0's): every rank's store. */
  private final SplitKvStores stores = new SplitKvStores("tensor-parallel model");
  private volatile boolean broken; // a rank failed and the group was aborted

  /**
   * Slices the model over {@code world} ranks; rank r's ops come from {@code opsForRank} (called on
   * rank r's thread), weights converted to {@code weightDtype} (null: as stored). The caller keeps
   * {@code weights}' checkpoint open until this returns.
   *
   * @throws IllegalArgumentException if {@code world} does not divide the heads and the FFN width
   */
  public ParallelOptModel(OptConfig config, OptWeights weights, IntFunction<Ops> opsForRank, DType weightDtype,
      int world) {
    this(config, weights, opsForRank, weightDtype, LocalTpGroup.create(world));
  }

  /**
   * As above over a given group, one member per rank in rank order (on GPUs: {@code NcclTpGroup}s, rank r
   * on device r, with {@code opsForRank} making that device's ops). This model closes the group.
   */
  public ParallelOptModel(OptConfig config, OptWeights weights, IntFunction<Ops> opsForRank, DType weightDtype,
      List<? extends TpGroup> group) {
    int world = group.size();
    Shard.requireDegree(world, config.numAttentionHeads(), config.ffnDim());
    this.config = config;
    this.group = List.copyOf(group);
    try {
      for (int r = 0; r < world; r++) {
        int rank = r;
        threads.add(Executors.newSingleThreadExecutor(task -> {
          Thread t = new Thread(task, "opt-tp-rank-" + rank);
          t.setDaemon(true);
          return t;
        }));
      }
      // One rank at a time (each on its own thread): the checkpoint's readers are not shared across threads.
      for (int r = 0; r < world; r++) {
        int rank = r;
        onRank(rank, () -> {
          Ops o = opsForRank.apply(rank);
          ops.add(o);
          ranks.add(new OptModel(config, weights, o, weightDtype, group.get(rank)));
          return null;
        });
      }
    } catch (RuntimeException | Error e) {
      close();
      throw e;
    }
  }

  public int worldSize() {
    return group.size();
  }

  /** Rank {@code r}'s ops (for memory accounting; call its compute methods only through this model). */
  public Ops rankOps(int r) {
    return ops.get(r);
  }

  /** Every rank's ops, in rank order (their names and element sizes; compute only through this model). */
  public List<Ops> allOps() {
    return List.copyOf(ops);
  }

  /** The least free memory of any rank, each asked on its own thread (a GPU answers for its current device). */
  public long minFreeMemory() {
    return onEveryRank(r -> ops.get(r).freeMemory()).stream().mapToLong(Long::longValue).min().orElseThrow();
  }

  @Override
  public OptConfig config() {
    return config;
  }

  /** Every rank's KV store ({@link OptModel#kvWidth} wide); the cache's store is rank 0's. */
  @Override
  public KvCache newCache(int blocks, int blockSize) {
    KvStore[] s = new KvStore[ranks.size()];
    onEveryRank(r -> {
      OptModel m = ranks.get(r);
      s[r] = ops.get(r).kvStore(config.numHiddenLayers(), blocks, blockSize, m.kvWidth());
      return null;
    });
    return stores.cacheOver(s);
  }

  @Override
  public float[][] forward(List<OptModel.SeqStep> seqs, KvCache cache) {
    KvCache[] views = stores.prepareStep(seqs, cache, config.maxPositionEmbeddings());
    List<float[][]> out = onEveryRank(r -> ranks.get(r).forward(seqs, views[r]));
    return out.get(0);
  }

  @Override
  public void copyBlocks(KvCache cache, int[] src, int[] dst) {
    KvStore[] s = stores.partsOf(cache);
    onEveryRank(r -> {
      ops.get(r).kvCopyBlocks(s[r], src, dst);
      return null;
    });
  }

  private interface RankTask<T> {
    T run(int rank);
  }

  /**
   * Runs {@code task} on every rank's thread at once (the collectives need them all) and waits. When a rank
   * fails, the group is aborted so that the others do not wait for it in a collective, and the model is unusable.
   */
  private <T> List<T> onEveryRank(RankTask<T> task) {
    if (broken) {
      throw new IllegalStateException("a rank of this tensor-parallel model failed earlier and its group was aborted "
          + "(see the first error): close the model and load it again");
    }
    List<java.util.concurrent.CompletableFuture<T>> futures = new ArrayList<>();
    for (int r = 0; r < ranks.size(); r++) {
      int rank = r;
      futures.add(java.util.concurrent.CompletableFuture.supplyAsync(() -> task.run(rank), threads.get(r))
          .whenComplete((v, failure) -> {
            if (failure != null && group.size() > 1) {
              broken = true;
              group.forEach(TpGroup::abort);
            }
          }));
    }
    List<T> out = new ArrayList<>();
    RuntimeException failure = null;
    for (java.util.concurrent.CompletableFuture<T> f : futures) {
      try {
        out.add(await(f));
      } catch (RuntimeException e) {
        if (failure == null) {
          failure = e;
        }
      }
    }
    if (failure != null) {
      throw failure;
    }
    return out;
  }

  private <T> T onRank(int rank, Callable<T> task) {
    return await(threads.get(rank).submit(task));
  }

  private static <T> T await(Future<T> f) {
    return Futures.await(f);
  }

  /** Frees every rank's model, its KV stores other than rank 0's (the cache closes that one), ops and thread. */
  @Override
  public void close() {
    for (int r = 0; r < threads.size(); r++) {
      int rank = r;
      try {
        onRank(rank, () -> {
          if (rank < ranks.size()) {
            ranks.get(rank).close();
          }
          if (rank > 0) {
            for (KvStore[] s : stores.all()) {
              s[rank].close();
            }
          }
          if (rank < ops.size()) {
            ops.get(rank).close();
          }
          return null;
        });
      } catch (RuntimeException e) {
        // keep freeing the other ranks
      }
    }
    threads.forEach(ExecutorService::shutdownNow);
    group.forEach(TpGroup::close);
  }
}
