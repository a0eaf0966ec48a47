package io.github.optjava.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.junit.jupiter.api.Test;

/**
 * The whole native pipeline on a machine without a GPU: header → kernel library → JavaCPP JNI glue →
 * Java class, loaded for real. Needs only the CUDA runtime library (libcudart.so.13, from the toolkit
 * or a pip package), which the build machine has because nvcc is installed.
 */
class OptKernelsLoadTest {

  @Test
  void libraryLoadsAndReportsItsBuild() {
    assertEquals("0.1.0", OptKernels.opt_kernels_version().getString());
    String archs = OptKernels.opt_kernels_archs().getString();
    assertTrue(archs.matches("\\d+(,\\d+)*"), archs);
    for (String a : archs.split(",")) {
      assertTrue(Integer.parseInt(a) >= 80, "compiled for sm_" + a + ", below Ampere");
    }
  }

  @Test
  void launchWithoutDriverReturnsAnErrorStatusInsteadOfCrashing() {
    assumeFalse(CudaProbe.probe().usable(), "a GPU is present: GpuEmbeddingTest covers this host");
    // Bogus device pointers are never dereferenced: the launch fails at runtime initialisation.
    try (FloatPointer out = new FloatPointer(4); FloatPointer table = new FloatPointer(4);
        IntPointer ids = new IntPointer(1)) {
      int status = OptKernels.opt_embedding_f32(out, table, ids, 1, 4, 1, null);
      // 35 = cudaErrorInsufficientDriver (no libcuda), 100 = cudaErrorNoDevice (driver, no device).
      assertNotEquals(0, status);
      assertTrue(status == 35 || status == 100 || status == 34, "status " + status);
    }
  }

  @Test
  void chainedLaunchesAreNotSupportedWithoutADevice() {
    assumeFalse(CudaProbe.probe().usable(), "a GPU is present: GpuGraphTest covers this host");
    assertEquals(0, OptKernels.opt_chained_launch_supported(), "no device: answer no, without crashing");
  }

  @Test
  void invalidSizesAreRejectedBeforeAnyLaunch() {
    assertEquals(1, OptKernels.opt_embedding_f32(null, null, null, -1, 4, 1, null)); // cudaErrorInvalidValue
    assertEquals(0, OptKernels.opt_embedding_f32(null, null, null, 0, 4, 1, null)); // nothing to do
    // the chained-launch switch is host state: it answers without a device
    assertEquals(0, OptKernels.opt_chained_launch(), "off by default");
    assertEquals(0, OptKernels.opt_set_chained_launch(1));
    assertEquals(1, OptKernels.opt_chained_launch());
    assertEquals(1, OptKernels.opt_set_chained_launch(0));
    assertEquals(0, OptKernels.opt_chained_launch());
    // the matrix-vector Linear takes 1–8 rows (more: a GEMM's job) and at least one input column
    assertEquals(1, OptKernels.opt_linear_small_f16(null, null, null, null, 9, 64, 64, 0, 1, null));
    assertEquals(1, OptKernels.opt_linear_small_f32(null, null, null, null, 1, 0, 64, 0, 1, null));
    // the tensor-core Linear (session 22) takes 1–32 rows, whole steps of k (32 values; 64 of int8 weights), splits
    // 0/1/2/4/8, and int8 weights only with their scales; refusals cost no launch (the caller takes another path)
    assertEquals(1, OptKernels.opt_linear_tc_f16(null, null, null, null, 33, 64, 64, 0, 0, null));
    assertEquals(1, OptKernels.opt_linear_tc_bf16(null, null, null, null, 4, 48, 64, 0, 0, null));
    assertEquals(1, OptKernels.opt_linear_tc_f16(null, null, null, null, 4, 64, 64, 0, 3, null));
    try (FloatPointer scales = new FloatPointer(64)) { // host memory: never read, the call is refused first
      assertEquals(1, OptKernels.opt_linear_int8_tc_f16(null, null, null, scales, null, 4, 96, 64, 0, 0, null));
    }
    assertEquals(1, OptKernels.opt_linear_int8_tc_f16(null, null, null, null, null, 4, 128, 64, 0, 0, null));
    assertEquals(1, OptKernels.opt_linear_tc_qkv_f16(null, null, null, null, null, null, null, 2, 64, 0, 8, 0, null));
    assertEquals(0, OptKernels.opt_linear_tc_f16(null, null, null, null, 0, 64, 64, 0, 0, null)); // nothing to do
    assertTrue(OptKernels.opt_launch_count(OptKernels.COUNT_TC_LINEAR) >= 0, "a counter, not -1 (unknown)");
    assertEquals(0, OptKernels.opt_linear_small_bf16(null, null, null, null, 0, 64, 64, 0, 1, null));
    // and 1, 2 or 4 warps per output group, or 0 (auto): anything else is refused before the sizes matter
    assertEquals(1, OptKernels.opt_linear_small_f16(null, null, null, null, 0, 64, 64, 0, 3, null));
    assertEquals(1, OptKernels.opt_linear_small_qkv_f16(null, null, null, null, null, null, null, 0, 64, 8, 4, -1,
        null));
    assertEquals(0, OptKernels.opt_linear_small_f16(null, null, null, null, 0, 64, 64, 0, 4, null));
    // int8 weights: k a multiple of 16 (else the caller dequantizes), 1–8 rows
    assertEquals(1, OptKernels.opt_linear_int8_small_f16(null, null, null, null, null, 1, 24, 64, 0, 1, null));
    assertEquals(1, OptKernels.opt_linear_int8_small_f32(null, null, null, null, null, 9, 64, 64, 0, 1, null));
    assertEquals(0, OptKernels.opt_linear_int8_small_bf16(null, null, null, null, null, 0, 64, 64, 0, 1, null));
    assertEquals(1, OptKernels.opt_dequant_int8_f16(null, null, null, -1, 4, null));
    assertEquals(0, OptKernels.opt_dequant_int8_f32(null, null, null, 0, 4, null));
  }
}
