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
  /** What closing does with the memory: free it, or give it back to a pool. */
  interface Release {
    void release(Pointer devicePtr);
  }

  private static final Release FREE = p -> cudaFree(p);

  private final AtomicReference<Pointer> ptr;
  private final Release release;
  final int rows;
  final int cols;
  final DType dtype;

  /** A matrix that owns {@code devicePtr} and frees it on close. */
  CudaMat(Pointer devicePtr, int rows, int cols, DType dtype) {
    this(devicePtr, rows, cols, dtype, FREE);
  }

  CudaMat(Pointer devicePtr, int rows, int cols, DType dtype, Release release) {
    this.ptr = new AtomicReference<>(devicePtr);
    this.release = release;
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

  /** The device address (for graph signatures). */
  long address() {
    return ptr().address();
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
      release.release(p);
    }
  }

  @Override
  public String toString() {
    return dtype + "[" + rows + " × " + cols + "] on cuda";
  }
}
