package io.github.optjava.backend.cpu;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link RowKernels} with the Vector API: the same exponential lane by lane (each step the same {@code fma}), the sum
 * in double lanes. Only {@link RowKernels} may touch this class, and only when {@link VectorSupport#AVAILABLE}, so
 * that it is never loaded without the {@code jdk.incubator.vector} module.
 */
final class VectorRowKernels {
  private static final VectorSpecies<Float> WIDE = FloatVector.SPECIES_PREFERRED;
  /** The exponentials' species: as wide as {@link #DOUBLES}, so each vector widens to two double vectors. */
  private static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
  private static final VectorSpecies<Double> DOUBLES = DoubleVector.SPECIES_PREFERRED;

  private VectorRowKernels() {}

  static boolean usable() {
    return DOUBLES.length() >= 2 && FLOATS.vectorBitSize() == DOUBLES.vectorBitSize() && WIDE.length() >= 4;
  }

  static float max(float[] v, int from, int to) {
    FloatVector acc = FloatVector.broadcast(WIDE, Float.NEGATIVE_INFINITY);
    int i = from;
    for (int bound = from + WIDE.loopBound(to - from); i < bound; i += WIDE.length()) {
      acc = acc.lanewise(VectorOperators.MAX, FloatVector.fromArray(WIDE, v, i));
    }
    float m = Float.NEGATIVE_INFINITY;
    for (float lane : acc.toArray()) {
      m = Math.max(m, lane);
    }
    for (; i < to; i++) {
      m = Math.max(m, v[i]);
    }
    return m;
  }

  static int firstEqual(float[] v, int from, int to, float value) {
    int i = from;
    for (int bound = from + WIDE.loopBound(to - from); i < bound; i += WIDE.length()) {
      VectorMask<Float> hit = FloatVector.fromArray(WIDE, v, i).compare(VectorOperators.EQ, value);
      if (hit.anyTrue()) {
        return i + hit.firstTrue();
      }
    }
    return RowKernels.firstEqual(v, i, to, value);
  }

  static double expSum(float[] v, int from, int to, float max, float[] out) {
    int lanes = FLOATS.length();
    DoubleVector acc = DoubleVector.zero(DOUBLES);
    int i = from;
    for (int bound = from + FLOATS.loopBound(to - from); i < bound; i += lanes) {
      FloatVector e = exp(FloatVector.fromArray(FLOATS, v, i).sub(max));
      if (out != null) {
        e.intoArray(out, i - from);
      }
      acc = acc.add(e.convertShape(VectorOperators.F2D, DOUBLES, 0)).add(e.convertShape(VectorOperators.F2D, DOUBLES, 1));
    }
    double sum = 0;
    for (double lane : acc.toArray()) { // in lane order (reduceLanes leaves its order open)
      sum += lane;
    }
    return sum + RowKernels.expSum(v, i, to, max, out, i - from);
  }

  /**
   * {@link RowKernels#exp} lane by lane: {@code e^x} for {@code x ≤ 0} to about 1 ulp, results below the smallest
   * normal float 0. {@code x = n·ln 2 + r} (Cody–Waite, ln 2 in two parts), Cephes' degree-6 polynomial for
   * {@code e^r}, times {@code 2^n} built from the exponent bits of {@code n + 1.5·2^23} (Java 17's Vector API does not
   * compile a float-to-int conversion to one instruction: lane by lane it took 50 times the rest). The CPU attention
   * kernel keeps its own copy ({@link VectorAttentionKernel#exp}, which says why); only {@link #expSum} calls this one,
   * so that C2 inlines it there.
   */
  static FloatVector exp(FloatVector x) {
    VectorMask<Float> tiny = x.compare(VectorOperators.LT, RowKernels.FLUSH_BELOW);
    FloatVector xc = x.max(RowKernels.FLUSH_BELOW);
    FloatVector t = xc.fma(RowKernels.LOG2E, RowKernels.ROUNDER); // n + 1.5 · 2^23: n in the low mantissa bits
    FloatVector n = t.sub(RowKernels.ROUNDER);
    FloatVector r = n.fma(NEG_LN2_HI, xc);
    r = n.fma(NEG_LN2_LO, r);
    FloatVector p = C0.fma(r, C1);
    p = p.fma(r, C2);
    p = p.fma(r, C3);
    p = p.fma(r, C4);
    p = p.fma(r, C5);
    p = p.mul(r.mul(r)).add(r).add(1f);
    IntVector bits = t.reinterpretAsInts().sub(Float.floatToRawIntBits(RowKernels.ROUNDER)); // n as an integer
    FloatVector twoToN = bits.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
    FloatVector e = p.mul(twoToN);
    return e.blend(0f, tiny.or(e.compare(VectorOperators.LT, Float.MIN_NORMAL)));
  }

  private static final FloatVector NEG_LN2_HI = FloatVector.broadcast(FLOATS, -RowKernels.LN2_HI);
  private static final FloatVector NEG_LN2_LO = FloatVector.broadcast(FLOATS, -RowKernels.LN2_LO);
  private static final FloatVector C0 = FloatVector.broadcast(FLOATS, RowKernels.P0);
  private static final FloatVector C1 = FloatVector.broadcast(FLOATS, RowKernels.P1);
  private static final FloatVector C2 = FloatVector.broadcast(FLOATS, RowKernels.P2);
  private static final FloatVector C3 = FloatVector.broadcast(FLOATS, RowKernels.P3);
  private static final FloatVector C4 = FloatVector.broadcast(FLOATS, RowKernels.P4);
  private static final FloatVector C5 = FloatVector.broadcast(FLOATS, RowKernels.P5);
}
