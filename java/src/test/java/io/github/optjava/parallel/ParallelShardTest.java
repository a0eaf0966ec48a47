package io.github.optjava.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.github.optjava.checkpoint.DType;
import io.github.optjava.checkpoint.Half;
import io.github.optjava.checkpoint.Tensor;
import io.github.optjava.checkpoint.TensorInfo;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Row and column slices of checkpoint tensors, fp32 and fp16. */
class ParallelShardTest {

  private static Tensor tensor(DType dtype, long[] shape, float[] values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * dtype.bytes()).order(ByteOrder.LITTLE_ENDIAN);
    for (float v : values) {
      if (dtype == DType.F32) {
        b.putFloat(v);
      } else {
        b.putShort(Half.fromFloat(v));
      }
    }
    return new Tensor(new TensorInfo("w", dtype, shape), b.flip());
  }

  private static float[] iota(int n) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = i;
    }
    return v;
  }

  @Test
  void rowsAndColumnsOfAMatrix() {
    for (DType dtype : new DType[] {DType.F32, DType.F16}) {
      Tensor t = tensor(dtype, new long[] {4, 6}, iota(24)); // t[r][c] = 6r + c
      Tensor r1 = Shard.rows(t, 1, 2);
      assertArrayEquals(new long[] {2, 6}, r1.shape());
      assertArrayEquals(new float[] {12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23}, r1.toFloatArray(), 0f);
      Tensor c2 = Shard.cols(t, 2, 3);
      assertArrayEquals(new long[] {4, 2}, c2.shape());
      assertArrayEquals(new float[] {4, 5, 10, 11, 16, 17, 22, 23}, c2.toFloatArray(), 0f);
      assertEquals(dtype, c2.dtype());
    }
  }

  @Test
  void elementsOfAVector() {
    Tensor b = tensor(DType.F32, new long[] {6}, iota(6));
    Tensor s = Shard.rows(b, 2, 3);
    assertArrayEquals(new long[] {2}, s.shape());
    assertArrayEquals(new float[] {4, 5}, s.toFloatArray(), 0f);
  }

  @Test
  void unevenSplitsAreRefused() {
    Tensor t = tensor(DType.F32, new long[] {4, 6}, iota(24));
    assertThrows(IllegalArgumentException.class, () -> Shard.rows(t, 0, 3));
    assertThrows(IllegalArgumentException.class, () -> Shard.cols(t, 0, 4));
    assertEquals(List.of(1, 2, 4), Shard.degreesDividing(4, 256));
  }
}
