package io.github.optjava.backend.cpu;

import io.github.optjava.backend.AttentionBatch;
import io.github.optjava.backend.KvStore;
import io.github.optjava.backend.Mat;
import io.github.optjava.checkpoint.Tensor;
import java.util.List;

/**
 * The CPU backend for real use: the {@link CpuOps} op meanings on the same heap memory ({@code CpuMat},
 * {@code CpuKvStore}: matrices and caches of either implementation work with the other), with the hot ops
 * multithreaded and written for what the JIT compiles well.
 *
 * <ul>
 *   <li>{@link #linear}: output rows split across threads; with the JDK's Vector API when the JVM has its
 *       incubator module ({@link VectorLinearKernels}, {@link VectorSupport}), else {@link LinearKernels} for the
 *       decode (memory-bound dot products) and prefill (vectorized loops over tokens) kernels;</li>
 *   <li>{@link #attention}: split over sequences × blocks of queries × groups of heads; prefill blocks through
 *       {@link VectorAttentionKernel} when the Vector API kernels run;</li>
 *   <li>the KV appends: tokens split across threads ({@link #forTokens}; an fp16 cache rounds each value);</li>
 *   <li>everything else (embedding, positions, layer norm, residual add, KV copies) is inherited: a few
 *       passes over the activations, about 1% of a step.</li>
 * </ul>
 *
 * <p>Options of {@link #create(int, boolean, boolean)}, both off by default: int8 Linear weights (sums over the
 * integers, then the row scales: {@link LinearKernels#scaleRows}) and an fp16 KV cache ({@link CpuKvStore#half}).
 *
 * <p>Results equal {@link CpuOps}'s up to float32 summation order (fused multiply-adds, several partial
 * sums): within 1e-5 relative, see {@code FastCpuOpsParityTest}.
 *
 * <p>Weights stay in their checkpoint dtype and fp16/bf16 are widened as they are read. Converting them
 * to float32 at load was measured and rejected: on opt-125m (2 threads) decode took 68 instead of 38 ms per
 * token, because batch-1 decode reads every weight once per token and is bound by memory bandwidth,
 * which float32 doubles; prefill gained only 10% (484 vs 540 ms for 128 tokens).
 *
 * <p>Ops may be called from several threads: their parallel loops are serialised by the thread pool,
 * one at a time.
 */
public final class FastCpuOps extends CpuOps {
  private final CpuPool pool;
  private final boolean vectorKernels;

  /** One thread per available processor. */
  public FastCpuOps() {
    this(Runtime.getRuntime().availableProcessors());
  }

  /** {@code threads} threads in all: the calling thread and {@code threads - 1} daemon workers. */
  public FastCpuOps(int threads) {
    this(threads, VectorSupport.AVAILABLE, false, false);
  }

  /**
   * As {@link #FastCpuOps(int)}, with Linear weights quantized to int8 per output row when {@code int8Linears}
   * ({@link CpuOps#CpuOps(boolean)}).
   */
  public static FastCpuOps create(int threads, boolean int8Linears) {
    return create(threads, int8Linears, false);
  }

  /**
   * As {@link #create(int, boolean)}, with an fp16 KV cache when {@code halfKvCache} ({@link CpuOps#CpuOps(boolean,
   * boolean)}).
   */
  public static FastCpuOps create(int threads, boolean int8Linears, boolean halfKvCache) {
    return new FastCpuOps(threads, VectorSupport.AVAILABLE, int8Linears, halfKvCache);
  }

  /** As {@link #FastCpuOps(int)}, choosing the kernels: the Vector API ones need the incubator module and C2. */
  FastCpuOps(int threads, boolean vectorKernels) {
    this(threads, vectorKernels, false, false);
  }

  FastCpuOps(int threads, boolean vectorKernels, boolean int8Linears, boolean halfKvCache) {
    super(int8Linears, halfKvCache);
    if (vectorKernels && !VectorSupport.AVAILABLE) {
      throw new IllegalStateException("the Vector API kernels cannot run here: " + VectorSupport.whyNot());
    }
    this.pool = new CpuPool(threads);
    this.vectorKernels = vectorKernels;
    VectorSupport.logChoice(vectorKernels);
  }

  @Override
  public String name() {
    return "cpu-fast" + (int8Linears() ? "-int8" : "") + (kvElementBytes() == 2 ? "-kv16" : "");
  }

  /**
   * Which kernels run the Linears and attention: {@code "vector 512-bit"} (the Vector API ones, with the vector
   * width) or {@code "scalar"} (without the {@code jdk.incubator.vector} module, without C2, or with
   * {@code -Dopt.cpu.vector=false}).
   */
  public String kernels() {
    return vectorKernels ? "vector " + VectorLinearKernels.FLOATS.vectorBitSize() + "-bit" : "scalar";
  }

  /** Threads in all, the calling thread included. */
  public int threads() {
    return pool.threads();
  }

  @Override
  public void linear(Mat out, Mat x, Mat w, Mat bias, boolean relu) {
    checkOpen();
    CpuMat o = f32(out);
    CpuMat in = f32(x);
    CpuMat wt = CpuMat.of(w);
    CpuMat b = bias == null ? null : CpuMat.of(bias);
    if (wt.cols != in.cols || o.cols != wt.rows || o.rows != in.rows
        || (b != null && b.rows * b.cols != wt.rows)) {
      throw new IllegalArgumentException("linear: x " + in + ", w " + wt + ", bias " + b + ", out " + o);
    }
    LinearKernels.Weights weights =
        vectorKernels ? LinearKernels.Weights.forVectorKernels(wt) : LinearKernels.Weights.of(wt);
    float[] biasValues = LinearKernels.widen(b);
    // int8: the kernels sum over the integers without bias and ReLU; each chunk of rows then gets its scales.
    float[] scales = wt.int8 == null ? null : wt.int8.scales();
    float[] kernelBias = scales == null ? biasValues : null;
    boolean kernelRelu = scales == null && relu;
    int tokens = in.rows;
    int k = in.cols;
    int n = wt.rows;
    int rowGrain = grain(n, LinearKernels.ROW_BLOCK);
    if (vectorKernels) {
      pool.forRange(n, rowGrain, (from, to) -> {
        VectorLinearKernels.rows(o.f32, in.f32, tokens, weights, kernelBias, kernelRelu, from, to);
        scale(o.f32, n, tokens, scales, biasValues, relu, from, to);
      });
    } else if (tokens >= LinearKernels.VECTOR_MIN_TOKENS) {
      float[][][] xt = LinearKernels.transposedBlocks(tokens, k);
      pool.forRange(k, grain(k, 64), (from, to) -> LinearKernels.transpose(xt, in.f32, tokens, k, from, to));
      pool.forRange(n, rowGrain, (from, to) -> {
        LinearKernels.vectorRows(o.f32, xt, tokens, weights, kernelBias, kernelRelu, from, to);
        scale(o.f32, n, tokens, scales, biasValues, relu, from, to);
      });
    } else {
      pool.forRange(n, rowGrain, (from, to) -> {
        LinearKernels.dotRows(o.f32, in.f32, tokens, weights, kernelBias, kernelRelu, from, to);
        scale(o.f32, n, tokens, scales, biasValues, relu, from, to);
      });
    }
  }

  private static void scale(float[] out, int n, int tokens, float[] scales, float[] bias, boolean relu, int from,
      int to) {
    if (scales != null) {
      LinearKernels.scaleRows(out, n, tokens, scales, bias, relu, from, to);
    }
  }

  @Override
  public void attention(Mat out, Mat q, KvStore kv, int layer, AttentionBatch batch, int heads, float scale) {
    checkOpen();
    CpuKvStore store = CpuKvStore.of(kv);
    CpuMat o = f32(out);
    CpuMat qm = f32(q);
    int width = store.width;
    if (heads <= 0 || width % heads != 0 || qm.cols != width || o.cols != width || o.rows != qm.rows) {
      throw new IllegalArgumentException("attention: q " + qm + ", out " + o + ", " + heads
          + " heads over a cache of width " + width);
    }
    int headDim = width / heads;
    List<AttentionKernel.Item> items = AttentionKernel.items(batch, heads, pool.threads());
    // fp16 cache: sequences with blocks of queries (prefill) read a float32 copy of their rows of this layer;
    // decode steps read the fp16 rows themselves.
    AttentionKernel.Widened widened = store.half()
        ? AttentionKernel.widenedForBlocks(store, layer, batch, vectorKernels) : null;
    pool.forRange(items.size(), 1, (from, to) -> {
      for (int i = from; i < to; i++) {
        AttentionKernel.Item item = items.get(i);
        if (widened != null && widened.sequences()[item.seq()]) {
          AttentionKernel.run(item, o.f32, qm.f32, widened.store(), 0, widened.batch(), headDim, scale,
              vectorKernels);
        } else {
          AttentionKernel.run(item, o.f32, qm.f32, store, layer, batch, headDim, scale, vectorKernels);
        }
      }
    });
  }

  // The inherited ops, unchanged but for the check: every op of a closed FastCpuOps fails the same way.

  @Override
  public Mat weight(Tensor tensor) {
    checkOpen();
    return super.weight(tensor);
  }

  @Override
  public Mat linearWeight(Tensor tensor) {
    checkOpen();
    return super.linearWeight(tensor);
  }

  @Override
  public Mat alloc(int rows, int cols) {
    checkOpen();
    return super.alloc(rows, cols);
  }

  @Override
  public void write(Mat dst, float[] src) {
    checkOpen();
    super.write(dst, src);
  }

  @Override
  public float[] read(Mat src) {
    checkOpen();
    return super.read(src);
  }

  @Override
  public KvStore kvStore(int layers, int blocks, int blockSize, int width) {
    checkOpen();
    return super.kvStore(layers, blocks, blockSize, width);
  }

  @Override
  public void embedding(Mat out, Mat table, int[] ids) {
    checkOpen();
    super.embedding(out, table, ids);
  }

  @Override
  public void addPositions(Mat x, Mat table, int[] positions) {
    checkOpen();
    super.addPositions(x, table, positions);
  }

  @Override
  public void layerNorm(Mat out, Mat x, Mat gamma, Mat beta, float eps) {
    checkOpen();
    super.layerNorm(out, x, gamma, beta, eps);
  }

  @Override
  public void addInPlace(Mat x, Mat y) {
    checkOpen();
    super.addInPlace(x, y);
  }

  @Override
  public void addBiasLayerNorm(Mat x, Mat y, Mat bias, Mat out, Mat gamma, Mat beta, float eps) {
    checkOpen();
    super.addBiasLayerNorm(x, y, bias, out, gamma, beta, eps);
  }

  @Override
  public void qkvAppend(Mat q, KvStore kv, int layer, Mat qkv, Mat bias, int[] slots) {
    checkOpen();
    super.qkvAppend(q, kv, layer, qkv, bias, slots);
  }

  @Override
  public void kvAppend(KvStore kv, int layer, Mat k, Mat v, int[] slots) {
    checkOpen();
    super.kvAppend(kv, layer, k, v, slots);
  }

  @Override
  public void kvCopyBlocks(KvStore kv, int[] src, int[] dst) {
    checkOpen();
    super.kvCopyBlocks(kv, src, dst);
  }

  @Override
  public void gatherRows(Mat out, Mat x, int[] rows) {
    checkOpen();
    super.gatherRows(out, x, rows);
  }

  /** The KV appends' tokens split over the threads (64 at least per chunk: a decode step's few stay on one). */
  @Override
  void forTokens(int n, CpuPool.Range body) {
    pool.forRange(n, Math.max(64, grain(n, 1)), body);
  }

  /** Stops the worker threads; every later op is an IllegalStateException. Closing twice is harmless. */
  @Override
  public void close() {
    pool.close();
  }

  private void checkOpen() {
    if (pool.isClosed()) {
      throw new IllegalStateException("FastCpuOps used after close");
    }
  }

  /**
   * Chunk size for {@code n} items: about four chunks per thread (so a slow core does not hold up the
   * others), a multiple of {@code unit}.
   */
  private int grain(int n, int unit) {
    int chunks = pool.threads() * 4;
    int g = (n + chunks - 1) / chunks;
    return Math.max(unit, (g + unit - 1) / unit * unit);
  }
}
