package io.github.optjava.model;

import static io.github.optjava.model.HfReference.argmax;
import static io.github.optjava.model.HfReference.maxAbsDiff;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.backend.cuda.CudaOps;
import io.github.optjava.backend.cuda.GpuTest;
import io.github.optjava.backend.cuda.NcclTpGroup;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.engine.KvCache;
import io.github.optjava.parallel.Rendezvous;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * What one GPU can check of the multi-GPU paths, at real widths: opt-1.3b's layer shape (hidden 2048, 32 heads,
 * FFN 8192, the full vocabulary) with 2 layers of random weights, so the test loads in seconds. The NCCL
 * tensor-parallel path at world size 1 and a two-stage pipeline with both stages on GPU 0 (hidden states
 * through the host, as between GPUs) each give the plain model's logits and greedy tokens.
 */
@GpuTest
class GpuParallelShapesTest {
  private static final int STEPS = 6;

  private static OptConfig twoLayersOf13b() {
    OptConfig c = OptShapes.of("1.3b");
    return new OptConfig(c.vocabSize(), c.hiddenSize(), 2, c.numAttentionHeads(), c.ffnDim(),
        c.maxPositionEmbeddings(), c.wordEmbedProjDim(), c.doLayerNormBefore(), c.removeFinalLayerNorm(),
        c.layerNormElementwiseAffine(), c.enableBias(), c.activationFunction(), c.bosTokenId(), c.eosTokenId(),
        c.padTokenId(), c.torchDtype());
  }

  /**
   * opt-175b's weights (≈ 324 GiB in fp16) on one GPU: refused before any tensor is made or uploaded, naming the way
   * out (more GPUs), and the GPU's free memory is the same afterwards (session 15, verified on an H100 in session 17).
   */
  @Test
  void aModelLargerThanTheGpuIsRefusedBeforeLoading() {
    OptConfig config = OptShapes.of("175b");
    try (CudaOps ops = new CudaOps(0, DType.F16); RandomCheckpoint ck = new RandomCheckpoint(config, DType.F16, 3)) {
      long free = ops.freeMemory();
      IllegalStateException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class,
          () -> new OptModel(config, new OptWeights(config, ck), ops));
      assertTrue(e.getMessage().startsWith("not enough GPU memory for the weights of an OPT of 96 layers"),
          e.getMessage());
      assertTrue(e.getMessage().contains("--tensor-parallel"), e.getMessage());
      // The first tensor would be the 1.2 GB token embedding: a drop far past the driver's own fluctuations.
      assertTrue(Math.abs(free - ops.freeMemory()) < (256L << 20), "nothing may be allocated before the check");
    }
  }

  /** Runs plain and other side by side for a prompt and greedy steps; logits within {@code tol} of the row max. */
  private static void assertSameSteps(CausalLm plain, KvCache pc, CausalLm other, KvCache oc) {
    int[] prompt = {2, 133, 812, 9, 1470, 16, 10, 7281, 6, 8, 24, 34, 41, 1086, 12, 5};
    List<OptModel.SeqStep> step = List.of(new OptModel.SeqStep(1, prompt, false),
        new OptModel.SeqStep(2, new int[] {2, 31414, 232}, false));
    for (int t = 0; t < STEPS; t++) {
      float[][] a = plain.forward(step, pc);
      float[][] b = other.forward(step, oc);
      List<OptModel.SeqStep> next = new java.util.ArrayList<>();
      for (int s = 0; s < a.length; s++) {
        float scale = 0;
        for (float v : a[s]) {
          scale = Math.max(scale, Math.abs(v));
        }
        float diff = maxAbsDiff(a[s], b[s]);
        assertTrue(diff <= 1e-4f * Math.max(1f, scale), "step " + t + " sequence " + s + ": max diff " + diff);
        int token = argmax(a[s], 0, a[s].length);
        assertEquals(token, argmax(b[s], 0, b[s].length), "step " + t + " sequence " + s);
        next.add(new OptModel.SeqStep(step.get(s).seqId(), new int[] {token}, false));
      }
      step = next;
    }
  }

  @Test
  void ncclAtWorldSizeOneEqualsThePlainModelAtOpt13bWidths() {
    OptConfig config = twoLayersOf13b();
    RandomCheckpoint weights = new RandomCheckpoint(config, DType.F32, 7);
    try (CudaOps ops = new CudaOps(0, DType.F32);
        OptModel plain = new OptModel(config, new OptWeights(config, weights), ops, DType.F32);
        KvCache pc = plain.newCache(16, 16);
        ParallelOptModel nccl = new ParallelOptModel(config, new OptWeights(config, weights),
            r -> new CudaOps(0, DType.F32), DType.F32,
            List.of(NcclTpGroup.forProcess(Rendezvous.Placement.single(), 0, Duration.ofSeconds(20))));
        KvCache nc = nccl.newCache(16, 16)) {
      assertSameSteps(plain, pc, nccl, nc);
    }
  }

  @Test
  void aTwoStagePipelineOnOneGpuEqualsThePlainModel() {
    OptConfig config = twoLayersOf13b();
    RandomCheckpoint weights = new RandomCheckpoint(config, DType.F32, 11);
    try (CudaOps ops = new CudaOps(0, DType.F32);
        OptModel plain = new OptModel(config, new OptWeights(config, weights), ops, DType.F32);
        KvCache pc = plain.newCache(16, 16);
        PipelineOptModel pipe = new PipelineOptModel(config, new OptWeights(config, weights),
            s -> new CudaOps(0, DType.F32), DType.F32, 2);
        KvCache qc = pipe.newCache(16, 16)) {
      assertSameSteps(plain, pc, pipe, qc);
    }
  }
}
