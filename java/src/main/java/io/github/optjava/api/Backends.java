package io.github.optjava.api;

import io.github.optjava.backend.Ops;
import io.github.optjava.backend.cpu.FastCpuOps;
import io.github.optjava.checkpoint.DType;

/**
 * Creates the ops of a device. The CUDA ops are created in their own method so that the CPU path never
 * loads a class that touches {@code org.bytedeco.cuda.*}.
 */
final class Backends {
  private Backends() {}

  /** The multithreaded CPU ops ({@code threads} 0: one per available processor). */
  static Ops cpu(int threads) {
    return threads == 0 ? new FastCpuOps() : new FastCpuOps(threads);
  }

  /** CUDA ops on GPU 0; weights and activations in {@code dtype} (F16 when null). */
  static Ops cuda(DType dtype) {
    return new io.github.optjava.backend.cuda.CudaOps(0, dtype == null ? DType.F16 : dtype);
  }
}
