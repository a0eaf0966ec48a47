package io.github.optjava.model;

import io.github.optjava.backend.KvStore;
import io.github.optjava.backend.Ops;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.engine.KvCache;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.IntFunction;

/**
 * Pipeline parallelism in one process: the layers split into {@code stages} consecutive groups
 * ({@link OptModel.Stage}), each an {@link OptModel} with its own {@link Ops} and KV store on its own thread
 * (on GPUs: its own device). The first stage embeds the tokens, each stage hands its hidden states to the
 * next, the last one computes the logits.
 *
 * <p>Micro-batches keep the stages busy together: a step's sequences are cut into up to {@code stages}
 * groups and group {@code m} enters stage {@code s} as soon as stage {@code s - 1} has finished it, so while
 * the last stage works on group 0 the first already works on group 2 (GPipe's schedule, for inference). With
 * one sequence there is nothing to overlap: then a pipeline only spreads the memory.
 *
 * <p>The KV cache: as {@link ParallelOptModel}, the engine keeps one {@link KvCache} (the bookkeeping, its
 * store is stage 0's); this class reserves the step's blocks there, then each stage reads and writes its own
 * store (its layers only) through a {@link KvCache#rankView} with the same block tables. Hidden states pass
 * between stages through the host ({@code float[]}); a multi-GPU pipeline would use NCCL send/recv instead.
 */
public final class PipelineOptModel implements CausalLm {
  private final OptConfig config;
  private final List<ExecutorService> threads = new ArrayList<>();
  private final List<Ops> ops = new ArrayList<>();
  private final List<OptModel> stages = new ArrayList<>();
  private final SplitKvStores stores = new SplitKvStores("pipeline");

  /**
   * Splits the model into {@code count} stages; stage s's ops come from {@code opsForStage} (called on its
   * thread). The caller keeps {@code weights}' checkpoint open until this returns.
   *
   * @throws IllegalArgumentException if {@code count} is not between 1 and the number of layers
   */
  public PipelineOptModel(OptConfig config, OptWeights weights, IntFunction<Ops> opsForStage, DType weightDtype,
      int count) {
    OptModel.Stage.of(0, count, config); // validates count
    this.config = config;
    try {
      for (int s = 0; s < count; s++) {
        int index = s;
        threads.add(Executors.newSingleThreadExecutor(task -> {
          Thread t = new Thread(task, "opt-pp-stage-" + index);
          t.setDaemon(true);
          return t;
        }));
      }
      for (int s = 0; s < count; s++) { // one at a time: the checkpoint's readers are not shared across threads
        int index = s;
        join(CompletableFuture.runAsync(() -> {
          Ops o = opsForStage.apply(index);
          ops.add(o);
          stages.add(new OptModel(config, weights, o, weightDtype, io.github.optjava.parallel.TpGroup.single(),
              OptModel.Stage.of(index, count, config)));
        }, threads.get(index)));
      }
    } catch (RuntimeException | Error e) {
      close();
      throw e;
    }
  }

  public int stageCount() {
    return stages.size();
  }

  /** Stage {@code s}'s ops (for memory accounting; compute only through this model). */
  public Ops stageOps(int s) {
    return ops.get(s);
  }

  @Override
  public OptConfig config() {
    return config;
  }

  /** Every stage's KV store (its layers); the cache's store is stage 0's. */
  @Override
  public KvCache newCache(int blocks, int blockSize) {
    KvStore[] s = new KvStore[stages.size()];
    for (int i = 0; i < s.length; i++) {
      int index = i;
      try {
        s[i] = join(CompletableFuture.supplyAsync(() -> {
          OptModel m = stages.get(index);
          return ops.get(index).kvStore(m.stage().endLayer() - m.stage().firstLayer(), blocks, blockSize,
              m.kvWidth());
        }, threads.get(i)));
      } catch (RuntimeException | Error e) { // the stores already made would leak
        for (int j = 0; j < i; j++) {
          s[j].close();
        }
        throw e;
      }
    }
    return stores.cacheOver(s);
  }

  @Override
  public float[][] forward(List<OptModel.SeqStep> seqs, KvCache cache) {
    KvCache[] views = stores.prepareStep(seqs, cache, config.maxPositionEmbeddings());
    // Micro-batches: consecutive groups of sequences, each through every stage in order.
    int groups = Math.min(stages.size(), seqs.size());
    List<CompletableFuture<float[][]>> results = new ArrayList<>();
    for (int g = 0; g < groups; g++) {
      List<OptModel.SeqStep> part = seqs.subList(g * seqs.size() / groups, (g + 1) * seqs.size() / groups);
      CompletableFuture<OptModel.StageOutput> flow = CompletableFuture.completedFuture(null);
      for (int i = 0; i < stages.size(); i++) {
        int index = i;
        flow = flow.thenApplyAsync(prev -> stages.get(index).stageForward(part, views[index],
            prev == null ? null : prev.hidden()), threads.get(i));
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
    List<float[][]> parts = new ArrayList<>();
    for (CompletableFuture<float[][]> r : results) {
      parts.add(join(r));
    }
    float[][] out = new float[seqs.size()][];
    int k = 0;
    for (float[][] p : parts) {
      for (float[] row : p) {
        out[k++] = row;
      }
    }
    return out;
  }

  @Override
  public void copyBlocks(KvCache cache, int[] src, int[] dst) {
    KvStore[] s = stores.partsOf(cache);
    List<CompletableFuture<Void>> done = new ArrayList<>();
    for (int i = 0; i < s.length; i++) {
      int index = i;
      done.add(CompletableFuture.runAsync(() -> ops.get(index).kvCopyBlocks(s[index], src, dst), threads.get(i)));
    }
    done.forEach(PipelineOptModel::join);
  }

  /** The result, with a failure on a stage thread rethrown as it was. */
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

  @Override
  public void close() {
    for (int i = 0; i < threads.size(); i++) {
      int index = i;
      try {
        join(CompletableFuture.runAsync(() -> { // each stage's memory freed on its own thread (its device)
          if (index < stages.size()) {
            stages.get(index).close();
          }
          if (index > 0) { // stage 0's store belongs to the engine's KvCache, which closes it
            for (KvStore[] s : stores.all()) {
              s[index].close();
            }
          }
          if (index < ops.size()) {
            ops.get(index).close();
          }
        }, threads.get(i)));
      } catch (RuntimeException e) {
        // keep freeing the other stages
      }
    }
    threads.forEach(ExecutorService::shutdownNow);
  }
}
