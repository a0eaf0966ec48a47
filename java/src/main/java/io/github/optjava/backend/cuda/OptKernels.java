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
}
