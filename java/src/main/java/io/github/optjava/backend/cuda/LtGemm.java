package io.github.optjava.backend.cuda;

import static org.bytedeco.cuda.global.cublas.CUBLASLT_EPILOGUE_BIAS;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_EPILOGUE_DEFAULT;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_EPILOGUE_RELU;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_EPILOGUE_RELU_BIAS;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_DESC_BIAS_POINTER;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_DESC_EPILOGUE;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_DESC_TRANSA;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_DESC_TRANSB;
import static org.bytedeco.cuda.global.cublas.CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES;
import static org.bytedeco.cuda.global.cublas.CUBLAS_COMPUTE_32F;
import static org.bytedeco.cuda.global.cublas.CUBLAS_OP_N;
import static org.bytedeco.cuda.global.cublas.CUBLAS_OP_T;
import static org.bytedeco.cuda.global.cublas.cublasLtCreate;
import static org.bytedeco.cuda.global.cublas.cublasLtDestroy;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmul;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulAlgoGetHeuristic;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulDescCreate;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulDescDestroy;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulDescSetAttribute;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulPreferenceCreate;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulPreferenceDestroy;
import static org.bytedeco.cuda.global.cublas.cublasLtMatmulPreferenceSetAttribute;
import static org.bytedeco.cuda.global.cublas.cublasLtMatrixLayoutCreate;
import static org.bytedeco.cuda.global.cublas.cublasLtMatrixLayoutDestroy;
import static org.bytedeco.cuda.global.cudart.CUDA_R_16BF;
import static org.bytedeco.cuda.global.cudart.CUDA_R_16F;
import static org.bytedeco.cuda.global.cudart.CUDA_R_32F;
import static org.bytedeco.cuda.global.cudart.cudaEventCreate;
import static org.bytedeco.cuda.global.cudart.cudaEventDestroy;
import static org.bytedeco.cuda.global.cudart.cudaEventElapsedTime;
import static org.bytedeco.cuda.global.cudart.cudaEventRecord;
import static org.bytedeco.cuda.global.cudart.cudaEventSynchronize;
import static org.bytedeco.cuda.global.cudart.cudaGetLastError;
import static org.bytedeco.cuda.global.cudart.cudaMemsetAsync;

import io.github.optjava.checkpoint.DType;
import java.util.HashMap;
import java.util.Map;
import org.bytedeco.cuda.cublas.cublasLtContext;
import org.bytedeco.cuda.cublas.cublasLtMatmulDescOpaque_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulHeuristicResult_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulPreferenceOpaque_t;
import org.bytedeco.cuda.cublas.cublasLtMatrixLayoutOpaque_t;
import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;

/**
 * {@code CudaOps.linear} through cuBLASLt (-Dopt.cuda.gemm=lt): out = act(x · wᵀ + bias) as ONE cublasLtMatmul,
 * the bias and ReLU in its epilogue (added in float32 before the one rounding to the storage type), with the
 * algorithm cuBLASLt's heuristic picks for each shape (queried once per shape, on the eager step that precedes
 * any graph capture). Without a heuristic answer for a shape, {@link #matmul} returns false and the caller uses
 * cublasGemmEx plus its bias kernel.
 *
 * <p>The problem, column-major as cuBLAS sees it: outᵀ (N × T) = W (stored K × N, op T) · xᵀ (K × T), with the
 * bias (N) broadcast along the T columns, which is what CUBLASLT_EPILOGUE_BIAS does with a vector of the rows.
 * Passed its parity and graph tests on an H100 (2026-11-26, session 7): the default Linear path.
 *
 * <p>Tuning ({@link #useTuning}, {@code -Dopt.cuda.ltTune}; session 14, verified on an H100 in session 17: no faster,
 * so off): a shape of at most {@link #TUNE_MAX_ROWS} rows (decode batches: few shapes, each run thousands of times)
 * takes the fastest of the heuristic's first {@value #TUNE_CANDIDATES} algorithms, timed on the operands of the call
 * that plans it. Skinny GEMMs are where the heuristic's first choice is most often not the fastest (TensorRT-LLM
 * profiles cuBLASLt's algorithms per batch size for the same reason). The choice is fixed for the plan's life, but it
 * comes from timings: two processes may choose differently, and algorithms that sum in another order (split-K) round
 * differently, so a tuned run is reproducible within a process, not bit for bit across processes.
 */
final class LtGemm implements AutoCloseable {
  /** One shape's descriptors and algorithm; the bias pointer is set per call (layers share a plan). */
  private record Plan(cublasLtMatmulDescOpaque_t desc, cublasLtMatrixLayoutOpaque_t a, cublasLtMatrixLayoutOpaque_t b,
      cublasLtMatrixLayoutOpaque_t c, cublasLtMatmulHeuristicResult_t algo) {}

  private record Key(int n, int t, int k, int epilogue, DType dtype) {}

  private static final int MAX_PLANS = 1024;
  /** Shapes of at most this many rows are tuned ({@link #useTuning}); longer ones (prefill) are not. */
  static final int TUNE_MAX_ROWS = 64;
  /** Algorithms asked of the heuristic and timed for a tuned shape. */
  static final int TUNE_CANDIDATES = 8;
  /** Timed launches per candidate, after one untimed. */
  private static final int TUNE_RUNS = 5;
  /** Memsets of the workspace queued before a candidate's timed launches (see {@link #fastest}). */
  private static final int BUSY_MEMSETS = 10;
  private static final int STATUS_NOT_SUPPORTED = 15; // CUBLAS_STATUS_NOT_SUPPORTED
  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(LtGemm.class);

  private final cublasLtContext handle = new cublasLtContext();
  private final Pointer workspace;
  private final long workspaceBytes;
  private final Map<Key, Plan> plans = new HashMap<>();
  private final java.util.Set<Key> unsupported = new java.util.HashSet<>();
  private final FloatPointer one = new FloatPointer(1f);
  private final FloatPointer zero = new FloatPointer(0f);
  private final LongPointer biasAddress = new LongPointer(1);
  private long launches;
  private boolean tune = CudaSwitches.LT_TUNE;
  private long tunedShapes;
  private int forcedChoice = -1; // tests: the candidate a tuned plan takes when it timed it (-1: the fastest)
  private int lastChoice = -1; // the candidate the last tuned plan took (tests)

  LtGemm(Pointer workspace, long workspaceBytes) {
    this.workspace = workspace;
    this.workspaceBytes = workspaceBytes;
    check("cublasLtCreate", cublasLtCreate(handle));
  }

  /**
   * out (T × N) = act(x (T × K) · w (N × K)ᵀ + bias), all in {@code dtype}; false when cuBLASLt has no
   * algorithm for the shape (nothing was launched).
   *
   * @param capturing a graph is being captured: no new plan may be made now (none is needed: the step was run
   *                  eagerly first), so an unplanned shape answers false
   */
  boolean matmul(CudaMat out, CudaMat x, CudaMat w, CudaMat bias, boolean relu, DType dtype, CUstream_st stream,
      boolean capturing) {
    int epilogue = bias != null ? (relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS)
        : relu ? CUBLASLT_EPILOGUE_RELU : CUBLASLT_EPILOGUE_DEFAULT;
    // The heuristic's algorithms may assume cuBLASLt's default 256-byte alignment: other pointers take the old path.
    if (w.address() % 256 != 0 || x.address() % 256 != 0 || out.address() % 256 != 0
        || (bias != null && bias.address() % 256 != 0)) {
      return false;
    }
    Key key = new Key(w.rows, x.rows, x.cols, epilogue, dtype);
    if (unsupported.contains(key)) {
      return false;
    }
    Plan plan = plans.get(key);
    if (plan == null) {
      if (capturing) {
        return false;
      }
      if (plans.size() + unsupported.size() >= MAX_PLANS) { // prompts of many lengths: start over, not grow
        dropPlans();
      }
      plan = plan(key, bias == null ? 0 : bias.address(), out, x, w, stream);
      if (plan == null) {
        unsupported.add(key);
        return false;
      }
      plans.put(key, plan);
    }
    if (bias != null) {
      biasAddress.put(0, bias.address());
      check("cublasLtMatmulDescSetAttribute(bias)", cublasLtMatmulDescSetAttribute(plan.desc,
          CUBLASLT_MATMUL_DESC_BIAS_POINTER, biasAddress, Long.BYTES));
    }
    check("cublasLtMatmul", launch(plan, plan.algo, out, x, w, stream));
    launches++;
    return true;
  }

  /** One cublasLtMatmul of a plan's shape with the given algorithm; its cuBLAS status. */
  private int launch(Plan p, cublasLtMatmulHeuristicResult_t algo, CudaMat out, CudaMat x, CudaMat w,
      CUstream_st stream) {
    return cublasLtMatmul(handle, p.desc, one, w.ptr(), p.a, x.ptr(), p.b, zero, out.ptr(), p.c, out.ptr(), p.c,
        algo.algo(), workspace, workspaceBytes, stream);
  }

  /** cuBLASLt matmuls launched (or captured) so far. */
  long launches() {
    return launches;
  }

  /**
   * Whether shapes planned from now on are tuned (see the class comment); the plans made so far are dropped, so
   * every shape is planned again the new way. The caller discards its graphs (they hold the old algorithms).
   */
  void useTuning(boolean on) {
    if (on != tune) {
      tune = on;
      dropPlans();
    }
  }

  /** Frees every plan: each shape is planned again at its next call. */
  private void dropPlans() {
    plans.values().forEach(LtGemm::destroy);
    plans.clear();
    unsupported.clear();
  }

  /** Shapes whose algorithm was chosen by timing so far (tests check that tuning really ran). */
  long tunedShapes() {
    return tunedShapes;
  }

  /**
   * Tests only: tuned plans made from now on take candidate {@code index} of the heuristic's list whenever it was
   * timed without failing (its timing still runs), instead of the fastest; -1 restores the fastest. The plans made so
   * far are dropped. Lets a test run every candidate the tuner may choose, and an index past 0 through
   * {@code position}, whatever the timings say.
   */
  void forceChoice(int index) {
    forcedChoice = index;
    dropPlans();
  }

  /** The candidate index the last tuned plan took (-1 before any; tests). */
  int lastChoice() {
    return lastChoice;
  }

  /**
   * The descriptors and cuBLASLt's first-choice algorithm for a shape (tuned: the fastest of its first choices on
   * the given operands), or null when it has none (status NOT_SUPPORTED or no algorithm found: logged once); any other
   * failure is an error. {@code biasAddress}: the heuristic judges the bias pointer's alignment from the descriptor,
   * so it is set before asking.
   */
  private Plan plan(Key k, long biasAddress, CudaMat out, CudaMat x, CudaMat w, CUstream_st stream) {
    int type = switch (k.dtype) {
      case F32 -> CUDA_R_32F;
      case F16 -> CUDA_R_16F;
      case BF16 -> CUDA_R_16BF;
    };
    PointerPointer<?> pp = new PointerPointer<>(1);
    check("cublasLtMatmulDescCreate", cublasLtMatmulDescCreate(pp, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    Plan parts = new Plan(new cublasLtMatmulDescOpaque_t(pp.get(0)), null, null, null, null);
    try {
      setInt(parts.desc, CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_T);
      setInt(parts.desc, CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N);
      setInt(parts.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, k.epilogue);
      if (k.epilogue == CUBLASLT_EPILOGUE_BIAS || k.epilogue == CUBLASLT_EPILOGUE_RELU_BIAS) {
        setInt(parts.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, type);
        try (LongPointer address = new LongPointer(1).put(biasAddress)) {
          check("cublasLtMatmulDescSetAttribute(bias)", cublasLtMatmulDescSetAttribute(parts.desc,
              CUBLASLT_MATMUL_DESC_BIAS_POINTER, address, Long.BYTES));
        }
      }
      parts = new Plan(parts.desc, layout(type, k.k, k.n, k.k), null, null, null); // W: K × N column-major
      parts = new Plan(parts.desc, parts.a, layout(type, k.k, k.t, k.k), null, null); // xᵀ: K × T
      parts = new Plan(parts.desc, parts.a, parts.b, layout(type, k.n, k.t, k.n), null); // outᵀ: N × T
      check("cublasLtMatmulPreferenceCreate", cublasLtMatmulPreferenceCreate(pp));
      cublasLtMatmulPreferenceOpaque_t pref = new cublasLtMatmulPreferenceOpaque_t(pp.get(0));
      try (LongPointer ws = new LongPointer(1).put(workspaceBytes); IntPointer found = new IntPointer(1)) {
        check("cublasLtMatmulPreferenceSetAttribute", cublasLtMatmulPreferenceSetAttribute(pref,
            CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, ws, Long.BYTES));
        int wanted = tune && k.t <= TUNE_MAX_ROWS ? TUNE_CANDIDATES : 1;
        cublasLtMatmulHeuristicResult_t result = new cublasLtMatmulHeuristicResult_t(wanted);
        int st = cublasLtMatmulAlgoGetHeuristic(handle, parts.desc, parts.a, parts.b, parts.c, parts.c, pref, wanted,
            result, found);
        if (st == STATUS_NOT_SUPPORTED || (st == 0 && found.get() < 1)) {
          result.close();
          destroy(parts);
          LOG.info("cuBLASLt has no algorithm for {}: that shape uses cublasGemmEx", k);
          return null;
        }
        if (st != 0) {
          result.close();
          throw new CudaException("cublasLtMatmulAlgoGetHeuristic failed for " + k + " with cuBLAS status " + st);
        }
        Plan plan = new Plan(parts.desc, parts.a, parts.b, parts.c, result);
        if (found.get() > 1) {
          int best = fastest(plan, result, found.get(), out, x, w, stream, k);
          result.position(best); // the plan's algo(): the chosen element (close() frees the whole array)
          tunedShapes++;
          lastChoice = best;
        }
        return plan;
      } finally {
        cublasLtMatmulPreferenceDestroy(pref);
      }
    } catch (RuntimeException | Error e) {
      destroy(parts);
      throw e;
    }
  }

  /**
   * The index of the fastest of the heuristic's first {@code n} algorithms for a plan's shape, timed on the operands
   * of the call that needs the plan (an eager step: a plan is never made during a graph capture): each launched once
   * untimed, then {@value #TUNE_RUNS} times between two events. A candidate that reports a failed state, needs more
   * workspace than there is, or fails to launch is skipped; the heuristic's first choice (index 0) stands when every
   * other one is skipped, and wins ties. The launches write {@code out}, which the call itself writes again next.
   * Known bias (review, session 14): a weight smaller than L2 (50 MB on an H100: every opt-1.3b Linear) is read from
   * L2 by the timed launches, while a decode step reads it from memory; the logged µs are warm figures.
   */
  private int fastest(Plan p, cublasLtMatmulHeuristicResult_t results, int n, CudaMat out, CudaMat x, CudaMat w,
      CUstream_st stream, Key k) {
    CUevent_st start = new CUevent_st();
    CUevent_st end = new CUevent_st();
    if (cudaEventCreate(start) != 0 || cudaEventCreate(end) != 0) {
      cudaGetLastError();
      if (!start.isNull()) {
        cudaEventDestroy(start);
      }
      return 0; // untuned: the heuristic's choice
    }
    int best = 0;
    float bestMs = Float.MAX_VALUE;
    boolean forced = false;
    StringBuilder timings = new StringBuilder();
    try (FloatPointer ms = new FloatPointer(1)) {
      for (int i = 0; i < n; i++) {
        cublasLtMatmulHeuristicResult_t candidate = results.getPointer(i);
        if (candidate.state() != 0 || candidate.workspaceSize() > workspaceBytes) {
          continue;
        }
        boolean ok = launch(p, candidate, out, x, w, stream) == 0;
        // A few µs of kernel per launch is about what queuing one costs the host: keep the GPU busy (memsets of the
        // scratch workspace, ≈ 0.1 ms in all) while the timed launches are queued, so that the window holds kernel
        // time, not the gaps between launches (a replayed graph has none). A failed memset only costs accuracy.
        for (int m = 0; ok && m < BUSY_MEMSETS; m++) {
          if (cudaMemsetAsync(workspace, 0, workspaceBytes, stream) != 0) {
            cudaGetLastError();
            break;
          }
        }
        ok = ok && cudaEventRecord(start, stream) == 0;
        for (int run = 0; ok && run < TUNE_RUNS; run++) {
          ok = launch(p, candidate, out, x, w, stream) == 0;
        }
        ok = ok && cudaEventRecord(end, stream) == 0 && cudaEventSynchronize(end) == 0
            && cudaEventElapsedTime(ms, start, end) == 0;
        if (!ok) {
          cudaGetLastError(); // a refused launch leaves its error behind: not the next kernel's
          timings.append(' ').append(i).append(":-");
          continue;
        }
        float t = ms.get() / TUNE_RUNS;
        timings.append(' ').append(i).append(':').append(String.format(java.util.Locale.ROOT, "%.1fus", 1000 * t));
        if (i == forcedChoice) {
          forced = true;
          best = i;
        } else if (!forced && t < bestMs) {
          bestMs = t;
          best = i;
        }
      }
    } finally {
      cudaEventDestroy(start);
      cudaEventDestroy(end);
    }
    // info, not debug: an experimental switch, and the GPU run's logs are where its choices get read
    LOG.info("cuBLASLt tuning {}: chose {} of {} ({}){}", k, best, n, timings.toString().trim(),
        forced ? " (forced by a test)" : "");
    return best;
  }

  private static cublasLtMatrixLayoutOpaque_t layout(int type, long rows, long cols, long ld) {
    PointerPointer<?> pp = new PointerPointer<>(1);
    check("cublasLtMatrixLayoutCreate", cublasLtMatrixLayoutCreate(pp, type, rows, cols, ld));
    return new cublasLtMatrixLayoutOpaque_t(pp.get(0));
  }

  private static void setInt(cublasLtMatmulDescOpaque_t desc, int attribute, int value) {
    try (IntPointer v = new IntPointer(1).put(value)) {
      check("cublasLtMatmulDescSetAttribute(" + attribute + ")", cublasLtMatmulDescSetAttribute(desc, attribute, v,
          Integer.BYTES));
    }
  }

  private static void destroy(Plan p) {
    for (cublasLtMatrixLayoutOpaque_t l : new cublasLtMatrixLayoutOpaque_t[] {p.a, p.b, p.c}) {
      if (l != null) {
        cublasLtMatrixLayoutDestroy(l);
      }
    }
    cublasLtMatmulDescDestroy(p.desc);
    if (p.algo != null) {
      p.algo.close();
    }
  }

  private static void check(String what, int status) {
    if (status != 0) {
      throw new CudaException(what + " failed with cuBLAS status " + status);
    }
  }

  /** Frees the plans and the handle (the workspace belongs to the caller). */
  @Override
  public void close() {
    dropPlans();
    cublasLtDestroy(handle);
    one.close();
    zero.close();
    biasAddress.close();
  }
}
