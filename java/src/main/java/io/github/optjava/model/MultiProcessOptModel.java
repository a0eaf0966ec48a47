package io.github.optjava.model;

import io.github.optjava.backend.KvStore;
import io.github.optjava.engine.KvCache;
import io.github.optjava.parallel.Mesh;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.Supplier;

/**
 * A model spread over the processes of a job (several machines): {@code stages × tp} processes, each a
 * {@link ProcessPart}, this one (job rank 0) the driver. To the engine it is one {@link CausalLm}: the engine
 * keeps the KV cache's bookkeeping here; for each step this class reserves the blocks, sends every worker the
 * step with each sequence's block table ({@link StepWire}), runs its own part (stage 0, rank 0), passes its
 * hidden states to stage 1, and takes the logits from the last stage. The workers ({@link StageWorker}) answer
 * every command; after a failure this class collects the reports that arrive within a few seconds, so the
 * caller usually gets the failing rank's own message; the job is then broken (restart every process).
 *
 * <p>A step's sequences are cut into up to {@code stages} micro-batches that follow each other through the
 * stages (GPipe's schedule, as {@link PipelineOptModel}): while the last stage works on the first, the first
 * already works on the third. Hidden states travel through the part's {@link io.github.optjava.parallel
 * .StageTransport} (TCP through the host, or NCCL send/recv between GPUs); the logits come back over TCP.
 * Own part calls run on one thread of their own (a GPU's ops belong to the thread that made them).
 */
public final class MultiProcessOptModel implements CausalLm {
  private final Mesh mesh;
  private final JobLayout layout;
  private final ExecutorService partThread;
  private final ExecutorService logitsReader = Executors.newSingleThreadExecutor(r -> {
    Thread t = new Thread(r, "opt-mp-logits");
    t.setDaemon(true);
    return t;
  });
  private final ProcessPart part;
  private final long minFreeMemory;
  private static final int REPORT_WAIT_MS = 3000;
  private KvStore store;
  private volatile boolean broken;
  private final StageWorker.AbortOnGiveUp aborter;

  private MultiProcessOptModel(Mesh mesh, JobLayout layout, ExecutorService partThread, ProcessPart part,
      long minFreeMemory, StageWorker.AbortOnGiveUp aborter) {
    this.aborter = aborter;
    this.mesh = mesh;
    this.layout = layout;
    this.partThread = partThread;
    this.part = part;
    this.minFreeMemory = minFreeMemory;
  }

  /**
   * Loads the driver's part (on its own thread) and waits until every worker has loaded its own; gives up on a
   * worker silent for {@code heartbeatSilence} ({@link Mesh#watch}; the same on every process).
   *
   * @throws IllegalStateException naming the rank that failed, after closing the links (the other workers stop)
   */
  public static MultiProcessOptModel drive(Mesh mesh, JobLayout layout, Supplier<ProcessPart> loader,
      java.time.Duration heartbeatSilence) {
    ExecutorService thread = Executors.newSingleThreadExecutor(r -> {
      Thread t = new Thread(r, "opt-mp-driver-part");
      t.setDaemon(true);
      return t;
    });
    ProcessPart part = null;
    StageWorker.AbortOnGiveUp aborter = null;
    try {
      layout.requireWorld(mesh.worldSize());
      mesh.open(layout.links(0)); // every link now, while all processes are starting
      // A worker that stops or whose machine vanishes (no closed link to notice) ends the job within the silence.
      List<Integer> workers = java.util.stream.IntStream.range(1, mesh.worldSize()).boxed().toList();
      mesh.watch(workers, heartbeatSilence);
      part = call(thread, loader::get);
      ProcessPart own = part;
      aborter = new StageWorker.AbortOnGiveUp(own); // a silent worker: end this part's NCCL waits too
      mesh.onGiveUp(aborter::giveUp);
      long free = call(thread, () -> own.ops().freeMemory()); // on its thread: a GPU answers for its current device
      for (int w = 1; w < mesh.worldSize(); w++) {
        free = Math.min(free, StepWire.readAnswer(mesh.link(w, Mesh.Channel.CONTROL), w));
      }
      return new MultiProcessOptModel(mesh, layout, thread, part, free, aborter);
    } catch (RuntimeException | Error e) {
      if (part != null) {
        ProcessPart p = part;
        if (aborter != null) {
          aborter.closing();
        }
        runQuietly(thread, p::close);
      }
      thread.shutdownNow();
      mesh.close();
      throw e;
    }
  }

  /** The least free memory any process reported after loading (sizes the KV cache for all of them). */
  public long minFreeMemory() {
    return minFreeMemory;
  }

  /** The driver's own part's ops (its name and element sizes; compute only through this model). */
  public io.github.optjava.backend.Ops ops() {
    return part.ops();
  }

  /** The most layers a stage holds: every process's KV store is that deep at most. */
  public int maxStageLayers() {
    int layers = part.model().config().numHiddenLayers();
    return (layers + layout.stages() - 1) / layout.stages();
  }

  public JobLayout layout() {
    return layout;
  }

  @Override
  public OptConfig config() {
    return part.model().config();
  }

  /** The job's one KV cache: every process makes its store of the same geometry; the engine keeps the tables. */
  @Override
  public KvCache newCache(int blocks, int blockSize) {
    requireUsable();
    if (store != null) {
      throw new IllegalStateException("a multi-process model keeps one KV cache: close the model to make another");
    }
    broadcast(link -> {
      link.out().writeInt(StepWire.NEW_CACHE);
      link.out().writeInt(blocks);
      link.out().writeInt(blockSize);
    });
    KvStore own = null;
    try {
      own = call(partThread, () -> part.ops().kvStore(part.layers(), blocks, blockSize, part.model().kvWidth()));
      collectAnswers();
    } catch (RuntimeException | Error e) {
      if (own != null) {
        KvStore s = own;
        runQuietly(partThread, s::close);
      }
      throw fail(e);
    }
    store = own;
    return new KvCache(own);
  }

  @Override
  public float[][] forward(List<OptModel.SeqStep> seqs, KvCache cache) {
    requireUsable();
    if (cache.store() != store) {
      throw new IllegalArgumentException("a KV cache this multi-process model did not make: use newCache()");
    }
    Map<Long, Integer> past = new HashMap<>();
    Map<Long, int[]> tables = new HashMap<>();
    for (OptModel.SeqStep q : seqs) {
      int length = cache.length(q.seqId()) + q.newTokens().length;
      if (length > config().maxPositionEmbeddings()) {
        throw new IllegalArgumentException("sequence of " + length + " tokens exceeds the model's "
            + config().maxPositionEmbeddings() + " positions");
      }
      past.put(q.seqId(), cache.length(q.seqId()));
    }
    for (OptModel.SeqStep q : seqs) {
      tables.put(q.seqId(), cache.reserve(q.seqId(), past.get(q.seqId()) + q.newTokens().length).clone());
    }
    StepWire.Step step = new StepWire.Step(seqs, past, tables, StepWire.Step.cut(seqs.size(), layout.stages()));
    try {
      for (int w = 1; w < mesh.worldSize(); w++) {
        StepWire.writeStep(mesh.link(w, Mesh.Channel.CONTROL), step);
      }
      int groups = step.microBatches().length;
      // The last stage's logits are read on their own thread while this part still works on later micro-batches:
      // were they read only afterwards, a full socket buffer could stall the whole pipeline behind them.
      java.util.concurrent.Future<float[][][]> fromLastStage = layout.stages() == 1 ? null
          : logitsReader.submit(() -> {
            float[][][] got = new float[groups][][];
            for (int g = 0; g < groups; g++) {
              got[g] = readLogits(mesh.link(layout.lastStageLeader(), Mesh.Channel.ACTIVATIONS));
            }
            return got;
          });
      KvCache view = cache.rankView(store, past);
      OptModel.StageIo io = part.io();
      float[][][] perGroup = new float[groups][][];
      for (int g = 0; g < groups; g++) {
        List<OptModel.SeqStep> micro = step.microBatch(g);
        float[][] own = call(partThread, () -> part.model().stageForward(micro, view, io));
        perGroup[g] = own; // the logits when this part is also the last stage
      }
      if (fromLastStage != null) {
        perGroup = await(fromLastStage);
      }
      collectAnswers();
      float[][] logits = new float[seqs.size()][];
      int k = 0;
      for (float[][] rows : perGroup) {
        for (float[] row : rows) {
          logits[k++] = row;
        }
      }
      return logits;
    } catch (RuntimeException | Error e) {
      throw fail(e);
    }
  }

  private static float[][] readLogits(Mesh.Link link) {
    int rows;
    try {
      rows = link.in().readInt();
    } catch (IOException e) {
      throw link.failure("receive the logits from", e);
    }
    float[][] out = new float[rows][];
    for (int i = 0; i < rows; i++) {
      out[i] = link.readFloats();
    }
    return out;
  }

  @Override
  public void copyBlocks(KvCache cache, int[] src, int[] dst) {
    requireUsable();
    broadcast(link -> {
      link.out().writeInt(StepWire.COPY_BLOCKS);
      StepWire.writeInts(link.out(), src);
      StepWire.writeInts(link.out(), dst);
    });
    try {
      call(partThread, () -> {
        part.ops().kvCopyBlocks(store, src, dst);
        return null;
      });
      collectAnswers();
    } catch (RuntimeException | Error e) {
      throw fail(e);
    }
  }

  private interface Command {
    void write(Mesh.Link link) throws IOException;
  }

  private void broadcast(Command c) {
    for (int w = 1; w < mesh.worldSize(); w++) {
      Mesh.Link link = mesh.link(w, Mesh.Channel.CONTROL);
      try {
        c.write(link);
        link.flush();
      } catch (IOException e) {
        throw fail(link.failure("send to", e));
      } catch (RuntimeException e) {
        throw fail(e);
      }
    }
  }

  private void collectAnswers() {
    for (int w = 1; w < mesh.worldSize(); w++) {
      StepWire.readAnswer(mesh.link(w, Mesh.Channel.CONTROL), w);
    }
  }

  /**
   * Marks the job broken and gives the most telling error: a worker's own report when one arrives within a few
   * seconds (a worker that failed answers before closing its links, so this side may have seen only a closed
   * link or a neighbour's failure), else {@code e}. Then closes the links: the other workers stop.
   */
  private RuntimeException fail(Throwable e) {
    broken = true;
    RuntimeException result = e instanceof RuntimeException r ? r : new IllegalStateException(e);
    if (!(e instanceof StepWire.WorkerFailedException)) {
      long deadline = System.nanoTime() + REPORT_WAIT_MS * 1_000_000L; // for all workers together
      for (int w = 1; w < mesh.worldSize(); w++) {
        Mesh.Link link = mesh.link(w, Mesh.Channel.CONTROL);
        link.readTimeout((int) Math.max(1, (deadline - System.nanoTime()) / 1_000_000));
        try {
          StepWire.readAnswer(link, w);
        } catch (StepWire.WorkerFailedException reported) {
          reported.addSuppressed(e);
          result = reported;
          break;
        } catch (RuntimeException noReport) {
          // silent, gone, or it had finished its part of the step
        }
      }
    }
    mesh.close(); // the workers see the links close and stop
    return result;
  }

  /** Whether a failure (a worker gone, a link closed) broke the job: every later step fails. */
  @Override
  public boolean broken() {
    return broken || mesh.lost() != null;
  }

  private void requireUsable() {
    if (broken()) {
      throw new IllegalStateException("the multi-process job failed earlier (" + (mesh.lost() != null ? mesh.lost()
          : "see the first error and the other ranks' logs") + "): restart every process");
    }
  }

  /**
   * Runs {@code task} on the part's thread and waits for it, through interrupts (returning early would let the
   * caller free memory the part still uses); the interrupt is kept for the caller.
   */
  private static <T> T call(ExecutorService thread, Callable<T> task) {
    return await(thread.submit(task));
  }

  private static <T> T await(java.util.concurrent.Future<T> f) {
    return Futures.await(f);
  }

  private static void runQuietly(ExecutorService thread, Runnable task) {
    try {
      call(thread, () -> {
        task.run();
        return null;
      });
    } catch (RuntimeException e) {
      // freeing what can be freed
    }
  }

  /** Tells every worker to stop (they free their parts and exit), frees this part and closes the links. */
  @Override
  public void close() {
    mesh.stopWatching(); // the workers stop hearing from this process now: that is the job's end, not a failure
    if (!broken) {
      for (int w = 1; w < mesh.worldSize(); w++) {
        try {
          Mesh.Link link = mesh.link(w, Mesh.Channel.CONTROL);
          link.out().writeInt(StepWire.CLOSE);
          link.flush();
        } catch (IOException | RuntimeException e) {
          // that worker is gone already
        }
      }
    }
    // The engine's KvCache closes the store (it owns it); the part is freed here.
    aborter.closing();
    runQuietly(partThread, part::close);
    partThread.shutdownNow();
    logitsReader.shutdownNow();
    mesh.close();
  }
}
