package io.github.optjava.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.github.optjava.backend.AttentionBatch;
import io.github.optjava.backend.KvStore;
import io.github.optjava.backend.Mat;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.checkpoint.Half;
import io.github.optjava.checkpoint.Tensor;
import io.github.optjava.checkpoint.TensorInfo;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;

/** Every reference op against values computed by hand. */
class CpuOpsTest {
  private final CpuOps ops = new CpuOps();

  private Mat mat(int rows, int cols, float... v) {
    Mat m = ops.alloc(rows, cols);
    ops.write(m, v);
    return m;
  }

  private static Tensor f16(String name, long[] shape, float... v) {
    ByteBuffer b = ByteBuffer.allocate(2 * v.length).order(ByteOrder.LITTLE_ENDIAN);
    for (float f : v) {
      b.putShort(Half.fromFloat(f));
    }
    return new Tensor(new TensorInfo(name, DType.F16, shape), b.flip());
  }

  @Test
  void embeddingCopiesRowsAndZeroesInvalidIds() {
    Mat table = ops.weight(f16("t", new long[] {3, 2}, 1, 2, 3, 4, 5, 6));
    Mat out = mat(4, 2, Float.NaN, Float.NaN, Float.NaN, Float.NaN, Float.NaN, Float.NaN, Float.NaN, Float.NaN);
    ops.embedding(out, table, new int[] {2, 0, 3, -1});
    assertArrayEquals(new float[] {5, 6, 1, 2, 0, 0, 0, 0}, ops.read(out));
  }

  @Test
  void addPositionsUsesOffsetTwo() {
    Mat table = mat(4, 2, 0, 0, 100, 100, 1, 2, 3, 4); // rows 0, 1 unused by real positions
    Mat x = mat(2, 2, 10, 10, 20, 20);
    ops.addPositions(x, table, new int[] {0, 1});
    assertArrayEquals(new float[] {11, 12, 23, 24}, ops.read(x));
    assertThrows(IllegalArgumentException.class, () -> ops.addPositions(x, table, new int[] {2, 0}));
  }

  @Test
  void layerNormMatchesHandComputation() {
    // row [1, 2, 3]: mean 2, biased var 2/3
    Mat x = mat(1, 3, 1, 2, 3);
    Mat out = ops.alloc(1, 3);
    ops.layerNorm(out, x, mat(1, 3, 1, 2, 1), mat(1, 3, 0, 0, 0.5f), 0f);
    float s = (float) Math.sqrt(1.5);
    assertArrayEquals(new float[] {-s, 0, s + 0.5f}, ops.read(out), 1e-6f);
  }

  @Test
  void linearWithBiasAndRelu() {
    Mat x = mat(2, 2, 1, 2, 3, 4);
    Mat w = ops.weight(f16("w", new long[] {3, 2}, 1, 0, 0, 1, -1, -1)); // (out 3, in 2)
    Mat b = mat(1, 3, 0.5f, 0, 0);
    Mat out = ops.alloc(2, 3);
    ops.linear(out, x, w, b, false);
    assertArrayEquals(new float[] {1.5f, 2, -3, 3.5f, 4, -7}, ops.read(out));
    ops.linear(out, x, w, null, true);
    assertArrayEquals(new float[] {1, 2, 0, 3, 4, 0}, ops.read(out));
  }

  @Test
  void addInPlaceAndGatherRows() {
    Mat x = mat(2, 2, 1, 2, 3, 4);
    ops.addInPlace(x, mat(2, 2, 10, 20, 30, 40));
    assertArrayEquals(new float[] {11, 22, 33, 44}, ops.read(x));
    Mat g = ops.alloc(2, 2);
    ops.gatherRows(g, x, new int[] {1, 1});
    assertArrayEquals(new float[] {33, 44, 33, 44}, ops.read(g));
  }

  @Test
  void attentionIsCausalAndReadsThroughTheBlockTable() {
    // One head of dim 1, block size 1, positions stored in scattered blocks 2 and 0.
    KvStore kv = ops.kvStore(1, 3, 1, 1);
    Mat k = mat(2, 1, 0, 0);       // equal keys: uniform attention over visible positions
    Mat v = mat(2, 1, 10, 20);
    ops.kvAppend(kv, 0, k, v, new int[] {2, 0});
    AttentionBatch batch = new AttentionBatch(new int[] {0}, new int[] {2}, new int[] {2}, new int[][] {{2, 0}});
    Mat out = ops.alloc(2, 1);
    ops.attention(out, mat(2, 1, 1, 1), kv, 0, batch, 1, 1f);
    assertArrayEquals(new float[] {10, 15}, ops.read(out), 1e-6f); // first sees only itself

    // Two heads with distinct keys: softmax weights e^1 / (e^1 + e^0) on the matching value.
    KvStore kv2 = ops.kvStore(1, 1, 2, 2);
    ops.kvAppend(kv2, 0, mat(2, 2, 1, 0, 0, 1), mat(2, 2, 1, 0, 0, 1), new int[] {0, 1});
    AttentionBatch decode = new AttentionBatch(new int[] {0}, new int[] {1}, new int[] {2}, new int[][] {{0}});
    Mat o2 = ops.alloc(1, 2);
    ops.attention(o2, mat(1, 2, 1, 1), kv2, 0, decode, 2, 1f);
    // head 0 (dim 0): keys 1, 0 → weights e/(e+1), 1/(e+1) on values 1, 0
    float w = (float) (Math.E / (Math.E + 1));
    assertArrayEquals(new float[] {w, w}, ops.read(o2), 1e-6f);
  }

  @Test
  void kvCopyBlocksCopiesEveryLayer() {
    KvStore kv = ops.kvStore(2, 2, 1, 1);
    for (int l = 0; l < 2; l++) {
      ops.kvAppend(kv, l, mat(1, 1, l + 1), mat(1, 1, l + 10), new int[] {0});
    }
    ops.kvCopyBlocks(kv, new int[] {0}, new int[] {1});
    Mat out = ops.alloc(1, 1);
    AttentionBatch b = new AttentionBatch(new int[] {0}, new int[] {1}, new int[] {1}, new int[][] {{1}});
    ops.attention(out, mat(1, 1, 1), kv, 1, b, 1, 1f);
    assertArrayEquals(new float[] {11}, ops.read(out));
  }
}
