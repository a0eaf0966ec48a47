package io.github.optjava.backend.cuda;

/** The condition behind {@link GpuTest} (annotation types cannot hold the method themselves). */
public final class GpuCondition {
  private GpuCondition() {}

  public static boolean usable() {
    CudaProbe.Result r = CudaProbe.probe();
    if (!r.usable() && Boolean.getBoolean("opt.requireGpu")) {
      throw new IllegalStateException("opt.requireGpu=true but " + r);
    }
    return r.usable();
  }
}
