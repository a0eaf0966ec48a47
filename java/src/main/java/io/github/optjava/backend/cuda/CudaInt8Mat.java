package io.github.optjava.backend.cuda;

import static org.bytedeco.cuda.global.cudart.cudaFree;

import io.github.optjava.backend.Mat;
import java.util.concurrent.atomic.AtomicReference;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;

/**
 * A Linear weight quantized to int8 in device memory ({@link CudaOps#linearWeight} with int8 Linears): rows × cols
 * int8 values and one float32 scale per row, standing for {@code scale[j] × q[j, e]} as
 * {@link io.github.optjava.backend.Int8Rows} made them on the host. Owns both allocations; closing frees them
 * (once), and a use after close is an IllegalStateException.
 */
final class CudaInt8Mat implements Mat {
  private final AtomicReference<Pointer> values;
  private final AtomicReference<Pointer> scales;
  final int rows;
  final int cols;

  CudaInt8Mat(Pointer values, Pointer scales, int rows, int cols) {
    this.values = new AtomicReference<>(values);
    this.scales = new AtomicReference<>(scales);
    this.rows = rows;
    this.cols = cols;
  }

  /** The int8 values (rows × cols, row-major). */
  BytePointer values() {
    return new BytePointer(live(values));
  }

  /** The row scales (rows floats). */
  FloatPointer scales() {
    return new FloatPointer(live(scales));
  }

  /** The device address of the values (for graph signatures). */
  long address() {
    return live(values).address();
  }

  private Pointer live(AtomicReference<Pointer> ref) {
    Pointer p = ref.get();
    if (p == null) {
      throw new IllegalStateException("int8 device matrix " + this + " used after close");
    }
    return p;
  }

  @Override
  public int rows() {
    return rows;
  }

  @Override
  public int cols() {
    return cols;
  }

  @Override
  public void close() {
    for (AtomicReference<Pointer> ref : java.util.List.of(values, scales)) {
      Pointer p = ref.getAndSet(null);
      if (p != null) {
        cudaFree(p);
      }
    }
  }

  @Override
  public String toString() {
    return "CudaInt8Mat[" + rows + "x" + cols + "]";
  }
}
