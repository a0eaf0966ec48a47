package io.github.optjava.model;

import static io.github.optjava.model.HfReference.argmax;
import static io.github.optjava.model.HfReference.maxAbsDiff;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.backend.cuda.CudaOps;
import io.github.optjava.backend.cuda.GpuTest;
import io.github.optjava.backend.cuda.OptKernels;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.engine.KvCache;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Session 12's decode kernels (verified on an H100 in session 17; defaults since) and session 22's tensor-core Linear
 * (not yet run on a GPU) in models whose shapes they serve:
 * two layers of random weights at opt-1.3b's widths (hidden 2048, head_dim 64) and at opt-6.7b's (4096, head_dim 128),
 * fp16, decode steps replayed as CUDA graphs, against eager steps of the verified kernels. Three sequences with prompts
 * of 100, 37 and 5 tokens, then 40 greedy steps, so contexts cross the grouped attention's rounds (64 keys at head_dim
 * 64, 32 at 128) and the batch shrinks. The fixture models (head_dim 16, hidden 64) never take these kernels: hence
 * these shapes.
 */
@GpuTest
class GpuNewDecodeKernelsTest {
  private static final int STEPS = 40;

  /** The split-KV attention with a group of threads per key row (-Dopt.cuda.groupedSplit) against the per-key one. */
  @ParameterizedTest(name = "{0}")
  @CsvSource({"1.3b", "6.7b"})
  @Tag("gpu-new-grouped")
  void graphReplayWithTheGroupedSplitEqualsEagerPerKeySteps(String shape) {
    replayEqualsEager(shape, OptKernels.COUNT_GROUPED_SPLIT, ops -> ops.useGroupedSplit(true), () -> { }, () -> { });
  }

  /**
   * The vector layer norm (-Dopt.cuda.vecNorm) against the scalar one. The switch is process-wide: it is on while the
   * graph side steps (its first steps run and are captured with it; replays keep the captured kernels) and off while
   * the eager side does.
   */
  @ParameterizedTest(name = "{0}")
  @CsvSource({"1.3b"}) // (4096-wide rows: CudaOpsParityTest.layerNormsThroughTheVectorKernel)
  @Tag("gpu-new-vecnorm")
  void graphReplayWithTheVectorLayerNormEqualsEagerScalarSteps(String shape) {
    boolean before = CudaOps.vectorNorm();
    try {
      replayEqualsEager(shape, OptKernels.COUNT_VECTOR_LAYERNORM, ops -> { },
          () -> OptKernels.opt_set_vector_layernorm(1), () -> OptKernels.opt_set_vector_layernorm(0));
    } finally {
      OptKernels.opt_set_vector_layernorm(before ? 1 : 0);
    }
  }

  /**
   * The tensor-core Linear for few rows (-Dopt.cuda.tcLinear, session 22, not yet run on a GPU): every decode step's
   * Linears (3, then 2 rows) on it, graphed, against cuBLASLt's eager steps.
   */
  @ParameterizedTest(name = "{0}")
  @CsvSource({"1.3b", "6.7b"})
  @Tag("gpu-new")
  @Tag("gpu-new-tclinear")
  void graphReplayWithTheTensorCoreLinearEqualsEagerCublasSteps(String shape) {
    replayEqualsEager(shape, OptKernels.COUNT_TC_LINEAR, false, 5e-3f, ops -> ops.useTcLinear(32), () -> { },
        () -> { });
  }

  /**
   * The same with int8 Linear weights: the tensor-core kernel against the dequantized weights through cuBLASLt (which
   * round each weight to fp16 first: hence a looser tolerance).
   */
  @ParameterizedTest(name = "{0}")
  @CsvSource({"1.3b"})
  @Tag("gpu-new")
  @Tag("gpu-new-tclinear")
  void graphReplayWithTheInt8TensorCoreLinearEqualsEagerDequantizedSteps(String shape) {
    replayEqualsEager(shape, OptKernels.COUNT_TC_LINEAR, true, 2e-2f, ops -> ops.useTcLinear(32), () -> { },
        () -> { });
  }

  private static void replayEqualsEager(String shape, int counter, java.util.function.Consumer<CudaOps> newKernels,
      Runnable beforeNewStep, Runnable beforeEagerStep) {
    replayEqualsEager(shape, counter, false, 5e-3f, newKernels, beforeNewStep, beforeEagerStep);
  }

  /**
   * Steps the graphed model (new kernels on) and the eager one (verified kernels) side by side; {@code counter} (an
   * {@link OptKernels} COUNT_*) must show that the new kernel really ran, since launchers fall back where it does not
   * apply. {@code int8}: both with int8 Linear weights; {@code rel}: the tolerance's share of the largest logit.
   */
  private static void replayEqualsEager(String shape, int counter, boolean int8, float rel,
      java.util.function.Consumer<CudaOps> newKernels, Runnable beforeNewStep, Runnable beforeEagerStep) {
    long launchesBefore = OptKernels.opt_launch_count(counter);
    OptConfig c = OptShapes.of(shape);
    OptConfig config = new OptConfig(c.vocabSize(), c.hiddenSize(), 2, c.numAttentionHeads(), c.ffnDim(),
        c.maxPositionEmbeddings(), c.wordEmbedProjDim(), c.doLayerNormBefore(), c.removeFinalLayerNorm(),
        c.layerNormElementwiseAffine(), c.enableBias(), c.activationFunction(), c.bosTokenId(), c.eosTokenId(),
        c.padTokenId(), c.torchDtype());
    RandomCheckpoint weights = new RandomCheckpoint(config, DType.F16, 12);
    try (CudaOps newOps = int8Ops(true, int8); CudaOps eagerOps = int8Ops(false, int8);
        OptModel graphed = new OptModel(config, new OptWeights(config, weights), newOps, DType.F16);
        OptModel eager = new OptModel(config, new OptWeights(config, weights), eagerOps, DType.F16);
        KvCache gc = graphed.newCache(64, 16); KvCache ec = eager.newCache(64, 16)) {
      newKernels.accept(newOps);
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
        beforeNewStep.run();
        float[][] g = graphed.forward(step, gc);
        beforeEagerStep.run();
        float[][] e = eager.forward(step, ec);
        List<OptModel.SeqStep> next = new ArrayList<>();
        for (int i = 0; i < g.length; i++) {
          float max = 0;
          for (float v : e[i]) {
            max = Math.max(max, Math.abs(v));
          }
          // fp16 activations: another order of the attention's sums moves a rounding here and there
          float tol = Math.max(2e-2f, rel * max);
          float diff = maxAbsDiff(g[i], e[i]);
          assertTrue(diff <= tol, shape + " step " + t + " sequence " + i + ": max |new kernels - verified| " + diff
              + " over " + tol);
          int token = argmax(e[i], 0, config.vocabSize());
          int got = argmax(g[i], 0, config.vocabSize());
          assertTrue(got == token || e[i][token] - e[i][got] <= tol, shape + " step " + t + " sequence " + i
              + ": the new kernels pick " + got + ", the verified ones " + token);
          if (!(t == 20 && i == 1)) { // sequence 1 leaves: the batch shrinks from 3 to 2
            next.add(new OptModel.SeqStep(step.get(i).seqId(), new int[] {token}, false));
          }
        }
        step = next;
      }
      assertTrue(newOps.graphCount() >= 2, "graphs captured: " + newOps.graphCount());
      assertTrue(newOps.graphLaunches() > newOps.graphCount() + 10, "graph replays: "
          + newOps.graphLaunches());
      assertEquals(0, eagerOps.graphCount());
      assertTrue(OptKernels.opt_launch_count(counter) > launchesBefore, shape + ": the new kernel never ran");
    }
  }

  /** fp16 CUDA ops (graphs on or off), with int8 Linear weights when asked (set before any weight is loaded). */
  private static CudaOps int8Ops(boolean graphs, boolean int8) {
    CudaOps ops = new CudaOps(0, DType.F16, graphs);
    ops.useInt8Linears(int8);
    return ops;
  }
}
