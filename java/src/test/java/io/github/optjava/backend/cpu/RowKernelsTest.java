package io.github.optjava.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

/** {@link RowKernels}: the exponential's accuracy, and the vector and scalar loops against each other and a reference. */
class RowKernelsTest {

  @Test
  void theExponentialIsWithinTwoUlpOfMathExpOverASoftmaxsRange() {
    Random r = new Random(7);
    int worstUlps = 0;
    for (int i = 0; i < 2_000_000; i++) {
      float x = i < 1_000_000 ? -87.3f * r.nextFloat() : -0.5f * r.nextFloat(); // and densely near 0
      float exact = (float) Math.exp(x);
      int ulps = Math.abs(Float.floatToIntBits(RowKernels.exp(x)) - Float.floatToIntBits(exact));
      worstUlps = Math.max(worstUlps, ulps);
    }
    assertTrue(worstUlps <= 2, "worst error " + worstUlps + " ulp");
    assertEquals(1f, RowKernels.exp(0f));
    assertEquals(1f, RowKernels.exp(-0f));
    assertEquals(0f, RowKernels.exp(Float.NEGATIVE_INFINITY));
    assertEquals(0f, RowKernels.exp(-88f), "below the smallest normal float");
    assertTrue(Float.isNaN(RowKernels.exp(Float.NaN)));
    assertEquals((float) Math.E, RowKernels.exp(1f), Math.ulp((float) Math.E));
  }

  @Test
  void sumsAndWeightsMatchADoubleReferenceAtEveryOffsetAndLength() {
    Random r = new Random(11);
    float[] v = new float[300];
    for (int i = 0; i < v.length; i++) {
      v[i] = i % 37 == 5 ? Float.NEGATIVE_INFINITY : (float) (r.nextGaussian() * 4);
    }
    for (int from = 0; from < 20; from++) {
      for (int to = from; to <= v.length; to += 1 + to / 40) {
        float max = 7f;
        double reference = 0;
        for (int i = from; i < to; i++) {
          reference += Math.exp(v[i] - max); // of the float difference, as documented (torch's float32 too)
        }
        float[] weights = new float[to - from];
        double sum = RowKernels.expInto(v, from, to, max, weights);
        assertEquals(reference, sum, 4e-7 * reference + 1e-30, "[" + from + ", " + to + ")");
        assertEquals(sum, RowKernels.expSum(v, from, to, max), "the same sum with and without the weights");
        for (int i = from; i < to; i++) {
          assertEquals(RowKernels.exp(v[i] - max), weights[i - from], "weight " + i + " is the scalar exp's bits");
        }
      }
    }
    assertThrows(IllegalArgumentException.class, () -> RowKernels.expInto(v, 0, 10, 0f, new float[9]));
  }

  @Test
  void theVectorLoopsGiveTheScalarLoopsResults() {
    assumeTrue(VectorSupport.AVAILABLE, "the Vector API kernels need --add-modules jdk.incubator.vector");
    Random r = new Random(3);
    float[] v = new float[50_272 + 13];
    for (int i = 0; i < v.length; i++) {
      v[i] = (float) (r.nextGaussian() * 3);
    }
    for (int from : new int[] {0, 1, 7, 13}) {
      int to = v.length - (13 - from);
      float max = scalarMax(v, from, to);
      assertEquals(max, VectorRowKernels.max(v, from, to));
      int argmax = RowKernels.firstEqual(v, from, to, max);
      assertEquals(argmax, VectorRowKernels.firstEqual(v, from, to, max));
      float[] scalarWeights = new float[to - from];
      float[] vectorWeights = new float[to - from];
      double scalar = RowKernels.expSum(v, from, to, max, scalarWeights, 0);
      double vector = VectorRowKernels.expSum(v, from, to, max, vectorWeights);
      assertTrue(java.util.Arrays.equals(scalarWeights, vectorWeights), "every weight the same bits, from " + from);
      assertEquals(scalar, vector, 1e-12 * scalar, "the same terms, another order");
    }
  }

  @Test
  void argmaxFollowsTorch() {
    float inf = Float.POSITIVE_INFINITY;
    float[] big = new float[1000];
    java.util.Arrays.fill(big, -1f);
    big[517] = 3f;
    big[903] = 3f;
    assertEquals(517, RowKernels.argmax(big, 0, big.length), "the first of equal maxima");
    assertEquals(417, RowKernels.argmax(big, 100, big.length), "relative to from");
    big[640] = Float.NaN;
    big[700] = Float.NaN;
    assertEquals(640, RowKernels.argmax(big, 0, big.length), "the first NaN wins");
    assertEquals(0, RowKernels.argmax(new float[] {-inf, -inf, -inf}, 0, 3), "a row of -inf gives 0");
    assertEquals(0, RowKernels.argmax(new float[] {-0f, 0f}, 0, 2), "0 and -0 tie");
    assertEquals(2, RowKernels.argmax(new float[] {1f, 2f, inf, inf}, 0, 4));
    assertEquals(0, RowKernels.argmax(big, 5, 5), "an empty row");
    float[] tail = new float[67];
    tail[66] = 1f;
    assertEquals(66, RowKernels.argmax(tail, 0, tail.length), "in the scalar tail");
    assertTrue(Float.isNaN(RowKernels.max(new float[] {1f, Float.NaN, 2f}, 0, 3)));
    assertEquals(Float.NEGATIVE_INFINITY, RowKernels.max(big, 3, 3));
  }

  private static float scalarMax(float[] v, int from, int to) {
    float m = Float.NEGATIVE_INFINITY;
    for (int i = from; i < to; i++) {
      m = Math.max(m, v[i]);
    }
    return m;
  }
}
