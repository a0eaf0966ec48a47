package io.github.optjava.backend.cpu;

import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Whether {@link FastCpuOps} can use its Vector API kernels ({@link VectorLinearKernels}). The API is an
 * incubator module in Java 17 to 25: it is there only when the JVM starts with
 * {@code --add-modules jdk.incubator.vector} (as {@code scripts/opt} and the tests do). Without it the scalar
 * kernels run, about half as fast in decode and several times slower in prefill. {@code -Dopt.cpu.vector=false}
 * turns the Vector API kernels off.
 *
 * <p>This class never refers to the module's classes itself, so it loads on every JVM.
 */
final class VectorSupport {
  private static final Logger LOG = LoggerFactory.getLogger(VectorSupport.class);
  static final String MODULE = "jdk.incubator.vector";
  private static final AtomicBoolean LOGGED = new AtomicBoolean();

  /** Whether the Vector API kernels run by default. */
  static final boolean AVAILABLE = detect();

  private VectorSupport() {}

  private static boolean detect() {
    if ("false".equalsIgnoreCase(System.getProperty("opt.cpu.vector", "true"))) {
      return false;
    }
    if (ModuleLayer.boot().findModule(MODULE).isEmpty()) {
      return false;
    }
    try {
      return VectorLinearKernels.usable();
    } catch (LinkageError e) { // a JDK whose incubating API no longer matches what this was compiled against
      LOG.warn("CPU: the Vector API kernels cannot run on this JVM ({}); using the scalar kernels", e.toString());
      return false;
    }
  }

  /** One line, once per JVM, saying which CPU kernels run and how to get the faster ones. */
  static void logChoice(boolean vector) {
    if (!LOGGED.compareAndSet(false, true)) {
      return;
    }
    if (vector) {
      LOG.info("CPU kernels: Java Vector API ({})", VectorLinearKernels.describe());
    } else if (ModuleLayer.boot().findModule(MODULE).isEmpty()) {
      LOG.info("CPU kernels: scalar; start the JVM with --add-modules {} for ~2x faster CPU generation", MODULE);
    } else {
      LOG.info("CPU kernels: scalar");
    }
  }
}
