package io.github.optjava.backend.cpu;

import io.github.optjava.backend.Int8Rows;
import io.github.optjava.backend.Mat;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.checkpoint.Half;

/**
 * A matrix in Java heap memory: float32 ({@link #f32}), 16-bit words ({@link #bits}, fp16 or bf16, widened on
 * read), or a Linear weight quantized to int8 per row ({@link #int8}: {@link #dtype} is null then). Package-private:
 * only the CPU ops see inside.
 */
final class CpuMat implements Mat {
  /** fp16 bits → float, all 65536 of them: a 256 KiB table that stays in cache and has no branches. */
  static final float[] HALF_TO_FLOAT = new float[1 << 16];

  static {
    for (int i = 0; i < HALF_TO_FLOAT.length; i++) {
      HALF_TO_FLOAT[i] = Half.toFloat((short) i);
    }
  }

  final int rows;
  final int cols;
  /** F32, F16 or BF16; null for an int8 matrix. */
  final DType dtype;
  final float[] f32;
  final short[] bits;
  /** The integers and per-row scales of an int8 matrix ({@link Int8Rows}); null otherwise. */
  final Int8Rows int8;
  private volatile boolean closed;
  /** 0: not known yet, 1: every fp16 element finite, 2: some are inf or NaN (see {@link #hasHalfSpecials}). */
  private byte halfSpecials;

  CpuMat(int rows, int cols, DType dtype) {
    long n = (long) rows * cols;
    if (rows < 0 || cols < 0 || n > Integer.MAX_VALUE - 8) {
      throw new IllegalArgumentException("matrix " + rows + " × " + cols + " is too large for the CPU backend");
    }
    this.rows = rows;
    this.cols = cols;
    this.dtype = dtype;
    this.f32 = dtype == DType.F32 ? new float[(int) n] : null;
    this.bits = dtype == DType.F32 ? null : new short[(int) n];
    this.int8 = null;
  }

  /** An int8 matrix over {@code q} (not copied). */
  CpuMat(Int8Rows q) {
    this.rows = q.rows();
    this.cols = q.cols();
    this.dtype = null;
    this.f32 = null;
    this.bits = null;
    this.int8 = q;
  }

  /**
   * Whether this fp16 matrix holds an infinity or a NaN (exponent bits all ones), which the fast widening of
   * {@link VectorLinearKernels} does not handle. Scanned once, on first use: 16-bit matrices are weights,
   * written once by {@link CpuOps#weight} before any op reads them. (A race only repeats the scan.)
   */
  boolean hasHalfSpecials() {
    if (dtype != DType.F16) {
      return false;
    }
    byte known = halfSpecials;
    if (known == 0) {
      known = scanForHalfSpecials(bits) ? (byte) 2 : (byte) 1;
      halfSpecials = known;
    }
    return known == 2;
  }

  /**
   * Whether any fp16 in {@code bits} has all exponent bits set. Branch-free in chunks, so that C2 vectorises the
   * loop: {@code (b & 0x7c00) + 0x400} reaches bit 15 exactly when the exponent is 31.
   */
  static boolean scanForHalfSpecials(short[] bits) {
    for (int from = 0; from < bits.length; from += 1 << 16) {
      int to = Math.min(bits.length, from + (1 << 16));
      int any = 0;
      for (int i = from; i < to; i++) {
        any |= (bits[i] & 0x7c00) + 0x400;
      }
      if ((any & 0x8000) != 0) {
        return true;
      }
    }
    return false;
  }

  /** Element {@code i} (row-major index) widened to float. */
  float get(int i) {
    if (int8 != null) {
      return int8.get(i);
    }
    return switch (dtype) {
      case F32 -> f32[i];
      case F16 -> HALF_TO_FLOAT[bits[i] & 0xffff];
      case BF16 -> Float.intBitsToFloat(bits[i] << 16);
    };
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
    closed = true; // heap memory: the garbage collector frees it; the flag catches use after close
  }

  CpuMat check() {
    if (closed) {
      throw new IllegalStateException("matrix " + rows + " × " + cols + " used after close");
    }
    return this;
  }

  static CpuMat of(Mat m) {
    if (!(m instanceof CpuMat c)) {
      throw new IllegalArgumentException("not a CPU matrix: " + m.getClass().getName());
    }
    return c.check();
  }

  @Override
  public String toString() {
    return (int8 != null ? "INT8" : dtype) + "[" + rows + " × " + cols + "]";
  }
}
