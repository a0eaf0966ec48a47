package io.github.optjava.model;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.backend.cuda.CudaOps;
import io.github.optjava.backend.cuda.GpuTest;
import io.github.optjava.checkpoint.DType;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The model with int8 Linear weights on CUDA (--quantize int8, session 11, verified on an H100 in session 17) against
 * the CPU reference ops over the same integers, at opt-125m's widths with random weights: a prefill of two sequences
 * and a two-row step (the dequantized weights through the GEMM), then a one-row step (the int8 matrix-vector kernel),
 * as {@link FastCpuOpsModelTest} runs them. float32 activations, so the only differences are the sums' order.
 */
@GpuTest
@Tag("gpu-new-int8")
class GpuInt8ModelTest {

  @Test
  void int8OnTheGpuAgreesWithTheCpuOverTheSameIntegers() {
    OptConfig config = OptShapes.of("125m");
    List<List<OptModel.SeqStep>> steps = FastCpuOpsModelTest.threeSteps();
    try (CpuOps ref = new CpuOps(true); CudaOps gpu = new CudaOps(0, DType.F32)) {
      gpu.useInt8Linears(true);
      long before = gpu.gemvLaunches();
      List<float[][]> got = FastCpuOpsModelTest.run(gpu, config, steps);
      assertTrue(gpu.gemvLaunches() > before, "the one-row step ran the int8 matrix-vector kernel");
      // 1e-3 of the largest logit: float32 sums in other orders over 12 layers (a wrong scale or row is far off)
      FastCpuOpsModelTest.assertAgree(FastCpuOpsModelTest.run(ref, config, steps), got, 1e-3f);
    }
  }
}
