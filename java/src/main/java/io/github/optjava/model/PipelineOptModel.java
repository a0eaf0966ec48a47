package io.github.optjava.model;

import io.github.optjava.backend.KvStore;
import io.github.optjava.backend.Ops;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.engine.KvCache;
import io.github.optjava.parallel.LocalTpGroup;
import io.github.optjava.parallel.TpGroup;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.IntFunction;

/**
 * Pipeline parallelism in one process, optionally with tensor parallelism inside every stage: the layers
 * split into {@code stages} consecutive groups ({@link OptModel.Stage}), and each stage is sliced over
 * {@code tp} ranks ({@link TpGroup}, Megatron style). Every (stage, rank) part is an {@link OptModel} with its
 * own {@link Ops}, KV store and thread (on GPUs: its own device). The first stage embeds the tokens, each
 * stage hands its hidden states to the next, the last one computes the logits.
 *
 * <p>Micro-batches keep the stages busy together: a step's sequences are cut into up to {@code stages}
 * groups and group {@code m} enters stage {@code s} as soon as stage {@code s - 1} has finished it, so while
 * the last stage works on group 0 the first already works on group 2 (GPipe's schedule, for inference). With
 * one sequence there is nothing to overlap: then a pipeline only spreads the memory.
 *
 * <p>Inside a stage all ranks run the same micro-batch at once (their collectives need each other); a
 * stage's work is handed to all of its rank threads under one lock, so every rank sees the micro-batches in
 * the same order. After the stage's all-reduces every rank holds the same hidden states; rank 0's go on.
 *
 * <p>The KV cache: as {@link ParallelOptModel}, the engine keeps one {@link KvCache} (the bookkeeping, its
 * store is part 0's); this class reserves the step's blocks there, then each part reads and writes its own
 * store (its layers, its heads) through a {@link KvCache#rankView} with the same block tables. Hidden states
 * pass between stages through the host ({@code float[]}, tokens × hidden per step: small next to the weights
 * a stage reads); across processes ({@link MultiProcessOptModel}) they travel over TCP the same way.
 *
 * <p>When a rank fails in a step, its stage's groups are aborted ({@link TpGroup#abort}: peers waiting in a
 * collective stop at once) and the model refuses further steps.
 */
public final class PipelineOptModel implements CausalLm {
  /** Makes the ops of one part, called on that part's thread. */
  @FunctionalInterface
  public interface PartOps {
    Ops make(int stage, int rank);
  }

  /** One (stage, rank): its thread, ops and model slice. */
  private static final class Part {
    final int stage;
    final int rank;
    final ExecutorService thread;
    Ops ops;
    OptModel model;

    Part(int stage, int rank) {
      this.stage = stage;
      this.rank = rank;
      this.thread = Executors.newSingleThreadExecutor(task -> {
        Thread t = new Thread(task, "opt-pp-stage-" + stage + "-rank-" + rank);
        t.setDaemon(true);
        return t;
      });
    }
  }

  private final OptConfig config;
  private final int stageCount;
  private int tp = 1; // set once the groups are known; read by close() on a failed construction
  private final List<Part> parts = new ArrayList<>(); // stage-major: part (s, r) at s * tp + r
  private final List<TpGroup> groups = new ArrayList<>(); // in the same order
  private final Object[] stageLocks;
  private final SplitKvStores stores = new SplitKvStores("pipeline");
  private volatile boolean broken; // a rank failed and its stage's groups were aborted: no step can run again

  /**
   * Splits the model into {@code count} stages without tensor parallelism; stage s's ops come from
   * {@code opsForStage} (called on its thread). The caller keeps {@code weights}' checkpoint open until this
   * returns.
   *
   * @throws IllegalArgumentException if {@code count} is not between 1 and the number of layers
   */
  public PipelineOptModel(OptConfig config, OptWeights weights, IntFunction<Ops> opsForStage, DType weightDtype,
      int count) {
    this(config, weights, (s, r) -> opsForStage.apply(s), weightDtype, count, s -> List.of(TpGroup.single()));
  }

  /**
   * {@code stages} stages of {@code tp} in-process ranks each ({@link LocalTpGroup}s: the CPU), part
   * (s, r)'s ops from {@code ops}.
   *
   * @throws IllegalArgumentException if {@code stages} is not between 1 and the number of layers, or
   *     {@code tp} does not divide the heads and the FFN width
   */
  public static PipelineOptModel local(OptConfig config, OptWeights weights, PartOps ops, DType weightDtype,
      int stages, int tp) {
    io.github.optjava.parallel.Shard.requireDegree(tp, config.numAttentionHeads(), config.ffnDim());
    return new PipelineOptModel(config, weights, ops, weightDtype, stages, s -> LocalTpGroup.create(tp));
  }

  /**
   * {@code stages} stages; stage s's ranks joined by {@code groupForStage.apply(s)} (one member per rank, in
   * rank order; every stage the same size; on GPUs {@code NcclTpGroup}s over that stage's devices). This model
   * closes the groups. The weights are read one part at a time: the caller keeps {@code weights}' checkpoint
   * open until this returns.
   *
   * @throws IllegalArgumentException if {@code stages} is not between 1 and the number of layers, or the
   *     group size does not divide the heads and the FFN width
   */
  public PipelineOptModel(OptConfig config, OptWeights weights, PartOps opsFor, DType weightDtype, int stages,
      IntFunction<List<? extends TpGroup>> groupForStage) {
    OptModel.Stage.of(0, stages, config); // validates the stage count
    this.config = config;
    this.stageCount = stages;
    this.stageLocks = new Object[stages];
    int width = -1;
    try {
      for (int s = 0; s < stages; s++) {
        stageLocks[s] = new Object();
        List<? extends TpGroup> g = groupForStage.apply(s);
        groups.addAll(g); // closed by close() even when refused just below
        if (width >= 0 && g.size() != width) {
          throw new IllegalArgumentException("every pipeline stage needs the same tensor-parallel degree: stage " + s
              + " has " + g.size() + ", stage 0 " + width);
        }
        width = g.size();
        for (int r = 0; r < g.size(); r++) {
          parts.add(new Part(s, r));
        }
      }
      this.tp = width;
      io.github.optjava.parallel.Shard.requireDegree(tp, config.numAttentionHeads(), config.ffnDim());
      for (Part p : parts) { // one at a time: the checkpoint's readers are not shared across threads
        join(CompletableFuture.runAsync(() -> {
          p.ops = opsFor.make(p.stage, p.rank);
          p.model = new OptModel(config, weights, p.ops, weightDtype, groups.get(index(p)),
              OptModel.Stage.of(p.stage, stages, config));
        }, p.thread));
      }
    } catch (RuntimeException | Error e) {
      close();
      throw e;
    }
  }

  private int index(Part p) {
    return p.stage * tp + p.rank;
  }

  public int stageCount() {
    return stageCount;
  }

  /** The tensor-parallel degree inside each stage. */
  public int tensorParallel() {
    return tp;
  }

  /** Stage {@code s}'s ops (its rank 0's; for memory accounting: compute only through this model). */
  public Ops stageOps(int s) {
    return parts.get(s * tp).ops;
  }

  /** Every part's ops, stage-major (their names and element sizes; compute only through this model). */
  public List<Ops> allOps() {
    return parts.stream().map(p -> p.ops).toList();
  }

  /** The least free memory of any part, each asked on its own thread (a GPU answers for its current device). */
  public long minFreeMemory() {
    long min = Long.MAX_VALUE;
    for (Part p : parts) {
      min = Math.min(min, join(CompletableFuture.supplyAsync(p.ops::freeMemory, p.thread)));
    }
    return min;
  }

  /** The most layers any stage holds (its KV store's depth). */
  public int maxStageLayers() {
    return parts.stream().mapToInt(p -> p.model.stage().endLayer() - p.model.stage().firstLayer()).max().orElse(0);
  }

  @Override
  public OptConfig config() {
    return config;
  }

  /** Every part's KV store (its layers, its heads); the cache's store is part 0's. */
  @Override
  public KvCache newCache(int blocks, int blockSize) {
    KvStore[] s = new KvStore[parts.size()];
    try {
      for (Part p : parts) {
        s[index(p)] = join(CompletableFuture.supplyAsync(() -> p.ops.kvStore(
            p.model.stage().endLayer() - p.model.stage().firstLayer(), blocks, blockSize, p.model.kvWidth()), p.thread));
      }
    } catch (RuntimeException | Error e) { // the stores already made would leak
      for (KvStore made : s) {
        if (made != null) {
          made.close();
        }
      }
      throw e;
    }
    return stores.cacheOver(s);
  }

  @Override
  public float[][] forward(List<OptModel.SeqStep> seqs, KvCache cache) {
    if (broken) {
      throw new IllegalStateException("a tensor-parallel rank of this pipeline failed earlier and its group was "
          + "aborted (see the first error): close the model and load it again");
    }
    KvCache[] views = stores.prepareStep(seqs, cache, config.maxPositionEmbeddings());
    // Micro-batches: consecutive groups of sequences, each through every stage in order.
    int microBatches = Math.min(stageCount, seqs.size());
    List<CompletableFuture<float[][]>> results = new ArrayList<>();
    for (int g = 0; g < microBatches; g++) {
      List<OptModel.SeqStep> part = seqs.subList(g * seqs.size() / microBatches,
          (g + 1) * seqs.size() / microBatches);
      CompletableFuture<OptModel.StageOutput> flow = CompletableFuture.completedFuture(null);
      for (int s = 0; s < stageCount; s++) {
        int stage = s;
        flow = flow.thenCompose(prev -> runStage(stage, part, views, prev == null ? null : prev.hidden()));
      }
      results.add(flow.thenApply(OptModel.StageOutput::logits));
    }
    // Every micro-batch finishes (or fails) before this returns or throws: none still writes the KV cache
    // when the next step starts.
    try {
      CompletableFuture.allOf(results.toArray(new CompletableFuture<?>[0])).join();
    } catch (CompletionException e) {
      // reported below, by the first micro-batch that failed
    }
    float[][] out = new float[seqs.size()][];
    int k = 0;
    for (CompletableFuture<float[][]> r : results) {
      for (float[] row : join(r)) {
        out[k++] = row;
      }
    }
    return out;
  }

  /** Runs one micro-batch through every rank of a stage at once; rank 0's output (all ranks agree) goes on. */
  private CompletableFuture<OptModel.StageOutput> runStage(int stage, List<OptModel.SeqStep> seqs, KvCache[] views,
      float[] hiddenIn) {
    List<CompletableFuture<OptModel.StageOutput>> ranks = new ArrayList<>(tp);
    synchronized (stageLocks[stage]) { // every rank thread gets the micro-batches in the same order
      for (int r = 0; r < tp; r++) {
        Part p = parts.get(stage * tp + r);
        ranks.add(CompletableFuture.supplyAsync(() -> p.model.stageForward(seqs, views[index(p)], hiddenIn),
            p.thread).whenComplete((out, failure) -> {
              if (failure != null && tp > 1) { // its peers may wait for it in a collective: wake them
                broken = true;
                for (int r2 = 0; r2 < tp; r2++) {
                  groups.get(stage * tp + r2).abort();
                }
              }
            }));
      }
    }
    return CompletableFuture.allOf(ranks.toArray(new CompletableFuture<?>[0])).thenApply(v -> ranks.get(0).join());
  }

  @Override
  public void copyBlocks(KvCache cache, int[] src, int[] dst) {
    KvStore[] s = stores.partsOf(cache);
    List<CompletableFuture<Void>> done = new ArrayList<>();
    for (Part p : parts) {
      done.add(CompletableFuture.runAsync(() -> p.ops.kvCopyBlocks(s[index(p)], src, dst), p.thread));
    }
    done.forEach(PipelineOptModel::join);
  }

  /** The result, with a failure on a part's thread rethrown as it was. */
  private static <T> T join(CompletableFuture<T> f) {
    try {
      return f.join();
    } catch (CompletionException e) {
      if (e.getCause() instanceof RuntimeException r) {
        throw r;
      }
      if (e.getCause() instanceof Error err) {
        throw err;
      }
      throw e;
    }
  }

  /** Frees every part's model, its KV stores other than part 0's (the cache closes that one), ops and thread. */
  @Override
  public void close() {
    for (Part p : parts) {
      try {
        join(CompletableFuture.runAsync(() -> { // each part's memory freed on its own thread (its device)
          if (p.model != null) {
            p.model.close();
          }
          if (index(p) > 0) {
            for (KvStore[] s : stores.all()) {
              s[index(p)].close();
            }
          }
          if (p.ops != null) {
            p.ops.close();
          }
        }, p.thread));
      } catch (RuntimeException e) {
        // keep freeing the other parts
      }
    }
    parts.forEach(p -> p.thread.shutdownNow());
    groups.forEach(TpGroup::close);
  }
}
