package io.github.optjava.backend.cuda;

/**
 * A device allocation did not fit. The message says what was being allocated, how much, what the device
 * has left and what to change; the JVM and the CUDA context stay usable.
 */
public final class CudaOutOfMemoryException extends CudaException {
  private static final long serialVersionUID = 1L;

  public CudaOutOfMemoryException(String what, long bytes, String memoryInfo) {
    super(String.format("out of GPU memory allocating %.1f MiB for %s (%s): lower kvCacheTokens or maxBatchSize, "
        + "use a 16-bit dtype, or a GPU with more memory", bytes / 1048576.0, what, memoryInfo));
  }
}
