package io.github.optjava.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.checkpoint.DType;
import io.github.optjava.checkpoint.Half;
import io.github.optjava.checkpoint.Tensor;
import io.github.optjava.checkpoint.TensorInfo;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** The int8 quantization rules of {@link Int8Rows}: its bounds, its rounding and its refusals. */
class Int8RowsTest {

  /** Each weight is within half a step of what it becomes; each row's largest magnitude becomes ±127. */
  @ParameterizedTest
  @EnumSource(DType.class)
  void everyWeightIsWithinHalfAStep(DType dtype) {
    Random random = new Random(3 + dtype.ordinal());
    int rows = 9;
    int cols = 301;
    float[] w = new float[rows * cols];
    for (int i = 0; i < w.length; i++) {
      w[i] = (float) (random.nextGaussian() * Math.pow(10, i / cols - 4)); // rows from 1e-4 to 1e4
    }
    Tensor t = tensor(dtype, rows, cols, w);
    float[] stored = t.toFloatArray(); // what the checkpoint holds in its dtype
    Int8Rows q = Int8Rows.quantize(t);
    for (int r = 0; r < rows; r++) {
      float absMax = 0f;
      for (int c = 0; c < cols; c++) {
        absMax = Math.max(absMax, Math.abs(stored[r * cols + c]));
      }
      assertEquals(absMax / 127f, q.scales()[r], "row " + r);
      int largest = 0;
      for (int c = 0; c < cols; c++) {
        int i = r * cols + c;
        assertTrue(Math.abs(q.values()[i]) <= 127);
        largest = Math.max(largest, Math.abs(q.values()[i]));
        // half a step, plus the float rounding of the division (a few ulps of the quotient)
        assertEquals(stored[i], q.get(i), q.scales()[r] * (0.5 + 1e-5), "row " + r + " col " + c);
        assertEquals(q.values()[i] * q.scales()[r], q.get(i));
      }
      assertEquals(127, largest, "row " + r);
    }
  }

  /** The rounding is to nearest, ties to even, and symmetric around zero. */
  @Test
  void roundsToNearestEven() {
    float[] row = {127f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 0.49f, -126.5f, -0f};
    byte[] out = new byte[row.length];
    assertEquals(1f, Int8Rows.quantizeRow(row, out, 0));
    assertArrayEquals(new byte[] {127, 0, 2, 2, 0, -2, 0, -126, 0}, out);
  }

  @Test
  void aRowOfZerosHasScaleZero() {
    byte[] out = {5, 5, 5};
    assertEquals(0f, Int8Rows.quantizeRow(new float[] {0f, -0f, 0f}, out, 0));
    assertArrayEquals(new byte[] {0, 0, 0}, out);
    // Maxima too small for a normal scale: the row becomes zeros, not ±127 over a coarse subnormal scale.
    for (float tiny : new float[] {Float.MIN_VALUE, 190 * Float.MIN_VALUE, Math.nextDown(Int8Rows.TINY_ROW)}) {
      out = new byte[] {5, 5, 5};
      assertEquals(0f, Int8Rows.quantizeRow(new float[] {tiny, -tiny / 3}, out, 1));
      assertArrayEquals(new byte[] {5, 0, 0}, out, "max " + tiny);
    }
    // From there on the scale is a normal float and the half-step bound holds.
    float[] row = {Int8Rows.TINY_ROW, -0.3f * Int8Rows.TINY_ROW};
    float scale = Int8Rows.quantizeRow(row, out, 0);
    assertEquals(Float.MIN_NORMAL, scale);
    assertArrayEquals(new byte[] {127, -38}, java.util.Arrays.copyOf(out, 2));
  }

  @Test
  void infinitiesAndNansAreRefusedWithTheTensorAndRow() {
    float[] w = new float[2 * 4];
    w[5] = Float.NaN;
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> Int8Rows.quantize(tensor(DType.F32, 2, 4, w)));
    assertTrue(e.getMessage().contains("t row 1") && e.getMessage().contains("without quantization"), e.getMessage());
    w[5] = Float.NEGATIVE_INFINITY;
    assertThrows(IllegalArgumentException.class, () -> Int8Rows.quantize(tensor(DType.F16, 2, 4, w)));
  }

  @Test
  void onlyMatricesAreQuantized() {
    Tensor cube = new Tensor(new TensorInfo("w", DType.F32, new long[] {2, 2, 2}),
        ByteBuffer.allocate(32).order(ByteOrder.LITTLE_ENDIAN));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Int8Rows.quantize(cube));
    assertTrue(e.getMessage().contains("w has rank 3"), e.getMessage());
    Tensor vector = tensor(DType.F32, 1, 3, new float[] {1f, -2f, 0.5f}); // 1-D: one row, as Ops.weight reads it
    assertEquals(1, vector.shape().length == 1 ? Int8Rows.quantize(vector).rows() : -1);
    assertThrows(IllegalArgumentException.class, () -> new Int8Rows(2, 3, new byte[5], new float[2]));
  }

  private static Tensor tensor(DType dtype, int rows, int cols, float[] v) {
    ByteBuffer b = ByteBuffer.allocate(v.length * dtype.bytes()).order(ByteOrder.LITTLE_ENDIAN);
    for (float f : v) {
      switch (dtype) {
        case F32 -> b.putFloat(f);
        case F16 -> b.putShort(Half.fromFloat(f));
        case BF16 -> b.putShort(Half.bfloat16FromFloat(f));
      }
    }
    long[] shape = rows == 1 ? new long[] {cols} : new long[] {rows, cols};
    return new Tensor(new TensorInfo("t", dtype, shape), b.flip());
  }
}
