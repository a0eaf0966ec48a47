package io.github.optjava.model;

import static io.github.optjava.model.HfReference.argmax;
import static io.github.optjava.model.HfReference.ints;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.checkpoint.Checkpoint;
import io.github.optjava.checkpoint.Checkpoints;
import io.github.optjava.engine.KvCache;
import io.github.optjava.parallel.Mesh;
import io.github.optjava.parallel.MeshStageTransport;
import io.github.optjava.parallel.Rendezvous;
import io.github.optjava.parallel.SocketTpGroup;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * A multi-process pipeline's steps at the logits level (processes as threads, real TCP links): a ragged batch
 * (three prompts, one echoing all its logits) cut into micro-batches that follow each other through two
 * stages gives the whole model's logits bit for bit, step after step; and the micro-batch cut itself.
 */
class MultiProcessStepTest {
  private static final JobLayout TWO_STAGES = new JobLayout(2, 1);
  private static final java.time.Duration HEARTBEAT = java.time.Duration.ofSeconds(60);

  @Test
  void microBatchesAreConsecutiveAndAsEvenAsTheyGo() {
    assertArrayEquals(new int[] {1}, StepWire.Step.cut(1, 4));
    assertArrayEquals(new int[] {1, 2}, StepWire.Step.cut(3, 2));
    assertArrayEquals(new int[] {2, 2, 3}, StepWire.Step.cut(7, 3));
    assertArrayEquals(new int[] {0}, StepWire.Step.cut(0, 2)); // an empty step: one empty micro-batch
  }

  @Test
  void twoStagesWithMicroBatchesGiveTheWholeModelsLogits() throws Exception {
    HfReference ref = new HfReference("tiny-opt");
    OptConfig config = OptConfig.load(ref.modelDir);
    int port;
    try (ServerSocket s = new ServerSocket(0)) {
      port = s.getLocalPort();
    }
    List<CompletableFuture<Mesh>> made = new ArrayList<>();
    for (int r = 0; r < 2; r++) {
      Rendezvous.Placement p = new Rendezvous.Placement(r, 2, r, "127.0.0.1", port, "test");
      made.add(CompletableFuture.supplyAsync(() -> Mesh.connect(p, Duration.ofSeconds(10))));
    }
    Mesh driverMesh = made.get(0).get(20, TimeUnit.SECONDS);
    Mesh workerMesh = made.get(1).get(20, TimeUnit.SECONDS);
    java.util.function.Function<Mesh, java.util.function.Supplier<ProcessPart>> loader = mesh -> () -> {
      try (Checkpoint ck = Checkpoints.open(ref.modelDir)) {
        return ProcessPart.load(TWO_STAGES, mesh.rank(), config, new OptWeights(config, ck), new CpuOps(), null,
            new SocketTpGroup(mesh, TWO_STAGES.stageMembers(TWO_STAGES.stageOf(mesh.rank()))),
            new MeshStageTransport(mesh));
      }
    };
    CompletableFuture<Void> worker = CompletableFuture.runAsync(
        () -> StageWorker.serve(workerMesh, TWO_STAGES, loader.apply(workerMesh), HEARTBEAT));
    CpuOps ops = new CpuOps();
    try (OptModel whole = ref.load(ops, null); KvCache wc = HfReference.cache(ops, whole.config());
        MultiProcessOptModel job = MultiProcessOptModel.drive(driverMesh, TWO_STAGES, loader.apply(driverMesh), HEARTBEAT);
        KvCache jc = job.newCache(64, 16)) {
      int vocab = config.vocabSize();
      List<OptModel.SeqStep> step = new ArrayList<>();
      for (JsonNode p : ref.json.get("prompts")) {
        step.add(new OptModel.SeqStep(step.size(), ints(p.get("input_ids")), step.size() == 1)); // one echo row
      }
      assertEquals(true, step.size() >= 3, "a batch that cuts into two micro-batches of different sizes");
      for (int t = 0; t < 6; t++) {
        float[][] w = whole.forward(step, wc);
        float[][] p = job.forward(step, jc);
        List<OptModel.SeqStep> next = new ArrayList<>();
        for (int i = 0; i < w.length; i++) {
          assertArrayEquals(w[i], p[i], "step " + t + " sequence " + i);
          int token = argmax(w[i], w[i].length - vocab, vocab);
          next.add(new OptModel.SeqStep(step.get(i).seqId(), new int[] {token}, false));
        }
        step = next;
      }
    }
    worker.get(20, TimeUnit.SECONDS); // returns once the driver closed the job
  }
}
