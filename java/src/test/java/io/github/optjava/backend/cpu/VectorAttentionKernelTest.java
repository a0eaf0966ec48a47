package io.github.optjava.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The vector {@code exp} of {@link VectorAttentionKernel}; {@code FastCpuOpsParityTest} checks the kernel's outputs
 * against {@link CpuOps}. Needs {@code --add-modules jdk.incubator.vector} (set for Maven's test runs).
 */
class VectorAttentionKernelTest {
  @BeforeEach
  void needsTheModule() {
    assumeTrue(VectorSupport.AVAILABLE, "the Vector API kernels need --add-modules jdk.incubator.vector");
  }

  /** Within 2 ulp of {@code Math.exp} wherever the result is a normal float, 0 where it would not be, 1 at 0. */
  @Test
  void expMatchesMathExpOverTheSoftmaxRange() {
    int lanes = VectorLinearKernels.FLOATS.length();
    float[] x = new float[lanes];
    float[] e = new float[lanes];
    double worstUlps = 0;
    int checked = 0;
    for (float start = -100f; start <= 0f; start += lanes * 0.00037f) {
      for (int j = 0; j < lanes; j++) {
        x[j] = Math.min(0f, start + j * 0.00037f);
      }
      VectorAttentionKernel.exp(jdk.incubator.vector.FloatVector.fromArray(VectorLinearKernels.FLOATS, x, 0))
          .intoArray(e, 0);
      for (int j = 0; j < lanes; j++) {
        double exact = Math.exp(x[j]);
        if (exact < Float.MIN_NORMAL * 1.0001) {
          if (exact < Float.MIN_NORMAL * 0.9999) {
            assertEquals(0f, e[j], "exp(" + x[j] + ") is below the smallest normal float: flushed");
          }
          continue;
        }
        double ulps = Math.abs(e[j] - exact) / Math.ulp((float) exact);
        worstUlps = Math.max(worstUlps, ulps);
        assertTrue(ulps <= 2, "exp(" + x[j] + ") = " + e[j] + ", exactly " + exact + ": " + ulps + " ulp");
        checked++;
      }
    }
    assertTrue(checked > 200_000, "checked " + checked);
    x[0] = 0f;
    VectorAttentionKernel.exp(jdk.incubator.vector.FloatVector.fromArray(VectorLinearKernels.FLOATS, x, 0))
        .intoArray(e, 0);
    assertEquals(1f, e[0]);
  }
}
