package io.github.optjava.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.optjava.backend.Int8Rows;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.checkpoint.Half;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The Vector API kernels' exact properties; {@code FastCpuOpsParityTest} checks their values against
 * {@link CpuOps}. Needs {@code --add-modules jdk.incubator.vector} (set for Maven's test runs).
 */
class VectorLinearKernelsTest {
  @BeforeEach
  void needsTheModule() {
    assumeTrue(VectorSupport.AVAILABLE, "the Vector API kernels need --add-modules jdk.incubator.vector");
  }

  @Test
  void everyHalfWidensAsHalfToFloat() {
    int lanes = VectorLinearKernels.FLOATS.length();
    short[] bits = new short[1 << 16];
    for (int i = 0; i < bits.length; i++) {
      bits[i] = (short) i;
    }
    float[] widened = new float[lanes];
    float[] finite = new float[lanes];
    for (int i = 0; i < bits.length; i += lanes) {
      VectorLinearKernels.widen(bits, i, VectorLinearKernels.HALF).intoArray(widened, 0);
      VectorLinearKernels.widen(bits, i, VectorLinearKernels.FINITE_HALF).intoArray(finite, 0);
      for (int j = 0; j < lanes; j++) {
        int pattern = i + j;
        int expected = Float.floatToRawIntBits(Half.toFloat((short) pattern));
        assertEquals(expected, Float.floatToRawIntBits(widened[j]),
            () -> "fp16 bits 0x" + Integer.toHexString(pattern)); // NaN payloads, infinities and -0 included
        if ((pattern & 0x7c00) != 0x7c00) {
          assertEquals(expected, Float.floatToRawIntBits(finite[j]),
              () -> "finite fp16 0x" + Integer.toHexString(pattern));
        }
      }
      VectorLinearKernels.widen(bits, i, VectorLinearKernels.BF16).intoArray(widened, 0);
      for (int j = 0; j < lanes; j++) {
        assertEquals((i + j) << 16, Float.floatToRawIntBits(widened[j]));
      }
    }
  }

  /**
   * A token's outputs are the same bits whether it is computed alone (the decode kernel), among 3, or in a
   * prefill of 4 to 300 tokens (the tiles, with token blocks at in = 3072), whatever the split of the rows.
   */
  @ParameterizedTest
  @ValueSource(strings = {"F32", "F16", "BF16", "INT8"})
  void aTokensOutputsDoNotDependOnTheOtherTokens(String dtype) {
    Random random = new Random(7 + dtype.hashCode());
    for (int[] shape : new int[][] {{83, 21}, {768, 9}, {3072, 6}, {5, 13}}) { // (in, out)
      int in = shape[0];
      int out = shape[1];
      LinearKernels.Weights w = LinearKernels.Weights.forVectorKernels(dtype.equals("INT8")
          ? int8Weights(out, in, random) : weights(DType.valueOf(dtype), out, in, random));
      float[] bias = gaussian(random, out);
      int tokens = 300;
      float[] x = gaussian(random, tokens * in);
      float[] all = new float[tokens * out];
      Arrays.fill(all, Float.NaN); // a write past a range's end would be caught below, not overwritten
      VectorLinearKernels.rows(all, x, tokens, w, bias, true, 7 % out, out); // an uneven split of the rows
      VectorLinearKernels.rows(all, x, tokens, w, bias, true, 0, 7 % out);
      for (int count : new int[] {1, 3, 4, 5, 17}) {
        for (int t0 : new int[] {0, 130, tokens - count}) {
          float[] part = new float[count * out];
          VectorLinearKernels.rows(part, Arrays.copyOfRange(x, t0 * in, (t0 + count) * in), count, w, bias, true,
              0, out);
          for (int i = 0; i < part.length; i++) {
            int at = i;
            assertEquals(Float.floatToRawIntBits(all[t0 * out + i]), Float.floatToRawIntBits(part[i]),
                () -> dtype + " in " + in + ": token " + (t0 + at / out) + " row " + at % out + " among " + count);
          }
        }
      }
    }
  }

  /**
   * Every int8 value widens to itself, at every lane, up to the array's last element (with 128-bit floats the
   * byte load is wider than the floats and must be masked there).
   */
  @Test
  void everyInt8WidensToItself() {
    int lanes = VectorLinearKernels.FLOATS.length();
    byte[] values = new byte[256 + lanes]; // ends exactly at a whole vector, so the last load touches the end
    for (int i = 0; i < values.length; i++) {
      values[i] = (byte) (i - 128);
    }
    float[] widened = new float[lanes];
    for (int i = 0; i + lanes <= values.length; i++) {
      VectorLinearKernels.widen8(values, i).intoArray(widened, 0);
      for (int j = 0; j < lanes; j++) {
        assertEquals(values[i + j], widened[j], "byte at " + (i + j));
      }
    }
  }

  /** The int8 decode dot product sums over the integers exactly as the tiles do over their widened rows. */
  @Test
  void int8DecodeAndTilesAgreeOnEveryRow() {
    Random random = new Random(11);
    for (int in : new int[] {1, 15, 16, 17, 300}) {
      LinearKernels.Weights w = LinearKernels.Weights.forVectorKernels(int8Weights(5, in, random));
      float[] x = gaussian(random, 4 * in);
      float[] tiles = new float[4 * 5];
      VectorLinearKernels.rows(tiles, x, 4, w, null, false, 0, 5);
      for (int t = 0; t < 4; t++) {
        float[] alone = new float[5];
        VectorLinearKernels.rows(alone, Arrays.copyOfRange(x, t * in, (t + 1) * in), 1, w, null, false, 0, 5);
        float[] scalar = new float[5];
        LinearKernels.dotRows(scalar, Arrays.copyOfRange(x, t * in, (t + 1) * in), 1, w, null, false, 0, 5);
        for (int o = 0; o < 5; o++) {
          assertEquals(Float.floatToRawIntBits(tiles[t * 5 + o]), Float.floatToRawIntBits(alone[o]),
              "in " + in + " token " + t + " row " + o);
          assertEquals(scalar[o], alone[o], 1e-4f * in, "scalar kernel, in " + in);
        }
      }
    }
  }

  /**
   * fp16 weights with an infinity or a NaN take the exact widening: the outputs they touch match the scalar kernels'.
   */
  @Test
  void halfInfinitiesAndNansReachTheOutputs() {
    Random random = new Random(3);
    int in = 43; // a scalar tail of 11 or 3 features at 512, 256 and 128 bits
    int out = 6;
    CpuMat m = weights(DType.F16, out, in, random);
    m.bits[1 * in + 3] = (short) 0x7c00; // +inf in a vector part
    m.bits[2 * in + 42] = (short) 0xfc00; // -inf in the scalar tail
    m.bits[4 * in + 20] = (short) 0x7e01; // NaN
    LinearKernels.Weights w = LinearKernels.Weights.forVectorKernels(m);
    assertTrue(w.halfSpecials());
    for (int tokens : new int[] {1, 5}) {
      float[] x = gaussian(random, tokens * in);
      float[] vector = new float[tokens * out];
      float[] scalar = new float[tokens * out];
      VectorLinearKernels.rows(vector, x, tokens, w, null, false, 0, out);
      LinearKernels.dotRows(scalar, x, tokens, w, null, false, 0, out);
      for (int i = 0; i < vector.length; i++) {
        if (Float.isFinite(scalar[i])) {
          assertEquals(scalar[i], vector[i], 1e-4f * in, "element " + i);
        } else {
          assertEquals(scalar[i], vector[i], "element " + i); // the same infinity, or NaN for NaN
        }
      }
      assertTrue(Float.isInfinite(vector[1]) && Float.isInfinite(vector[2]) && Float.isNaN(vector[4]));
    }
  }

  /** No tokens, no output rows, or no input features (the sums are then the bias alone). */
  @Test
  void emptySizes() {
    Random random = new Random(5);
    for (DType dtype : DType.values()) {
      LinearKernels.Weights w = LinearKernels.Weights.forVectorKernels(weights(dtype, 5, 0, random));
      float[] bias = gaussian(random, 5);
      for (int tokens : new int[] {1, 6}) {
        float[] out = new float[tokens * 5];
        VectorLinearKernels.rows(out, new float[0], tokens, w, bias, false, 0, 5);
        for (int t = 0; t < tokens; t++) {
          assertArrayEquals(bias, Arrays.copyOfRange(out, t * 5, t * 5 + 5), dtype + ", in 0");
        }
      }
      LinearKernels.Weights some = LinearKernels.Weights.forVectorKernels(weights(dtype, 3, 20, random));
      VectorLinearKernels.rows(new float[0], new float[0], 0, some, null, false, 0, 3); // no tokens
      float[] untouched = {7f};
      VectorLinearKernels.rows(untouched, gaussian(random, 20), 1, some, null, false, 2, 2); // no rows
      assertEquals(7f, untouched[0]);
    }
  }

  /** The scan for infinities and NaNs finds one wherever it is, across its 65,536-element chunks. */
  @Test
  void halfSpecialsAreFoundAnywhere() {
    short[] bits = new short[3 * 65_536 + 5];
    assertFalse(CpuMat.scanForHalfSpecials(bits));
    for (int at : new int[] {0, 65_535, 65_536, bits.length - 1}) {
      for (short special : new short[] {(short) 0x7c00, (short) 0xfc00, (short) 0x7e01, (short) 0xffff}) {
        bits[at] = special;
        assertTrue(CpuMat.scanForHalfSpecials(bits), () -> "0x" + Integer.toHexString(special & 0xffff) + " at " + at);
      }
      bits[at] = (short) 0x7bff; // the largest finite half
      assertFalse(CpuMat.scanForHalfSpecials(bits));
    }
  }

  /** Random integers in [-127, 127] (scales 1: the kernels never read them). */
  private static CpuMat int8Weights(int rows, int cols, Random random) {
    byte[] values = new byte[rows * cols];
    for (int i = 0; i < values.length; i++) {
      values[i] = (byte) (random.nextInt(255) - 127);
    }
    float[] scales = new float[rows];
    Arrays.fill(scales, 1f);
    return new CpuMat(new Int8Rows(rows, cols, values, scales));
  }

  private static CpuMat weights(DType dtype, int rows, int cols, Random random) {
    CpuMat m = new CpuMat(rows, cols, dtype);
    for (int i = 0; i < rows * cols; i++) {
      float v = (float) random.nextGaussian();
      switch (dtype) {
        case F32 -> m.f32[i] = v;
        case F16 -> m.bits[i] = Half.fromFloat(v);
        case BF16 -> m.bits[i] = (short) (Float.floatToRawIntBits(v) >>> 16);
      }
    }
    return m;
  }

  private static float[] gaussian(Random random, int n) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = (float) random.nextGaussian();
    }
    return v;
  }
}
