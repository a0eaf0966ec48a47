package io.github.optjava.cli;

import io.github.optjava.backend.cuda.CudaProbe;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/** {@code opt info}: what this machine offers (Java, CPU cores, whether and why not CUDA). */
@Command(name = "info", description = "Show the Java runtime, CPU and CUDA status of this machine.")
final class InfoCommand implements Callable<Integer> {

  @Override
  public Integer call() {
    CudaProbe.Result r = CudaProbe.probe();
    System.out.println("java:    " + System.getProperty("java.vm.name") + " " + System.getProperty("java.version"));
    System.out.println("cpu:     " + Runtime.getRuntime().availableProcessors() + " cores, max heap "
        + Runtime.getRuntime().maxMemory() / (1 << 20) + " MiB");
    System.out.println("kernels: " + (r.kernelsVersion().isEmpty() ? "not loaded"
        : "opt_kernels " + r.kernelsVersion() + " for sm " + r.kernelsArchs()));
    System.out.println("cuda:    " + (r.usable() ? "usable " + r.devices() : "not usable: " + r.reason()));
    return 0;
  }
}
