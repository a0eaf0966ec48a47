package io.github.optjava.backend.cpu;

import java.lang.management.ManagementFactory;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Whether {@link FastCpuOps} can use its Vector API kernels ({@link VectorLinearKernels},
 * {@link VectorAttentionKernel}). The API is an incubator module in Java 17 to 25: it is there only when the JVM
 * starts with {@code --add-modules jdk.incubator.vector} (as {@code scripts/opt} and the tests do). Without it the
 * scalar kernels run, about half as fast in decode and several times slower in prefill.
 * {@code -Dopt.cpu.vector=false} turns the Vector API kernels off.
 *
 * <p>They also need HotSpot's C2 compiler: interpreted or compiled by C1 only, every vector is an object and a
 * decode Linear takes 100 times longer than the scalar loop (a review measured 70–180 ms against 1 ms with
 * {@code -XX:TieredStopAtLevel=1}). So {@code -Xint} and {@code -XX:TieredStopAtLevel} below 4 keep the scalar
 * kernels.
 *
 * <p>This class never refers to the module's classes itself, so it loads on every JVM.
 */
final class VectorSupport {
  private static final Logger LOG = LoggerFactory.getLogger(VectorSupport.class);
  static final String MODULE = "jdk.incubator.vector";
  private static final AtomicBoolean LOGGED = new AtomicBoolean();

  /** Why the Vector API kernels do not run by default, or null when they do. */
  private static final String WHY_NOT = detect();

  /** Whether the Vector API kernels run by default. */
  static final boolean AVAILABLE = WHY_NOT == null;

  private VectorSupport() {}

  /** Why the Vector API kernels do not run by default (a sentence for logs and errors), or null when they do. */
  static String whyNot() {
    return WHY_NOT;
  }

  private static String detect() {
    if ("false".equalsIgnoreCase(System.getProperty("opt.cpu.vector", "true"))) {
      return "-Dopt.cpu.vector=false";
    }
    if (ModuleLayer.boot().findModule(MODULE).isEmpty()) {
      return "start the JVM with --add-modules " + MODULE + " for ~2x faster CPU generation";
    }
    String jit = withoutC2();
    if (jit != null) {
      return "the Vector API needs the C2 JIT compiler, and this JVM runs with " + jit;
    }
    try {
      return VectorLinearKernels.usable() ? null : "this CPU's vectors are narrower than 4 floats";
    } catch (LinkageError e) { // a JDK whose incubating API no longer matches what this was compiled against
      return "the Vector API of this JVM cannot run them (" + e + ")";
    }
  }

  /** The JVM option that keeps C2 from compiling (-Xint, -XX:TieredStopAtLevel=0..3), or null. */
  private static String withoutC2() {
    if (System.getProperty("java.vm.info", "").contains("interpreted mode")) {
      return "-Xint";
    }
    try {
      List<String> args = ManagementFactory.getRuntimeMXBean().getInputArguments();
      String level = null;
      for (String arg : args) { // the last occurrence wins, as for the JVM
        if (arg.startsWith("-XX:TieredStopAtLevel=")) {
          level = arg;
        }
      }
      return level != null && level.matches("-XX:TieredStopAtLevel=[0-3]") ? level : null;
    } catch (LinkageError | RuntimeException e) { // a runtime without java.management: assume the default JIT
      return null;
    }
  }

  /** One line, once per JVM, saying which CPU kernels run and, if scalar, why. */
  static void logChoice(boolean vector) {
    if (!LOGGED.compareAndSet(false, true)) {
      return;
    }
    if (vector) {
      LOG.info("CPU kernels: Java Vector API ({})", VectorLinearKernels.describe());
    } else if (WHY_NOT != null) {
      LOG.info("CPU kernels: scalar ({})", WHY_NOT);
    } else {
      LOG.info("CPU kernels: scalar");
    }
  }
}
