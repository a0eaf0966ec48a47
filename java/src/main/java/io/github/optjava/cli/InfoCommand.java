package io.github.optjava.cli;

import io.github.optjava.backend.cuda.CudaProbe;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.ParentCommand;

/** {@code opt info}: what this machine offers (Java, CPU cores, whether and why not CUDA). */
@Command(name = "info", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
    description = "Show the Java runtime, CPU and CUDA status of this machine.")
final class InfoCommand implements Callable<Integer> {

  @ParentCommand
  Main parent;

  @Override
  public Integer call() {
    CudaProbe.Result r = CudaProbe.probe();
    parent.out.println("java:    " + System.getProperty("java.vm.name") + " " + System.getProperty("java.version"));
    parent.out.println("cpu:     " + Runtime.getRuntime().availableProcessors() + " cores, max heap "
        + Runtime.getRuntime().maxMemory() / (1 << 20) + " MiB");
    parent.out.println("kernels: " + (r.kernelsVersion().isEmpty() ? "not loaded"
        : "opt_kernels " + r.kernelsVersion() + " for sm " + r.kernelsArchs()));
    parent.out.println("cuda:    " + (r.usable() ? "usable " + r.devices() : "not usable: " + r.reason()));
    return 0;
  }
}
