package io.github.optjava.backend;

/**
 * The memory of the paged KV cache: for every layer, a pool of {@code blocks} blocks of
 * {@code blockSize} token slots, each slot holding one key row and one value row of {@code width}
 * (= hidden size) elements. Slot {@code s} is block {@code s / blockSize}, offset {@code s % blockSize}.
 * Which sequence owns which block is the engine's business ({@code engine.KvCache}); the backend only
 * reads and writes slots.
 */
public interface KvStore extends AutoCloseable {
  int layers();

  int blocks();

  int blockSize();

  int width();

  @Override
  void close();
}
