package io.github.optjava.cli;

import io.github.optjava.parallel.Rendezvous;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParentCommand;

/**
 * {@code opt rendezvous}: checks that the processes of a multi-process job find each other, before a large
 * model is loaded: reads this process's place from the launcher's variables, meets the other ranks through
 * rank 0, prints one line per rank. Run it with the same launcher line as the real job
 * ({@code scripts/launch/}).
 */
@Command(name = "rendezvous", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
    description = {
    "Check that the processes of a multi-process job meet (torchrun, Open MPI or Slurm variables plus "
        + "MASTER_ADDR and MASTER_PORT).",
    "Prints this process's rank, world size, local rank and rank 0's token."})
final class RendezvousCommand implements Callable<Integer> {

  @ParentCommand
  Main parent;

  @Option(names = "--timeout", defaultValue = "60", paramLabel = "SECONDS",
      description = "How long to wait for every rank. Default: ${DEFAULT-VALUE}.")
  int timeoutSeconds;

  @Override
  public Integer call() {
    if (timeoutSeconds < 1) {
      throw new IllegalArgumentException("--timeout must be at least 1 second");
    }
    Rendezvous.Placement p = Rendezvous.Placement.fromEnvironment(System.getenv());
    String token = "rank 0 on " + hostName() + ", pid " + ProcessHandle.current().pid();
    byte[] got = Rendezvous.exchange(p, token.getBytes(StandardCharsets.UTF_8), Duration.ofSeconds(timeoutSeconds));
    parent.out.printf("rank %d of %d (local rank %d, %s) on %s: met %s%n", p.rank(), p.worldSize(), p.localRank(),
        p.source(), hostName(), new String(got, StandardCharsets.UTF_8));
    return 0;
  }

  private static String hostName() {
    try {
      return InetAddress.getLocalHost().getHostName();
    } catch (UnknownHostException e) {
      return "an unnamed host";
    }
  }
}
