package io.github.optjava.model;

import io.github.optjava.backend.KvStore;
import io.github.optjava.engine.KvCache;
import io.github.optjava.parallel.Mesh;
import java.io.IOException;
import java.time.Duration;
import java.util.List;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A process of a multi-process model other than the driver: loads its part, then runs the driver's commands
 * ({@link StepWire}) until the driver closes the model. For a step it takes the previous stage's hidden states
 * (stage 0 embeds the tokens itself), runs its layers with its stage's other ranks, and (as its stage's rank 0)
 * hands the result on: hidden states to every rank of the next stage, or the logits to the driver. Every
 * command but CLOSE is answered, failures with their message; after a failure the worker aborts its stage's
 * group (a peer waiting in NCCL would wait forever) and closes its links, so that the ranks waiting on it fail at
 * once, and returns by throwing. A rank stuck in a collective of another process cannot be woken from here:
 * launchers end the whole job when one process exits with an error (srun --kill-on-bad-exit, mpirun).
 */
public final class StageWorker {
  private static final Logger LOG = LoggerFactory.getLogger(StageWorker.class);

  private StageWorker() {}

  /**
   * Serves until the driver closes the model (returns normally) or something fails (throws, after telling
   * the driver), giving up on a driver silent for {@code heartbeatSilence} ({@link Mesh#watch}; the same on every
   * process). Closes the part and the mesh either way.
   */
  public static void serve(Mesh mesh, JobLayout layout, Supplier<ProcessPart> loader, Duration heartbeatSilence) {
    Mesh.Link control;
    try {
      mesh.open(layout.links(mesh.rank())); // every link now, while all processes are starting
      mesh.watch(List.of(0), heartbeatSilence); // a stopped or vanished driver ends this process too
      control = mesh.link(0, Mesh.Channel.CONTROL);
    } catch (RuntimeException | Error e) {
      mesh.close();
      throw e;
    }
    ProcessPart part;
    try {
      part = loader.get();
    } catch (RuntimeException | Error e) {
      StepWire.answer(control, 0, "loading its part: " + e.getMessage());
      mesh.close();
      throw e;
    }
    AbortOnGiveUp aborter = new AbortOnGiveUp(part);
    mesh.onGiveUp(aborter::giveUp);
    try (part) {
      try {
        StepWire.answer(control, part.ops().freeMemory(), null);
        LOG.info("rank {} (stage {}, tensor-parallel rank {}) ready", mesh.rank(), part.stage(),
            layout.rankInStage(mesh.rank()));
        runCommands(mesh, layout, part, control);
      } finally {
        aborter.closing(); // before the part closes
      }
    } finally {
      mesh.close();
    }
  }

  /**
   * Ends a part's NCCL waits when this process gives up on the job ({@link Mesh#onGiveUp}): closing sockets does not
   * end them. Never after the part began to close (an abort of a destroyed communicator would touch freed memory).
   * GPU-unverified: the aborts are those a failing rank calls, but nothing has run on two GPUs.
   */
  static final class AbortOnGiveUp {
    private final ProcessPart part;
    private boolean closing;

    AbortOnGiveUp(ProcessPart part) {
      this.part = part;
    }

    synchronized void giveUp() {
      if (!closing) {
        part.group().abort();
        part.transport().abort();
      }
    }

    synchronized void closing() {
      closing = true;
    }
  }

  /** The command loop, until CLOSE; the KV store it makes is freed before the part. */
  private static void runCommands(Mesh mesh, JobLayout layout, ProcessPart part, Mesh.Link control) {
    KvStore store = null;
    try {
      while (true) {
        int command = control.in().readInt();
        try {
          switch (command) {
            case StepWire.NEW_CACHE -> {
              int blocks = control.in().readInt();
              int blockSize = control.in().readInt();
              if (store != null) {
                store.close();
                store = null;
              }
              store = part.ops().kvStore(part.layers(), blocks, blockSize, part.model().kvWidth());
              StepWire.answer(control, part.ops().freeMemory(), null);
            }
            case StepWire.STEP -> {
              step(mesh, layout, part, store, StepWire.readStep(control));
              StepWire.answer(control, 0, null);
            }
            case StepWire.COPY_BLOCKS -> {
              int[] src = StepWire.readInts(control.in());
              int[] dst = StepWire.readInts(control.in());
              part.ops().kvCopyBlocks(requireStore(store), src, dst);
              StepWire.answer(control, 0, null);
            }
            case StepWire.CLOSE -> {
              mesh.stopWatching();
              return;
            }
            default -> throw new IllegalStateException("unknown command " + command + " from the driver: "
                + "every process must run the same opt-java version");
          }
        } catch (RuntimeException | Error e) {
          LOG.error("rank {} failed: {}", mesh.rank(), e.toString()); // one line; the driver gets the message
          LOG.debug("rank {}'s failure", mesh.rank(), e);
          part.group().abort();
          part.transport().abort();
          try {
            StepWire.answer(control, 0, e.getMessage() == null ? e.toString() : e.getMessage());
          } catch (RuntimeException unsent) {
            e.addSuppressed(unsent); // the driver is gone too
          }
          throw e;
        }
      }
    } catch (IOException e) {
      throw control.failure("hear from", e);
    } finally {
      if (store != null) {
        store.close();
      }
    }
  }

  private static KvStore requireStore(KvStore store) {
    if (store == null) {
      throw new IllegalStateException("the driver sent a step before making the KV cache");
    }
    return store;
  }

  /**
   * One step, micro-batch by micro-batch: each goes through this part (its input from the previous stage, its
   * output to the next) as soon as the previous stage has handed it on, so the stages overlap.
   */
  private static void step(Mesh mesh, JobLayout layout, ProcessPart part, KvStore store, StepWire.Step step) {
    KvCache view = KvCache.viewOf(requireStore(store), step.tables(), step.past());
    OptModel.StageIo io = part.io();
    boolean logitsToDriver = part.stage() == layout.stages() - 1 && layout.rankInStage(mesh.rank()) == 0;
    for (int g = 0; g < step.microBatches().length; g++) {
      float[][] logits = part.model().stageForward(step.microBatch(g), view, io);
      if (logitsToDriver) {
        Mesh.Link driver = mesh.link(0, Mesh.Channel.ACTIVATIONS);
        try {
          driver.out().writeInt(logits.length);
        } catch (IOException e) {
          throw driver.failure("send to", e);
        }
        for (float[] row : logits) {
          driver.writeFloats(row);
        }
        driver.flush();
      }
    }
  }
}
