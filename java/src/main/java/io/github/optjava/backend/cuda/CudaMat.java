package io.github.optjava.backend.cuda;

import static org.bytedeco.cuda.global.cudart.cudaFree;

import io.github.optjava.backend.Mat;
import io.github.optjava.checkpoint.DType;
import java.util.concurrent.atomic.AtomicReference;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.ShortPointer;

/**
 * A matrix in device memory, owned: closing frees it (once; closing twice is harmless), and any use
 * after close is an IllegalStateException rather than a stale device pointer.
 */
final class CudaMat implements Mat {
  private final AtomicReference<Pointer> ptr;
  final int rows;
  final int cols;
  final DType dtype;

  CudaMat(Pointer devicePtr, int rows, int cols, DType dtype) {
    this.ptr = new AtomicReference<>(devicePtr);
    this.rows = rows;
    this.cols = cols;
    this.dtype = dtype;
  }

  static long bytes(int rows, int cols, DType dtype) {
    return (long) rows * cols * dtype.bytes();
  }

  long bytes() {
    return bytes(rows, cols, dtype);
  }

  Pointer ptr() {
    Pointer p = ptr.get();
    if (p == null) {
      throw new IllegalStateException("device matrix " + this + " used after close");
    }
    return p;
  }

  FloatPointer f32() {
    return new FloatPointer(ptr());
  }

  ShortPointer bits() {
    return new ShortPointer(ptr());
  }

  static CudaMat of(Mat m) {
    if (!(m instanceof CudaMat c)) {
      throw new IllegalArgumentException("not a CUDA matrix: " + m.getClass().getName());
    }
    c.ptr(); // use-after-close check
    return c;
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
    Pointer p = ptr.getAndSet(null);
    if (p != null && !p.isNull()) {
      cudaFree(p);
    }
  }

  @Override
  public String toString() {
    return dtype + "[" + rows + " × " + cols + "] on cuda";
  }
}
