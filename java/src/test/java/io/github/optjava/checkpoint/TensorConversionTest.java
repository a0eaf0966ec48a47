package io.github.optjava.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;

class TensorConversionTest {

  private static Tensor f32(float... v) {
    ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
    for (float f : v) {
      b.putFloat(f);
    }
    return new Tensor(new TensorInfo("t", DType.F32, new long[] {v.length}), b.flip());
  }

  @Test
  void convertsBetweenDtypesRoundingToNearestEven() {
    Tensor t = f32(1f, -2.5f, 1f + 0x1p-11f, 65520f);
    assertSame(t, t.to(DType.F32));
    Tensor h = t.to(DType.F16);
    assertEquals(DType.F16, h.dtype());
    assertArrayEquals(new float[] {1f, -2.5f, 1f, Float.POSITIVE_INFINITY}, h.toFloatArray());
    assertArrayEquals(h.toFloatArray(), h.to(DType.F32).toFloatArray());
    // bf16 keeps 8 significant bits: 1 + 2^-8 is a tie between 1 and 1 + 2^-7 → even (1)
    Tensor b = f32(1f + 0x1p-8f, 1f + 3 * 0x1p-8f, -0f).to(DType.BF16);
    assertArrayEquals(new float[] {1f, 1f + 0x1p-6f, -0f}, b.toFloatArray());
  }

  /** NaN and ±inf in every stored dtype; 3e38 is finite in f32 and bf16, infinite once rounded to fp16. */
  @Test
  void nonFiniteValuesAreCountedInEveryDtype() {
    Tensor t = f32(1f, Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 3e38f, -65504f, 0f);
    assertEquals(3, t.nonFiniteCount());
    assertEquals(4, t.to(DType.F16).nonFiniteCount());
    assertEquals(3, t.to(DType.BF16).nonFiniteCount());
    assertEquals(0, f32(1f, -2f, Float.MIN_VALUE, Float.MAX_VALUE).nonFiniteCount());
  }
}
