package io.github.optjava.checkpoint;

import java.util.Collection;

/**
 * Read access to the tensors of one checkpoint (one file, or several shards seen as one).
 * Opening validates every header (and for PyTorch files the whole pickle) before any data is used;
 * {@link #validateData()} additionally touches every byte span. Closing releases file handles and
 * mappings; a tensor obtained earlier must not be used after close.
 */
public interface Checkpoint extends AutoCloseable {

  /** {@code "safetensors"} or {@code "pytorch"}. */
  String format();

  /** Every tensor, as stored (names not normalised), sorted by name. */
  Collection<TensorInfo> tensors();

  /** Whether a tensor of that exact stored name exists. */
  boolean contains(String name);

  /** The tensor of that exact stored name; a {@link CheckpointException} naming the file if absent. */
  Tensor tensor(String name);

  /**
   * Reads every tensor's bytes once (catching truncation or I/O errors that lazy mapping would only hit
   * later). Headers were already validated when the checkpoint was opened.
   */
  default void validateData() {
    for (TensorInfo t : tensors()) {
      java.nio.ByteBuffer b = tensor(t.name()).data();
      long sum = 0;
      // Touch one byte per 4 KiB page: enough to fault in every page of the span.
      for (int i = 0; i < b.limit(); i += 4096) {
        sum += b.get(i);
      }
      if (b.limit() > 0) {
        sum += b.get(b.limit() - 1);
      }
      if (sum == Long.MIN_VALUE) {
        throw new AssertionError(); // keeps the reads from being optimised away
      }
    }
  }

  @Override
  void close();
}
