package io.github.optjava.backend.cuda;

import static org.bytedeco.cuda.global.cudart.cudaFree;

import io.github.optjava.backend.KvStore;
import io.github.optjava.checkpoint.DType;
import org.bytedeco.javacpp.Pointer;

/** KV-cache memory on the device: per layer a key and a value buffer of blocks × blockSize × width. */
final class CudaKvStore implements KvStore {
  final int layers;
  final int blocks;
  final int blockSize;
  final int width;
  final DType dtype;
  final Pointer[] keys;
  final Pointer[] values;
  private boolean closed;

  CudaKvStore(int layers, int blocks, int blockSize, int width, DType dtype, Pointer[] keys, Pointer[] values) {
    this.layers = layers;
    this.blocks = blocks;
    this.blockSize = blockSize;
    this.width = width;
    this.dtype = dtype;
    this.keys = keys;
    this.values = values;
  }

  boolean isClosed() {
    return closed;
  }

  int slots() {
    return blocks * blockSize;
  }

  static CudaKvStore of(KvStore kv) {
    if (!(kv instanceof CudaKvStore c)) {
      throw new IllegalArgumentException("not a CUDA KV store: " + kv.getClass().getName());
    }
    if (c.closed) {
      throw new IllegalStateException("KV store used after close");
    }
    return c;
  }

  @Override
  public int layers() {
    return layers;
  }

  @Override
  public int blocks() {
    return blocks;
  }

  @Override
  public int blockSize() {
    return blockSize;
  }

  @Override
  public int width() {
    return width;
  }

  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    for (Pointer[] ps : new Pointer[][] {keys, values}) {
      for (Pointer p : ps) {
        if (p != null && !p.isNull()) {
          cudaFree(p);
        }
      }
    }
  }
}
