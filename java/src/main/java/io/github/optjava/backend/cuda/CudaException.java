package io.github.optjava.backend.cuda;

/** A CUDA, cuBLAS or kernel call failed; the message names the op and the error. */
public class CudaException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public CudaException(String message) {
    super(message);
  }
}
