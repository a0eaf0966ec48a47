package io.github.optjava.backend.cpu;

import io.github.optjava.backend.KvStore;

/** KV-cache memory on the Java heap, float32: per layer one key and one value array of blocks × blockSize × width. */
final class CpuKvStore implements KvStore {
  final int layers;
  final int blocks;
  final int blockSize;
  final int width;
  final float[][] keys;   // (layers)(blocks * blockSize * width)
  final float[][] values; // (layers)(blocks * blockSize * width)

  CpuKvStore(int layers, int blocks, int blockSize, int width) {
    long perLayer = (long) blocks * blockSize * width;
    if (layers <= 0 || blocks <= 0 || blockSize <= 0 || width <= 0 || perLayer > Integer.MAX_VALUE - 8) {
      throw new IllegalArgumentException("KV cache of " + layers + " layers × " + blocks + " blocks × "
          + blockSize + " slots × " + width + " is empty or too large for one Java array per layer: "
          + "lower the KV-cache size");
    }
    this.layers = layers;
    this.blocks = blocks;
    this.blockSize = blockSize;
    this.width = width;
    this.keys = new float[layers][(int) perLayer];
    this.values = new float[layers][(int) perLayer];
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
  public void close() {}

  static CpuKvStore of(KvStore kv) {
    if (!(kv instanceof CpuKvStore c)) {
      throw new IllegalArgumentException("not a CPU KV store: " + kv.getClass().getName());
    }
    return c;
  }
}
