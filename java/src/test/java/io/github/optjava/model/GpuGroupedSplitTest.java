package io.github.optjava.model;

import static io.github.optjava.model.HfReference.argmax;
import static io.github.optjava.model.HfReference.maxAbsDiff;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.backend.cuda.CudaOps;
import io.github.optjava.backend.cuda.GpuTest;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.engine.KvCache;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The split-KV decode attention with a group of threads per key row (-Dopt.cuda.groupedSplit, session 12, not yet run
 * on a GPU; native/src/attention_grouped.cu) in a model whose heads it serves: two layers of random weights at
 * opt-1.3b's widths (head_dim 64) and at opt-6.7b's (head_dim 128), fp16, decode steps replayed as CUDA graphs,
 * against eager steps with the per-key kernel. Three sequences with prompts of 100, 37 and 5 tokens, then 40 greedy
 * steps, so contexts cross the grouped kernel's rounds (64 keys at head_dim 64, 32 at 128) and the batch shrinks.
 * The fixture models (head_dim 16) never take the grouped kernel: hence these shapes.
 */
@GpuTest
class GpuGroupedSplitTest {
  private static final int STEPS = 40;

  @ParameterizedTest(name = "{0}")
  @CsvSource({"1.3b", "6.7b"})
  @Tag("gpu-new")
  @Tag("gpu-new-grouped")
  void graphReplayWithTheGroupedSplitEqualsEagerPerKeySteps(String shape) {
    OptConfig c = OptShapes.of(shape);
    OptConfig config = new OptConfig(c.vocabSize(), c.hiddenSize(), 2, c.numAttentionHeads(), c.ffnDim(),
        c.maxPositionEmbeddings(), c.wordEmbedProjDim(), c.doLayerNormBefore(), c.removeFinalLayerNorm(),
        c.layerNormElementwiseAffine(), c.enableBias(), c.activationFunction(), c.bosTokenId(), c.eosTokenId(),
        c.padTokenId(), c.torchDtype());
    RandomCheckpoint weights = new RandomCheckpoint(config, DType.F16, 12);
    try (CudaOps groupedOps = new CudaOps(0, DType.F16, true); CudaOps eagerOps = new CudaOps(0, DType.F16, false);
        OptModel grouped = new OptModel(config, new OptWeights(config, weights), groupedOps, DType.F16);
        OptModel eager = new OptModel(config, new OptWeights(config, weights), eagerOps, DType.F16);
        KvCache gc = grouped.newCache(64, 16); KvCache ec = eager.newCache(64, 16)) {
      groupedOps.useGroupedSplit(true);
      eagerOps.useGroupedSplit(false);
      List<OptModel.SeqStep> step = new ArrayList<>();
      java.util.Random r = new java.util.Random(5);
      for (int len : new int[] {100, 37, 5}) {
        int[] prompt = new int[len];
        for (int i = 0; i < len; i++) {
          prompt[i] = 4 + r.nextInt(config.vocabSize() - 4);
        }
        step.add(new OptModel.SeqStep(step.size(), prompt, false));
      }
      for (int t = 0; t < STEPS; t++) {
        float[][] g = grouped.forward(step, gc);
        float[][] e = eager.forward(step, ec);
        List<OptModel.SeqStep> next = new ArrayList<>();
        for (int i = 0; i < g.length; i++) {
          float max = 0;
          for (float v : e[i]) {
            max = Math.max(max, Math.abs(v));
          }
          // fp16 activations: another order of the attention's sums moves a rounding here and there
          float tol = Math.max(2e-2f, 5e-3f * max);
          float diff = maxAbsDiff(g[i], e[i]);
          assertTrue(diff <= tol, shape + " step " + t + " sequence " + i + ": max |grouped - per key| " + diff
              + " over " + tol);
          int token = argmax(e[i], 0, config.vocabSize());
          int got = argmax(g[i], 0, config.vocabSize());
          assertTrue(got == token || e[i][token] - e[i][got] <= tol, shape + " step " + t + " sequence " + i
              + ": grouped picks " + got + ", per key " + token);
          if (!(t == 20 && i == 1)) { // sequence 1 leaves: the batch shrinks from 3 to 2
            next.add(new OptModel.SeqStep(step.get(i).seqId(), new int[] {token}, false));
          }
        }
        step = next;
      }
      assertTrue(groupedOps.graphCount() >= 2, "graphs captured: " + groupedOps.graphCount());
      assertTrue(groupedOps.graphLaunches() > groupedOps.graphCount() + 10, "graph replays: "
          + groupedOps.graphLaunches());
      assertEquals(0, eagerOps.graphCount());
    }
  }
}
