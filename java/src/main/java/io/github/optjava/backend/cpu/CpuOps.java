package io.github.optjava.backend.cpu;

import io.github.optjava.backend.AttentionBatch;
import io.github.optjava.backend.Int8Rows;
import io.github.optjava.backend.KvStore;
import io.github.optjava.backend.Mat;
import io.github.optjava.backend.Ops;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.checkpoint.Tensor;
import java.nio.ByteBuffer;

/**
 * The reference implementation of {@link Ops}: scalar, single-threaded, obviously correct Java. It is
 * the oracle every other implementation (the fast CPU path, every CUDA kernel) is tested against, so
 * clarity beats speed here: one loop nest per op, float32 accumulation, no tricks.
 */
public class CpuOps implements Ops {
  private final boolean int8Linears;
  private final boolean halfKvCache;

  /** Linear weights kept in their checkpoint dtype. */
  public CpuOps() {
    this(false);
  }

  /**
   * @param int8Linears whether {@link #linearWeight} quantizes Linear weights to int8 per output row
   *                    ({@link Int8Rows}): half the memory of fp16, and decode reads half the bytes
   */
  public CpuOps(boolean int8Linears) {
    this(int8Linears, false);
  }

  /**
   * @param int8Linears as {@link #CpuOps(boolean)}
   * @param halfKvCache whether {@link #kvStore} keeps keys and values as fp16 (half the memory of float32; each
   *                    rounded to the nearest fp16 when appended) instead of float32
   */
  public CpuOps(boolean int8Linears, boolean halfKvCache) {
    this.int8Linears = int8Linears;
    this.halfKvCache = halfKvCache;
  }

  /** Whether Linear weights are quantized to int8 ({@link #linearWeight}). */
  public boolean int8Linears() {
    return int8Linears;
  }

  @Override
  public String name() {
    return "cpu-reference" + (int8Linears ? "-int8" : "") + (halfKvCache ? "-kv16" : "");
  }

  @Override
  public Mat weight(Tensor tensor) {
    long[] shape = tensor.shape();
    if (shape.length < 1 || shape.length > 2) {
      throw new IllegalArgumentException("tensor " + tensor.name() + " has rank " + shape.length + ": expected 1 or 2");
    }
    int rows = shape.length == 1 ? 1 : Math.toIntExact(shape[0]);
    int cols = Math.toIntExact(shape[shape.length - 1]);
    CpuMat m = new CpuMat(rows, cols, tensor.dtype());
    ByteBuffer data = tensor.data();
    if (m.f32 != null) {
      data.asFloatBuffer().get(m.f32);
    } else {
      data.asShortBuffer().get(m.bits);
    }
    return m;
  }

  @Override
  public Mat linearWeight(Tensor tensor) {
    return int8Linears ? new CpuMat(Int8Rows.quantize(tensor)) : weight(tensor);
  }

  @Override
  public Mat alloc(int rows, int cols) {
    return new CpuMat(rows, cols, DType.F32);
  }

  @Override
  public void write(Mat dst, float[] src) {
    CpuMat d = f32(dst);
    if (src.length != d.f32.length) {
      throw new IllegalArgumentException(src.length + " floats for a " + d);
    }
    System.arraycopy(src, 0, d.f32, 0, src.length);
  }

  @Override
  public float[] read(Mat src) {
    CpuMat s = CpuMat.of(src);
    float[] out = new float[s.rows * s.cols];
    for (int i = 0; i < out.length; i++) {
      out[i] = s.get(i);
    }
    return out;
  }

  @Override
  public long freeMemory() {
    return JavaHeap.free();
  }

  @Override
  public void requireRoomForWeights(String what, long linearElements, long otherElements, int elementBytes) {
    // int8 rows: one byte per weight plus a float scale per row, a few per mille at OPT's widths (not counted)
    long bytes = linearElements * (int8Linears ? 1 : elementBytes) + otherElements * elementBytes;
    JavaHeap.requireRoom(what, bytes, int8Linears);
  }

  @Override
  public int kvElementBytes() {
    return halfKvCache ? 2 : 4; // fp16 or float32 cache on the heap
  }

  @Override
  public KvStore kvStore(int layers, int blocks, int blockSize, int width) {
    return new CpuKvStore(layers, blocks, blockSize, width, halfKvCache);
  }

  @Override
  public void embedding(Mat out, Mat table, int[] ids) {
    CpuMat o = f32(out);
    CpuMat tab = CpuMat.of(table);
    requireCols(o, tab.cols, "embedding");
    for (int t = 0; t < ids.length; t++) {
      int id = ids[t];
      for (int j = 0; j < o.cols; j++) {
        o.f32[t * o.cols + j] = id >= 0 && id < tab.rows ? tab.get(id * tab.cols + j) : 0f;
      }
    }
  }

  @Override
  public void addPositions(Mat x, Mat table, int[] positions) {
    CpuMat o = f32(x);
    CpuMat tab = CpuMat.of(table);
    requireCols(o, tab.cols, "addPositions");
    for (int t = 0; t < positions.length; t++) {
      int row = positions[t] + 2; // OPT's learned positions start at row 2 (fairseq legacy)
      if (row < 0 || row >= tab.rows) {
        throw new IllegalArgumentException("position " + positions[t] + " is outside the position table ("
            + (tab.rows - 2) + " positions)");
      }
      for (int j = 0; j < o.cols; j++) {
        o.f32[t * o.cols + j] += tab.get(row * tab.cols + j);
      }
    }
  }

  @Override
  public void layerNorm(Mat out, Mat x, Mat gamma, Mat beta, float eps) {
    CpuMat o = f32(out);
    CpuMat in = f32(x);
    CpuMat g = CpuMat.of(gamma);
    CpuMat b = CpuMat.of(beta);
    int n = in.cols;
    for (int r = 0; r < in.rows; r++) {
      int base = r * n;
      float mean = 0f;
      for (int j = 0; j < n; j++) {
        mean += in.f32[base + j];
      }
      mean /= n;
      float var = 0f;
      for (int j = 0; j < n; j++) {
        float d = in.f32[base + j] - mean;
        var += d * d;
      }
      var /= n; // biased variance, as torch.nn.LayerNorm
      float inv = (float) (1.0 / Math.sqrt(var + eps));
      for (int j = 0; j < n; j++) {
        o.f32[base + j] = (in.f32[base + j] - mean) * inv * g.get(j) + b.get(j);
      }
    }
  }

  @Override
  public void linear(Mat out, Mat x, Mat w, Mat bias, boolean relu) {
    CpuMat o = f32(out);
    CpuMat in = f32(x);
    CpuMat wt = CpuMat.of(w);
    CpuMat b = bias == null ? null : CpuMat.of(bias);
    if (wt.cols != in.cols || o.cols != wt.rows || o.rows != in.rows) {
      throw new IllegalArgumentException("linear: x " + in + ", w " + wt + ", out " + o);
    }
    int k = in.cols;
    Int8Rows q = wt.int8;
    for (int r = 0; r < in.rows; r++) {
      for (int c = 0; c < wt.rows; c++) {
        float acc = 0f;
        if (q == null) {
          for (int i = 0; i < k; i++) {
            acc += in.f32[r * k + i] * wt.get(c * k + i);
          }
        } else { // int8: the sum over the integers, then the row's scale
          for (int i = 0; i < k; i++) {
            acc += in.f32[r * k + i] * q.values()[c * k + i];
          }
          acc *= q.scales()[c];
        }
        if (b != null) {
          acc += b.get(c);
        }
        o.f32[r * o.cols + c] = relu ? Math.max(acc, 0f) : acc;
      }
    }
  }

  @Override
  public void addInPlace(Mat x, Mat y) {
    CpuMat a = f32(x);
    CpuMat b = f32(y);
    for (int i = 0; i < a.rows * a.cols; i++) {
      a.f32[i] += b.f32[i];
    }
  }

  @Override
  public void addBiasLayerNorm(Mat x, Mat y, Mat bias, Mat out, Mat gamma, Mat beta, float eps) {
    CpuMat a = f32(x);
    CpuMat b = f32(y);
    CpuMat bs = bias == null ? null : CpuMat.of(bias);
    if (a.rows != b.rows || a.cols != b.cols || (bs != null && bs.rows * bs.cols != a.cols)) {
      throw new IllegalArgumentException("addBiasLayerNorm: x " + a + ", y " + b + ", bias " + bs);
    }
    for (int r = 0; r < a.rows; r++) {
      for (int j = 0; j < a.cols; j++) {
        int i = r * a.cols + j;
        // y + bias first: the order of linear (bias added to the dot product) followed by addInPlace.
        a.f32[i] += bs == null ? b.f32[i] : b.f32[i] + bs.get(j);
      }
    }
    layerNorm(out, x, gamma, beta, eps);
  }

  @Override
  public void qkvAppend(Mat q, KvStore kv, int layer, Mat qkv, Mat bias, int[] slots) {
    CpuKvStore store = CpuKvStore.of(kv);
    CpuMat qm = f32(q);
    CpuMat in = f32(qkv);
    CpuMat bs = bias == null ? null : CpuMat.of(bias);
    int w = store.width;
    if (in.cols != 3 * w || qm.cols != w || slots.length > in.rows || slots.length > qm.rows
        || (bs != null && bs.rows * bs.cols != 3 * w)) {
      throw new IllegalArgumentException("qkvAppend: q " + qm + ", qkv " + in + ", bias " + bs + ", " + slots.length
          + " slots, cache width " + w);
    }
    forTokens(slots.length, (from, to) -> {
      for (int t = from; t < to; t++) {
        int row = t * 3 * w;
        for (int j = 0; j < w; j++) {
          float qv = in.f32[row + j];
          float kv2 = in.f32[row + w + j];
          float vv = in.f32[row + 2 * w + j];
          if (bs != null) {
            qv += bs.get(j);
            kv2 += bs.get(w + j);
            vv += bs.get(2 * w + j);
          }
          qm.f32[t * w + j] = qv;
          store.put(layer, slots[t] * w + j, kv2, vv);
        }
      }
    });
  }

  /**
   * Runs {@code body} over tokens {@code [0, n)}: here in one piece; {@link FastCpuOps} splits it over its threads
   * (an fp16 cache rounds every key and value it appends). Tokens are independent: each writes its own slots.
   */
  void forTokens(int n, CpuPool.Range body) {
    body.run(0, n);
  }

  @Override
  public void kvAppend(KvStore kv, int layer, Mat k, Mat v, int[] slots) {
    CpuKvStore store = CpuKvStore.of(kv);
    CpuMat km = f32(k);
    CpuMat vm = f32(v);
    int w = store.width;
    forTokens(slots.length, (from, to) -> {
      for (int t = from; t < to; t++) {
        if (!store.half()) {
          System.arraycopy(km.f32, t * w, store.keys[layer], slots[t] * w, w);
          System.arraycopy(vm.f32, t * w, store.values[layer], slots[t] * w, w);
          continue;
        }
        for (int j = 0; j < w; j++) {
          store.put(layer, slots[t] * w + j, km.f32[t * w + j], vm.f32[t * w + j]);
        }
      }
    });
  }

  @Override
  public void attention(Mat out, Mat q, KvStore kv, int layer, AttentionBatch batch, int heads, float scale) {
    CpuKvStore store = CpuKvStore.of(kv);
    CpuMat o = f32(out);
    CpuMat qm = f32(q);
    int width = store.width;
    int headDim = width / heads;
    for (int s = 0; s < batch.sequences(); s++) {
      int ctx = batch.contextLength()[s];
      int past = ctx - batch.queryCount()[s];
      float[] scores = new float[ctx];
      for (int i = 0; i < batch.queryCount()[s]; i++) {
        int row = batch.queryStart()[s] + i;
        int visible = past + i + 1; // causal: positions 0 .. past + i
        for (int h = 0; h < heads; h++) {
          int qOff = row * width + h * headDim;
          float max = Float.NEGATIVE_INFINITY;
          for (int p = 0; p < visible; p++) {
            int kOff = batch.slot(s, p, store.blockSize) * width + h * headDim;
            float dot = 0f;
            for (int d = 0; d < headDim; d++) {
              dot += qm.f32[qOff + d] * store.key(layer, kOff + d);
            }
            scores[p] = dot * scale;
            max = Math.max(max, scores[p]);
          }
          float sum = 0f;
          for (int p = 0; p < visible; p++) {
            scores[p] = (float) Math.exp(scores[p] - max);
            sum += scores[p];
          }
          for (int d = 0; d < headDim; d++) {
            float acc = 0f;
            for (int p = 0; p < visible; p++) {
              acc += scores[p] * store.value(layer, batch.slot(s, p, store.blockSize) * width + h * headDim + d);
            }
            o.f32[qOff + d] = acc / sum;
          }
        }
      }
    }
  }

  @Override
  public void kvCopyBlocks(KvStore kv, int[] src, int[] dst) {
    CpuKvStore store = CpuKvStore.of(kv);
    int blockElements = store.blockSize * store.width;
    for (int i = 0; i < src.length; i++) {
      store.copy(src[i] * blockElements, dst[i] * blockElements, blockElements);
    }
  }

  @Override
  public void gatherRows(Mat out, Mat x, int[] rows) {
    CpuMat o = f32(out);
    CpuMat in = f32(x);
    requireCols(o, in.cols, "gatherRows");
    for (int i = 0; i < rows.length; i++) {
      System.arraycopy(in.f32, rows[i] * in.cols, o.f32, i * o.cols, in.cols);
    }
  }

  @Override
  public void close() {}

  static CpuMat f32(Mat m) {
    CpuMat c = CpuMat.of(m);
    if (c.f32 == null) {
      throw new IllegalArgumentException("expected a float32 activation matrix, got " + c);
    }
    return c;
  }

  private static void requireCols(CpuMat m, int cols, String op) {
    if (m.cols != cols) {
      throw new IllegalArgumentException(op + ": " + m + " where " + cols + " columns were expected");
    }
  }
}
