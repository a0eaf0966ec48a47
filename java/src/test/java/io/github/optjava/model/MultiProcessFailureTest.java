package io.github.optjava.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.checkpoint.Checkpoint;
import io.github.optjava.checkpoint.Checkpoints;
import io.github.optjava.engine.KvCache;
import io.github.optjava.parallel.Mesh;
import io.github.optjava.parallel.Rendezvous;
import io.github.optjava.parallel.SocketTpGroup;
import java.io.IOException;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/**
 * How a multi-process model fails: a worker that cannot load its part, and a worker that vanishes in the
 * middle of a job. The driver's caller gets the failing rank's message, the job refuses further work, and no
 * process is left waiting (threads stand in for processes; the links are real TCP).
 */
class MultiProcessFailureTest {
  private static final JobLayout TWO_STAGES = new JobLayout(2, 1);
  private static final Duration HEARTBEAT = Duration.ofSeconds(60);

  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }

  private static Supplier<ProcessPart> loader(Mesh mesh) {
    HfReference ref = new HfReference("tiny-opt");
    OptConfig config = OptConfig.load(ref.modelDir);
    return () -> {
      try (Checkpoint ck = Checkpoints.open(ref.modelDir)) {
        return ProcessPart.load(TWO_STAGES, mesh.rank(), config, new OptWeights(config, ck), new CpuOps(), null,
            new SocketTpGroup(mesh, TWO_STAGES.stageMembers(TWO_STAGES.stageOf(mesh.rank()))),
            new io.github.optjava.parallel.MeshStageTransport(mesh));
      }
    };
  }

  private static Mesh[] meshes() throws Exception {
    int port = freePort();
    List<CompletableFuture<Mesh>> m = List.of(0, 1).stream().map(r -> CompletableFuture.supplyAsync(() ->
        Mesh.connect(new Rendezvous.Placement(r, 2, r, "127.0.0.1", port, "test"), Duration.ofSeconds(10)))).toList();
    return new Mesh[] {m.get(0).get(20, TimeUnit.SECONDS), m.get(1).get(20, TimeUnit.SECONDS)};
  }

  /**
   * When the heartbeats give up, a part's group and transport are aborted (NCCL waits end only so), but never once the
   * part began to close: aborting a destroyed NCCL communicator would touch freed memory.
   */
  @Test
  void aGiveUpAbortsThePartsWaitsUnlessThePartIsClosing() {
    java.util.concurrent.atomic.AtomicInteger aborts = new java.util.concurrent.atomic.AtomicInteger();
    io.github.optjava.parallel.TpGroup group = new io.github.optjava.parallel.TpGroup() {
      @Override
      public int rank() {
        return 0;
      }

      @Override
      public int worldSize() {
        return 2;
      }

      @Override
      public void allReduce(io.github.optjava.backend.Mat m) {}

      @Override
      public void allGather(io.github.optjava.backend.Mat out, io.github.optjava.backend.Mat in) {}

      @Override
      public void abort() {
        aborts.incrementAndGet();
      }

      @Override
      public void close() {}
    };
    io.github.optjava.parallel.StageTransport transport = new io.github.optjava.parallel.StageTransport() {
      @Override
      public void receive(io.github.optjava.backend.Ops ops, io.github.optjava.backend.Mat x, int from) {}

      @Override
      public void send(io.github.optjava.backend.Ops ops, io.github.optjava.backend.Mat x, int[] to) {}

      @Override
      public void abort() {
        aborts.addAndGet(10);
      }

      @Override
      public void close() {}
    };
    ProcessPart part = new ProcessPart(TWO_STAGES, 1, null, group, transport, null);
    StageWorker.AbortOnGiveUp aborter = new StageWorker.AbortOnGiveUp(part);
    aborter.giveUp();
    assertEquals(11, aborts.get(), "the group and the transport");
    aborter.closing();
    aborter.giveUp();
    assertEquals(11, aborts.get(), "nothing once the part is closing");
  }

  @Test
  void aWorkerThatCannotLoadItsPartFailsTheDriverWithItsMessage() throws Exception {
    Mesh[] mesh = meshes();
    CompletableFuture<Void> worker = CompletableFuture.runAsync(() -> StageWorker.serve(mesh[1], TWO_STAGES, () -> {
      throw new IllegalStateException("no space left for stage 1");
    }, HEARTBEAT));
    IllegalStateException e = assertThrows(IllegalStateException.class,
        () -> MultiProcessOptModel.drive(mesh[0], TWO_STAGES, loader(mesh[0]), HEARTBEAT));
    assertTrue(e.getMessage().contains("rank 1 failed: loading its part: no space left for stage 1"), e.getMessage());
    ExecutionException w = assertThrows(ExecutionException.class, () -> worker.get(10, TimeUnit.SECONDS));
    assertEquals("no space left for stage 1", w.getCause().getMessage());
  }

  @Test
  void aWorkerThatVanishesFailsTheNextStepAndTheJobStaysFailed() throws Exception {
    Mesh[] mesh = meshes();
    CompletableFuture<Void> worker = CompletableFuture.runAsync(() -> StageWorker.serve(mesh[1], TWO_STAGES,
        loader(mesh[1]), HEARTBEAT));
    try (MultiProcessOptModel model = MultiProcessOptModel.drive(mesh[0], TWO_STAGES, loader(mesh[0]), HEARTBEAT);
        KvCache cache = model.newCache(16, 16)) {
      List<OptModel.SeqStep> step = List.of(new OptModel.SeqStep(1, new int[] {2, 100, 200}, false));
      assertEquals(model.config().vocabSize(), model.forward(step, cache)[0].length, "a step that works");
      assertFalse(model.broken());
      mesh[1].close(); // the worker's machine goes away
      IllegalStateException e = assertThrows(IllegalStateException.class, () -> model.forward(
          List.of(new OptModel.SeqStep(1, new int[] {300}, false)), cache));
      assertTrue(e.getMessage().contains("rank 1"), e.getMessage());
      IllegalStateException again = assertThrows(IllegalStateException.class, () -> model.forward(step, cache));
      assertTrue(again.getMessage().contains("restart every process"), again.getMessage());
      assertTrue(model.broken(), "what Generator.broken() reports, and opt batch stops on");
    }
    assertThrows(ExecutionException.class, () -> worker.get(10, TimeUnit.SECONDS), "the worker stops too");
  }

  /**
   * In one process: a tensor-parallel rank that fails in the middle of a step aborts its group, so its peer,
   * waiting for it in an all-reduce, fails at once instead of after the group's timeout; the model then refuses
   * further steps with a clear message. Either order: the peer already waiting, or (delayed) arriving only after
   * the failed rank aborted the group.
   */
  @org.junit.jupiter.params.ParameterizedTest(name = "rank 0 delayed {0} ms")
  @org.junit.jupiter.params.provider.ValueSource(ints = {0, 300})
  void aRankFailingMidStepWakesItsPeerAndTheModelStaysFailed(int rank0DelayMs) {
    HfReference ref = new HfReference("tiny-opt");
    OptConfig config = OptConfig.load(ref.modelDir);
    java.util.concurrent.atomic.AtomicBoolean failNow = new java.util.concurrent.atomic.AtomicBoolean();
    ParallelOptModel model;
    try (Checkpoint ck = Checkpoints.open(ref.modelDir)) {
      model = new ParallelOptModel(config, new OptWeights(config, ck), r -> r == 0 ? new CpuOps() {
        @Override
        public void layerNorm(io.github.optjava.backend.Mat out, io.github.optjava.backend.Mat x,
            io.github.optjava.backend.Mat gamma, io.github.optjava.backend.Mat beta, float eps) {
          if (failNow.get()) {
            try {
              Thread.sleep(rank0DelayMs); // let rank 1 fail (and abort) before rank 0 reaches the all-reduce
            } catch (InterruptedException e) {
              Thread.currentThread().interrupt();
            }
          }
          super.layerNorm(out, x, gamma, beta, eps);
        }
      } : new CpuOps() {
        @Override
        public void layerNorm(io.github.optjava.backend.Mat out, io.github.optjava.backend.Mat x,
            io.github.optjava.backend.Mat gamma, io.github.optjava.backend.Mat beta, float eps) {
          if (failNow.get()) {
            throw new IllegalStateException("rank 1's device fell off the bus");
          }
          super.layerNorm(out, x, gamma, beta, eps);
        }
      }, null, io.github.optjava.parallel.LocalTpGroup.create(2, Duration.ofMinutes(2)));
    }
    try (model; KvCache cache = model.newCache(16, 16)) {
      List<OptModel.SeqStep> step = List.of(new OptModel.SeqStep(1, new int[] {2, 100, 200}, false));
      assertEquals(config.vocabSize(), model.forward(step, cache)[0].length, "a step that works");
      failNow.set(true);
      long t0 = System.nanoTime();
      IllegalStateException e = assertThrows(IllegalStateException.class,
          () -> model.forward(List.of(new OptModel.SeqStep(1, new int[] {300}, false)), cache));
      assertTrue((System.nanoTime() - t0) / 1e9 < 30, "the peer was woken, not timed out");
      assertTrue(e.getMessage().contains("fell off the bus") || e.getMessage().contains("broken"), e.getMessage());
      IllegalStateException again = assertThrows(IllegalStateException.class, () -> model.forward(step, cache));
      assertTrue(again.getMessage().contains("load it again"), again.getMessage());
    }
  }
}
