package io.github.optjava.model;

import static io.github.optjava.model.HfReference.argmax;
import static io.github.optjava.model.HfReference.ints;
import static io.github.optjava.model.HfReference.maxAbsDiff;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.optjava.backend.cuda.CudaOps;
import io.github.optjava.backend.cuda.GpuTest;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.engine.KvCache;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Decode steps replayed as CUDA graphs give what the same steps give run op by op: the same model on two
 * {@link CudaOps}, graphs on and off, fed the same tokens. Blocks of 4 tokens make the block tables grow
 * through several padded widths (new graph variants), and a sequence leaves half way (a new batch size).
 * With the split-KV or tiled attention kernels on the graph side, it also checks them against the first one; with
 * cuBLASLt or the matrix-vector kernel, those Linears inside graphs.
 */
@GpuTest
class GpuGraphTest {

  @ParameterizedTest(name = "{0} attention kernel={1}")
  @CsvSource({"F32, first", "F16, first"})
  void graphReplayEqualsEagerSteps(DType dtype, String kernel) {
    replayEqualsEager(dtype, kernel);
  }

  /** The same with kernels not yet verified on a GPU (run apart by scripts/device-check.sh: see CudaOpsParityTest). */
  @ParameterizedTest(name = "{0} attention kernel={1}")
  @CsvSource({"F32, split", "F16, split", "F16, tiled", "F16, tc", "F16, lt", "F16, gemv"})
  @org.junit.jupiter.api.Tag("gpu-new")
  void graphReplayWithNewKernelsEqualsEagerSteps(DType dtype, String kernel) {
    replayEqualsEager(dtype, kernel);
  }

  /**
   * Chained (programmatic dependent) launches of the decode kernels, split-KV attention and the matrix-vector
   * Linears, in graphs against eager cuBLAS steps. Tagged apart: scripts/device-check.sh runs it on its own, with
   * a timeout, after check_ops' chained group has passed (a wrong wait could hang the GPU for the whole JVM).
   */
  @org.junit.jupiter.api.Test
  @org.junit.jupiter.api.Tag("gpu-chained")
  void chainedLaunchesReplayEqualEagerSteps() {
    replayEqualsEager(DType.F16, "chained");
  }

  private static void replayEqualsEager(DType dtype, String kernel) {
    boolean splitAttention = !kernel.equals("first");
    boolean chained = kernel.equals("chained");
    boolean chainedBefore = chained && io.github.optjava.backend.cuda.OptKernels.opt_chained_launch() != 0;
    HfReference ref = new HfReference("tiny-opt");
    try (CudaOps graphOps = new CudaOps(0, dtype, true); CudaOps eagerOps = new CudaOps(0, dtype, false);
        OptModel graphed = ref.load(graphOps, null); OptModel eager = ref.load(eagerOps, null);
        KvCache gc = new KvCache(graphOps.kvStore(graphed.config().numHiddenLayers(), 96, 4, 64));
        KvCache ec = new KvCache(eagerOps.kvStore(eager.config().numHiddenLayers(), 96, 4, 64))) {
      // "lt": the first attention kernel, Linears through cuBLASLt (captured in the graphs too)
      // "gemv": the first attention kernel, decode Linears through the matrix-vector kernel (eager side: cuBLAS);
      // "chained": split-KV attention and gemv as chained launches (process-wide: the eager side's fused layer
      // norms are chained too, after cuBLAS GEMMs that never let them start early)
      boolean linearCase = kernel.equals("lt") || kernel.equals("gemv");
      graphOps.useAttentionKernel(linearCase ? "first" : chained ? "split" : kernel);
      graphOps.useLtGemm(kernel.equals("lt"));
      graphOps.useGemv(kernel.equals("gemv") || chained);
      boolean refused = false;
      try {
        graphOps.useChainedLaunches(chained);
      } catch (IllegalStateException e) { // refused without sm_90 code on an sm_90+ GPU (no programmatic launch)
        refused = true;
      }
      assumeTrue(!refused, "chained launches need compute capability 9.0 or newer");
      eagerOps.useAttentionKernel("first"); // the reference: the first, verified kernel
      // "lt" on both sides: graph capture of cuBLASLt against eager cuBLASLt (its numbers against cublasGemmEx are
      // CudaOpsParityTest's); its tolerance stays the loose one (another GEMM order than the first case's)
      eagerOps.useLtGemm(kernel.equals("lt"));
      eagerOps.useGemv(false); // the reference side stays on cuBLAS whatever -Dopt.cuda.gemv says
      int vocab = graphed.config().vocabSize();
      List<OptModel.SeqStep> step = new ArrayList<>();
      for (JsonNode p : ref.json.get("prompts")) {
        if (step.size() < 3) {
          step.add(new OptModel.SeqStep(step.size(), ints(p.get("input_ids")), false));
        }
      }
      // Graph vs eager with the same kernels is the same arithmetic; the split kernel (pre-scaled query,
      // __expf, split sums) differs from the first one in rounding only.
      float tol = dtype == DType.F32 ? (splitAttention ? 1e-3f : 1e-4f) : (splitAttention ? 5e-2f : 1e-2f);
      for (int t = 0; t < 24; t++) {
        float[][] g = graphed.forward(step, gc);
        float[][] e = eager.forward(step, ec);
        List<OptModel.SeqStep> next = new ArrayList<>();
        for (int i = 0; i < g.length; i++) {
          float diff = maxAbsDiff(g[i], e[i]);
          assertTrue(diff <= tol, dtype + " step " + t + " sequence " + i + ": max |graph - eager| " + diff);
          int token = argmax(e[i], 0, vocab);
          assertEquals(token, argmax(g[i], 0, vocab), dtype + " step " + t + " sequence " + i);
          if (!(t == 12 && i == 1)) { // sequence 1 leaves: the batch shrinks from 3 to 2
            next.add(new OptModel.SeqStep(step.get(i).seqId(), new int[] {token}, false));
          }
        }
        step = next;
      }
      assertTrue(graphOps.graphCount() >= 3, "graphs captured: " + graphOps.graphCount());
      assertTrue(graphOps.graphLaunches() > graphOps.graphCount() + 10, "graph launches (replays): "
          + graphOps.graphLaunches());
      assertEquals(0, eagerOps.graphCount());
      if (kernel.equals("gemv") || chained) {
        assertTrue(graphOps.gemvLaunches() > 0 && eagerOps.gemvLaunches() == 0, "matrix-vector kernel ran: graph "
            + "side " + graphOps.gemvLaunches() + ", eager side " + eagerOps.gemvLaunches());
      }
      if (kernel.equals("lt")) {
        assertTrue(graphOps.ltLaunches() > 0 && eagerOps.ltLaunches() > 0, "cuBLASLt ran: graph side "
            + graphOps.ltLaunches() + ", eager side " + eagerOps.ltLaunches());
      }

      // greedy(): the argmax on the device, through the graphs, equals the eager logits' argmax.
      for (int t = 0; t < 4; t++) {
        int[] onDevice = graphed.greedy(step, gc);
        float[][] e = eager.forward(step, ec);
        int[] expected = new int[e.length];
        List<OptModel.SeqStep> next = new ArrayList<>();
        for (int i = 0; i < e.length; i++) {
          expected[i] = argmax(e[i], 0, vocab);
          next.add(new OptModel.SeqStep(step.get(i).seqId(), new int[] {expected[i]}, false));
        }
        assertArrayEquals(expected, onDevice, "greedy step " + t);
        step = next;
      }
    } finally {
      if (chained) { // process-wide: the other tests run as they were
        io.github.optjava.backend.cuda.OptKernels.opt_set_chained_launch(chainedBefore ? 1 : 0);
      }
    }
  }
}
