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
    return cuda(0, dtype);
  }

  /** CUDA ops on GPU {@code device}. */
  static Ops cuda(int device, DType dtype) {
    return new io.github.optjava.backend.cuda.CudaOps(device, dtype == null ? DType.F16 : dtype);
  }

  /**
   * A tensor-parallel model over GPUs 0 .. tp-1, one NCCL rank per GPU (ncclCommInitAll), each rank's ops on
   * its GPU. Refuses a degree above the number of visible GPUs.
   */
  static io.github.optjava.model.ParallelOptModel cudaTensorParallel(io.github.optjava.model.OptConfig config,
      io.github.optjava.model.OptWeights weights, DType dtype, int tp) {
    int gpus = io.github.optjava.backend.cuda.CudaProbe.probe().devices().size();
    if (tp > gpus) {
      throw new IllegalArgumentException("tensor parallelism of degree " + tp + " on CUDA needs " + tp
          + " GPUs, one per rank; " + gpus + " visible (CUDA_VISIBLE_DEVICES): lower tensorParallel");
    }
    int[] devices = new int[tp];
    for (int i = 0; i < tp; i++) {
      devices[i] = i;
    }
    return new io.github.optjava.model.ParallelOptModel(config, weights, r -> cuda(r, dtype), dtype,
        io.github.optjava.backend.cuda.NcclTpGroup.create(devices));
  }
}
