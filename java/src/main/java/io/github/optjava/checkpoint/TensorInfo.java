package io.github.optjava.checkpoint;

import java.util.Arrays;

/**
 * Name, dtype and shape of one checkpoint tensor (row-major, as stored).
 *
 * @param name  the name as stored in the file (for example {@code model.decoder.layers.0.fc1.weight})
 * @param dtype storage type
 * @param shape dimensions, outermost first; empty for a scalar
 */
public record TensorInfo(String name, DType dtype, long[] shape) {

  public TensorInfo {
    shape = shape.clone();
  }

  /** Number of elements (product of the shape; 1 for a scalar). */
  public long numel() {
    long n = 1;
    for (long d : shape) {
      n = Math.multiplyExact(n, d);
    }
    return n;
  }

  /** Bytes the data takes: numel × dtype size. */
  public long byteSize() {
    return Math.multiplyExact(numel(), dtype.bytes());
  }

  @Override
  public long[] shape() {
    return shape.clone();
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof TensorInfo t && t.name.equals(name) && t.dtype == dtype && Arrays.equals(t.shape, shape);
  }

  @Override
  public int hashCode() {
    return name.hashCode() * 31 + Arrays.hashCode(shape);
  }

  @Override
  public String toString() {
    return name + " " + dtype + Arrays.toString(shape);
  }
}
