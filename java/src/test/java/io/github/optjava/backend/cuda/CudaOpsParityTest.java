package io.github.optjava.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.backend.AttentionBatch;
import io.github.optjava.backend.KvStore;
import io.github.optjava.backend.LogitEdits;
import io.github.optjava.backend.Mat;
import io.github.optjava.backend.Ops;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.checkpoint.Tensor;
import io.github.optjava.checkpoint.TensorInfo;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every op of {@link CudaOps} against its CPU twin in {@link CpuOps}, in every storage dtype, on odd
 * sizes (7, 83, head_dim 80 as in opt-2.7b, 128), fresh random inputs rounded to the dtype on both
 * sides, outputs poisoned with NaN before each op so unwritten elements fail. Tolerance
 * |gpu − cpu| ≤ tol · (1 + |cpu|) with tol = 1e-4 (fp32), 1e-2 (fp16), 4e-2 (bf16): the GPU rounds
 * each stored activation to its dtype, the CPU reference keeps float32.
 */
@GpuTest
class CudaOpsParityTest {
  /**
   * The tag of the tests of kernels not yet verified on a GPU: scripts/device-check.sh runs them in a JVM of their
   * own after check_ops, so that a kernel that faults (a CUDA context is unusable after that) cannot fail the
   * verified tests beside it; a second tag names the kernel (gpu-new-fa, gpu-new-score), so that device-check runs
   * only the tests of kernels whose check_ops group passed. Move a test out of it once its kernel has passed on a
   * GPU. (The split/tiled/tc
   * attention, gemv, cuBLASLt, device log-prob and sampling tests left it on 2026-11-26, after passing on an H100.)
   */
  static final String NEW_KERNEL = "gpu-new";
  /** Attention kernels whose tests carry {@link #NEW_KERNEL}: fa (session 7, emulated on the CPU only). */
  static final java.util.List<String> NEW_ATTENTION = java.util.List.of("fa");
  private static final CpuOps CPU = new CpuOps();
  private static final CpuOps CPU_INT8 = new CpuOps(true); // int8 Linear weights (linearWeight)
  private static CudaOps f32;
  private static CudaOps f16;
  private static CudaOps bf16;

  @BeforeAll
  static void open() {
    f32 = new CudaOps(0, DType.F32);
    f16 = new CudaOps(0, DType.F16);
    bf16 = new CudaOps(0, DType.BF16);
  }

  @AfterAll
  static void close() {
    for (CudaOps o : new CudaOps[] {f32, f16, bf16}) {
      if (o != null) {
        o.close();
      }
    }
  }

  static Stream<Arguments> cases() {
    return Stream.of(DType.F32, DType.F16, DType.BF16)
        .flatMap(d -> Stream.of(Arguments.of(d, 7, 83), Arguments.of(d, 1, 128), Arguments.of(d, 33, 80),
            // wider than the 512 threads of a layer-norm block: each thread strides over several columns
            Arguments.of(d, 3, 1100)));
  }

  private static CudaOps gpu(DType d) {
    return switch (d) {
      case F32 -> f32;
      case F16 -> f16;
      case BF16 -> bf16;
    };
  }

  private static double tol(DType d) {
    return switch (d) {
      case F32 -> 1e-4;
      case F16 -> 1e-2;
      case BF16 -> 4e-2;
    };
  }

  /** Random values already representable in {@code d}, so both sides start from the same numbers. */
  private static float[] random(Random r, int n, double scale, DType d) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = (float) (r.nextGaussian() * scale);
    }
    return tensor(v, 1, n).to(d).toFloatArray();
  }

  private static Tensor tensor(float[] v, int rows, int cols) {
    ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
    for (float f : v) {
      b.putFloat(f);
    }
    return new Tensor(new TensorInfo("t", DType.F32, new long[] {rows, cols}), b.flip());
  }

  private static Mat act(Ops ops, float[] v, int rows, int cols) {
    Mat m = ops.alloc(rows, cols);
    ops.write(m, v);
    return m;
  }

  private static Mat poisoned(Ops ops, int rows, int cols) {
    float[] nan = new float[rows * cols];
    java.util.Arrays.fill(nan, Float.NaN);
    return act(ops, nan, rows, cols);
  }

  private static void assertClose(String op, DType d, float[] expected, float[] got) {
    double t = tol(d);
    for (int i = 0; i < expected.length; i++) {
      double err = Math.abs(got[i] - expected[i]);
      assertTrue(err <= t * (1 + Math.abs(expected[i])), op + " " + d + " element " + i + ": gpu " + got[i]
          + " vs cpu " + expected[i]);
    }
  }

  /**
   * The vector layer norm (-Dopt.cuda.vecNorm, session 12, verified on an H100 in session 17; native/src/layernorm.cu):
   * both layer norms against the CPU, and the residual the fused one writes bit for bit equal to the scalar kernel's,
   * at OPT's widths (768 to 12288: one to three 16-byte chunks per thread) and at widths the vector kernel leaves to
   * the scalar one (83: not whole chunks; 16384 in f32: more than four chunks per thread).
   */
  @ParameterizedTest(name = "{0} rows={1} cols={2}")
  @MethodSource("vectorNormCases")
  @org.junit.jupiter.api.Tag(NEW_KERNEL)
  @org.junit.jupiter.api.Tag("gpu-new-vecnorm")
  void layerNormsThroughTheVectorKernel(DType d, int rows, int cols) {
    Random r = new Random(rows * 7919L + cols);
    CudaOps g = gpu(d);
    float[] x = random(r, rows * cols, 1, d);
    float[] y = random(r, rows * cols, 1, d);
    float[] bias = random(r, cols, 0.5, d);
    float[] gamma = random(r, cols, 0.1, d);
    for (int i = 0; i < cols; i++) {
      gamma[i] += 1f;
    }
    gamma = tensor(gamma, 1, cols).to(d).toFloatArray();
    float[] beta = random(r, cols, 0.1, d);
    boolean before = CudaOps.vectorNorm();
    // the launcher's rule (native/src/layernorm.cu): whole 16-byte chunks, at most 4 per thread of 512
    int chunk = 16 / d.bytes();
    boolean applies = cols % chunk == 0 && (cols / chunk + 511) / 512 <= 4;
    try {
      float[][] residual = new float[2][];
      for (boolean vector : new boolean[] {false, true}) {
        g.useVectorNorm(vector);
        long launches = OptKernels.opt_launch_count(OptKernels.COUNT_VECTOR_LAYERNORM);
        Mat co = CPU.alloc(rows, cols);
        CPU.layerNorm(co, act(CPU, x, rows, cols), act(CPU, gamma, 1, cols), act(CPU, beta, 1, cols), 1e-5f);
        Mat go = poisoned(g, rows, cols);
        g.layerNorm(go, act(g, x, rows, cols), act(g, gamma, 1, cols), act(g, beta, 1, cols), 1e-5f);
        assertClose("layerNorm vector=" + vector, d, CPU.read(co), g.read(go));
        Mat cx = act(CPU, x, rows, cols);
        Mat cn = CPU.alloc(rows, cols);
        CPU.addBiasLayerNorm(cx, act(CPU, y, rows, cols), act(CPU, bias, 1, cols), cn, act(CPU, gamma, 1, cols),
            act(CPU, beta, 1, cols), 1e-5f);
        Mat gx = act(g, x, rows, cols);
        Mat gn = poisoned(g, rows, cols);
        g.addBiasLayerNorm(gx, act(g, y, rows, cols), act(g, bias, 1, cols), gn, act(g, gamma, 1, cols),
            act(g, beta, 1, cols), 1e-5f);
        residual[vector ? 1 : 0] = g.read(gx);
        assertClose("addBiasLayerNorm (x) vector=" + vector, d, CPU.read(cx), residual[vector ? 1 : 0]);
        assertClose("addBiasLayerNorm (out) vector=" + vector, d, CPU.read(cn), g.read(gn));
        assertEquals(launches + (vector && applies ? 2 : 0),
            OptKernels.opt_launch_count(OptKernels.COUNT_VECTOR_LAYERNORM),
            "vector layer norm launches (vector=" + vector + ", the rule says " + applies + ")");
      }
      org.junit.jupiter.api.Assertions.assertArrayEquals(residual[0], residual[1],
          "the residual x += y + bias: the vector kernel's bits differ from the scalar kernel's");
    } finally {
      g.useVectorNorm(before);
    }
  }

  static Stream<Arguments> vectorNormCases() {
    return Stream.of(DType.F32, DType.F16, DType.BF16)
        .flatMap(d -> Stream.of(Arguments.of(d, 1, 2048), Arguments.of(d, 2, 4096), Arguments.of(d, 3, 768),
            Arguments.of(d, 1, 12288), Arguments.of(d, 5, 80), Arguments.of(d, 2, 83), Arguments.of(d, 1, 16384)));
  }

  @ParameterizedTest(name = "{0} rows={1} cols={2}")
  @MethodSource("cases")
  void elementwiseOpsAndLayerNorm(DType d, int rows, int cols) {
    Random r = new Random(rows * 1000L + cols);
    Ops g = gpu(d);
    float[] x = random(r, rows * cols, 1, d);
    float[] y = random(r, rows * cols, 1, d);
    float[] gamma = random(r, cols, 0.1, d);
    for (int i = 0; i < cols; i++) {
      gamma[i] += 1f;
    }
    gamma = tensor(gamma, 1, cols).to(d).toFloatArray();
    float[] beta = random(r, cols, 0.1, d);

    // layer norm
    Mat co = CPU.alloc(rows, cols);
    CPU.layerNorm(co, act(CPU, x, rows, cols), act(CPU, gamma, 1, cols), act(CPU, beta, 1, cols), 1e-5f);
    Mat go = poisoned(g, rows, cols);
    g.layerNorm(go, act(g, x, rows, cols), act(g, gamma, 1, cols), act(g, beta, 1, cols), 1e-5f);
    assertClose("layerNorm", d, CPU.read(co), g.read(go));

    // bias + residual add + layer norm, fused (x is updated too), with and without a bias
    float[] bias = random(r, cols, 0.5, d);
    for (boolean withBias : new boolean[] {true, false}) {
      Mat cxs = act(CPU, x, rows, cols);
      Mat cn = CPU.alloc(rows, cols);
      CPU.addBiasLayerNorm(cxs, act(CPU, y, rows, cols), withBias ? act(CPU, bias, 1, cols) : null, cn,
          act(CPU, gamma, 1, cols), act(CPU, beta, 1, cols), 1e-5f);
      Mat gxs = act(g, x, rows, cols);
      Mat gn = poisoned(g, rows, cols);
      g.addBiasLayerNorm(gxs, act(g, y, rows, cols), withBias ? act(g, bias, 1, cols) : null, gn,
          act(g, gamma, 1, cols), act(g, beta, 1, cols), 1e-5f);
      assertClose("addBiasLayerNorm (x) bias=" + withBias, d, CPU.read(cxs), g.read(gxs));
      assertClose("addBiasLayerNorm (out) bias=" + withBias, d, CPU.read(cn), g.read(gn));
    }

    // residual add
    Mat cx = act(CPU, x, rows, cols);
    CPU.addInPlace(cx, act(CPU, y, rows, cols));
    Mat gx = act(g, x, rows, cols);
    g.addInPlace(gx, act(g, y, rows, cols));
    assertClose("addInPlace", d, CPU.read(cx), g.read(gx));

    // gather rows (with a repeated row)
    int[] pick = {rows - 1, 0, rows - 1};
    Mat cg = CPU.alloc(pick.length, cols);
    CPU.gatherRows(cg, act(CPU, x, rows, cols), pick);
    Mat gg = poisoned(g, pick.length, cols);
    g.gatherRows(gg, act(g, x, rows, cols), pick);
    assertClose("gatherRows", d, CPU.read(cg), g.read(gg));

    // embedding + positions (table of rows+2 rows, ids and positions spread over it)
    int tableRows = rows + 5;
    float[] table = random(r, tableRows * cols, 0.8, d);
    int[] ids = new int[rows];
    int[] positions = new int[rows];
    for (int t = 0; t < rows; t++) {
      ids[t] = r.nextInt(tableRows);
      positions[t] = t;
    }
    Mat ctab = CPU.weight(tensor(table, tableRows, cols).to(d));
    Mat gtab = g.weight(tensor(table, tableRows, cols));
    Mat ce = CPU.alloc(rows, cols);
    CPU.embedding(ce, ctab, ids);
    CPU.addPositions(ce, ctab, positions);
    Mat ge = poisoned(g, rows, cols);
    g.embedding(ge, gtab, ids);
    g.addPositions(ge, gtab, positions);
    assertClose("embedding+addPositions", d, CPU.read(ce), g.read(ge));
  }

  @ParameterizedTest(name = "{0} tokens={1} in={2}")
  @MethodSource("cases")
  void linearWithBiasAndRelu(DType d, int tokens, int in) {
    CudaOps g = gpu(d);
    withLinearPath(g, false, 0, () -> linearCase(g, d, tokens, in, in + 13)); // cublasGemmEx + the bias kernel
  }

  /** Runs {@code test} with g's Linears through cuBLASLt or not and gemv for up to that many rows, then puts g's back. */
  private static void withLinearPath(CudaOps g, boolean lt, int gemvRows, Runnable test) {
    boolean ltBefore = g.usesLtGemm();
    int gemvBefore = g.gemvMaxRows();
    g.useLtGemm(lt);
    g.useGemv(gemvRows);
    try {
      test.run();
    } finally {
      g.useLtGemm(ltBefore);
      g.useGemv(gemvBefore);
    }
  }

  /** The same through cuBLASLt (bias and ReLU in the GEMM epilogue; -Dopt.cuda.gemm=lt), and a 1.3b-like shape. */
  @ParameterizedTest(name = "{0} tokens={1} in={2}")
  @MethodSource("cases")
  void linearThroughCublasLt(DType d, int tokens, int in) {
    CudaOps g = gpu(d);
    withLinearPath(g, true, 0, () -> {
      linearCase(g, d, tokens, in, in + 13); // odd shapes: cuBLASLt or, without an algorithm, cublasGemmEx
      long before = g.ltLaunches();
      linearCase(g, d, 5, 2048, 2048); // leading dimensions multiples of 8: the tensor-core algorithms
      assertTrue(g.ltLaunches() >= before + 3, d + ": cuBLASLt must have run the aligned shape's three Linears, "
          + "not fallen back (" + (g.ltLaunches() - before) + " launches)");
    });
  }

  /**
   * The same through cuBLASLt with tuned algorithms (-Dopt.cuda.ltTune, session 14, verified on an H100 in session 17):
   * decode batch sizes of 1.3b-like shapes, each planned by timing the heuristic's candidates; every algorithm cuBLASLt
   * offers must give the CPU's numbers, and a shape past 64 rows is not tuned.
   */
  @ParameterizedTest(name = "{0}")
  @EnumSource(value = DType.class, names = {"F16", "BF16"})
  @org.junit.jupiter.api.Tag(NEW_KERNEL)
  @org.junit.jupiter.api.Tag("gpu-new-lttune")
  void linearThroughTunedCublasLt(DType d) {
    CudaOps g = gpu(d);
    withTunedLt(g, () -> {
      long launches = g.ltLaunches();
      long tuned = g.ltTunedShapes();
      linearCase(g, d, 32, 2048, 2048); // batch 32: out_proj-like, 3 epilogues (bias, bias + ReLU, none)
      linearCase(g, d, 8, 2048, 8192); // fc1-like at batch 8
      assertTrue(g.ltLaunches() >= launches + 6, d + ": cuBLASLt must have run the aligned shapes");
      assertTrue(g.ltTunedShapes() > tuned, d + ": at least one shape must have been planned by timing (the "
          + "heuristic offered one algorithm for each?)");
      long tunedBefore65 = g.ltTunedShapes();
      linearCase(g, d, 65, 256, 256); // past TUNE_MAX_ROWS: the heuristic's first choice
      assertEquals(tunedBefore65, g.ltTunedShapes(), d + ": 65 rows are not tuned");
    });
  }

  /**
   * Runs {@code test} with g's Linears through cuBLASLt with tuning on, every shape planned afresh (tuning off, then
   * on: LtGemm.useTuning drops the plans), then puts g's tuning back.
   */
  private static void withTunedLt(CudaOps g, Runnable test) {
    boolean tuningBefore = g.usesLtTuning();
    g.useLtTuning(false);
    g.useLtTuning(true);
    try {
      withLinearPath(g, true, 0, test);
    } finally {
      g.useLtTuning(tuningBefore);
    }
  }

  /**
   * Every candidate the tuner may take gives the CPU's numbers: each of the heuristic's first
   * {@value LtGemm#TUNE_CANDIDATES} forced in turn ({@link LtGemm#forceChoice}; the timing still runs), so that a plan
   * holding a candidate past the first (Pointer.position on the heuristic's array) is launched and checked whatever
   * the timings would pick.
   */
  @ParameterizedTest(name = "{0}")
  @EnumSource(value = DType.class, names = {"F16", "BF16"})
  @org.junit.jupiter.api.Tag(NEW_KERNEL)
  @org.junit.jupiter.api.Tag("gpu-new-lttune")
  void linearThroughEachTunedCandidate(DType d) {
    CudaOps g = gpu(d);
    withTunedLt(g, () -> {
      int highest = -1;
      try {
        for (int i = 0; i < LtGemm.TUNE_CANDIDATES; i++) {
          g.forceLtChoice(i); // drops the plans: each shape is planned (and timed) again
          long launches = g.ltLaunches();
          linearCase(g, d, 32, 2048, 2048);
          assertTrue(g.ltLaunches() >= launches + 3, d + ": cuBLASLt must have run candidate " + i);
          highest = Math.max(highest, g.ltLastChoice());
        }
      } finally {
        g.forceLtChoice(-1);
      }
      assertTrue(highest > 0, d + ": no plan took a candidate past the heuristic's first (highest " + highest
          + "; did the heuristic offer one algorithm for each epilogue?)");
    });
  }

  /**
   * The same through the matrix-vector kernel for 1–8 rows (-Dopt.cuda.gemv=true): its 16-byte path (in a multiple
   * of 8 values), its one-element path (odd widths), a 1.3b-like shape; 9 rows must go to cuBLAS instead.
   */
  @ParameterizedTest(name = "{0}")
  @EnumSource(DType.class)
  void linearThroughGemv(DType d) {
    CudaOps g = gpu(d);
    withLinearPath(g, g.usesLtGemm(), 8, () -> {
      long before = g.gemvLaunches();
      linearCase(g, d, 1, 128, 141);
      linearCase(g, d, 3, 83, 40);
      linearCase(g, d, 8, 2048, 2048 + 13);
      linearCase(g, d, 2, 8192, 64);
      assertEquals(before + 4 * 3, g.gemvLaunches(), d + ": every Linear of 1–8 rows must have run the kernel");
      linearCase(g, d, 9, 128, 64);
      assertEquals(before + 4 * 3, g.gemvLaunches(), d + ": 9 rows go to cuBLAS");
    });
  }

  /**
   * The matrix-vector kernel with split rows (-Dopt.cuda.gemvSplit, session 11, verified on an H100 in session 17): 2
   * and 4 warps per output group and auto, on the shapes of {@link #linearThroughGemv}, a 1.3b out_proj and an fc2-like
   * one, then the fused q/k/v projection with its cache append.
   */
  @ParameterizedTest(name = "{0} split={1}")
  @org.junit.jupiter.params.provider.CsvSource({"F32, 2", "F16, 2", "BF16, 2", "F16, 4", "BF16, 4", "F32, 0",
      "F16, 0"})
  @org.junit.jupiter.api.Tag("gpu-new-gemvsplit")
  void linearThroughSplitGemv(DType d, int split) {
    CudaOps g = gpu(d);
    int splitBefore = g.gemvSplit();
    g.useGemvSplit(split);
    try {
      withLinearPath(g, g.usesLtGemm(), 8, () -> {
        long before = g.gemvLaunches();
        long splitLaunches = OptKernels.opt_launch_count(OptKernels.COUNT_SPLIT_GEMV);
        linearCase(g, d, 1, 128, 141);
        linearCase(g, d, 3, 83, 40); // odd width: the one-element path, which ignores the split
        linearCase(g, d, 8, 2048, 2048 + 13);
        linearCase(g, d, 1, 2048, 2048);
        linearCase(g, d, 1, 8192, 256);
        assertEquals(before + 5 * 3, g.gemvLaunches(), d + ": every Linear of 1–8 rows must have run the kernel");
        // the split kernel: every 16-byte case (4 of 5, 3 Linears each; the one-element path ignores the split)
        assertEquals(splitLaunches + 4 * 3, OptKernels.opt_launch_count(OptKernels.COUNT_SPLIT_GEMV),
            d + ": launches of the split-row kernel");
      });
    } finally {
      g.useGemvSplit(splitBefore);
    }
  }

  private void linearCase(Ops g, DType d, int tokens, int in, int out) {
    Random r = new Random(tokens * 7L + in);
    float[] x = random(r, tokens * in, 1, d);
    float[] w = random(r, out * in, 0.2, d);
    float[] b = random(r, out, 0.1, d);
    for (boolean relu : new boolean[] {false, true}) {
      Mat co = CPU.alloc(tokens, out);
      CPU.linear(co, act(CPU, x, tokens, in), CPU.weight(tensor(w, out, in).to(d)), act(CPU, b, 1, out), relu);
      Mat go = poisoned(g, tokens, out);
      g.linear(go, act(g, x, tokens, in), g.weight(tensor(w, out, in)), act(g, b, 1, out), relu);
      assertClose("linear relu=" + relu, d, CPU.read(co), g.read(go));
    }
    Mat co = CPU.alloc(tokens, out);
    CPU.linear(co, act(CPU, x, tokens, in), CPU.weight(tensor(w, out, in).to(d)), null, false);
    Mat go = poisoned(g, tokens, out);
    g.linear(go, act(g, x, tokens, in), g.weight(tensor(w, out, in)), null, false);
    assertClose("linear no bias", d, CPU.read(co), g.read(go));
  }

  @ParameterizedTest(name = "{0} headDim={1} kernel={2}")
  @MethodSource("attentionCases")
  void pagedAttentionPrefillAndDecode(DType d, int headDim, String kernel) {
    withAttentionKernel(gpu(d), kernel, g -> pagedAttention(d, headDim, g));
  }

  @ParameterizedTest(name = "{0} headDim={1} kernel={2}")
  @MethodSource("newAttentionCases")
  @org.junit.jupiter.api.Tag(NEW_KERNEL)
  @org.junit.jupiter.api.Tag("gpu-new-fa")
  void pagedAttentionPrefillAndDecodeWithNewKernels(DType d, int headDim, String kernel) {
    withAttentionKernel(gpu(d), kernel, g -> pagedAttention(d, headDim, g));
  }

  /**
   * The split-KV kernel with the inline combine (-Dopt.cuda.inlineCombine=true, session 8: the last split block of
   * each row and head merges the splits instead of a second kernel) against the CPU, every dtype and head size.
   */
  @ParameterizedTest(name = "{0} headDim={1}")
  @MethodSource("inlineCombineCases")
  @org.junit.jupiter.api.Tag(NEW_KERNEL)
  @org.junit.jupiter.api.Tag("gpu-new-combine")
  void pagedAttentionWithTheInlineCombine(DType d, int headDim) {
    CudaOps g = gpu(d);
    boolean before = g.usesInlineCombine();
    g.useInlineCombine(true);
    try {
      withAttentionKernel(g, "split", x -> pagedAttention(d, headDim, x));
    } finally {
      g.useInlineCombine(before);
    }
  }

  static Stream<Arguments> inlineCombineCases() {
    return attentionCases("split").map(a -> Arguments.of(a.get()[0], a.get()[1]));
  }

  /**
   * The split-KV kernel with a group of threads per key row (-Dopt.cuda.groupedSplit=true, session 12,
   * native/src/attention_grouped.cu: fp16/bf16 at head_dim 64 and 128; f32 and head_dim 80 keep the per-key kernel)
   * against the CPU, every dtype and head size, with the combine kernel and with the inline combine asked for too
   * (which the grouped kernel leaves to the combine kernel).
   */
  @ParameterizedTest(name = "{0} headDim={1}")
  @MethodSource("inlineCombineCases")
  @org.junit.jupiter.api.Tag(NEW_KERNEL)
  @org.junit.jupiter.api.Tag("gpu-new-grouped")
  void pagedAttentionWithTheGroupedSplit(DType d, int headDim) {
    CudaOps g = gpu(d);
    boolean grouped = g.usesGroupedSplit();
    boolean combine = g.usesInlineCombine();
    try {
      g.useGroupedSplit(true);
      for (boolean inline : new boolean[] {false, true}) {
        g.useInlineCombine(inline);
        long launches = OptKernels.opt_launch_count(OptKernels.COUNT_GROUPED_SPLIT);
        withAttentionKernel(g, "split", x -> pagedAttention(d, headDim, x));
        long ran = OptKernels.opt_launch_count(OptKernels.COUNT_GROUPED_SPLIT) - launches;
        if (d != DType.F32 && (headDim == 64 || headDim == 128)) { // where the launcher takes it (16-byte aligned)
          assertTrue(ran > 0, d + " headDim " + headDim + ": the grouped kernel never ran");
        } else {
          assertEquals(0, ran, d + " headDim " + headDim + ": the grouped kernel ran where it does not apply");
        }
      }
    } finally {
      g.useGroupedSplit(grouped);
      g.useInlineCombine(combine);
    }
  }

  /** Runs {@code test} with {@code kernel} as g's attention kernel, then puts g's own back. */
  private static void withAttentionKernel(CudaOps g, String kernel, java.util.function.Consumer<CudaOps> test) {
    String before = g.attentionKernel();
    g.useAttentionKernel(kernel);
    try {
      test.accept(g);
    } finally {
      g.useAttentionKernel(before);
    }
  }

  private void pagedAttention(DType d, int headDim, CudaOps g) {
    Random r = new Random(headDim * 31L);
    int heads = 3;
    int width = heads * headDim;
    int blockSize = 16;
    int blocks = 24;
    // sequence 0: prefill of 70 tokens; sequence 1: 20 cached + 1 decode query; sequence 2: 5 cached + 3 new;
    // sequence 3: 148 cached + 2 new. The kernel's online softmax works in tiles of 64 key positions:
    // sequences 0 and 3 cross tile borders (rescaling of what earlier tiles accumulated), and their tables
    // are longer than the others' (the padded block-table rows).
    int[][] tables = {{7, 2, 9, 22, 23}, {0, 11}, {4}, {12, 17, 13, 20, 15, 14, 19, 16, 21, 18}};
    int[] queryCount = {70, 1, 3, 2};
    int[] contextLength = {70, 21, 8, 150};
    int[] queryStart = {0, 70, 71, 74};
    int total = 76;
    KvStore ckv = CPU.kvStore(1, blocks, blockSize, width);
    KvStore gkv = g.kvStore(1, blocks, blockSize, width);
    try {
      // Fill every cached position of every sequence, then attend with this step's queries.
      AttentionBatch fill = new AttentionBatch(new int[tables.length], contextLength, contextLength, tables);
      for (int s = 0; s < tables.length; s++) {
        int n = contextLength[s];
        int[] slots = new int[n];
        for (int p = 0; p < n; p++) {
          slots[p] = fill.slot(s, p, blockSize);
        }
        float[] k = random(r, n * width, 1, d);
        float[] v = random(r, n * width, 1, d);
        CPU.kvAppend(ckv, 0, act(CPU, k, n, width), act(CPU, v, n, width), slots);
        g.kvAppend(gkv, 0, act(g, k, n, width), act(g, v, n, width), slots);
      }
      AttentionBatch batch = new AttentionBatch(queryStart, queryCount, contextLength, tables);
      float[] q = random(r, total * width, 1, d);
      float scale = (float) (1 / Math.sqrt(headDim));
      Mat co = CPU.alloc(total, width);
      CPU.attention(co, act(CPU, q, total, width), ckv, 0, batch, heads, scale);
      Mat go = poisoned(g, total, width);
      g.attention(go, act(g, q, total, width), gkv, 0, batch, heads, scale);
      assertClose("attention", d, CPU.read(co), g.read(go));

      // Copy sequence 1's blocks into free blocks and attend through the copy: same result.
      g.kvCopyBlocks(gkv, new int[] {0, 11}, new int[] {5, 6});
      CPU.kvCopyBlocks(ckv, new int[] {0, 11}, new int[] {5, 6});
      AttentionBatch copied = new AttentionBatch(new int[] {0}, new int[] {1}, new int[] {21}, new int[][] {{5, 6}});
      float[] q1 = random(r, width, 1, d);
      Mat c1 = CPU.alloc(1, width);
      CPU.attention(c1, act(CPU, q1, 1, width), ckv, 0, copied, heads, scale);
      Mat g1 = poisoned(g, 1, width);
      g.attention(g1, act(g, q1, 1, width), gkv, 0, copied, heads, scale);
      assertClose("attention after kvCopyBlocks", d, CPU.read(c1), g.read(g1));
    } finally {
      gkv.close();
    }
  }

  /**
   * argmaxRows with log-probs, on the device (opt_argmax_logprob_f32) and through the host fallback, against
   * the CPU reference: the same indexes, log-probs within float32 rounding of the double reference.
   */
  @ParameterizedTest(name = "{0} rows={1} cols={2}")
  @MethodSource("cases")
  void argmaxWithLogprobs(DType d, int rows, int cols) {
    Random r = new Random(rows * 13L + cols);
    CudaOps g = gpu(d);
    float[] logits = random(r, rows * cols, 3, d);
    double[] want = new double[rows];
    int[] wantIdx = CPU.argmaxRows(act(CPU, logits, rows, cols), want);
    boolean before = g.usesDeviceLogprobs();
    for (boolean onDevice : new boolean[] {true, false}) {
      g.useDeviceLogprobs(onDevice);
      try {
        double[] got = new double[rows];
        int[] idx = g.argmaxRows(act(g, logits, rows, cols), got);
        org.junit.jupiter.api.Assertions.assertArrayEquals(wantIdx, idx, d + " device=" + onDevice);
        for (int i = 0; i < rows; i++) {
          assertTrue(Math.abs(got[i] - want[i]) <= 1e-4 * (1 + Math.abs(want[i])),
              d + " device=" + onDevice + " row " + i + ": " + got[i] + " vs " + want[i]);
        }
      } finally {
        g.useDeviceLogprobs(before);
      }
    }
  }

  /**
   * An echoed prompt's scores on the device (opt_token_logprob_f32, -Dopt.cuda.deviceScores) against the host
   * computation (Ops' default): every row's log-prob at its token, in chunks of rows at OPT's vocabulary (100 rows
   * cross a chunk boundary), with a NaN row, an all -inf row and a token out of range (NaN), within float32.
   */
  @ParameterizedTest(name = "{0} rows={1} cols={2}")
  @MethodSource("cases")
  @org.junit.jupiter.api.Tag(NEW_KERNEL)
  @org.junit.jupiter.api.Tag("gpu-new-score")
  void tokenLogprobsMatchTheHost(DType d, int rows, int cols) {
    CudaOps g = gpu(d);
    boolean before = g.usesDeviceScores();
    for (int[] shape : new int[][] {{rows, cols}, {100, 50272}}) {
      int n = shape[0];
      int vocab = shape[1];
      Random r = new Random(n * 29L + vocab);
      float[] logits = scoredLogits(r, n, vocab, d);
      int[] tokens = new int[n];
      for (int i = 0; i < n; i++) {
        tokens[i] = r.nextInt(vocab);
      }
      if (n > 3) {
        tokens[3] = vocab; // row 3: out of range
      }
      Mat m = act(g, logits, n, vocab);
      g.useDeviceScores(false);
      double[] want = g.tokenLogprobs(m, tokens);
      g.useDeviceScores(true);
      try {
        double[] got = g.tokenLogprobs(m, tokens);
        for (int i = 0; i < n; i++) {
          if (Double.isNaN(want[i]) || n > 3 && i >= 1 && i <= 3) {
            assertTrue(Double.isNaN(got[i]), d + " row " + i + ": " + got[i] + ", want NaN");
            continue;
          }
          assertTrue(Math.abs(got[i] - want[i]) <= 1e-4 * (1 + Math.abs(want[i])),
              d + " " + n + "x" + vocab + " row " + i + ": " + got[i] + " vs " + want[i]);
        }
      } finally {
        g.useDeviceScores(before);
      }
    }
  }

  /** Random logits in the GPU's dtype for the echo-score tests; with more than 3 rows, row 1 holds a NaN and row 2
   * is all -inf. */
  private static float[] scoredLogits(Random r, int n, int vocab, DType d) {
    float[] logits = random(r, n * vocab, 4, d);
    if (n > 3) {
      logits[vocab + 1] = Float.NaN;
      java.util.Arrays.fill(logits, 2 * vocab, 3 * vocab, Float.NEGATIVE_INFINITY);
    }
    return logits;
  }

  /**
   * An echoed prompt's scores with 5 alternatives per row on the device (session 24, written without a GPU:
   * opt_token_logprob_f32 and the greedy alternatives' opt_top_logprobs_f32 over each chunk of rows) against the host
   * (Ops' default: RowMath's top k): the same ids in the same order (ties: the lower id first) and log-probs within
   * float32, over 100 rows of OPT's vocabulary (they cross a chunk boundary). Rows 1 and 2 (a NaN, all -inf) are
   * checked for their scores only.
   */
  @ParameterizedTest(name = "{0} rows={1} cols={2}")
  @MethodSource("cases")
  @org.junit.jupiter.api.Tag(NEW_KERNEL)
  @org.junit.jupiter.api.Tag("gpu-new-score")
  @org.junit.jupiter.api.Tag("gpu-new-toplp")
  void tokenLogprobsWithAlternativesMatchTheHost(DType d, int rows, int cols) {
    CudaOps g = gpu(d);
    assertTrue(CudaSwitches.DEVICE_TOP_LOGPROBS, "-Dopt.cuda.deviceTopLogprobs=false: the device side would be the "
        + "host's too");
    boolean before = g.usesDeviceScores();
    int k = 5;
    for (int[] shape : new int[][] {{rows, cols}, {100, 50272}}) {
      int n = shape[0];
      int vocab = shape[1];
      Random r = new Random(n * 31L + vocab);
      float[] logits = scoredLogits(r, n, vocab, d);
      int[] tokens = new int[n];
      for (int i = 0; i < n; i++) {
        tokens[i] = i % 7 == 6 ? -1 : r.nextInt(vocab); // -1: a row nobody scores (its alternatives still come)
      }
      Mat m = act(g, logits, n, vocab);
      int[] wantIds = new int[n * k];
      double[] wantLps = new double[n * k];
      int[] gotIds = new int[n * k];
      double[] gotLps = new double[n * k];
      g.useDeviceScores(false);
      double[] want = g.tokenLogprobs(m, tokens, k, wantIds, wantLps);
      g.useDeviceScores(true);
      try {
        double[] got = g.tokenLogprobs(m, tokens, k, gotIds, gotLps);
        double[] alone = g.tokenLogprobs(m, tokens);
        for (int i = 0; i < n; i++) {
          String what = d + " " + n + "x" + vocab + " row " + i;
          if (tokens[i] < 0) {
            // a row nobody scores: no score to compare
          } else if (Double.isNaN(want[i])) {
            assertTrue(Double.isNaN(got[i]), what + ": " + got[i] + ", want NaN");
          } else {
            assertEquals(alone[i], got[i], 0.0, what + ": the score as without alternatives");
            assertTrue(Math.abs(got[i] - want[i]) <= 1e-4 * (1 + Math.abs(want[i])), what + ": " + got[i] + " vs "
                + want[i]);
          }
          if (n > 3 && (i == 1 || i == 2)) {
            continue;
          }
          for (int j = 0; j < k; j++) {
            assertEquals(wantIds[i * k + j], gotIds[i * k + j], what + " alternative " + j);
            assertTrue(Math.abs(gotLps[i * k + j] - wantLps[i * k + j]) <= 1e-4 * (1 + Math.abs(wantLps[i * k + j])),
                what + " alternative " + j + ": " + gotLps[i * k + j] + " vs " + wantLps[i * k + j]);
          }
        }
      } finally {
        g.useDeviceScores(before);
      }
    }
  }

  /**
   * Sampling on the device (opt_sample_rows_f32) against its host twin (RowSampling, which CpuOps uses): the same
   * tokens for the same uniforms over rows of the real vocabulary and small ones, with temperature, top-k and
   * top-p on and off, and the same log-probs; the logits in the GPU's dtype (the twin reads the same values).
   */
  @ParameterizedTest(name = "{0} rows={1} cols={2}")
  @MethodSource("cases")
  void sampleRowsMatchesItsCpuTwin(DType d, int rows, int cols) {
    sampleRowsMatchesItsCpuTwin(d, rows, cols, new float[] {0f}, 0);
  }

  /**
   * As {@link #sampleRowsMatchesItsCpuTwin}, with each row's 5 alternatives of the filtered distribution (session 20,
   * opt_sample_rows_top_f32): the same ids in the same order, log-probs within float32, -1 / NaN after the last.
   */
  @ParameterizedTest(name = "{0} rows={1} cols={2}")
  @MethodSource("cases")
  @org.junit.jupiter.api.Tag(NEW_KERNEL)
  @org.junit.jupiter.api.Tag("gpu-new-sampletop")
  void sampleRowsWithAlternativesMatchItsCpuTwin(DType d, int rows, int cols) {
    sampleRowsMatchesItsCpuTwin(d, rows, cols, new float[] {0f, 0.05f}, 5);
  }

  /** As {@link #sampleRowsMatchesItsCpuTwin}, with min-p on most rows (session 20: the sampler's min-p cut). */
  @ParameterizedTest(name = "{0} rows={1} cols={2}")
  @MethodSource("cases")
  @org.junit.jupiter.api.Tag(NEW_KERNEL)
  @org.junit.jupiter.api.Tag("gpu-new-minp")
  void sampleRowsWithMinPMatchesItsCpuTwin(DType d, int rows, int cols) {
    sampleRowsMatchesItsCpuTwin(d, rows, cols, new float[] {0.05f, 0f, 0.2f, 1f, 0.01f}, 0);
  }

  /**
   * As {@link #sampleRowsMatchesItsCpuTwin}, with typical sampling on most rows (session 23: the sampler's typical cut
   * after min-p), alone and after the other cuts, with and without alternatives; off by default
   * ({@code -Dopt.cuda.deviceTypical}), so the test turns it on.
   */
  @ParameterizedTest(name = "{0} rows={1} cols={2}")
  @MethodSource("cases")
  @org.junit.jupiter.api.Tag(NEW_KERNEL)
  @org.junit.jupiter.api.Tag("gpu-new-typical")
  void sampleRowsWithTypicalMatchItsCpuTwin(DType d, int rows, int cols) {
    CudaOps g = gpu(d);
    boolean weightsBefore = g.usesSamplerWeights();
    g.useDeviceTypical(true);
    try {
      float[] typical = {0.9f, 0.2f, 1f, 0.5f, 0.99f};
      for (boolean weights : new boolean[] {false, true}) { // each pass from the weights, or recomputed
        g.useSamplerWeights(weights);
        sampleRowsMatchesItsCpuTwin(d, rows, cols, new float[] {0f, 0f, 0.05f}, typical, 0, false);
        sampleRowsMatchesItsCpuTwin(d, rows, cols, new float[] {0f}, typical, 4, true);
      }
    } finally {
      g.useDeviceTypical(CudaSwitches.DEVICE_TYPICAL);
      g.useSamplerWeights(weightsBefore);
    }
  }

  /**
   * As {@link #sampleRowsMatchesItsCpuTwin}, with greedy rows (temperature 0; session 21: a step mixing greedy and
   * sampled sequences): the sampler, the argmax and the top log-probs kernels on one step, read back at once; one row
   * alone is all greedy (then {@link CudaOps#argmaxRows}). With and without 3 alternatives.
   */
  @ParameterizedTest(name = "{0} rows={1} cols={2}")
  @MethodSource("cases")
  @org.junit.jupiter.api.Tag(NEW_KERNEL)
  @org.junit.jupiter.api.Tag("gpu-new-mixed")
  void sampleRowsWithGreedyRowsMatchItsCpuTwin(DType d, int rows, int cols) {
    sampleRowsMatchesItsCpuTwin(d, rows, cols, new float[] {0f, 0.05f}, 0, true);
    sampleRowsMatchesItsCpuTwin(d, rows, cols, new float[] {0f}, 3, true);
  }

  /**
   * The sampler's scratch row (sessions 21-22, {@code -Dopt.cuda.samplerWeights}: s, then the weights, read back by
   * every later pass): the same tokens, log-probs and alternatives, bit for bit, as without it, on rows with every
   * cut (a top-k whose tokens are gathered, top-p, min-p, none).
   */
  @ParameterizedTest(name = "{0} rows={1} cols={2}")
  @MethodSource("cases")
  @org.junit.jupiter.api.Tag(NEW_KERNEL)
  @org.junit.jupiter.api.Tag("gpu-new-samplerweights")
  void theSamplerWeightsCacheChangesNoBit(DType d, int rows, int cols) {
    CudaOps g = gpu(d);
    boolean before = g.samplesOnDevice();
    boolean weightsBefore = g.usesSamplerWeights();
    for (int vocab : new int[] {cols, 50272}) {
      Random r = new Random(rows * 31L + vocab);
      float[] logits = random(r, rows * vocab, 4, d);
      Draws q = Draws.of(r, rows, i -> new float[] {1f, 0.7f, 1.3f}[i % 3], i -> new int[] {0, 50, 0, vocab}[i % 4],
          i -> new float[] {0.9f, 0.5f, 1f, 0.99f}[i % 4], i -> new float[] {0f, 0.05f}[i % 2]);
      int listed = 3;
      int[][] tokens = new int[2][];
      double[][] lps = new double[2][rows];
      int[][] ids = new int[2][rows * listed];
      double[][] tops = new double[2][rows * listed];
      g.useDeviceSampling(true);
      try {
        for (int cached = 0; cached < 2; cached++) {
          g.useSamplerWeights(cached == 1);
          tokens[cached] = g.sampleRows(act(g, logits, rows, vocab), q.rows(), lps[cached], LogitEdits.NONE, listed,
              ids[cached], tops[cached]);
        }
      } finally {
        g.useSamplerWeights(weightsBefore);
        g.useDeviceSampling(before);
      }
      org.junit.jupiter.api.Assertions.assertArrayEquals(tokens[0], tokens[1], d + " vocab " + vocab);
      org.junit.jupiter.api.Assertions.assertArrayEquals(lps[0], lps[1], d + " vocab " + vocab);
      org.junit.jupiter.api.Assertions.assertArrayEquals(ids[0], ids[1], d + " vocab " + vocab);
      org.junit.jupiter.api.Assertions.assertArrayEquals(tops[0], tops[1], d + " vocab " + vocab);
    }
  }

  /** Per-row sampling parameters, the uniforms drawn from {@code r} after the logits. */
  private record Draws(float[] t, int[] k, float[] p, float[] minP, float[] typicalP, double[] u) {
    static Draws of(Random r, int rows, java.util.function.IntFunction<Float> t, java.util.function.IntUnaryOperator k,
        java.util.function.IntFunction<Float> p, java.util.function.IntFunction<Float> minP) {
      return of(r, rows, t, k, p, minP, i -> 1f);
    }

    static Draws of(Random r, int rows, java.util.function.IntFunction<Float> t, java.util.function.IntUnaryOperator k,
        java.util.function.IntFunction<Float> p, java.util.function.IntFunction<Float> minP,
        java.util.function.IntFunction<Float> typicalP) {
      Draws q = new Draws(new float[rows], new int[rows], new float[rows], new float[rows], new float[rows],
          new double[rows]);
      for (int i = 0; i < rows; i++) {
        q.t[i] = t.apply(i);
        q.k[i] = k.applyAsInt(i);
        q.p[i] = p.apply(i);
        q.minP[i] = minP.apply(i);
        q.typicalP[i] = typicalP.apply(i);
        q.u[i] = r.nextDouble();
      }
      return q;
    }

    io.github.optjava.backend.SamplingRows rows() {
      return new io.github.optjava.backend.SamplingRows(t, k, p, minP, typicalP, u);
    }
  }

  private void sampleRowsMatchesItsCpuTwin(DType d, int rows, int cols, float[] minPs, int listed) {
    sampleRowsMatchesItsCpuTwin(d, rows, cols, minPs, listed, false);
  }

  private void sampleRowsMatchesItsCpuTwin(DType d, int rows, int cols, float[] minPs, int listed,
      boolean greedyRows) {
    sampleRowsMatchesItsCpuTwin(d, rows, cols, minPs, new float[] {1f}, listed, greedyRows);
  }

  /**
   * {@code greedyRows}: every other row (the first among them) at temperature 0, a greedy row; {@code typicalPs}: the
   * rows' typical-p values in turn (1: off).
   */
  private void sampleRowsMatchesItsCpuTwin(DType d, int rows, int cols, float[] minPs, float[] typicalPs, int listed,
      boolean greedyRows) {
    CudaOps g = gpu(d);
    boolean before = g.samplesOnDevice();
    for (int vocab : new int[] {cols, 50272}) {
      Random r = new Random(rows * 17L + vocab);
      float[] logits = random(r, rows * vocab, 4, d);
      Draws q = Draws.of(r, rows, i -> greedyRows && i % 2 == 0 ? 0f : new float[] {1f, 0.7f, 1.3f}[i % 3],
          i -> new int[] {0, 50, 1, vocab}[i % 4], i -> new float[] {1f, 0.9f, 0.5f}[(i / 2) % 3],
          i -> minPs[i % minPs.length], i -> typicalPs[i % typicalPs.length]);
      io.github.optjava.backend.SamplingRows spec = q.rows();
      // The twin reads the logits as the GPU stores them (rounded to d), like CpuOps would after a read.
      float[] stored = g.read(act(g, logits, rows, vocab));
      double[] want = new double[rows];
      int[] wantTok = new int[rows];
      int[] wantIds = new int[rows * listed];
      double[] wantTop = new double[rows * listed];
      for (int i = 0; i < rows; i++) {
        wantTok[i] = io.github.optjava.backend.RowSampling.sample(stored, i * vocab, vocab, spec, i, want, i, listed,
            wantIds, wantTop, i * listed);
      }
      g.useDeviceSampling(true);
      try {
        double[] got = new double[rows];
        int[] ids = new int[rows * listed];
        double[] top = new double[rows * listed];
        int[] tok = g.sampleRows(act(g, logits, rows, vocab), spec, got, LogitEdits.NONE, listed, ids, top);
        org.junit.jupiter.api.Assertions.assertArrayEquals(wantIds, ids, d + " vocab " + vocab + " alternatives");
        for (int i = 0; i < rows * listed; i++) {
          assertTrue(Double.isNaN(wantTop[i]) ? Double.isNaN(top[i])
              : Math.abs(top[i] - wantTop[i]) <= 1e-4 * (1 + Math.abs(wantTop[i])), d + " alternative " + i);
        }
        org.junit.jupiter.api.Assertions.assertArrayEquals(wantTok, tok, d + " vocab " + vocab);
        for (int i = 0; i < rows; i++) {
          assertTrue(Math.abs(got[i] - want[i]) <= 1e-4 * (1 + Math.abs(want[i])),
              d + " vocab " + vocab + " row " + i + ": " + got[i] + " vs " + want[i]);
        }
      } finally {
        g.useDeviceSampling(before);
      }
    }
  }

  /**
   * Logit edits on the device (opt_edit_logits_f32, session 19) before the argmax and the sampler, against the same
   * picks after {@link LogitEdits#applyTo} on the host over the logits as the GPU stores them: the same tokens, and
   * log-probs within float32 (every kind of edit, a repetition penalty on dozens of tokens, a ban of the maximum).
   */
  @ParameterizedTest(name = "{0} rows={1} cols={2}")
  @MethodSource("cases")
  @org.junit.jupiter.api.Tag(NEW_KERNEL)
  @org.junit.jupiter.api.Tag("gpu-new-edits")
  void logitEditsBeforeThePickMatchTheHost(DType d, int rows, int cols) {
    CudaOps g = gpu(d);
    Random r = new Random(rows * 29L + cols);
    float[] logits = random(r, rows * cols, 3, d);
    float[] stored = g.read(act(g, logits, rows, cols));
    LogitEdits.Builder b = new LogitEdits.Builder(cols);
    for (int i = 0; i < rows; i++) {
      b.row(i);
      int best = io.github.optjava.backend.RowMath.argmax(stored, i * cols, (i + 1) * cols);
      b.ban(best); // the maximum banned: the pick must move
      for (int j = 0; j < Math.min(40, cols / 2); j++) {
        b.repetitionPenalty(r.nextInt(cols), 1.3f);
      }
      b.bias(r.nextInt(cols), 2.5f).presenceFrequency(r.nextInt(cols), 0.4f, 0.2f);
    }
    LogitEdits edits = b.build();
    float[] edited = stored.clone();
    edits.applyTo(edited);
    double[] want = new double[rows];
    int[] wantIdx = new int[rows];
    float[] t = new float[rows];
    int[] k = new int[rows];
    float[] p = new float[rows];
    double[] u = new double[rows];
    double[] wantSampled = new double[rows];
    int[] wantTok = new int[rows];
    for (int i = 0; i < rows; i++) {
      wantIdx[i] = io.github.optjava.backend.RowMath.argmax(edited, i * cols, (i + 1) * cols);
      want[i] = edited[i * cols + wantIdx[i]]
          - io.github.optjava.backend.RowMath.logSumExp(edited, i * cols, (i + 1) * cols);
      t[i] = 0.8f;
      k[i] = i % 2 == 0 ? 0 : 20;
      p[i] = 0.9f;
      u[i] = r.nextDouble();
      wantTok[i] = io.github.optjava.backend.RowSampling.sample(edited, i * cols, cols, t[i], k[i], p[i], 0f, u[i],
          wantSampled, i);
    }
    double[] got = new double[rows];
    org.junit.jupiter.api.Assertions.assertArrayEquals(wantIdx, g.argmaxRows(act(g, logits, rows, cols), got, edits),
        d + " argmax");
    for (int i = 0; i < rows; i++) {
      assertTrue(Math.abs(got[i] - want[i]) <= 1e-4 * (1 + Math.abs(want[i])), d + " row " + i);
    }
    boolean before = g.samplesOnDevice();
    g.useDeviceSampling(true);
    try {
      org.junit.jupiter.api.Assertions.assertArrayEquals(wantTok, g.sampleRows(act(g, logits, rows, cols),
          io.github.optjava.backend.SamplingRows.of(t, k, p, u), got, edits), d + " sample");
    } finally {
      g.useDeviceSampling(before);
    }
  }

  /**
   * A greedy pick's log-prob alternatives on the device (opt_top_logprobs_f32, session 19) after edits, against the
   * host's over the logits as the GPU stores them (RowMath.pickRows): the same picks and top ids, the picks' and the
   * alternatives' log-probs within float32, k = 1, 5 and 20 (row 1 keeps 3 tokens: -1 and NaN after the last).
   */
  @ParameterizedTest(name = "{0} rows={1} cols={2}")
  @MethodSource("cases")
  @org.junit.jupiter.api.Tag(NEW_KERNEL)
  @org.junit.jupiter.api.Tag("gpu-new-toplp")
  void topLogprobsMatchTheHost(DType d, int rows, int cols) {
    CudaOps g = gpu(d);
    Random r = new Random(rows * 31L + cols);
    float[] logits = random(r, rows * cols, 3, d);
    float[] stored = g.read(act(g, logits, rows, cols));
    LogitEdits.Builder builder = new LogitEdits.Builder(cols).row(0).ban(r.nextInt(cols))
        .repetitionPenalty(r.nextInt(cols), 1.3f);
    if (rows > 1) { // row 1: all but 3 tokens banned, fewer than k lists: -1 and NaN after the last
      builder.row(1);
      for (int t = 3; t < cols; t++) {
        builder.ban(t);
      }
    }
    LogitEdits edits = builder.build();
    float[] edited = stored.clone();
    edits.applyTo(edited);
    for (int k : new int[] {1, 5, 20}) {
      double[] want = new double[rows];
      int[] wantIds = new int[rows * k];
      double[] wantTop = new double[rows * k];
      int[] wantIdx = io.github.optjava.backend.RowMath.pickRows(edited, rows, cols, want, k, wantIds, wantTop);
      double[] got = new double[rows];
      int[] ids = new int[rows * k];
      double[] top = new double[rows * k];
      org.junit.jupiter.api.Assertions.assertArrayEquals(wantIdx, g.argmaxRows(act(g, logits, rows, cols), got, edits,
          k, ids, top), d + " k=" + k + " picks");
      org.junit.jupiter.api.Assertions.assertArrayEquals(wantIds, ids, d + " k=" + k + " ids");
      for (int i = 0; i < rows; i++) {
        assertTrue(Math.abs(got[i] - want[i]) <= 1e-4 * (1 + Math.abs(want[i])), d + " k=" + k + " pick " + i);
      }
      for (int i = 0; i < rows * k; i++) {
        assertTrue(Double.isNaN(wantTop[i]) ? Double.isNaN(top[i])
            : Math.abs(top[i] - wantTop[i]) <= 1e-4 * (1 + Math.abs(wantTop[i])), d + " k=" + k + " entry " + i);
      }
    }
  }

  /**
   * Beam search's candidates on the device (opt_beam_topk_f32, session 20) against the host's over the logits as the
   * GPU stores them (RowMath.beamTopK): the same ids in the same order and scores within float32, for a beam per row
   * (scores 0, -0.75, ...) and two more reading row 0 (scores -3.5 and -1e9, where every candidate rounds to one float
   * and the lower ids win); k = 2, 8 and more than the vocabulary (-1 and NaN after the last); row 0 has -inf logits
   * (listed last), and rows with a NaN, a +inf or only -inf list nothing.
   */
  @ParameterizedTest(name = "{0} rows={1} cols={2}")
  @MethodSource("cases")
  @org.junit.jupiter.api.Tag(NEW_KERNEL)
  @org.junit.jupiter.api.Tag("gpu-new-beams")
  void beamCandidatesMatchTheHost(DType d, int rows, int cols) {
    CudaOps g = gpu(d);
    Random r = new Random(rows * 37L + cols);
    float[] logits = random(r, rows * cols, 3, d);
    for (int i = 0; i < cols; i += 3) {
      logits[i] = Float.NEGATIVE_INFINITY; // row 0: a third at -inf, listed last in id order when k reaches them
    }
    if (rows > 1) {
      java.util.Arrays.fill(logits, cols, 2 * cols, Float.NaN); // row 1: nothing to list
    }
    if (rows > 2) {
      logits[2 * cols + 5] = Float.POSITIVE_INFINITY; // row 2: +inf, a NaN log-softmax: nothing to list
    }
    if (rows > 3) {
      java.util.Arrays.fill(logits, 3 * cols, 4 * cols, Float.NEGATIVE_INFINITY); // row 3: all -inf: nothing
    }
    int[] beamRows = new int[rows + 2];
    float[] base = new float[rows + 2];
    for (int b = 0; b < rows; b++) {
      beamRows[b] = b;
      base[b] = -0.75f * b; // each beam its own score
    }
    base[rows] = -3.5f;
    base[rows + 1] = -1e9f;
    try (Mat m = act(g, logits, rows, cols)) {
      float[] stored = g.read(m);
      for (int k : new int[] {2, 8, cols + 2}) {
        int n = beamRows.length;
        int[] wantIds = new int[n * k];
        float[] want = new float[n * k];
        io.github.optjava.backend.RowMath.beamTopK(stored, cols, beamRows, base, k, wantIds, want);
        int[] ids = new int[n * k];
        float[] got = new float[n * k];
        g.beamTopK(m, beamRows, base, k, ids, got);
        org.junit.jupiter.api.Assertions.assertArrayEquals(wantIds, ids, d + " k=" + k + " ids");
        for (int i = 0; i < n * k; i++) {
          assertTrue(Float.isNaN(want[i]) ? Float.isNaN(got[i]) : want[i] == Float.NEGATIVE_INFINITY
              ? got[i] == want[i] : Math.abs(got[i] - want[i]) <= 1e-5 * (1 + Math.abs(want[i])),
              d + " k=" + k + " entry " + i + ": " + got[i] + " vs " + want[i]);
        }
        // With processors as edits on the log-probabilities (session 20): row 0's best token banned, a repetition
        // penalty and a bias on others; the twin: RowMath.logSoftmaxRows, LogitEdits.applyTo, beamTopKOfLogProbs.
        int best = io.github.optjava.backend.RowMath.argmax(stored, 0, cols);
        LogitEdits edits = new LogitEdits.Builder(cols).row(0).ban(best).repetitionPenalty((best + 1) % cols, 1.5f)
            .bias((best + 2) % cols, -0.5f).build();
        float[] lp = stored.clone();
        io.github.optjava.backend.RowMath.logSoftmaxRows(lp, rows, cols);
        edits.applyTo(lp);
        io.github.optjava.backend.RowMath.beamTopKOfLogProbs(lp, cols, beamRows, base, k, wantIds, want);
        g.beamTopK(m, beamRows, base, k, ids, got, edits);
        org.junit.jupiter.api.Assertions.assertArrayEquals(wantIds, ids, d + " k=" + k + " ids with edits");
        for (int i = 0; i < n * k; i++) {
          assertTrue(Float.isNaN(want[i]) ? Float.isNaN(got[i]) : want[i] == Float.NEGATIVE_INFINITY
              ? got[i] == want[i] : Math.abs(got[i] - want[i]) <= 1e-5 * (1 + Math.abs(want[i])),
              d + " k=" + k + " entry " + i + " with edits: " + got[i] + " vs " + want[i]);
        }
      }
    }
  }

  /**
   * The fused q/k/v epilogue: q with its bias, k and v appended to the cache; the cache is checked by
   * attending over it (a prompt of 19 tokens, then one decode token), with and without a bias.
   */
  @ParameterizedTest(name = "{0} headDim={1} kernel={2}")
  @MethodSource("attentionCases")
  void qkvAppendThenAttention(DType d, int headDim, String kernel) {
    withAttentionKernel(gpu(d), kernel, g -> qkvAppendThenAttention(d, headDim, g));
  }

  @ParameterizedTest(name = "{0} headDim={1} kernel={2}")
  @MethodSource("newAttentionCases")
  @org.junit.jupiter.api.Tag(NEW_KERNEL)
  @org.junit.jupiter.api.Tag("gpu-new-fa")
  void qkvAppendThenAttentionWithNewKernels(DType d, int headDim, String kernel) {
    withAttentionKernel(gpu(d), kernel, g -> qkvAppendThenAttention(d, headDim, g));
  }

  private void qkvAppendThenAttention(DType d, int headDim, CudaOps g) {
    Random r = new Random(headDim * 17L + 3);
    int heads = 2;
    int width = heads * headDim;
    int blockSize = 16;
    float scale = (float) (1 / Math.sqrt(headDim));
    int[][] tables = {{3, 1}};
    for (boolean withBias : new boolean[] {true, false}) {
      KvStore ckv = CPU.kvStore(1, 4, blockSize, width);
      KvStore gkv = g.kvStore(1, 4, blockSize, width);
      try {
        float[] bias = random(r, 3 * width, 0.5, d);
        int past = 0;
        for (int n : new int[] {19, 1}) {
          AttentionBatch batch = new AttentionBatch(new int[] {0}, new int[] {n}, new int[] {past + n}, tables);
          int[] slots = slotsOf(batch, past, n, blockSize);
          float[] qkv = random(r, n * 3 * width, 1, d);
          Mat cq = CPU.alloc(n, width);
          CPU.qkvAppend(cq, ckv, 0, act(CPU, qkv, n, 3 * width), withBias ? act(CPU, bias, 1, 3 * width) : null,
              slots);
          Mat gq = poisoned(g, n, width);
          g.qkvAppend(gq, gkv, 0, act(g, qkv, n, 3 * width), withBias ? act(g, bias, 1, 3 * width) : null, slots);
          assertClose("qkvAppend (q) bias=" + withBias, d, CPU.read(cq), g.read(gq));
          assertSameAttention("attention over qkvAppend's cache bias=" + withBias, d, g, cq, ckv, gq, gkv, batch,
              heads, scale);
          past += n;
        }
      } finally {
        gkv.close();
      }
    }
  }

  /**
   * The q/k/v projection and its cache append in one launch (-Dopt.cuda.gemv=true, 1–8 rows) against the CPU's
   * GEMM + qkvAppend: q, and the cache through attention; 19 rows take the unfused path.
   */
  @ParameterizedTest(name = "{0}")
  @EnumSource(DType.class)
  void qkvProjectAppendThroughGemv(DType d) {
    qkvProjectAppendThroughGemv(d, 1, false, 0);
  }

  /** {@link #qkvProjectAppendThroughGemv(DType)} with 2 and 4 warps per output group (session 11, verified in s17). */
  @ParameterizedTest(name = "{0} split={1}")
  @org.junit.jupiter.params.provider.CsvSource({"F16, 2", "F16, 4", "BF16, 4", "F32, 0"})
  @org.junit.jupiter.api.Tag("gpu-new-gemvsplit")
  void qkvProjectAppendThroughSplitGemv(DType d, int split) {
    qkvProjectAppendThroughGemv(d, split, false, 0);
  }

  /**
   * The same with int8 weights (session 11, verified on an H100 in session 17): the int8 q/k/v kernel for 1–8
   * rows, the dequantized GEMM + qkvAppend for 19, against the CPU ops' int8 path.
   */
  @ParameterizedTest(name = "{0} split={1}")
  @org.junit.jupiter.params.provider.CsvSource({"F32, 1", "F16, 1", "BF16, 1", "F16, 0"})
  @org.junit.jupiter.api.Tag("gpu-new-int8")
  void qkvProjectAppendThroughInt8(DType d, int split) {
    qkvProjectAppendThroughGemv(d, split, true, 0);
  }

  /**
   * Linears over int8 weights against the CPU ops' int8 path (sums over the integers, times the
   * row scale): the int8 matrix-vector kernel for 1–8 rows (in a multiple of 16), the dequantized weight through
   * the GEMM for more rows and for widths that are not.
   */
  @ParameterizedTest(name = "{0} split={1}")
  @org.junit.jupiter.params.provider.CsvSource({"F32, 1", "F16, 1", "BF16, 1", "F16, 2", "BF16, 0"})
  @org.junit.jupiter.api.Tag("gpu-new-int8")
  void linearThroughInt8(DType d, int split) {
    CudaOps g = gpu(d);
    int splitBefore = g.gemvSplit();
    g.useGemvSplit(split);
    try {
      withLinearPath(g, g.usesLtGemm(), 8, () -> {
        long before = g.gemvLaunches();
        int8Case(g, d, 1, 128, 141);
        int8Case(g, d, 3, 2048, 2048 + 13);
        int8Case(g, d, 8, 256, 40);
        assertEquals(before + 3 * 2, g.gemvLaunches(), d + ": 1–8 rows in a multiple of 16 run the int8 kernel");
        int8Case(g, d, 33, 128, 64); // more rows: dequantized, then the GEMM
        assertEquals(before + 3 * 2, g.gemvLaunches(), d + ": 33 rows through the dequantized weight and the GEMM");
        // A width not a multiple of 16: dequantized too; its one row then takes the fp16 matrix-vector kernel (one
        // launch per relu case), which the H100 run of 2026-11-27 counted (the test expected none).
        int8Case(g, d, 1, 83, 40);
        assertEquals(before + 3 * 2 + 2, g.gemvLaunches(), d + ": one row over the dequantized weight");
      });
    } finally {
      g.useGemvSplit(splitBefore);
    }
  }

  private void int8Case(CudaOps g, DType d, int tokens, int in, int out) {
    int8Case(g, d, tokens, in, out, true);
  }

  /**
   * An int8 Linear of {@code tokens} rows against {@link #CPU_INT8}: with a bias, without and with ReLU; without one
   * ({@code bias} false: the epilogue's other form), once, no ReLU.
   */
  private void int8Case(CudaOps g, DType d, int tokens, int in, int out, boolean bias) {
    Random r = new Random(tokens * 7L + in + (bias ? 5 : 9));
    float[] x = random(r, tokens * in, 1, d);
    float[] w = random(r, out * in, 0.2, d);
    float[] b = random(r, out, 0.1, d);
    Mat cw = CPU_INT8.linearWeight(tensor(w, out, in).to(d));
    Mat gw = int8Weight(g, tensor(w, out, in).to(d));
    try {
      for (boolean relu : bias ? new boolean[] {false, true} : new boolean[] {false}) {
        Mat co = CPU_INT8.alloc(tokens, out);
        CPU_INT8.linear(co, act(CPU_INT8, x, tokens, in), cw, bias ? act(CPU_INT8, b, 1, out) : null, relu);
        Mat go = poisoned(g, tokens, out);
        g.linear(go, act(g, x, tokens, in), gw, bias ? act(g, b, 1, out) : null, relu);
        assertClose("linear int8 " + tokens + "x" + in + "x" + out + (bias ? " relu=" + relu : " no bias"), d,
            CPU_INT8.read(co), g.read(go));
      }
    } finally {
      gw.close();
    }
  }

  /** t stored by g as an int8 Linear weight (g's int8 switch on for this upload only). */
  private static Mat int8Weight(CudaOps g, Tensor t) {
    boolean before = g.int8Linears();
    g.useInt8Linears(true);
    try {
      return g.linearWeight(t);
    } finally {
      g.useInt8Linears(before);
    }
  }

  /**
   * tcRows 0: the matrix-vector kernels (1–8 rows; 19 through cuBLAS). tcRows 32: the tensor-core kernel (session 22)
   * for the rows it takes (16-bit weights 2–32, int8 weights with fp16 activations 1–32; 33 rows through cuBLAS), x
   * 128 wide (two int8 steps).
   */
  private void qkvProjectAppendThroughGemv(DType d, int split, boolean int8, int tcRows) {
    CudaOps g = gpu(d);
    CpuOps cpu = int8 ? CPU_INT8 : CPU;
    int gemvBefore = g.gemvMaxRows();
    int splitBefore = g.gemvSplit();
    int tcBefore = g.tcLinearRows();
    g.useGemv(8);
    g.useGemvSplit(split);
    g.useTcLinear(tcRows);
    Random r = new Random(41);
    int heads = 2;
    int headDim = 64;
    int width = heads * headDim;
    int in = tcRows > 0 ? 128 : 96;
    int blockSize = 16;
    float scale = (float) (1 / Math.sqrt(headDim));
    int[][] tables = tcRows > 0 ? new int[][] {{3, 1, 0, 2}} : new int[][] {{3, 1}}; // 64 positions: 3+1+19+33+8
    KvStore ckv = cpu.kvStore(1, 4, blockSize, width);
    KvStore gkv = g.kvStore(1, 4, blockSize, width);
    try {
      float[] w = random(r, 3 * width * in, 0.1, d);
      float[] bias = random(r, 3 * width, 0.5, d);
      Mat cw = int8 ? cpu.linearWeight(tensor(w, 3 * width, in).to(d)) : cpu.weight(tensor(w, 3 * width, in).to(d));
      Mat gw = int8 ? int8Weight(g, tensor(w, 3 * width, in).to(d)) : g.weight(tensor(w, 3 * width, in));
      long before = g.gemvLaunches();
      long tcLaunches = OptKernels.opt_launch_count(OptKernels.COUNT_TC_LINEAR);
      int past = 0;
      for (int n : tcRows > 0 ? new int[] {3, 1, 19, 33, 8} : new int[] {3, 1, 19, 8}) {
        AttentionBatch batch = new AttentionBatch(new int[] {0}, new int[] {n}, new int[] {past + n}, tables);
        int[] slots = slotsOf(batch, past, n, blockSize);
        float[] x = random(r, n * in, 1, d);
        Mat cq = cpu.alloc(n, width);
        cpu.qkvProjectAppend(cq, ckv, 0, cpu.alloc(n, 3 * width), act(CPU, x, n, in), cw,
            act(CPU, bias, 1, 3 * width), slots);
        Mat gq = poisoned(g, n, width);
        g.qkvProjectAppend(gq, gkv, 0, g.alloc(n, 3 * width), act(g, x, n, in), gw, act(g, bias, 1, 3 * width),
            slots);
        assertClose("qkvProjectAppend (q) rows=" + n, d, cpu.read(cq), g.read(gq));
        assertSameAttention("attention over qkvProjectAppend's cache rows=" + n, d, g, cq, ckv, gq, gkv, batch, heads,
            scale);
        past += n;
      }
      if (tcRows == 0) {
        assertEquals(before + 3, g.gemvLaunches(), d + ": 3, 1 and 8 rows fused, 19 rows through cuBLAS");
      } else {
        // 16-bit: 3, 19 and 8 rows (1 row: the matrix-vector kernel; 33: cuBLAS). int8: F16 3, 1, 19 and 8 rows;
        // BF16's 19 rows go through the dequantized 16-bit copy, which the tensor-core kernel takes too.
        long tc = d == DType.F32 ? 0 : !int8 ? 3 : d == DType.F16 ? 4 : 1;
        assertEquals(tcLaunches + tc, OptKernels.opt_launch_count(OptKernels.COUNT_TC_LINEAR),
            d + (int8 ? " int8" : "") + ": q/k/v launches of the tensor-core kernel");
      }
    } finally {
      gkv.close();
      g.useGemv(gemvBefore);
      g.useGemvSplit(splitBefore);
      g.useTcLinear(tcBefore);
    }
  }

  /**
   * The tensor-core Linear for few rows (-Dopt.cuda.tcLinear, session 22, not yet run on a GPU) against the CPU's
   * Linear: 16-bit weights at 2–32 rows (one row keeps the matrix-vector kernel), int8 weights with fp16 activations
   * at 1–32 rows (with bf16 activations an int8 weight's dequantized copy takes it past one row); one row, 33 rows,
   * widths that are not whole steps and f32 take the other paths (counted). Then the fused q/k/v projection with its
   * cache append, 16-bit and int8.
   */
  @ParameterizedTest(name = "{0}")
  @EnumSource(DType.class)
  @org.junit.jupiter.api.Tag(NEW_KERNEL)
  @org.junit.jupiter.api.Tag("gpu-new-tclinear")
  void linearThroughTensorCores(DType d) {
    CudaOps g = gpu(d);
    int tcBefore = g.tcLinearRows();
    g.useTcLinear(32);
    try {
      long before = OptKernels.opt_launch_count(OptKernels.COUNT_TC_LINEAR);
      linearCase(g, d, 2, 128, 141);
      linearCase(g, d, 9, 2048, 2048 + 13);
      linearCase(g, d, 32, 8192, 64);
      linearCase(g, d, 17, 96, 40); // three steps of 32
      long tc = d == DType.F32 ? 0 : 4 * 3;
      assertEquals(before + tc, OptKernels.opt_launch_count(OptKernels.COUNT_TC_LINEAR), d + ": 2–32 rows");
      linearCase(g, d, 1, 128, 64); // the matrix-vector kernel
      linearCase(g, d, 33, 128, 64); // cuBLAS
      linearCase(g, d, 4, 83, 40); // not a whole step
      assertEquals(before + tc, OptKernels.opt_launch_count(OptKernels.COUNT_TC_LINEAR), d + ": other paths");
      boolean oneRowBefore = g.usesTcOneRow();
      g.useTcOneRow(true); // -Dopt.cuda.tcOneRow: one row of 16-bit weights on the tensor cores too
      try {
        linearCase(g, d, 1, 2048, 2048 + 13);
      } finally {
        g.useTcOneRow(oneRowBefore);
      }
      tc += d == DType.F32 ? 0 : 3;
      assertEquals(before + tc, OptKernels.opt_launch_count(OptKernels.COUNT_TC_LINEAR), d + ": one row (tcOneRow)");
      int8Case(g, d, 1, 128, 141);
      int8Case(g, d, 3, 2048, 2048 + 13);
      int8Case(g, d, 32, 256, 40);
      // F16: all three on the int8 kernel; BF16: 3 and 32 rows through the dequantized 16-bit copy, which the
      // tensor-core kernel takes (its 1 row: the int8 matrix-vector kernel); F32: none
      tc += d == DType.F16 ? 3 * 2 : d == DType.BF16 ? 2 * 2 : 0;
      assertEquals(before + tc, OptKernels.opt_launch_count(OptKernels.COUNT_TC_LINEAR), d + ": int8, 1–32 rows");
      int8Case(g, d, 5, 80, 40); // 80: not a whole int8 step (64) nor a 16-bit one (32): the dequantized GEMM
      assertEquals(before + tc, OptKernels.opt_launch_count(OptKernels.COUNT_TC_LINEAR), d + ": int8, other paths");
      // Every split the Java side can ask for (auto picks 1 or 8 for the shapes above), at 9–16 rows, int8 with and
      // without a bias (session 25's review of the Java-to-CUDA calls: none of these had a case)
      int splitBefore = g.tcSplit();
      try {
        for (int split : new int[] {1, 2, 4, 8}) {
          g.useTcSplit(split);
          linearCase(g, d, 12, 512, 72);
          int8Case(g, d, 12, 512, 40);
          int8Case(g, d, 12, 512, 40, false);
          tc += d == DType.F32 ? 0 : 3 + 2 + 1;
          assertEquals(before + tc, OptKernels.opt_launch_count(OptKernels.COUNT_TC_LINEAR), d + ": split " + split);
        }
      } finally {
        g.useTcSplit(splitBefore);
      }
    } finally {
      g.useTcLinear(tcBefore);
    }
    qkvProjectAppendThroughGemv(d, 0, false, 32);
    qkvProjectAppendThroughGemv(d, 0, true, 32);
  }

  /** The cache slots of a sequence's positions past .. past + n - 1 (sequence 0 of the batch). */
  private static int[] slotsOf(AttentionBatch batch, int past, int n, int blockSize) {
    int[] slots = new int[n];
    for (int i = 0; i < n; i++) {
      slots[i] = batch.slot(0, past + i, blockSize);
    }
    return slots;
  }

  /** The CPU's attention of cq over ckv and the GPU's of gq over gkv agree: the caches hold the same keys/values. */
  private static void assertSameAttention(String what, DType d, CudaOps g, Mat cq, KvStore ckv, Mat gq, KvStore gkv,
      AttentionBatch batch, int heads, float scale) {
    int rows = cq.rows();
    int width = cq.cols();
    Mat co = CPU.alloc(rows, width);
    CPU.attention(co, cq, ckv, 0, batch, heads, scale);
    Mat go = poisoned(g, rows, width);
    g.attention(go, gq, gkv, 0, batch, heads, scale);
    assertClose(what, d, CPU.read(co), g.read(go));
  }

  /**
   * Every dtype × head_dim 64 (125m … 175b except 2.7b), 80 (2.7b), 128 × every attention kernel (tc falls back
   * to tiled in f32, so its f32 cases check that fallback).
   */
  static Stream<Arguments> attentionCases() {
    return attentionCases(CudaOps.ATTENTION_KERNELS.stream().filter(k -> !NEW_ATTENTION.contains(k))
        .toArray(String[]::new));
  }

  /** The attention kernels not yet verified on a GPU (tag {@link #NEW_KERNEL}); fa falls back to tiled in f32. */
  static Stream<Arguments> newAttentionCases() {
    return attentionCases(NEW_ATTENTION.toArray(String[]::new));
  }

  private static Stream<Arguments> attentionCases(String... kernels) {
    return Stream.of(DType.F32, DType.F16, DType.BF16)
        .flatMap(d -> Stream.of(64, 80, 128).flatMap(h -> Stream.of(kernels).map(k -> Arguments.of(d, h, k))));
  }
}
