package io.github.optjava.backend.cpu;

import io.github.optjava.backend.KvStore;
import io.github.optjava.checkpoint.Half;

/**
 * KV-cache memory on the Java heap: per layer one key and one value array of blocks × blockSize × width, float32
 * ({@link #keys}, {@link #values}) or fp16 ({@link #halfKeys}, {@link #halfValues}: half the memory; each element
 * rounded to the nearest fp16 when written, as CUDA's fp16 cache and PyTorch's {@code .half()} round, and read back
 * exactly). The attention kernels read either; {@link #put} and {@link #key} / {@link #value} are the reference's
 * element access.
 */
final class CpuKvStore implements KvStore {
  final int layers;
  final int blocks;
  final int blockSize;
  final int width;
  final float[][] keys;   // (layers)(blocks * blockSize * width); null in an fp16 store
  final float[][] values;
  final short[][] halfKeys; // fp16 bits, same layout; null in a float32 store
  final short[][] halfValues;

  /** A float32 store. */
  CpuKvStore(int layers, int blocks, int blockSize, int width) {
    this(layers, blocks, blockSize, width, false);
  }

  /** A float32 store, or an fp16 one when {@code half}. */
  CpuKvStore(int layers, int blocks, int blockSize, int width, boolean half) {
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
    this.keys = half ? null : new float[layers][(int) perLayer];
    this.values = half ? null : new float[layers][(int) perLayer];
    this.halfKeys = half ? new short[layers][(int) perLayer] : null;
    this.halfValues = half ? new short[layers][(int) perLayer] : null;
  }

  /** Whether elements are stored as fp16. */
  boolean half() {
    return halfKeys != null;
  }

  /** Writes element {@code i} of layer {@code layer}'s key and value slots (rounded to fp16 in an fp16 store). */
  void put(int layer, int i, float key, float value) {
    if (half()) {
      halfKeys[layer][i] = Half.fromFloat(key);
      halfValues[layer][i] = Half.fromFloat(value);
    } else {
      keys[layer][i] = key;
      values[layer][i] = value;
    }
  }

  float key(int layer, int i) {
    return half() ? CpuMat.HALF_TO_FLOAT[halfKeys[layer][i] & 0xffff] : keys[layer][i];
  }

  float value(int layer, int i) {
    return half() ? CpuMat.HALF_TO_FLOAT[halfValues[layer][i] & 0xffff] : values[layer][i];
  }

  /** Copies {@code n} elements of every layer's keys and values from {@code src} to {@code dst} (block copies). */
  void copy(int src, int dst, int n) {
    for (int l = 0; l < layers; l++) {
      if (half()) {
        System.arraycopy(halfKeys[l], src, halfKeys[l], dst, n);
        System.arraycopy(halfValues[l], src, halfValues[l], dst, n);
      } else {
        System.arraycopy(keys[l], src, keys[l], dst, n);
        System.arraycopy(values[l], src, values[l], dst, n);
      }
    }
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
