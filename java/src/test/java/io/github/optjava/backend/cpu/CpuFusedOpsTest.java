package io.github.optjava.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import io.github.optjava.backend.AttentionBatch;
import io.github.optjava.backend.KvStore;
import io.github.optjava.backend.Mat;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The fused ops of the reference against the unfused ops they replace: same float32 arithmetic in the
 * same order, so equal bit for bit.
 */
class CpuFusedOpsTest {
  private final CpuOps ops = new CpuOps();
  private final Random random = new Random(11);

  private Mat mat(int rows, int cols) {
    float[] v = new float[rows * cols];
    for (int i = 0; i < v.length; i++) {
      v[i] = (float) random.nextGaussian();
    }
    Mat m = ops.alloc(rows, cols);
    ops.write(m, v);
    return m;
  }

  private Mat copy(Mat m) {
    Mat c = ops.alloc(m.rows(), m.cols());
    ops.write(c, ops.read(m));
    return c;
  }

  @Test
  void addBiasLayerNormIsBiasThenResidualThenLayerNorm() {
    int rows = 5;
    int cols = 37;
    Mat x = mat(rows, cols);
    Mat y = mat(rows, cols);
    Mat bias = mat(1, cols);
    Mat gamma = mat(1, cols);
    Mat beta = mat(1, cols);
    // Unfused: y + bias (as linear adds its bias), x += that, then the layer norm.
    Mat yb = copy(y);
    float[] ybv = ops.read(yb);
    float[] bv = ops.read(bias);
    for (int i = 0; i < ybv.length; i++) {
      ybv[i] += bv[i % cols];
    }
    ops.write(yb, ybv);
    Mat xu = copy(x);
    ops.addInPlace(xu, yb);
    Mat outU = ops.alloc(rows, cols);
    ops.layerNorm(outU, xu, gamma, beta, 1e-5f);

    Mat xf = copy(x);
    Mat outF = ops.alloc(rows, cols);
    ops.addBiasLayerNorm(xf, y, bias, outF, gamma, beta, 1e-5f);
    assertArrayEquals(ops.read(xu), ops.read(xf));
    assertArrayEquals(ops.read(outU), ops.read(outF));

    Mat xn = copy(x);
    ops.addInPlace(xn, y);
    Mat xnf = copy(x);
    ops.addBiasLayerNorm(xnf, y, null, outF, gamma, beta, 1e-5f);
    assertArrayEquals(ops.read(xn), ops.read(xnf), "no bias: a plain residual add");
  }

  @Test
  void qkvAppendIsThreeLinearsAndKvAppend() {
    int tokens = 3;
    int hidden = 8;
    int width = 6;
    Mat x = mat(tokens, hidden);
    Mat wq = mat(width, hidden);
    Mat wk = mat(width, hidden);
    Mat wv = mat(width, hidden);
    Mat bq = mat(1, width);
    Mat bk = mat(1, width);
    Mat bv = mat(1, width);
    int[] slots = {5, 0, 2};
    // Unfused.
    Mat q = ops.alloc(tokens, width);
    Mat k = ops.alloc(tokens, width);
    Mat v = ops.alloc(tokens, width);
    ops.linear(q, x, wq, bq, false);
    ops.linear(k, x, wk, bk, false);
    ops.linear(v, x, wv, bv, false);
    KvStore unfused = ops.kvStore(1, 2, 4, width);
    ops.kvAppend(unfused, 0, k, v, slots);
    // Fused: one GEMM over the stacked weights, then the epilogue.
    Mat w = ops.alloc(3 * width, hidden);
    float[] stacked = new float[3 * width * hidden];
    System.arraycopy(ops.read(wq), 0, stacked, 0, width * hidden);
    System.arraycopy(ops.read(wk), 0, stacked, width * hidden, width * hidden);
    System.arraycopy(ops.read(wv), 0, stacked, 2 * width * hidden, width * hidden);
    ops.write(w, stacked);
    Mat b = ops.alloc(1, 3 * width);
    float[] bias = new float[3 * width];
    System.arraycopy(ops.read(bq), 0, bias, 0, width);
    System.arraycopy(ops.read(bk), 0, bias, width, width);
    System.arraycopy(ops.read(bv), 0, bias, 2 * width, width);
    ops.write(b, bias);
    Mat qkv = ops.alloc(tokens, 3 * width);
    ops.linear(qkv, x, w, null, false);
    Mat qf = ops.alloc(tokens, width);
    KvStore fused = ops.kvStore(1, 2, 4, width);
    ops.qkvAppend(qf, fused, 0, qkv, b, slots);

    assertArrayEquals(ops.read(q), ops.read(qf));
    CpuKvStore a = CpuKvStore.of(unfused);
    CpuKvStore c = CpuKvStore.of(fused);
    assertArrayEquals(a.keys[0], c.keys[0]);
    assertArrayEquals(a.values[0], c.values[0]);
    // And what attention reads through them is the same.
    AttentionBatch batch = new AttentionBatch(new int[] {0}, new int[] {3}, new int[] {3}, new int[][] {{1, 0}});
    Mat o1 = ops.alloc(tokens, width);
    Mat o2 = ops.alloc(tokens, width);
    ops.attention(o1, q, unfused, 0, batch, 2, 0.5f);
    ops.attention(o2, qf, fused, 0, batch, 2, 0.5f);
    assertArrayEquals(ops.read(o1), ops.read(o2));
  }
}
