package io.github.optjava.model;

import static io.github.optjava.model.HfReference.argmax;
import static io.github.optjava.model.HfReference.ints;
import static io.github.optjava.model.HfReference.maxAbsDiff;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.backend.cuda.CudaOps;
import io.github.optjava.backend.cuda.GpuTest;
import io.github.optjava.backend.cuda.NcclTpGroup;
import io.github.optjava.checkpoint.Checkpoint;
import io.github.optjava.checkpoint.Checkpoints;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.engine.KvCache;
import io.github.optjava.parallel.Rendezvous;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The tensor-parallel path on CUDA with a real NCCL communicator at world size 1 (what a one-GPU host can
 * check): ParallelOptModel over NcclTpGroup.forProcess gives the logits and greedy tokens of the plain model.
 */
@GpuTest
class GpuNcclModelTest {

  @Test
  void ncclPathAtWorldSizeOneEqualsThePlainModel() {
    HfReference ref = new HfReference("tiny-opt");
    OptConfig config = OptConfig.load(ref.modelDir);
    int[] prompt = ints(ref.json.get("prompts").get(0).get("input_ids"));
    try (CudaOps ops = new CudaOps(0, DType.F32); OptModel plain = ref.load(ops, null);
        KvCache pc = HfReference.cache(ops, plain.config())) {
      ParallelOptModel nccl;
      try (Checkpoint ck = Checkpoints.open(ref.modelDir)) {
        nccl = new ParallelOptModel(config, new OptWeights(config, ck), r -> new CudaOps(0, DType.F32), DType.F32,
            List.of(NcclTpGroup.forProcess(Rendezvous.Placement.single(), 0, Duration.ofSeconds(20))));
      }
      try (nccl; KvCache nc = nccl.newCache(64, 16)) {
        List<OptModel.SeqStep> step = List.of(new OptModel.SeqStep(1, prompt, false));
        for (int t = 0; t < 6; t++) {
          float[] a = plain.forward(step, pc)[0];
          float[] b = nccl.forward(step, nc)[0];
          float diff = maxAbsDiff(a, b);
          assertTrue(diff <= 1e-4f, "step " + t + ": max |plain - nccl| " + diff);
          int token = argmax(a, 0, a.length);
          assertEquals(token, argmax(b, 0, b.length), "step " + t);
          step = List.of(new OptModel.SeqStep(1, new int[] {token}, false));
        }
      }
    }
  }
}
