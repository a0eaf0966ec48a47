package io.github.optjava.cli;

import static io.github.optjava.cli.CliTest.cli;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * {@code opt rendezvous} in a process no launcher started: a job of one. (Several processes meeting is
 * {@code parallel.RendezvousTest}'s, with separate JVMs.)
 */
class RendezvousCommandTest {

  @Test
  void aProcessWithoutLauncherVariablesIsAJobOfOne() {
    Map<String, String> env = System.getenv();
    assumeTrue(env.keySet().stream().noneMatch(k -> k.equals("RANK") || k.equals("WORLD_SIZE")
        || k.startsWith("OMPI_COMM_WORLD_") || k.equals("SLURM_PROCID") || k.equals("SLURM_NTASKS")),
        "this test process was started by a launcher");
    CliTest.Run r = cli("", "rendezvous", "--timeout", "5");
    assertEquals(0, r.exit(), r.err());
    assertTrue(r.out().startsWith("rank 0 of 1 (local rank 0, single process)"), r.out());
    CliTest.Run bad = cli("", "rendezvous", "--timeout", "0");
    assertEquals(1, bad.exit());
    assertTrue(bad.err().contains("--timeout must be at least 1 second"), bad.err());
  }
}
