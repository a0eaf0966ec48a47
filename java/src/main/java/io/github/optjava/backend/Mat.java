package io.github.optjava.backend;

/**
 * A row-major matrix in a backend's memory: weights (kept in their checkpoint dtype) or activations
 * (float32 on the CPU). A vector is a 1 × n matrix. Closing frees the memory; closing twice is harmless.
 */
public interface Mat extends AutoCloseable {
  int rows();

  int cols();

  @Override
  void close();
}
