package io.github.optjava.backend.cpu;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link RowKernels} with the Vector API: the same exponential lane by lane (each step the same {@code fma}), the sum
 * in double lanes. Only {@link RowKernels} may touch this class, and only when {@link VectorSupport#AVAILABLE}, so
 * that it is never loaded without the {@code jdk.incubator.vector} module.
 */
final class VectorRowKernels {
  private static final VectorSpecies<Float> WIDE = FloatVector.SPECIES_PREFERRED;
  private static final VectorSpecies<Double> DOUBLES = DoubleVector.SPECIES_PREFERRED;
  /** As many floats as {@link #DOUBLES} has doubles, so that one conversion widens a whole vector. */
  private static final VectorSpecies<Float> FLOATS =
      VectorSpecies.of(float.class, VectorShape.forBitSize(Math.max(64, DOUBLES.vectorBitSize() / 2)));

  private VectorRowKernels() {}

  static boolean usable() {
    return DOUBLES.length() >= 2 && FLOATS.length() == DOUBLES.length() && WIDE.length() >= 4;
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
      acc = acc.add(e.convertShape(VectorOperators.F2D, DOUBLES, 0));
    }
    double sum = 0;
    for (double lane : acc.toArray()) { // in lane order (reduceLanes leaves its order open)
      sum += lane;
    }
    return sum + RowKernels.expSum(v, i, to, max, out, i - from);
  }

  /** {@link RowKernels#exp}, lane by lane. */
  static FloatVector exp(FloatVector x) {
    FloatVector c = x.max(RowKernels.LOWEST).min(RowKernels.HIGHEST);
    FloatVector k = c.fma(RowKernels.LOG2E, RowKernels.ROUND);
    FloatVector n = k.sub(RowKernels.ROUND);
    FloatVector r = n.fma(all(RowKernels.NEG_LN2_HI), c);
    r = n.fma(all(RowKernels.NEG_LN2_LO), r);
    FloatVector p = all(RowKernels.P0).fma(r, all(RowKernels.P1));
    p = p.fma(r, all(RowKernels.P2));
    p = p.fma(r, all(RowKernels.P3));
    p = p.fma(r, all(RowKernels.P4));
    p = p.fma(r, all(RowKernels.P5));
    FloatVector y = p.fma(r.mul(r), r).add(1f);
    // 2^n from k's bits (see RowKernels.exp): Java 17 does not compile a float-to-int conversion to one instruction
    IntVector bits = ((IntVector) k.reinterpretAsInts()).add(RowKernels.EXPONENT_FROM_ROUNDED)
        .lanewise(VectorOperators.LSHL, 23);
    FloatVector scale = bits.reinterpretAsFloats();
    return y.mul(scale).blend(0f, x.compare(VectorOperators.LT, RowKernels.LOWEST));
  }

  private static FloatVector all(float value) {
    return FloatVector.broadcast(FLOATS, value);
  }
}
