package io.github.optjava.checkpoint;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * One checkpoint tensor: its {@link TensorInfo} and a read-only little-endian view of its bytes
 * (usually a slice of a memory-mapped file, so nothing is copied until the data is used).
 */
public final class Tensor {
  private final TensorInfo info;
  private final ByteBuffer data;

  /**
   * @param info what the tensor is
   * @param data exactly {@code info.byteSize()} bytes, row-major
   */
  public Tensor(TensorInfo info, ByteBuffer data) {
    if (data.remaining() != info.byteSize()) {
      throw new CheckpointException("tensor " + Untrusted.quote(info.name()) + ": " + data.remaining()
          + " bytes of data for " + info + " which needs " + info.byteSize());
    }
    this.info = info;
    this.data = data.slice().asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
  }

  public TensorInfo info() {
    return info;
  }

  public String name() {
    return info.name();
  }

  public DType dtype() {
    return info.dtype();
  }

  public long[] shape() {
    return info.shape();
  }

  /** A fresh read-only little-endian view of the raw bytes (position 0). */
  public ByteBuffer data() {
    return data.duplicate().order(ByteOrder.LITTLE_ENDIAN);
  }

  /** The values widened to float32 (fp16 and bf16 converted exactly). */
  public float[] toFloatArray() {
    long n = info.numel();
    if (n > Integer.MAX_VALUE - 8) {
      throw new CheckpointException("tensor " + Untrusted.quote(info.name()) + " has " + n
          + " elements: too many for one Java array");
    }
    float[] out = new float[(int) n];
    ByteBuffer b = data();
    switch (info.dtype()) {
      case F32 -> b.asFloatBuffer().get(out);
      case F16 -> {
        for (int i = 0; i < out.length; i++) {
          out[i] = Half.toFloat(b.getShort(2 * i));
        }
      }
      case BF16 -> {
        for (int i = 0; i < out.length; i++) {
          out[i] = Float.intBitsToFloat((b.getShort(2 * i) & 0xffff) << 16);
        }
      }
    }
    return out;
  }

  /** How many values are NaN or infinite (exponent bits all ones, in the stored dtype); the bytes read once. */
  public long nonFiniteCount() {
    ByteBuffer b = data();
    boolean wide = info.dtype() == DType.F32;
    int exponent = switch (info.dtype()) {
      case F32 -> 0x7f800000;
      case F16 -> 0x7c00;
      case BF16 -> 0x7f80;
    };
    long n = info.numel();
    long count = 0;
    for (long i = 0; i < n; i++) { // (a tensor's buffer holds at most 2 GiB: the int offsets cannot overflow)
      int bits = wide ? b.getInt((int) (4 * i)) : b.getShort((int) (2 * i));
      count += (bits & exponent) == exponent ? 1 : 0;
    }
    return count;
  }

  /**
   * This tensor in another storage dtype (a heap copy; this one if it already is). Narrowing rounds to
   * nearest even, as PyTorch's {@code .half()} / {@code .bfloat16()} do.
   */
  public Tensor to(DType target) {
    if (target == info.dtype()) {
      return this;
    }
    float[] values = toFloatArray();
    ByteBuffer out = ByteBuffer.allocate(Math.multiplyExact(values.length, target.bytes())).order(ByteOrder.LITTLE_ENDIAN);
    for (float v : values) {
      switch (target) {
        case F32 -> out.putFloat(v);
        case F16 -> out.putShort(Half.fromFloat(v));
        case BF16 -> out.putShort(Half.bfloat16FromFloat(v));
      }
    }
    return new Tensor(new TensorInfo(info.name(), target, info.shape()), out.flip());
  }

  @Override
  public String toString() {
    return info.toString();
  }
}
