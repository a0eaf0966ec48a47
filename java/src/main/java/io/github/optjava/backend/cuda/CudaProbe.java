package io.github.optjava.backend.cuda;

import java.util.ArrayList;
import java.util.List;
import org.bytedeco.javacpp.Loader;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Finds out, once per JVM, whether the CUDA backend can run here, and if not, why.
 *
 * <p>Order matters: JavaCPP caches platform properties at its first use, so the optional library
 * directory hint is applied before any {@link Loader} call; a {@code global.*} class whose static
 * initialiser failed is poisoned for the life of the JVM, so each one is first loaded with
 * {@code Loader.load} inside a catch; and no post-13.0 runtime function is called (the 13.3 preset
 * binds some that a 13.0 runtime lacks, and calling one kills the JVM).
 *
 * <p>Settings (system property, else environment variable):
 * <ul>
 *   <li>{@code opt.backend} / {@code OPT_BACKEND} = {@code cpu}: never touch CUDA;</li>
 *   <li>{@code opt.cuda.libpath} / {@code OPT_CUDA_LIBPATH}: extra directories (':'-separated) holding
 *       libcudart.so.13, libcublas.so.13, libcublasLt.so.13 and libnccl.so.2, for example those of a
 *       pip-installed PyTorch ({@code site-packages/nvidia/cu13/lib}, {@code site-packages/nvidia/nccl/lib}).
 *       {@code LD_LIBRARY_PATH} and the system linker cache are searched as well.</li>
 * </ul>
 */
public final class CudaProbe {
  private static final Logger LOG = LoggerFactory.getLogger(CudaProbe.class);

  /** Lowest compute capability our kernels are compiled for (sm_80, Ampere). */
  public static final int MIN_COMPUTE_CAPABILITY = 80;
  /** Lowest CUDA runtime accepted (13.0 = 13000, as cudaRuntimeGetVersion reports it). */
  public static final int MIN_RUNTIME_VERSION = 13000;

  private static final String PRELOAD_PATH = "org.bytedeco.javacpp.platform.preloadpath";

  /**
   * What the probe found.
   *
   * @param usable          whether the CUDA backend can be used
   * @param summary         why not, in a few words for a log line (e.g. "no NVIDIA driver: libcuda.so.1 not found");
   *                        empty when usable
   * @param reason          why not, in one line with every detail (empty when usable)
   * @param runtimeVersion  CUDA runtime version (e.g. 13000), 0 if unknown
   * @param driverVersion   highest CUDA version the driver supports, 0 if unknown
   * @param devices         one line per visible device: index, name-free capability and memory
   * @param kernelsVersion  our native library's version, empty if it did not load
   * @param kernelsArchs    the architectures it was compiled for, empty if it did not load
   */
  public record Result(boolean usable, String summary, String reason, int runtimeVersion, int driverVersion,
      List<String> devices, String kernelsVersion, String kernelsArchs) {
    @Override
    public String toString() {
      return usable ? "CUDA usable (runtime " + version(runtimeVersion) + ", driver " + version(driverVersion)
          + ", " + devices + ", kernels " + kernelsVersion + " for sm " + kernelsArchs + ")"
          : "CUDA not usable (" + reason + ")";
    }
  }

  private static volatile Result cached;

  private CudaProbe() {}

  /** The probe result, computed on first call (thread-safe); logged at DEBUG. */
  public static Result probe() {
    Result r = cached;
    if (r == null) {
      synchronized (CudaProbe.class) {
        r = cached;
        if (r == null) {
          r = run();
          LOG.debug("{}", r); // Generator logs the one user-facing line about the choice
          cached = r;
        }
      }
    }
    return r;
  }

  private static Result run() {
    if ("cpu".equalsIgnoreCase(setting("opt.backend", "OPT_BACKEND"))) {
      return no("disabled by opt.backend=cpu", "disabled by opt.backend=cpu / OPT_BACKEND=cpu", 0, 0, "", "");
    }
    applyLibraryPathHint();

    // 1. Our kernels: needs only libcudart.so.13, so this also works (and is reported) without a driver.
    String kv;
    String ka;
    try {
      kv = OptKernels.opt_kernels_version().getString();
      ka = OptKernels.opt_kernels_archs().getString();
    } catch (Throwable t) {
      return no(notLoaded("CUDA kernels", t), "opt_kernels: " + rootMessage(t), 0, 0, "", "");
    }
    // 2. The preset's CUDA runtime binding, whose JNI library also needs the driver (libcuda.so.1).
    try {
      Loader.load(org.bytedeco.cuda.global.cudart.class);
    } catch (Throwable t) {
      // The usual failure on a machine without a GPU: no driver, so no libcuda.so.1.
      String summary = "libcuda.so.1".equals(missingLibrary(t)) ? "no NVIDIA driver: libcuda.so.1 not found"
          : notLoaded("CUDA runtime", t);
      return no(summary, "cudart: " + rootMessage(t), 0, 0, kv, ka);
    }
    return probeDevices(kv, ka);
  }

  private static Result probeDevices(String kv, String ka) {
    int[] v = new int[1];
    int err = org.bytedeco.cuda.global.cudart.cudaRuntimeGetVersion(v);
    int runtime = err == 0 ? v[0] : 0;
    err = org.bytedeco.cuda.global.cudart.cudaDriverGetVersion(v);
    int driver = err == 0 ? v[0] : 0;
    if (runtime < MIN_RUNTIME_VERSION) {
      return no("CUDA runtime " + version(runtime) + ", 13.0+ needed", "CUDA runtime " + version(runtime)
          + " is older than 13.0", runtime, driver, kv, ka);
    }
    if (driver < MIN_RUNTIME_VERSION) {
      return no("NVIDIA driver for CUDA " + version(driver) + ", 13.0+ needed", "the NVIDIA driver supports CUDA "
          + version(driver)
          + "; a driver for CUDA 13.0 or newer is needed (R580+)", runtime, driver, kv, ka);
    }
    int[] count = new int[1];
    err = org.bytedeco.cuda.global.cudart.cudaGetDeviceCount(count);
    if (err != 0) {
      String why = "cudaGetDeviceCount: " + errorString(err);
      return no(why, why, runtime, driver, kv, ka);
    }
    if (count[0] == 0) {
      return no("no CUDA device visible", "no CUDA device visible", runtime, driver, kv, ka);
    }
    List<String> devices = new ArrayList<>();
    boolean anyCapable = false;
    for (int d = 0; d < count[0]; d++) {
      int[] major = new int[1];
      int[] minor = new int[1];
      org.bytedeco.cuda.global.cudart.cudaDeviceGetAttribute(major,
          org.bytedeco.cuda.global.cudart.cudaDevAttrComputeCapabilityMajor, d);
      org.bytedeco.cuda.global.cudart.cudaDeviceGetAttribute(minor,
          org.bytedeco.cuda.global.cudart.cudaDevAttrComputeCapabilityMinor, d);
      int cc = major[0] * 10 + minor[0];
      anyCapable |= cc >= MIN_COMPUTE_CAPABILITY;
      devices.add("cuda:" + d + " sm_" + cc);
    }
    if (!anyCapable) {
      return no("no GPU of compute capability 8.0+", "no device of compute capability 8.0 or newer (found " + devices
          + ")", runtime, driver, kv, ka);
    }
    // 3. cuBLAS (and its Lt), needed by every GEMM.
    try {
      Loader.load(org.bytedeco.cuda.global.cublas.class);
    } catch (Throwable t) {
      return no(notLoaded("cuBLAS", t), "cuBLAS: " + rootMessage(t), runtime, driver, kv, ka);
    }
    return new Result(true, "", "", runtime, driver, List.copyOf(devices), kv, ka);
  }

  private static Result no(String summary, String why, int runtime, int driver, String kv, String ka) {
    return new Result(false, summary, why, runtime, driver, List.of(), kv, ka);
  }

  private static final Object HINT_LOCK = new Object(); // not CudaProbe.class: probe() holds that one while
                                                         // OptKernels initialises, which calls back in here
  private static boolean hintApplied;

  /**
   * Appends opt.cuda.libpath to JavaCPP's preload path (must run before the first Loader call); once per
   * JVM. Also called from {@link OptKernels}' static initialiser: a test or tool that touches OptKernels
   * before the probe would otherwise load it without the hint, fail to find libcudart.so.13, and poison
   * the class for the life of the JVM (every later probe would then say "not usable").
   */
  static void applyLibraryPathHint() {
    synchronized (HINT_LOCK) {
      if (hintApplied) {
        return;
      }
      hintApplied = true;
      String hint = setting("opt.cuda.libpath", "OPT_CUDA_LIBPATH");
      if (hint == null || hint.isBlank()) {
        return;
      }
      String current = System.getProperty(PRELOAD_PATH);
      System.setProperty(PRELOAD_PATH, current == null || current.isBlank() ? hint : current + ":" + hint);
    }
  }

  static String setting(String property, String env) {
    String v = System.getProperty(property);
    return v != null ? v : System.getenv(env);
  }

  private static String errorString(int err) {
    try {
      return "error " + err + " " + org.bytedeco.cuda.global.cudart.cudaGetErrorString(err).getString();
    } catch (Throwable t) {
      return "error " + err;
    }
  }

  private static String version(int v) {
    return v <= 0 ? "unknown" : (v / 1000) + "." + (v % 1000) / 10;
  }

  /** "{@code what} not loaded", with the library that was not found when the error names one. */
  private static String notLoaded(String what, Throwable t) {
    String lib = missingLibrary(t);
    return what + " not loaded" + (lib == null ? "" : ": " + lib + " not found");
  }

  private static final java.util.regex.Pattern DLOPEN_MISSING =
      java.util.regex.Pattern.compile("(lib[\\w.+-]+\\.so[\\w.]*): cannot open shared object file");
  private static final java.util.regex.Pattern JAVACPP_MISSING =
      java.util.regex.Pattern.compile("Could not find (\\S+) in class, module, and library paths");

  /**
   * The library whose absence {@code t} reports, or null: the dynamic linker's "libcuda.so.1: cannot open shared
   * object file" (a dependency of a library found), or JavaCPP's "Could not find jniOptKernels in class, module,
   * and library paths" (the library itself).
   */
  static String missingLibrary(Throwable t) {
    String m = rootMessage(t);
    java.util.regex.Matcher dl = DLOPEN_MISSING.matcher(m);
    if (dl.find()) {
      return dl.group(1);
    }
    java.util.regex.Matcher jc = JAVACPP_MISSING.matcher(m);
    return jc.find() ? jc.group(1) : null;
  }

  /** The innermost cause's class and message, on one line (no stack trace). */
  static String rootMessage(Throwable t) {
    Throwable c = t;
    while (c.getCause() != null && c.getCause() != c) {
      c = c.getCause();
    }
    String m = c.getMessage() == null ? "" : ": " + c.getMessage().replace('\n', ' ');
    return c.getClass().getSimpleName() + m;
  }
}
