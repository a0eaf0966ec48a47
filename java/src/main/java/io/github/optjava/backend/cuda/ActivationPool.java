package io.github.optjava.backend.cuda;

import static org.bytedeco.cuda.global.cudart.cudaFree;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;
import org.bytedeco.javacpp.Pointer;

/**
 * A caching allocator for the activation buffers of a step, so that a decode step allocates no device
 * memory: {@code cudaMalloc} takes tens of microseconds and {@code cudaFree} waits for the whole device,
 * which made every step wait for the GPU a dozen times. A released buffer goes back to a free list of
 * its size class and the next request of that class takes it.
 *
 * <p>Reuse is safe because every op of a {@link CudaOps} runs on one stream (the legacy default stream,
 * with which NCCL and the synchronous copies also order themselves): work queued after the reuse runs
 * after the work that used the buffer before.
 *
 * <p>Size classes are {4, 5, 6, 7} × 2^k bytes (at most 25 % waste): prefill steps of different lengths
 * still find a buffer. Memory held here is given back by {@link #trim} (called when an allocation fails)
 * and {@link #close}.
 */
final class ActivationPool implements AutoCloseable {
  private final Map<Long, ArrayDeque<Pointer>> free = new HashMap<>();
  private long cachedBytes;
  private boolean closed;

  /** The size class of a request: the smallest {4, 5, 6, 7} × 2^k that holds {@code bytes} (≥ 256). */
  static long sizeClass(long bytes) {
    long b = Math.max(bytes, 256);
    int shift = 63 - Long.numberOfLeadingZeros(b) - 2; // b >> shift is in [4, 8)
    long m = b >>> shift;
    long c = m << shift;
    if (c < b) {
      c = (m + 1) << shift; // m + 1 = 8 is the next octave's 4: still a class
    }
    return c;
  }

  /** A cached buffer of exactly this size class, or null. */
  synchronized Pointer take(long sizeClass) {
    ArrayDeque<Pointer> q = free.get(sizeClass);
    Pointer p = q == null ? null : q.poll();
    if (p != null) {
      cachedBytes -= sizeClass;
    }
    return p;
  }

  /** Returns a buffer of this size class for reuse (freed at once once the pool is closed). */
  synchronized void give(Pointer p, long sizeClass) {
    if (closed) {
      cudaFree(p);
      return;
    }
    free.computeIfAbsent(sizeClass, k -> new ArrayDeque<>()).push(p); // LIFO: the warmest buffer first
    cachedBytes += sizeClass;
  }

  /** Bytes held in free lists (counted as free by {@link CudaOps#freeMemory}). */
  synchronized long cachedBytes() {
    return cachedBytes;
  }

  /** Frees every cached buffer (this waits for the device); returns the bytes given back. */
  synchronized long trim() {
    long bytes = cachedBytes;
    for (ArrayDeque<Pointer> q : free.values()) {
      for (Pointer p : q) {
        cudaFree(p);
      }
    }
    free.clear();
    cachedBytes = 0;
    return bytes;
  }

  @Override
  public synchronized void close() {
    trim();
    closed = true;
  }
}
