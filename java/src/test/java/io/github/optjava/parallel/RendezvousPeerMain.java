package io.github.optjava.parallel;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;

/**
 * One process of a rendezvous test ({@link RendezvousTest}): reads its placement from its environment as a
 * launcher would set it, joins, prints {@code OK <payload>} or {@code ERROR <message>}, exits 0 or 3.
 */
public final class RendezvousPeerMain {
  private RendezvousPeerMain() {}

  public static void main(String[] args) {
    Map<String, String> env = System.getenv();
    try {
      Rendezvous.Placement p = Rendezvous.Placement.fromEnvironment(env);
      byte[] payload = p.rank() == 0 ? args[0].getBytes(StandardCharsets.UTF_8) : null;
      byte[] got = Rendezvous.exchange(p, payload, Duration.ofMillis(Long.parseLong(env.get("TEST_TIMEOUT_MS"))));
      System.out.println("OK " + new String(got, StandardCharsets.UTF_8));
      System.exit(0);
    } catch (RuntimeException e) {
      System.out.println("ERROR " + e.getMessage());
      System.exit(3);
    }
  }
}
