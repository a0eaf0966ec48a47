package io.github.optjava.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.optjava.backend.AttentionBatch;
import io.github.optjava.backend.KvStore;
import io.github.optjava.backend.Mat;
import io.github.optjava.backend.Ops;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.checkpoint.Half;
import io.github.optjava.checkpoint.Tensor;
import io.github.optjava.checkpoint.TensorInfo;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every op of {@link FastCpuOps} against the reference {@link CpuOps}, on random inputs with fixed seeds,
 * odd sizes, every weight dtype, 1 and 3 threads (3 is more than this machine's cores: uneven chunks).
 * Outputs are poisoned with NaN before each op, so an element the fast op forgets to write fails.
 *
 * <p>Tolerance: float32 summation order is the only allowed difference, so each element must be within
 * {@value #REL} of the scale on which rounding acts: for {@code linear} the sum of the absolute terms
 * {@code Σ|x·w| + |bias|} (computed in double); for attention the largest magnitude of the reference
 * output row times {@code 1 + max|score|} (with the tighter {@value #ATTENTION_REL} instead), because a score
 * {@code s} carries a rounding error proportional
 * to {@code |s|} and {@code exp} turns it into the same relative error of a softmax weight (large scores,
 * as in the fixtures' peaked models, make attention that much more sensitive to summation order). Ops
 * the fast backend inherits must be bit-identical.
 */
class FastCpuOpsParityTest {
  static final double REL = 1e-5;
  /**
   * Attention's tighter bound: the worst error a review measured was 0.3–2.2 % of {@link #REL}'s bound, which let a
   * softmax that dropped every weight under 1e-5 pass.
   */
  static final double ATTENTION_REL = 2e-6;

  private static final CpuOps REF = new CpuOps();
  /** Quantizes Linear weights to int8: its matrices serve every CPU implementation. */
  private static final CpuOps INT8_REF = new CpuOps(true);
  /** Makes fp16 KV stores ({@link CpuKvStore#half}): every implementation reads a store in its own format. */
  private static final CpuOps HALF_KV_REF = new CpuOps(false, true);
  private static FastCpuOps one;
  private static FastCpuOps three;
  private static FastCpuOps scalarOne;
  private static FastCpuOps scalarThree;

  @BeforeAll
  static void start() {
    one = new FastCpuOps(1);
    three = new FastCpuOps(3);
    scalarOne = new FastCpuOps(1, false);
    scalarThree = new FastCpuOps(3, false);
  }

  @AfterAll
  static void stop() {
    one.close();
    three.close();
    scalarOne.close();
    scalarThree.close();
  }

  /** The default kernels (the Vector API ones when the JVM has the module, as under Maven). */
  static FastCpuOps fast(int threads) {
    return threads == 1 ? one : three;
  }

  /** The Linear kernels to test: the scalar ones, and the Vector API ones where this JVM has them. */
  enum Kernels { SCALAR, VECTOR }

  static FastCpuOps fast(int threads, Kernels kernels) {
    if (kernels == Kernels.SCALAR) {
      return threads == 1 ? scalarOne : scalarThree;
    }
    assumeTrue(VectorSupport.AVAILABLE, "the Vector API kernels need --add-modules jdk.incubator.vector");
    return fast(threads);
  }

  // ------------------------------------------------------------------------------------------ linear

  static Stream<Arguments> linearCases() {
    int[][] shapes = {{1, 1}, {7, 83}, {83, 7}, {128, 128}, {768, 80}, {3072, 17}}; // (in, out)
    int[] tokens = {1, 3, 4, 7, 16, 17, 129, 260}; // around the 4-token block, the 16-token switch, 128-token blocks
    List<Arguments> cases = new ArrayList<>();
    for (String format : new String[] {"F32", "F16", "BF16", "INT8"}) { // INT8: fp16 weights quantized
      DType dtype = format.equals("INT8") ? DType.F16 : DType.valueOf(format);
      for (int[] s : shapes) {
        for (int t : tokens) {
          for (Kernels kernels : Kernels.values()) {
            cases.add(Arguments.of(format, dtype, s[0], s[1], t, t % 2 == 1, s[0] > s[1], t % 3 == 0 ? 1 : 3,
                kernels));
          }
        }
      }
    }
    return cases.stream();
  }

  @ParameterizedTest(name = "{0} in {2} out {3} tokens {4} bias {5} relu {6} threads {7} {8}")
  @MethodSource("linearCases")
  void linear(String format, DType dtype, int in, int out, int tokens, boolean withBias, boolean relu, int threads,
      Kernels kernels) {
    Random random = new Random(in * 31L + out * 7L + tokens + dtype.ordinal());
    Tensor wt = tensor(dtype, out, in, random, 0.5);
    Tensor bt = withBias ? tensor(dtype, 1, out, random, 1.0) : null;
    float[] x = gaussian(random, tokens * in, 1.0);
    boolean int8 = format.equals("INT8");
    float[] expected = linear(REF, wt, bt, x, tokens, in, out, relu, int8);
    float[] actual = linear(fast(threads, kernels), wt, bt, x, tokens, in, out, relu, int8);

    // The weights the sums run over: for int8, the integers times the row scales (what the reference reads).
    float[] w = int8 ? REF.read(INT8_REF.linearWeight(wt)) : wt.toFloatArray();
    float[] b = bt == null ? null : bt.toFloatArray();
    double[] scale = new double[tokens * out];
    for (int t = 0; t < tokens; t++) {
      for (int o = 0; o < out; o++) {
        double s = b == null ? 0 : Math.abs(b[o]);
        for (int i = 0; i < in; i++) {
          s += Math.abs((double) x[t * in + i] * w[o * in + i]);
        }
        scale[t * out + o] = s;
      }
    }
    assertClose("linear", expected, actual, scale);
  }

  /** No input features: every output is its bias, on every kernel (the scalar prefill kernel once indexed past). */
  @ParameterizedTest(name = "{0}")
  @org.junit.jupiter.params.provider.EnumSource(Kernels.class)
  void noInputFeaturesGiveTheBias(Kernels kernels) {
    Random random = new Random(19);
    for (String format : new String[] {"F16", "INT8"}) {
      Tensor wt = new Tensor(new TensorInfo("w", DType.F16, new long[] {5, 0}), ByteBuffer.allocate(0));
      Tensor bt = tensor(DType.F16, 1, 5, random, 1.0);
      for (int tokens : new int[] {1, 6, 20}) {
        float[] expected = linear(REF, wt, bt, new float[0], tokens, 0, 5, false, format.equals("INT8"));
        float[] actual = linear(fast(3, kernels), wt, bt, new float[0], tokens, 0, 5, false, format.equals("INT8"));
        assertArrayEquals(expected, actual, format + ", " + tokens + " tokens");
        assertArrayEquals(Arrays.copyOf(bt.toFloatArray(), 5), Arrays.copyOf(actual, 5));
      }
    }
  }

  private static float[] linear(Ops ops, Tensor w, Tensor bias, float[] x, int tokens, int in, int out, boolean relu,
      boolean int8) {
    Mat wm = int8 ? INT8_REF.linearWeight(w) : ops.weight(w);
    Mat bm = bias == null ? null : ops.weight(bias);
    Mat xm = ops.alloc(tokens, in);
    ops.write(xm, x);
    Mat om = poisoned(ops, tokens, out);
    ops.linear(om, xm, wm, bm, relu);
    return ops.read(om);
  }

  // --------------------------------------------------------------------------------------- attention

  /**
   * Ragged batches over scattered block tables: (queries, context) per sequence, including a sequence
   * with no new tokens, single-token contexts, decode steps and prefills longer than a query block.
   */
  static Stream<Arguments> attentionCases() {
    int[][] ragged = {{1, 1}, {1, 37}, {5, 20}, {0, 10}, {17, 17}, {40, 90}};
    int[][] decode = {{1, 130}};
    int[][] prefill = {{83, 83}};
    int[][] long_ = {{40, 300}, {200, 200}}; // more than one 128-position block of keys in the prefill path
    // 29 positions cached: the first 4-query tile's last query sees 33 positions, one past a 32-position boundary
    // of the vector kernel's score tiles (as do 17 positions at 256-bit width). Then contexts of 64 (a multiple of
    // two vectors at every width) whose last tile is partial: its rows must not run past the scores' row.
    int[][] oddPast = {{8, 37}, {13, 42}, {9, 64}, {10, 64}, {11, 64}};
    List<Arguments> cases = new ArrayList<>();
    // (heads, head_dim): opt-125m, opt-2.7b's head_dim (5 vectors of 16: a partial tile), opt-6.7b's, odd
    int[][] headShapes = {{12, 64}, {4, 80}, {2, 128}, {3, 7}};
    for (int[] h : headShapes) {
      for (Kernels kernels : Kernels.values()) {
        for (int[][] seqs : new int[][][] {ragged, decode, prefill, long_, oddPast}) {
          for (int blockSize : new int[] {16, 5}) {
            for (int threads : new int[] {1, 3}) {
              cases.add(Arguments.of(h[0], h[1], seqs, blockSize, 1f, threads, kernels, false));
            }
          }
          cases.add(Arguments.of(h[0], h[1], seqs, 5, 1f, 3, kernels, true)); // an fp16 cache
        }
        // Large scores: most softmax weights underflow (the flush-to-zero path of the fast kernels).
        cases.add(Arguments.of(h[0], h[1], ragged, 16, 40f, 3, kernels, false));
        cases.add(Arguments.of(h[0], h[1], ragged, 16, 40f, 3, kernels, true));
        // Scores of a few tens: many small weights that still count (a softmax dropping them must fail).
        cases.add(Arguments.of(h[0], h[1], prefill, 16, 6f, 3, kernels, false));
      }
    }
    return cases.stream();
  }

  @ParameterizedTest(name = "heads {0} × {1}, block {3}, q × {4}, threads {5} {6}, fp16 cache {7}")
  @MethodSource("attentionCases")
  void attention(int heads, int headDim, int[][] seqs, int blockSize, float qScale, int threads, Kernels kernels,
      boolean halfKv) {
    Random random = new Random(heads * 1000L + headDim + blockSize + seqs.length);
    int width = heads * headDim;
    int n = seqs.length;
    int blocksNeeded = 0;
    for (int[] s : seqs) {
      blocksNeeded += (s[1] + blockSize - 1) / blockSize;
    }
    int blocks = blocksNeeded + 7; // spare blocks stay unused
    List<Integer> free = new ArrayList<>();
    for (int b = 0; b < blocks; b++) {
      free.add(b);
    }
    java.util.Collections.shuffle(free, random); // scattered, non-monotonic block tables

    // one store, read by both implementations
    KvStore kv = (halfKv ? HALF_KV_REF : REF).kvStore(2, blocks, blockSize, width);
    int[] queryStart = new int[n];
    int[] queryCount = new int[n];
    int[] contextLength = new int[n];
    int[][] tables = new int[n][];
    int rows = 0;
    for (int s = n - 1; s >= 0; s--) { // query rows in reverse sequence order: nothing may assume order
      queryStart[s] = rows;
      rows += seqs[s][0];
    }
    for (int s = 0; s < n; s++) {
      queryCount[s] = seqs[s][0];
      contextLength[s] = seqs[s][1];
      tables[s] = new int[(seqs[s][1] + blockSize - 1) / blockSize];
      for (int b = 0; b < tables[s].length; b++) {
        tables[s][b] = free.remove(free.size() - 1);
      }
    }
    AttentionBatch batch = new AttentionBatch(queryStart, queryCount, contextLength, tables);
    for (int layer = 0; layer < 2; layer++) { // layer 0 holds other values: the op must read the right layer
      for (int s = 0; s < n; s++) {
        int[] slots = new int[contextLength[s]];
        for (int p = 0; p < slots.length; p++) {
          slots[p] = batch.slot(s, p, blockSize);
        }
        REF.kvAppend(kv, layer, mat(REF, slots.length, width, gaussian(random, slots.length * width, 1.0)),
            mat(REF, slots.length, width, gaussian(random, slots.length * width, 1.0)), slots);
      }
    }
    float[] q = gaussian(random, rows * width, qScale);
    float scale = (float) (1 / Math.sqrt(headDim));
    float[] expected = attention(REF, kv, batch, q, rows, width, heads, scale);
    float[] actual = attention(fast(threads, kernels), kv, batch, q, rows, width, heads, scale);

    double[] rowScale = new double[expected.length];
    CpuKvStore store = CpuKvStore.of(kv);
    for (int s = 0; s < n; s++) {
      for (int i = 0; i < queryCount[s]; i++) {
        int r = queryStart[s] + i;
        double maxOut = 0;
        for (int j = 0; j < width; j++) {
          maxOut = Math.max(maxOut, Math.abs(expected[r * width + j]));
        }
        double maxScore = 0;
        for (int p = 0; p <= contextLength[s] - queryCount[s] + i; p++) {
          int slot = batch.slot(s, p, blockSize);
          for (int h = 0; h < heads; h++) {
            double dot = 0;
            for (int d = 0; d < headDim; d++) {
              dot += (double) q[r * width + h * headDim + d] * store.key(1, slot * width + h * headDim + d);
            }
            maxScore = Math.max(maxScore, Math.abs(dot * scale));
          }
        }
        Arrays.fill(rowScale, r * width, (r + 1) * width, maxOut * (1 + maxScore));
      }
    }
    assertClose("attention", expected, actual, rowScale, ATTENTION_REL);
  }

  /**
   * Causality with non-finite values: a NaN in the last position's value row reaches only the query that sees that
   * position, as in {@link CpuOps} (a kernel that multiplied the row by a weight of 0 for the earlier queries of its
   * tile would spread the NaN: 0 × NaN is NaN).
   */
  @ParameterizedTest(name = "{0}, fp16 cache {1}")
  @org.junit.jupiter.params.provider.CsvSource({"SCALAR, false", "VECTOR, false", "SCALAR, true", "VECTOR, true"})
  void aNanValueReachesOnlyTheQueriesThatSeeIt(Kernels kernels, boolean halfKv) {
    Random random = new Random(11);
    int heads = 2;
    int headDim = 64;
    int width = heads * headDim;
    int queries = 16;
    int blockSize = 16;
    KvStore kv = (halfKv ? HALF_KV_REF : REF).kvStore(2, 1, blockSize, width);
    int[] slots = new int[queries];
    for (int p = 0; p < queries; p++) {
      slots[p] = p;
    }
    float[] values = gaussian(random, queries * width, 1.0);
    Arrays.fill(values, (queries - 1) * width, queries * width, Float.NaN);
    REF.kvAppend(kv, 1, mat(REF, queries, width, gaussian(random, queries * width, 1.0)),
        mat(REF, queries, width, values), slots);
    AttentionBatch batch =
        new AttentionBatch(new int[] {0}, new int[] {queries}, new int[] {queries}, new int[][] {{0}});
    float[] q = gaussian(random, queries * width, 1.0);
    float scale = (float) (1 / Math.sqrt(headDim));
    float[] expected = attention(REF, kv, batch, q, queries, width, heads, scale);
    Mat out = fast(1, kernels).alloc(queries, width);
    fast(1, kernels).attention(out, mat(fast(1, kernels), queries, width, q), kv, 1, batch, heads, scale);
    float[] actual = fast(1, kernels).read(out);
    for (int i = 0; i < queries * width; i++) {
      int query = i / width;
      if (query == queries - 1) {
        org.junit.jupiter.api.Assertions.assertTrue(Float.isNaN(actual[i]), "the last query sees the NaN row");
      } else {
        org.junit.jupiter.api.Assertions.assertEquals(expected[i], actual[i], 1e-5f * (1 + Math.abs(expected[i])),
            "query " + query + " does not see the last position");
      }
    }
  }

  /**
   * A key that overflows fp16 (stored as an infinity) in a decode step: the fp16 rows must be widened exactly (inf
   * stays inf; the fast widening for finite halves would turn it into a large finite number), so every output of a
   * head that sees it is NaN, as in the reference.
   */
  @ParameterizedTest
  @org.junit.jupiter.params.provider.EnumSource(Kernels.class)
  void anOverflowingKeyInAnFp16CacheReachesDecodeAsInTheReference(Kernels kernels) {
    Random random = new Random(13);
    int heads = 2;
    int headDim = 64;
    int width = heads * headDim;
    int positions = 20;
    KvStore kv = HALF_KV_REF.kvStore(2, 2, 16, width);
    int[] slots = new int[positions];
    for (int p = 0; p < positions; p++) {
      slots[p] = p;
    }
    float[] keys = gaussian(random, positions * width, 1.0);
    keys[3 * width + 5] = 1e6f; // head 0 of position 3: rounds to +inf in fp16
    REF.kvAppend(kv, 1, mat(REF, positions, width, keys), mat(REF, positions, width,
        gaussian(random, positions * width, 1.0)), slots);
    AttentionBatch batch =
        new AttentionBatch(new int[] {0}, new int[] {1}, new int[] {positions}, new int[][] {{0, 1}});
    float[] q = gaussian(random, width, 1.0);
    float scale = (float) (1 / Math.sqrt(headDim));
    float[] expected = attention(REF, kv, batch, q, 1, width, heads, scale);
    float[] actual = attention(fast(1, kernels), kv, batch, q, 1, width, heads, scale);
    for (int i = 0; i < width; i++) {
      if (Float.isNaN(expected[i])) {
        assertTrue(Float.isNaN(actual[i]), "element " + i + ": " + actual[i] + ", the reference NaN");
      } else {
        assertEquals(expected[i], actual[i], 1e-5f * (1 + Math.abs(expected[i])), "element " + i);
      }
    }
    assertTrue(Float.isNaN(expected[0]) && !Float.isNaN(expected[width - 1]), "head 0 sees the infinity, head 1 not");
  }

  private static float[] attention(Ops ops, KvStore kv, AttentionBatch batch, float[] q, int rows, int width,
      int heads, float scale) {
    Mat out = poisoned(ops, rows, width);
    ops.attention(out, mat(ops, rows, width, q), kv, 1, batch, heads, scale);
    return ops.read(out);
  }

  // ------------------------------------------------------------------- inherited ops: bit-identical

  static Stream<Arguments> dtypesAndThreads() {
    return Stream.of(DType.values()).flatMap(d -> Stream.of(Arguments.of(d, 1), Arguments.of(d, 3)));
  }

  @ParameterizedTest(name = "{0} threads {1}")
  @MethodSource("dtypesAndThreads")
  void elementwiseOpsAreIdentical(DType dtype, int threads) {
    FastCpuOps fast = fast(threads);
    Random random = new Random(7 + dtype.ordinal());
    int rows = 7;
    int cols = 83;
    Tensor table = tensor(dtype, 50, cols, random, 0.8);
    Tensor gamma = tensor(dtype, 1, cols, random, 1.0);
    Tensor beta = tensor(dtype, 1, cols, random, 0.1);
    float[] x = gaussian(random, rows * cols, 3.0);
    float[] y = gaussian(random, rows * cols, 1.0);
    int[] ids = {0, 49, -1, 50, 1, 17, 1};
    int[] positions = {0, 47, 3, 3, 1, 2, 10};
    int[] gather = {6, 0, 0, 3};
    for (Ops ops : new Ops[] {REF, fast}) {
      assertArrayEquals(table.toFloatArray(), ops.read(ops.weight(table)), "weight round trip");
    }
    assertArrayEquals(embedding(REF, table, ids, rows, cols), embedding(fast, table, ids, rows, cols), "embedding");

    float[][] results = new float[2][];
    int i = 0;
    for (Ops ops : new Ops[] {REF, fast}) {
      Mat xm = mat(ops, rows, cols, x);
      ops.addPositions(xm, ops.weight(table), positions);
      Mat normed = poisoned(ops, rows, cols);
      ops.layerNorm(normed, xm, ops.weight(gamma), ops.weight(beta), 1e-5f);
      ops.addInPlace(normed, mat(ops, rows, cols, y));
      Mat g = poisoned(ops, gather.length, cols);
      ops.gatherRows(g, normed, gather);
      results[i++] = ops.read(g);
    }
    assertArrayEquals(results[0], results[1], "addPositions → layerNorm → addInPlace → gatherRows");
  }

  private static float[] embedding(Ops ops, Tensor table, int[] ids, int rows, int cols) {
    Mat out = poisoned(ops, rows, cols);
    ops.embedding(out, ops.weight(table), ids);
    return ops.read(out);
  }

  @ParameterizedTest(name = "threads {0}")
  @MethodSource("threadCounts")
  void kvAppendAndCopyBlocksAreIdentical(int threads) {
    int width = 20;
    int[] slots = {9, 0, 14, 3, 4};
    CpuKvStore[] stores = new CpuKvStore[4];
    int i = 0;
    try (FastCpuOps halfFast = new FastCpuOps(threads, VectorSupport.AVAILABLE, false, true)) {
      for (Ops ops : new Ops[] {REF, fast(threads), HALF_KV_REF, halfFast}) {
        Random r = new Random(11);
        KvStore kv = ops.kvStore(2, 4, 4, width);
        for (int layer = 0; layer < 2; layer++) {
          Mat k = mat(ops, 5, width, gaussian(r, 5 * width, 1));
          ops.kvAppend(kv, layer, k, mat(ops, 5, width, gaussian(r, 5 * width, 1)), slots);
        }
        ops.kvCopyBlocks(kv, new int[] {0, 3}, new int[] {1, 2});
        stores[i++] = CpuKvStore.of(kv);
      }
    }
    assertTrue(stores[2].half() && stores[3].half() && !stores[0].half());
    for (int layer = 0; layer < 2; layer++) {
      assertArrayEquals(stores[0].keys[layer], stores[1].keys[layer], "keys of layer " + layer);
      assertArrayEquals(stores[0].values[layer], stores[1].values[layer], "values of layer " + layer);
      assertArrayEquals(stores[2].halfKeys[layer], stores[3].halfKeys[layer], "fp16 keys of layer " + layer);
      assertArrayEquals(stores[2].halfValues[layer], stores[3].halfValues[layer], "fp16 values of layer " + layer);
      for (int e = 0; e < stores[0].keys[layer].length; e++) { // the fp16 store holds the float32 one, rounded
        assertEquals(Half.fromFloat(stores[0].keys[layer][e]), stores[2].halfKeys[layer][e]);
        assertEquals(Half.fromFloat(stores[0].values[layer][e]), stores[2].halfValues[layer][e]);
      }
    }
  }

  /** Appends of a prefill's many tokens (split over the threads by FastCpuOps) write what the reference writes. */
  @ParameterizedTest(name = "fp16 cache {0}")
  @org.junit.jupiter.params.provider.ValueSource(booleans = {false, true})
  void appendsOfManyTokensAreIdentical(boolean halfKv) {
    int width = 24;
    int tokens = 200;
    List<Integer> order = new ArrayList<>();
    for (int i = 0; i < 256; i++) {
      order.add(i);
    }
    java.util.Collections.shuffle(order, new Random(5));
    int[] slots = order.subList(0, tokens).stream().mapToInt(Integer::intValue).toArray();
    Random r = new Random(8);
    float[] qkv = gaussian(r, tokens * 3 * width, 1);
    float[] k = gaussian(r, tokens * width, 1);
    float[] v = gaussian(r, tokens * width, 1);
    Tensor bias = tensor(DType.F16, 1, 3 * width, r, 1.0);
    CpuKvStore[] stores = new CpuKvStore[2];
    float[][] qs = new float[2][];
    try (FastCpuOps fast = new FastCpuOps(3, VectorSupport.AVAILABLE, false, halfKv)) {
      Ops[] both = {new CpuOps(false, halfKv), fast};
      for (int i = 0; i < 2; i++) {
        Ops ops = both[i];
        KvStore kv = ops.kvStore(2, 16, 16, width);
        Mat q = poisoned(ops, tokens, width);
        ops.qkvAppend(q, kv, 1, mat(ops, tokens, 3 * width, qkv), ops.weight(bias), slots);
        ops.kvAppend(kv, 0, mat(ops, tokens, width, k), mat(ops, tokens, width, v), slots);
        qs[i] = ops.read(q);
        stores[i] = CpuKvStore.of(kv);
      }
    }
    assertArrayEquals(qs[0], qs[1], "q");
    for (int layer = 0; layer < 2; layer++) {
      for (int e = 0; e < 256 * width; e++) {
        assertEquals(stores[0].key(layer, e), stores[1].key(layer, e), "key " + e + " of layer " + layer);
        assertEquals(stores[0].value(layer, e), stores[1].value(layer, e), "value " + e + " of layer " + layer);
      }
    }
  }

  static Stream<Integer> threadCounts() {
    return Stream.of(1, 3);
  }

  // ---------------------------------------------------------------------------------------- helpers

  /** Fails on the first element further than REL × scale from the reference (or NaN: never written). */
  static void assertClose(String op, float[] expected, float[] actual, double[] scale) {
    assertClose(op, expected, actual, scale, REL);
  }

  /** As above with the bound {@code rel × scale}. */
  static void assertClose(String op, float[] expected, float[] actual, double[] scale, double rel) {
    if (expected.length != actual.length) {
      fail(op + ": " + actual.length + " elements, expected " + expected.length);
    }
    for (int i = 0; i < expected.length; i++) {
      if (Float.isNaN(actual[i])) {
        fail(op + ": element " + i + " was not written (still the NaN poison)");
      }
      double diff = Math.abs((double) actual[i] - expected[i]);
      if (diff > rel * scale[i]) {
        fail(op + ": element " + i + " is " + actual[i] + ", reference " + expected[i] + ": difference " + diff
            + " exceeds " + rel + " × " + scale[i]);
      }
    }
  }

  static Mat poisoned(Ops ops, int rows, int cols) {
    float[] nan = new float[rows * cols];
    Arrays.fill(nan, Float.NaN);
    return mat(ops, rows, cols, nan);
  }

  static Mat mat(Ops ops, int rows, int cols, float[] values) {
    Mat m = ops.alloc(rows, cols);
    ops.write(m, values);
    return m;
  }

  static float[] gaussian(Random random, int n, double std) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = (float) (random.nextGaussian() * std);
    }
    return v;
  }

  /** A (rows, cols) checkpoint tensor of N(0, std) values in {@code dtype} (1-D when rows is 1). */
  static Tensor tensor(DType dtype, int rows, int cols, Random random, double std) {
    float[] v = gaussian(random, rows * cols, std);
    ByteBuffer b = ByteBuffer.allocate(v.length * dtype.bytes()).order(ByteOrder.LITTLE_ENDIAN);
    for (float f : v) {
      switch (dtype) {
        case F32 -> b.putFloat(f);
        case F16 -> b.putShort(Half.fromFloat(f));
        case BF16 -> b.putShort((short) (Float.floatToRawIntBits(f) >>> 16)); // truncation: any bf16 will do
      }
    }
    long[] shape = rows == 1 ? new long[] {cols} : new long[] {rows, cols};
    return new Tensor(new TensorInfo("t", dtype, shape), b.flip());
  }
}
