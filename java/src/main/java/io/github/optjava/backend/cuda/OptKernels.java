package io.github.optjava.backend.cuda;

import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.ShortPointer;
import org.bytedeco.javacpp.annotation.Cast;
import org.bytedeco.javacpp.annotation.Platform;
import org.bytedeco.javacpp.annotation.Properties;

/**
 * JavaCPP binding of {@code native/include/opt_kernels.h}: our CUDA kernels, one static method per
 * C launcher, same name and argument order (outputs first, sizes, stream last, int status returned).
 *
 * <p>Hand-written and deliberately tiny. It does NOT inherit the bytedeco {@code cudart} preset:
 * inheriting links {@code -lcuda} and ties loading this class to the driver. Instead it preloads the
 * shared CUDA runtime ({@code libcudart.so.13}), the same one the preset's JNI libraries use, so
 * streams created through {@code org.bytedeco.cuda.global.cudart} can be passed here.
 *
 * <p>Loading this class loads native code: only {@link CudaProbe} and the CUDA backend touch it, after
 * the probe said the runtime is present. Device pointers are passed as JavaCPP pointers whose address
 * is a device address (for example a {@code Pointer} filled by {@code cudaMalloc}).
 */
@Properties(value = @Platform(value = "linux-x86_64", compiler = "cpp11", include = "opt_kernels.h",
    link = "opt_kernels", preload = "cudart@.13"))
public final class OptKernels {
  static {
    CudaProbe.applyLibraryPathHint(); // before Loader.load: the preload path of libcudart.so.13
    Loader.load();
  }

  private OptKernels() {}

  /** Library version, for example {@code 0.1.0}. */
  public static native @Cast("const char*") BytePointer opt_kernels_version();

  /** The CUDA architectures compiled in, for example {@code 80,86,89,90}. */
  public static native @Cast("const char*") BytePointer opt_kernels_archs();

  /** out[t, :] = table[ids[t], :] for t &lt; nTokens; float32 storage. */
  public static native int opt_embedding_f32(FloatPointer out, @Cast("const float*") FloatPointer table,
      @Cast("const int32_t*") IntPointer ids, int nTokens, int dim, int vocab, CUstream_st stream);

  /** As {@link #opt_embedding_f32}, fp16 storage (raw 16-bit words). */
  public static native int opt_embedding_f16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const uint16_t*") ShortPointer table, @Cast("const int32_t*") IntPointer ids,
      int nTokens, int dim, int vocab, CUstream_st stream);

  /** As {@link #opt_embedding_f32}, bf16 storage (raw 16-bit words). */
  public static native int opt_embedding_bf16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const uint16_t*") ShortPointer table, @Cast("const int32_t*") IntPointer ids,
      int nTokens, int dim, int vocab, CUstream_st stream);

  // ---- layernorm (layernorm.cu) ----

  /**
   * out = (x - mean) / sqrt(var + eps) * gamma + beta per row of (rows, cols), statistics in float32; out
   * must not alias x. float32 storage.
   */
  public static native int opt_layernorm_f32(FloatPointer out, @Cast("const float*") FloatPointer x,
      @Cast("const float*") FloatPointer gamma, @Cast("const float*") FloatPointer beta, int rows, int cols,
      float eps, CUstream_st stream);

  /** As {@link #opt_layernorm_f32}, fp16 storage (raw 16-bit words). */
  public static native int opt_layernorm_f16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const uint16_t*") ShortPointer x, @Cast("const uint16_t*") ShortPointer gamma,
      @Cast("const uint16_t*") ShortPointer beta, int rows, int cols, float eps, CUstream_st stream);

  /** As {@link #opt_layernorm_f32}, bf16 storage (raw 16-bit words). */
  public static native int opt_layernorm_bf16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const uint16_t*") ShortPointer x, @Cast("const uint16_t*") ShortPointer gamma,
      @Cast("const uint16_t*") ShortPointer beta, int rows, int cols, float eps, CUstream_st stream);

  // ---- add_layernorm (layernorm.cu) ----

  /**
   * x += y + bias (bias may be null; written back), then out = layer norm of x per row: a Linear's bias, the
   * residual add and the next layer norm in one pass. float32 storage.
   */
  public static native int opt_add_layernorm_f32(FloatPointer x, @Cast("const float*") FloatPointer y,
      @Cast("const float*") FloatPointer bias, FloatPointer out, @Cast("const float*") FloatPointer gamma,
      @Cast("const float*") FloatPointer beta, int rows, int cols, float eps, CUstream_st stream);

  /** As {@link #opt_add_layernorm_f32}, fp16 storage (raw 16-bit words). */
  public static native int opt_add_layernorm_f16(@Cast("uint16_t*") ShortPointer x,
      @Cast("const uint16_t*") ShortPointer y, @Cast("const uint16_t*") ShortPointer bias,
      @Cast("uint16_t*") ShortPointer out, @Cast("const uint16_t*") ShortPointer gamma,
      @Cast("const uint16_t*") ShortPointer beta, int rows, int cols, float eps, CUstream_st stream);

  /** As {@link #opt_add_layernorm_f32}, bf16 storage (raw 16-bit words). */
  public static native int opt_add_layernorm_bf16(@Cast("uint16_t*") ShortPointer x,
      @Cast("const uint16_t*") ShortPointer y, @Cast("const uint16_t*") ShortPointer bias,
      @Cast("uint16_t*") ShortPointer out, @Cast("const uint16_t*") ShortPointer gamma,
      @Cast("const uint16_t*") ShortPointer beta, int rows, int cols, float eps, CUstream_st stream);

  // ---- add_positions (elementwise.cu) ----

  /**
   * x[t, :] += table[positions[t] + 2, :] (OPT offset 2); a row outside the table leaves x[t, :] unchanged.
   * float32 storage.
   */
  public static native int opt_add_positions_f32(FloatPointer x, @Cast("const float*") FloatPointer table,
      @Cast("const int32_t*") IntPointer positions, int nTokens, int dim, int tableRows, CUstream_st stream);

  /** As {@link #opt_add_positions_f32}, fp16 storage (raw 16-bit words). */
  public static native int opt_add_positions_f16(@Cast("uint16_t*") ShortPointer x,
      @Cast("const uint16_t*") ShortPointer table, @Cast("const int32_t*") IntPointer positions, int nTokens,
      int dim, int tableRows, CUstream_st stream);

  /** As {@link #opt_add_positions_f32}, bf16 storage (raw 16-bit words). */
  public static native int opt_add_positions_bf16(@Cast("uint16_t*") ShortPointer x,
      @Cast("const uint16_t*") ShortPointer table, @Cast("const int32_t*") IntPointer positions, int nTokens,
      int dim, int tableRows, CUstream_st stream);

  // ---- residual_add (elementwise.cu) ----

  /** x[i] += y[i] for i &lt; n. float32 storage. */
  public static native int opt_residual_add_f32(FloatPointer x, @Cast("const float*") FloatPointer y, int n,
      CUstream_st stream);

  /** As {@link #opt_residual_add_f32}, fp16 storage (raw 16-bit words). */
  public static native int opt_residual_add_f16(@Cast("uint16_t*") ShortPointer x,
      @Cast("const uint16_t*") ShortPointer y, int n, CUstream_st stream);

  /** As {@link #opt_residual_add_f32}, bf16 storage (raw 16-bit words). */
  public static native int opt_residual_add_bf16(@Cast("uint16_t*") ShortPointer x,
      @Cast("const uint16_t*") ShortPointer y, int n, CUstream_st stream);

  // ---- bias_act (elementwise.cu) ----

  /**
   * GEMM epilogue: x[r, c] = act(x[r, c] + bias[c]); bias may be null; ReLU when relu != 0. float32 storage.
   */
  public static native int opt_bias_act_f32(FloatPointer x, @Cast("const float*") FloatPointer bias, int rows,
      int cols, int relu, CUstream_st stream);

  /** As {@link #opt_bias_act_f32}, fp16 storage (raw 16-bit words). */
  public static native int opt_bias_act_f16(@Cast("uint16_t*") ShortPointer x,
      @Cast("const uint16_t*") ShortPointer bias, int rows, int cols, int relu, CUstream_st stream);

  /** As {@link #opt_bias_act_f32}, bf16 storage (raw 16-bit words). */
  public static native int opt_bias_act_bf16(@Cast("uint16_t*") ShortPointer x,
      @Cast("const uint16_t*") ShortPointer bias, int rows, int cols, int relu, CUstream_st stream);

  // ---- chained launches (launch.cu) ----

  /**
   * Process-wide: launch the decode kernels as programmatic dependent launches (sm_90+) when on != 0. Returns the
   * previous setting.
   */
  public static native int opt_set_chained_launch(int on);

  /** Whether chained launches are on (1) or off (0). */
  public static native int opt_chained_launch();

  /**
   * 1 when chained launches are safe on the current device (compute capability 9.0+ running code compiled for
   * compute_90+), else 0.
   */
  public static native int opt_chained_launch_supported();

  // ---- the vector layer norm (layernorm.cu) ----

  /**
   * Process-wide: opt_layernorm_* and opt_add_layernorm_* take rows of whole 16-byte chunks (16-byte aligned, at most
   * 2048 chunks) through the vector kernel when on != 0 (session 12, verified on an H100 in session 17). Returns the
   * previous setting.
   */
  public static native int opt_set_vector_layernorm(int on);

  /** Whether the vector layer norm is on (1) or off (0). */
  public static native int opt_vector_layernorm();

  /**
   * cudaProfilerStart (on != 0) or cudaProfilerStop: the range a profiler started with
   * {@code --profile-from-start off} records ({@code ncu}, {@code nsys}); returns the cudaError_t.
   */
  public static native int opt_profiler_range(int on);

  // ---- launch counts of the kernels that have a fallback for shapes they do not serve (launch.cu) ----

  /** {@link #opt_launch_count}: the grouped split-KV attention kernel (OPT_COUNT_GROUPED_SPLIT). */
  public static final int COUNT_GROUPED_SPLIT = 0;
  /** {@link #opt_launch_count}: the vector layer norm kernel (OPT_COUNT_VECTOR_LAYERNORM). */
  public static final int COUNT_VECTOR_LAYERNORM = 1;
  /** {@link #opt_launch_count}: the matrix-vector kernel with split rows (OPT_COUNT_SPLIT_GEMV). */
  public static final int COUNT_SPLIT_GEMV = 2;
  /** {@link #opt_launch_count}: the tensor-core Linear for few rows (OPT_COUNT_TC_LINEAR, session 22). */
  public static final int COUNT_TC_LINEAR = 3;

  /**
   * How many times in this process a launcher chose the kernel {@code which} (a {@code COUNT_*} constant), counted on
   * the host (a graph's capture counts, its replays do not); -1 for an unknown {@code which}. Tests of a switch use
   * it to show that the kernel they mean to test ran, since launchers fall back where it does not apply.
   */
  public static native long opt_launch_count(int which);

  // ---- linear_small (linear_small.cu) ----

  /**
   * A Linear for 1–8 rows: out[i, j] = act(Σ x[i, e]·w[j, e] + bias[j]), w row-major (n × k), bias may be null,
   * ReLU when relu != 0; more than 8 rows is cudaErrorInvalidValue. {@code split}: warps per group of outputs, 1
   * (one warp per weight row), 2 or 4 (warps share each row; a fixed sum order), 0 = from the shape and the SM
   * count. float32 storage.
   */
  public static native int opt_linear_small_f32(FloatPointer out, @Cast("const float*") FloatPointer x,
      @Cast("const float*") FloatPointer w, @Cast("const float*") FloatPointer bias, int m, int k, int n, int relu,
      int split, CUstream_st stream);

  /** As {@link #opt_linear_small_f32}, fp16 storage (raw 16-bit words). */
  public static native int opt_linear_small_f16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const uint16_t*") ShortPointer x, @Cast("const uint16_t*") ShortPointer w,
      @Cast("const uint16_t*") ShortPointer bias, int m, int k, int n, int relu, int split, CUstream_st stream);

  /** As {@link #opt_linear_small_f32}, bf16 storage (raw 16-bit words). */
  public static native int opt_linear_small_bf16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const uint16_t*") ShortPointer x, @Cast("const uint16_t*") ShortPointer w,
      @Cast("const uint16_t*") ShortPointer bias, int m, int k, int n, int relu, int split, CUstream_st stream);

  /**
   * The q/k/v projection for 1–8 rows with opt_qkv_append's epilogue: q to qOut, k and v into the cache rows
   * slots[i] (a slot outside [0, cacheSlots): q only); w is the stacked (3 · width) × k weight. float32 storage.
   */
  public static native int opt_linear_small_qkv_f32(FloatPointer qOut, FloatPointer kCache, FloatPointer vCache,
      @Cast("const float*") FloatPointer x, @Cast("const float*") FloatPointer w,
      @Cast("const float*") FloatPointer bias, @Cast("const int32_t*") IntPointer slots, int m, int k, int width,
      int cacheSlots, int split, CUstream_st stream);

  /** As {@link #opt_linear_small_qkv_f32}, fp16 storage (raw 16-bit words). */
  public static native int opt_linear_small_qkv_f16(@Cast("uint16_t*") ShortPointer qOut,
      @Cast("uint16_t*") ShortPointer kCache, @Cast("uint16_t*") ShortPointer vCache,
      @Cast("const uint16_t*") ShortPointer x, @Cast("const uint16_t*") ShortPointer w,
      @Cast("const uint16_t*") ShortPointer bias, @Cast("const int32_t*") IntPointer slots, int m, int k, int width,
      int cacheSlots, int split, CUstream_st stream);

  /** As {@link #opt_linear_small_qkv_f32}, bf16 storage (raw 16-bit words). */
  public static native int opt_linear_small_qkv_bf16(@Cast("uint16_t*") ShortPointer qOut,
      @Cast("uint16_t*") ShortPointer kCache, @Cast("uint16_t*") ShortPointer vCache,
      @Cast("const uint16_t*") ShortPointer x, @Cast("const uint16_t*") ShortPointer w,
      @Cast("const uint16_t*") ShortPointer bias, @Cast("const int32_t*") IntPointer slots, int m, int k, int width,
      int cacheSlots, int split, CUstream_st stream);

  /**
   * A Linear with int8 weights for 1–8 rows: out[i, j] = act(scales[j]·Σ x[i, e]·w[j, e] + bias[j]), w int8 (n × k),
   * scales float32 (n); {@code split} as {@link #opt_linear_small_f32}. k must be a multiple of 16 and x, w 16-byte
   * aligned (else cudaErrorInvalidValue: dequantize instead). float32 activations. Session 11, verified on an H100 in
   * session 17.
   */
  public static native int opt_linear_int8_small_f32(FloatPointer out, @Cast("const float*") FloatPointer x,
      @Cast("const int8_t*") BytePointer w, @Cast("const float*") FloatPointer scales,
      @Cast("const float*") FloatPointer bias, int m, int k, int n, int relu, int split, CUstream_st stream);

  /** As {@link #opt_linear_int8_small_f32}, fp16 activations (raw 16-bit words). */
  public static native int opt_linear_int8_small_f16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const uint16_t*") ShortPointer x, @Cast("const int8_t*") BytePointer w,
      @Cast("const float*") FloatPointer scales, @Cast("const uint16_t*") ShortPointer bias, int m, int k, int n,
      int relu, int split, CUstream_st stream);

  /** As {@link #opt_linear_int8_small_f32}, bf16 activations (raw 16-bit words). */
  public static native int opt_linear_int8_small_bf16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const uint16_t*") ShortPointer x, @Cast("const int8_t*") BytePointer w,
      @Cast("const float*") FloatPointer scales, @Cast("const uint16_t*") ShortPointer bias, int m, int k, int n,
      int relu, int split, CUstream_st stream);

  /** {@link #opt_linear_small_qkv_f32} over an int8 stacked q/k/v weight with its row scales. */
  public static native int opt_linear_int8_small_qkv_f32(FloatPointer qOut, FloatPointer kCache, FloatPointer vCache,
      @Cast("const float*") FloatPointer x, @Cast("const int8_t*") BytePointer w,
      @Cast("const float*") FloatPointer scales, @Cast("const float*") FloatPointer bias,
      @Cast("const int32_t*") IntPointer slots, int m, int k, int width, int cacheSlots, int split,
      CUstream_st stream);

  /** As {@link #opt_linear_int8_small_qkv_f32}, fp16 activations (raw 16-bit words). */
  public static native int opt_linear_int8_small_qkv_f16(@Cast("uint16_t*") ShortPointer qOut,
      @Cast("uint16_t*") ShortPointer kCache, @Cast("uint16_t*") ShortPointer vCache,
      @Cast("const uint16_t*") ShortPointer x, @Cast("const int8_t*") BytePointer w,
      @Cast("const float*") FloatPointer scales, @Cast("const uint16_t*") ShortPointer bias,
      @Cast("const int32_t*") IntPointer slots, int m, int k, int width, int cacheSlots, int split,
      CUstream_st stream);

  /** As {@link #opt_linear_int8_small_qkv_f32}, bf16 activations (raw 16-bit words). */
  public static native int opt_linear_int8_small_qkv_bf16(@Cast("uint16_t*") ShortPointer qOut,
      @Cast("uint16_t*") ShortPointer kCache, @Cast("uint16_t*") ShortPointer vCache,
      @Cast("const uint16_t*") ShortPointer x, @Cast("const int8_t*") BytePointer w,
      @Cast("const float*") FloatPointer scales, @Cast("const uint16_t*") ShortPointer bias,
      @Cast("const int32_t*") IntPointer slots, int m, int k, int width, int cacheSlots, int split,
      CUstream_st stream);

  /**
   * A Linear for 1–32 rows on the tensor cores (linear_tc.cu, session 22, not yet run on a GPU): the product and
   * epilogue of {@link #opt_linear_small_f32} over 16-bit weights, float32 sums in the tensor cores' order. k a multiple
   * of 32, x and w 16-byte aligned (else cudaErrorInvalidValue); {@code split} 0 (auto), 1, 2, 4 or 8.
   */
  public static native int opt_linear_tc_f16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const uint16_t*") ShortPointer x, @Cast("const uint16_t*") ShortPointer w,
      @Cast("const uint16_t*") ShortPointer bias, int m, int k, int n, int relu, int split, CUstream_st stream);

  /** As {@link #opt_linear_tc_f16}, bf16. */
  public static native int opt_linear_tc_bf16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const uint16_t*") ShortPointer x, @Cast("const uint16_t*") ShortPointer w,
      @Cast("const uint16_t*") ShortPointer bias, int m, int k, int n, int relu, int split, CUstream_st stream);

  /** {@link #opt_linear_small_qkv_f16}'s product and epilogue on the tensor cores (as {@link #opt_linear_tc_f16}). */
  public static native int opt_linear_tc_qkv_f16(@Cast("uint16_t*") ShortPointer qOut,
      @Cast("uint16_t*") ShortPointer kCache, @Cast("uint16_t*") ShortPointer vCache,
      @Cast("const uint16_t*") ShortPointer x, @Cast("const uint16_t*") ShortPointer w,
      @Cast("const uint16_t*") ShortPointer bias, @Cast("const int32_t*") IntPointer slots, int m, int k, int width,
      int cacheSlots, int split, CUstream_st stream);

  /** As {@link #opt_linear_tc_qkv_f16}, bf16. */
  public static native int opt_linear_tc_qkv_bf16(@Cast("uint16_t*") ShortPointer qOut,
      @Cast("uint16_t*") ShortPointer kCache, @Cast("uint16_t*") ShortPointer vCache,
      @Cast("const uint16_t*") ShortPointer x, @Cast("const uint16_t*") ShortPointer w,
      @Cast("const uint16_t*") ShortPointer bias, @Cast("const int32_t*") IntPointer slots, int m, int k, int width,
      int cacheSlots, int split, CUstream_st stream);

  /**
   * {@link #opt_linear_int8_small_f16}'s product and epilogue for 1–32 rows on the tensor cores (int8 values widened to
   * fp16 exactly; fp16 activations only). k a multiple of 64; otherwise as {@link #opt_linear_tc_f16}.
   */
  public static native int opt_linear_int8_tc_f16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const uint16_t*") ShortPointer x, @Cast("const int8_t*") BytePointer w,
      @Cast("const float*") FloatPointer scales, @Cast("const uint16_t*") ShortPointer bias, int m, int k, int n,
      int relu, int split, CUstream_st stream);

  /** {@link #opt_linear_int8_small_qkv_f16} on the tensor cores (as {@link #opt_linear_int8_tc_f16}). */
  public static native int opt_linear_int8_tc_qkv_f16(@Cast("uint16_t*") ShortPointer qOut,
      @Cast("uint16_t*") ShortPointer kCache, @Cast("uint16_t*") ShortPointer vCache,
      @Cast("const uint16_t*") ShortPointer x, @Cast("const int8_t*") BytePointer w,
      @Cast("const float*") FloatPointer scales, @Cast("const uint16_t*") ShortPointer bias,
      @Cast("const int32_t*") IntPointer slots, int m, int k, int width, int cacheSlots, int split,
      CUstream_st stream);

  /** out (rows × cols) = scales[j]·w[j, e] rounded to float32: an int8 weight for the GEMM path. */
  public static native int opt_dequant_int8_f32(FloatPointer out, @Cast("const int8_t*") BytePointer w,
      @Cast("const float*") FloatPointer scales, int rows, int cols, CUstream_st stream);

  /** As {@link #opt_dequant_int8_f32}, rounded to fp16 (raw 16-bit words). */
  public static native int opt_dequant_int8_f16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const int8_t*") BytePointer w, @Cast("const float*") FloatPointer scales, int rows, int cols,
      CUstream_st stream);

  /** As {@link #opt_dequant_int8_f32}, rounded to bf16 (raw 16-bit words). */
  public static native int opt_dequant_int8_bf16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const int8_t*") BytePointer w, @Cast("const float*") FloatPointer scales, int rows, int cols,
      CUstream_st stream);

  // ---- gather_rows (elementwise.cu) ----

  /** out[i, :] = x[rows[i], :]; a row outside [0, xRows) gives a zero row. float32 storage. */
  public static native int opt_gather_rows_f32(FloatPointer out, @Cast("const float*") FloatPointer x,
      @Cast("const int32_t*") IntPointer rows, int n, int cols, int xRows, CUstream_st stream);

  /** As {@link #opt_gather_rows_f32}, fp16 storage (raw 16-bit words). */
  public static native int opt_gather_rows_f16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const uint16_t*") ShortPointer x, @Cast("const int32_t*") IntPointer rows, int n, int cols,
      int xRows, CUstream_st stream);

  /** As {@link #opt_gather_rows_f32}, bf16 storage (raw 16-bit words). */
  public static native int opt_gather_rows_bf16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const uint16_t*") ShortPointer x, @Cast("const int32_t*") IntPointer rows, int n, int cols,
      int xRows, CUstream_st stream);

  // ---- to_f32 (elementwise.cu) ----

  /** out[i] = (float) x[i] for i &lt; n (reads activations and logits back as float32). float32 storage. */
  public static native int opt_to_f32_f32(FloatPointer out, @Cast("const float*") FloatPointer x, int n,
      CUstream_st stream);

  /** As {@link #opt_to_f32_f32}, fp16 storage (raw 16-bit words). */
  public static native int opt_to_f32_f16(FloatPointer out, @Cast("const uint16_t*") ShortPointer x, int n,
      CUstream_st stream);

  /** As {@link #opt_to_f32_f32}, bf16 storage (raw 16-bit words). */
  public static native int opt_to_f32_bf16(FloatPointer out, @Cast("const uint16_t*") ShortPointer x, int n,
      CUstream_st stream);

  // ---- kv_append (kv_cache.cu) ----

  /**
   * kCache[slots[t], :] = k[t, :], vCache[slots[t], :] = v[t, :]; a slot outside [0, cacheSlots) is skipped.
   * float32 storage.
   */
  public static native int opt_kv_append_f32(FloatPointer kCache, FloatPointer vCache,
      @Cast("const float*") FloatPointer k, @Cast("const float*") FloatPointer v,
      @Cast("const int32_t*") IntPointer slots, int nTokens, int width, int cacheSlots, CUstream_st stream);

  /** As {@link #opt_kv_append_f32}, fp16 storage (raw 16-bit words). */
  public static native int opt_kv_append_f16(@Cast("uint16_t*") ShortPointer kCache,
      @Cast("uint16_t*") ShortPointer vCache, @Cast("const uint16_t*") ShortPointer k,
      @Cast("const uint16_t*") ShortPointer v, @Cast("const int32_t*") IntPointer slots, int nTokens,
      int width, int cacheSlots, CUstream_st stream);

  /** As {@link #opt_kv_append_f32}, bf16 storage (raw 16-bit words). */
  public static native int opt_kv_append_bf16(@Cast("uint16_t*") ShortPointer kCache,
      @Cast("uint16_t*") ShortPointer vCache, @Cast("const uint16_t*") ShortPointer k,
      @Cast("const uint16_t*") ShortPointer v, @Cast("const int32_t*") IntPointer slots, int nTokens,
      int width, int cacheSlots, CUstream_st stream);

  /**
   * The fused q/k/v projection's epilogue: qkv (nTokens, 3 × width) holds (q | k | v) without bias; q_out
   * gets q + bias, the cache slots get k + bias and v + bias (a slot outside the cache: q only). bias
   * (3 × width) may be null. float32 storage.
   */
  public static native int opt_qkv_append_f32(FloatPointer qOut, FloatPointer kCache, FloatPointer vCache,
      @Cast("const float*") FloatPointer qkv, @Cast("const float*") FloatPointer bias,
      @Cast("const int32_t*") IntPointer slots, int nTokens, int width, int cacheSlots, CUstream_st stream);

  /** As {@link #opt_qkv_append_f32}, fp16 storage (raw 16-bit words). */
  public static native int opt_qkv_append_f16(@Cast("uint16_t*") ShortPointer qOut,
      @Cast("uint16_t*") ShortPointer kCache, @Cast("uint16_t*") ShortPointer vCache,
      @Cast("const uint16_t*") ShortPointer qkv, @Cast("const uint16_t*") ShortPointer bias,
      @Cast("const int32_t*") IntPointer slots, int nTokens, int width, int cacheSlots, CUstream_st stream);

  /** As {@link #opt_qkv_append_f32}, bf16 storage (raw 16-bit words). */
  public static native int opt_qkv_append_bf16(@Cast("uint16_t*") ShortPointer qOut,
      @Cast("uint16_t*") ShortPointer kCache, @Cast("uint16_t*") ShortPointer vCache,
      @Cast("const uint16_t*") ShortPointer qkv, @Cast("const uint16_t*") ShortPointer bias,
      @Cast("const int32_t*") IntPointer slots, int nTokens, int width, int cacheSlots, CUstream_st stream);

  // ---- kv_copy_blocks (kv_cache.cu) ----

  /**
   * Copies cache block srcBlocks[i] to dstBlocks[i], keys and values, one layer; destinations distinct and
   * not sources. float32 storage.
   */
  public static native int opt_kv_copy_blocks_f32(FloatPointer kCache, FloatPointer vCache,
      @Cast("const int32_t*") IntPointer srcBlocks, @Cast("const int32_t*") IntPointer dstBlocks, int nPairs,
      int blockSize, int width, int numBlocks, CUstream_st stream);

  /** As {@link #opt_kv_copy_blocks_f32}, fp16 storage (raw 16-bit words). */
  public static native int opt_kv_copy_blocks_f16(@Cast("uint16_t*") ShortPointer kCache,
      @Cast("uint16_t*") ShortPointer vCache, @Cast("const int32_t*") IntPointer srcBlocks,
      @Cast("const int32_t*") IntPointer dstBlocks, int nPairs, int blockSize, int width, int numBlocks,
      CUstream_st stream);

  /** As {@link #opt_kv_copy_blocks_f32}, bf16 storage (raw 16-bit words). */
  public static native int opt_kv_copy_blocks_bf16(@Cast("uint16_t*") ShortPointer kCache,
      @Cast("uint16_t*") ShortPointer vCache, @Cast("const int32_t*") IntPointer srcBlocks,
      @Cast("const int32_t*") IntPointer dstBlocks, int nPairs, int blockSize, int width, int numBlocks,
      CUstream_st stream);

  // ---- attention (attention.cu) ----

  /**
   * Causal attention over the paged KV cache (meaning of CpuOps.attention / AttentionBatch); headDim &lt;=
   * 256. float32 storage.
   */
  public static native int opt_attention_f32(FloatPointer out, @Cast("const float*") FloatPointer q,
      @Cast("const float*") FloatPointer kCache, @Cast("const float*") FloatPointer vCache,
      @Cast("const int32_t*") IntPointer blockTables, @Cast("const int32_t*") IntPointer queryStart,
      @Cast("const int32_t*") IntPointer queryCount, @Cast("const int32_t*") IntPointer contextLen,
      int numSeqs, int totalQueries, int heads, int headDim, int blockSize, int maxBlocks, int numBlocks,
      float scale, CUstream_st stream);

  /** As {@link #opt_attention_f32}, fp16 storage (raw 16-bit words). */
  public static native int opt_attention_f16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const uint16_t*") ShortPointer q, @Cast("const uint16_t*") ShortPointer kCache,
      @Cast("const uint16_t*") ShortPointer vCache, @Cast("const int32_t*") IntPointer blockTables,
      @Cast("const int32_t*") IntPointer queryStart, @Cast("const int32_t*") IntPointer queryCount,
      @Cast("const int32_t*") IntPointer contextLen, int numSeqs, int totalQueries, int heads, int headDim,
      int blockSize, int maxBlocks, int numBlocks, float scale, CUstream_st stream);

  /** As {@link #opt_attention_f32}, bf16 storage (raw 16-bit words). */
  public static native int opt_attention_bf16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const uint16_t*") ShortPointer q, @Cast("const uint16_t*") ShortPointer kCache,
      @Cast("const uint16_t*") ShortPointer vCache, @Cast("const int32_t*") IntPointer blockTables,
      @Cast("const int32_t*") IntPointer queryStart, @Cast("const int32_t*") IntPointer queryCount,
      @Cast("const int32_t*") IntPointer contextLen, int numSeqs, int totalQueries, int heads, int headDim,
      int blockSize, int maxBlocks, int numBlocks, float scale, CUstream_st stream);

  /**
   * The function of {@link #opt_attention_f32}, split-KV (native/src/attention_split.cu): each (row, head)'s
   * keys are cut into ranges reduced by separate blocks and merged; {@code workspace} ({@code workspaceBytes},
   * zeroed once before its first use: it starts with the inline combine's counters, which every launch leaves at
   * zero) holds the partials, null for no split; {@code options}: 0 or a sum of OPT_ATTENTION_INLINE_COMBINE (1: the
   * last split block of each (row, head) merges them instead of a second kernel, the same bits) and
   * OPT_ATTENTION_GROUPED (2: a group of threads reads each key row, native/src/attention_grouped.cu; fp16/bf16 with
   * head_dim 64 or 128 only, else ignored). float32 storage.
   */
  public static native int opt_attention_split_f32(FloatPointer out, @Cast("const float*") FloatPointer q,
      @Cast("const float*") FloatPointer kCache, @Cast("const float*") FloatPointer vCache,
      @Cast("const int32_t*") IntPointer blockTables, @Cast("const int32_t*") IntPointer queryStart,
      @Cast("const int32_t*") IntPointer queryCount, @Cast("const int32_t*") IntPointer contextLen, int numSeqs,
      int totalQueries, int heads, int headDim, int blockSize, int maxBlocks, int numBlocks, float scale,
      FloatPointer workspace, @Cast("size_t") long workspaceBytes, int options, CUstream_st stream);

  /** As {@link #opt_attention_split_f32}, fp16 storage (raw 16-bit words). */
  public static native int opt_attention_split_f16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const uint16_t*") ShortPointer q, @Cast("const uint16_t*") ShortPointer kCache,
      @Cast("const uint16_t*") ShortPointer vCache, @Cast("const int32_t*") IntPointer blockTables,
      @Cast("const int32_t*") IntPointer queryStart, @Cast("const int32_t*") IntPointer queryCount,
      @Cast("const int32_t*") IntPointer contextLen, int numSeqs, int totalQueries, int heads, int headDim,
      int blockSize, int maxBlocks, int numBlocks, float scale, FloatPointer workspace,
      @Cast("size_t") long workspaceBytes, int options, CUstream_st stream);

  /** As {@link #opt_attention_split_f32}, bf16 storage (raw 16-bit words). */
  public static native int opt_attention_split_bf16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const uint16_t*") ShortPointer q, @Cast("const uint16_t*") ShortPointer kCache,
      @Cast("const uint16_t*") ShortPointer vCache, @Cast("const int32_t*") IntPointer blockTables,
      @Cast("const int32_t*") IntPointer queryStart, @Cast("const int32_t*") IntPointer queryCount,
      @Cast("const int32_t*") IntPointer contextLen, int numSeqs, int totalQueries, int heads, int headDim,
      int blockSize, int maxBlocks, int numBlocks, float scale, FloatPointer workspace,
      @Cast("size_t") long workspaceBytes, int options, CUstream_st stream);

  /**
   * The function of {@link #opt_attention_f32} for the rows of the tile map (native/src/attention_tiled.cu): tile
   * t = up to 16 query rows of sequence tileSeq[t] from its query tileFirst[t], sharing each key/value tile.
   * head_dim at most 128. float32 storage.
   */
  public static native int opt_attention_tiled_f32(FloatPointer out, @Cast("const float*") FloatPointer q,
      @Cast("const float*") FloatPointer kCache, @Cast("const float*") FloatPointer vCache,
      @Cast("const int32_t*") IntPointer blockTables, @Cast("const int32_t*") IntPointer queryStart,
      @Cast("const int32_t*") IntPointer queryCount, @Cast("const int32_t*") IntPointer contextLen,
      @Cast("const int32_t*") IntPointer tileSeq, @Cast("const int32_t*") IntPointer tileFirst, int numTiles,
      int numSeqs, int heads, int headDim, int blockSize, int maxBlocks, int numBlocks, float scale,
      CUstream_st stream);

  /** As {@link #opt_attention_tiled_f32}, fp16 storage (raw 16-bit words). */
  public static native int opt_attention_tiled_f16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const uint16_t*") ShortPointer q, @Cast("const uint16_t*") ShortPointer kCache,
      @Cast("const uint16_t*") ShortPointer vCache, @Cast("const int32_t*") IntPointer blockTables,
      @Cast("const int32_t*") IntPointer queryStart, @Cast("const int32_t*") IntPointer queryCount,
      @Cast("const int32_t*") IntPointer contextLen, @Cast("const int32_t*") IntPointer tileSeq,
      @Cast("const int32_t*") IntPointer tileFirst, int numTiles, int numSeqs, int heads, int headDim,
      int blockSize, int maxBlocks, int numBlocks, float scale, CUstream_st stream);

  /** As {@link #opt_attention_tiled_f32}, bf16 storage (raw 16-bit words). */
  public static native int opt_attention_tiled_bf16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const uint16_t*") ShortPointer q, @Cast("const uint16_t*") ShortPointer kCache,
      @Cast("const uint16_t*") ShortPointer vCache, @Cast("const int32_t*") IntPointer blockTables,
      @Cast("const int32_t*") IntPointer queryStart, @Cast("const int32_t*") IntPointer queryCount,
      @Cast("const int32_t*") IntPointer contextLen, @Cast("const int32_t*") IntPointer tileSeq,
      @Cast("const int32_t*") IntPointer tileFirst, int numTiles, int numSeqs, int heads, int headDim,
      int blockSize, int maxBlocks, int numBlocks, float scale, CUstream_st stream);

  /**
   * The function of {@link #opt_attention_f32} for prefill on tensor cores (native/src/attention_tc.cu): tile t =
   * up to 64 query rows of sequence tileSeq[t] from its query tileFirst[t]. fp16 storage; head_dim a multiple of
   * 16 up to 128.
   */
  public static native int opt_attention_tc_f16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const uint16_t*") ShortPointer q, @Cast("const uint16_t*") ShortPointer kCache,
      @Cast("const uint16_t*") ShortPointer vCache, @Cast("const int32_t*") IntPointer blockTables,
      @Cast("const int32_t*") IntPointer queryStart, @Cast("const int32_t*") IntPointer queryCount,
      @Cast("const int32_t*") IntPointer contextLen, @Cast("const int32_t*") IntPointer tileSeq,
      @Cast("const int32_t*") IntPointer tileFirst, int numTiles, int numSeqs, int heads, int headDim,
      int blockSize, int maxBlocks, int numBlocks, float scale, CUstream_st stream);

  /** As {@link #opt_attention_tc_f16}, bf16 storage. */
  public static native int opt_attention_tc_bf16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const uint16_t*") ShortPointer q, @Cast("const uint16_t*") ShortPointer kCache,
      @Cast("const uint16_t*") ShortPointer vCache, @Cast("const int32_t*") IntPointer blockTables,
      @Cast("const int32_t*") IntPointer queryStart, @Cast("const int32_t*") IntPointer queryCount,
      @Cast("const int32_t*") IntPointer contextLen, @Cast("const int32_t*") IntPointer tileSeq,
      @Cast("const int32_t*") IntPointer tileFirst, int numTiles, int numSeqs, int heads, int headDim,
      int blockSize, int maxBlocks, int numBlocks, float scale, CUstream_st stream);

  /**
   * The function of {@link #opt_attention_tc_f16} FlashAttention-2 style (native/src/attention_fa.cu): the same
   * arguments and tile map; scores, softmax and accumulator in registers (mma.sync), K/V tiles double-buffered with
   * cp.async. fp16 storage; head_dim 64, 80 or 128.
   */
  public static native int opt_attention_fa_f16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const uint16_t*") ShortPointer q, @Cast("const uint16_t*") ShortPointer kCache,
      @Cast("const uint16_t*") ShortPointer vCache, @Cast("const int32_t*") IntPointer blockTables,
      @Cast("const int32_t*") IntPointer queryStart, @Cast("const int32_t*") IntPointer queryCount,
      @Cast("const int32_t*") IntPointer contextLen, @Cast("const int32_t*") IntPointer tileSeq,
      @Cast("const int32_t*") IntPointer tileFirst, int numTiles, int numSeqs, int heads, int headDim,
      int blockSize, int maxBlocks, int numBlocks, float scale, CUstream_st stream);

  /** As {@link #opt_attention_fa_f16}, bf16 storage. */
  public static native int opt_attention_fa_bf16(@Cast("uint16_t*") ShortPointer out,
      @Cast("const uint16_t*") ShortPointer q, @Cast("const uint16_t*") ShortPointer kCache,
      @Cast("const uint16_t*") ShortPointer vCache, @Cast("const int32_t*") IntPointer blockTables,
      @Cast("const int32_t*") IntPointer queryStart, @Cast("const int32_t*") IntPointer queryCount,
      @Cast("const int32_t*") IntPointer contextLen, @Cast("const int32_t*") IntPointer tileSeq,
      @Cast("const int32_t*") IntPointer tileFirst, int numTiles, int numSeqs, int heads, int headDim,
      int blockSize, int maxBlocks, int numBlocks, float scale, CUstream_st stream);

  // ---- sampling (sample.cu) ----

  /**
   * One token per row after temperature, top-k, top-p, min-p and typical sampling, with the given uniforms
   * (RowSampling's rules);
   * {@code weights}: null, or rows × vocab float32 scratch for each row's weights (computed once, the same bits).
   */
  public static native int opt_sample_rows_f32(@Cast("int32_t*") IntPointer outToken, FloatPointer outLogprob,
      @Cast("const float*") FloatPointer logits, @Cast("const float*") FloatPointer temperature,
      @Cast("const int32_t*") IntPointer topK, @Cast("const float*") FloatPointer topP,
      @Cast("const float*") FloatPointer minP, @Cast("const float*") FloatPointer typicalP,
      @Cast("const double*") org.bytedeco.javacpp.DoublePointer uniform, int rows, int vocab, FloatPointer weights,
      CUstream_st stream);

  /** As opt_sample_rows_f32, and each row's k best kept tokens with their log-probs (RowSampling.sample with k). */
  public static native int opt_sample_rows_top_f32(@Cast("int32_t*") IntPointer outToken, FloatPointer outLogprob,
      @Cast("int32_t*") IntPointer outIds, FloatPointer outLps, int k, @Cast("const float*") FloatPointer logits,
      @Cast("const float*") FloatPointer temperature, @Cast("const int32_t*") IntPointer topK,
      @Cast("const float*") FloatPointer topP, @Cast("const float*") FloatPointer minP,
      @Cast("const float*") FloatPointer typicalP, @Cast("const double*") org.bytedeco.javacpp.DoublePointer uniform,
      int rows, int vocab, FloatPointer weights, CUstream_st stream);

  // ---- top log-probs (top_logprobs.cu) ----

  /** The k most likely tokens of each row with their log-softmax (backend/RowMath.topK's order; -1 past the last). */
  public static native int opt_top_logprobs_f32(@Cast("int32_t*") IntPointer outIds, FloatPointer outLp,
      @Cast("const float*") FloatPointer logits, int rows, int vocab, int k, CUstream_st stream);

  /** Beam search's candidates: per beam the k best of log_softmax(row) + its score (backend/RowMath.beamTopK). */
  public static native int opt_beam_topk_f32(@Cast("int32_t*") IntPointer outIds, FloatPointer outScores,
      @Cast("const float*") FloatPointer logits, @Cast("const int32_t*") IntPointer rowOf,
      @Cast("const float*") FloatPointer base, int n, int vocab, int k, int logProbs, CUstream_st stream);

  /** Each row's float32 log-softmax (NaN for a row with a NaN or +inf, or all -inf; backend/RowMath.logSoftmaxRows). */
  public static native int opt_log_softmax_rows_f32(FloatPointer out, @Cast("const float*") FloatPointer logits,
      int rows, int vocab, CUstream_st stream);

  // ---- logit edits (logit_edits.cu) ----

  /** A sequence's processors applied to float32 logits where they are (backend/LogitEdits' packed layout). */
  public static native int opt_edit_logits_f32(FloatPointer logits, @Cast("const int32_t*") IntPointer packed,
      int count, @Cast("long long") long total, CUstream_st stream);

  // ---- argmax (sampling.cu) ----

  /**
   * outIndex[r] = first index of the maximum of logits[r, :] (torch.argmax: NaN counts as the maximum);
   * vocab &gt;= 1.
   */
  public static native int opt_argmax_f32(@Cast("int32_t*") IntPointer outIndex,
      @Cast("const float*") FloatPointer logits, int rows, int vocab, CUstream_st stream);

  /** As {@link #opt_argmax_f32}, and outLogprob[r] = log_softmax of the picked logit (float32). */
  public static native int opt_argmax_logprob_f32(@Cast("int32_t*") IntPointer outIndex, FloatPointer outLogprob,
      @Cast("const float*") FloatPointer logits, int rows, int vocab, CUstream_st stream);

  /** outLogprob[r] = log_softmax(logits[r, :])[tokens[r]] (float32): echo scores without reading the rows back. */
  public static native int opt_token_logprob_f32(FloatPointer outLogprob, @Cast("const float*") FloatPointer logits,
      @Cast("const int32_t*") IntPointer tokens, int rows, int vocab, CUstream_st stream);
}
