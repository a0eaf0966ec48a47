package io.github.optjava.devicecheck;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * {@code scripts/dev/device-check-dryrun.sh}: {@code scripts/device-check.sh} run end to end in each of its modes
 * (full, quick, peer-only, retest) with stand-ins for java, nvcc, ncu, nvidia-smi and hf_peer.py's torch commands. It
 * fails on a bash error, a missing summary, too many files in {@code $OUT}, or a step a mode promises and skips: what
 * would otherwise cost minutes of the scarce GPU host (session 25: a review that ran the script this way found five
 * such defects). No GPU; about a minute.
 */
class DeviceCheckDryRunIT {
  @Test
  void everyModeRunsToItsSummary() throws Exception {
    Path hfPeer = HfPeerScript.find();
    assumeTrue(hfPeer != null && HfPeerScript.python3(), "not a checkout, or no python3");
    Path root = hfPeer.getParent().getParent();
    Process p = new ProcessBuilder("bash", root.resolve("scripts/dev/device-check-dryrun.sh").toString())
        .directory(root.toFile()).redirectErrorStream(true).start();
    byte[] output = p.getInputStream().readAllBytes();
    assertTrue(p.waitFor(15, TimeUnit.MINUTES), "the dry run timed out");
    String text = new String(output, StandardCharsets.UTF_8);
    System.out.print(text);
    assertEquals(0, p.exitValue(), text);
    for (String mode : new String[] {"full", "quick", "peer", "retest"}) {
      assertTrue(text.contains("dry run " + mode + ": PASS"), text);
    }
  }
}
