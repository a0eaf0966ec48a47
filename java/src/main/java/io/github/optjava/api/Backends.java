package io.github.optjava.api;

import io.github.optjava.backend.Ops;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.checkpoint.DType;

/**
 * Creates the ops of a device. The CUDA ops are created in their own method so that the CPU path never
 * loads a class that touches {@code org.bytedeco.cuda.*}.
 */
final class Backends {
  private Backends() {}

  static Ops cpu(int threads) {
    return new CpuOps();
  }

  /** CUDA ops on GPU 0; weights and activations in {@code dtype} (F16 when null). */
  static Ops cuda(DType dtype) {
    return new io.github.optjava.backend.cuda.CudaOps(0, dtype == null ? DType.F16 : dtype);
  }
}
