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

import io.github.optjava.checkpoint.DType;
import java.util.HashMap;
import java.util.Map;
import org.bytedeco.cuda.cublas.cublasLtContext;
import org.bytedeco.cuda.cublas.cublasLtMatmulDescOpaque_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulHeuristicResult_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulPreferenceOpaque_t;
import org.bytedeco.cuda.cublas.cublasLtMatrixLayoutOpaque_t;
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
 */
final class LtGemm implements AutoCloseable {
  /** One shape's descriptors and algorithm; the bias pointer is set per call (layers share a plan). */
  private record Plan(cublasLtMatmulDescOpaque_t desc, cublasLtMatrixLayoutOpaque_t a, cublasLtMatrixLayoutOpaque_t b,
      cublasLtMatrixLayoutOpaque_t c, cublasLtMatmulHeuristicResult_t algo) {}

  private record Key(int n, int t, int k, int epilogue, DType dtype) {}

  private static final int MAX_PLANS = 1024;
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
        plans.values().forEach(LtGemm::destroy);
        plans.clear();
        unsupported.clear();
      }
      plan = plan(key, bias == null ? 0 : bias.address());
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
    check("cublasLtMatmul", cublasLtMatmul(handle, plan.desc, one, w.ptr(), plan.a, x.ptr(), plan.b, zero, out.ptr(),
        plan.c, out.ptr(), plan.c, plan.algo.algo(), workspace, workspaceBytes, stream));
    launches++;
    return true;
  }

  /** cuBLASLt matmuls launched (or captured) so far. */
  long launches() {
    return launches;
  }

  /**
   * The descriptors and cuBLASLt's first-choice algorithm for a shape, or null when it has none (status
   * NOT_SUPPORTED or no algorithm found: logged once); any other failure is an error. {@code biasAddress}: the
   * heuristic judges the bias pointer's alignment from the descriptor, so it is set before asking.
   */
  private Plan plan(Key k, long biasAddress) {
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
        cublasLtMatmulHeuristicResult_t result = new cublasLtMatmulHeuristicResult_t(1);
        int st = cublasLtMatmulAlgoGetHeuristic(handle, parts.desc, parts.a, parts.b, parts.c, parts.c, pref, 1,
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
        return new Plan(parts.desc, parts.a, parts.b, parts.c, result);
      } finally {
        cublasLtMatmulPreferenceDestroy(pref);
      }
    } catch (RuntimeException | Error e) {
      destroy(parts);
      throw e;
    }
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
    plans.values().forEach(LtGemm::destroy);
    plans.clear();
    cublasLtDestroy(handle);
    one.close();
    zero.close();
    biasAddress.close();
  }
}
