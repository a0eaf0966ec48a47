package io.github.optjava.devicecheck;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Runs {@code scripts/hf_peer.py}'s standard-library subcommands from the tests (no torch needed). */
final class HfPeerScript {
  private HfPeerScript() {}

  /** The script, found from the working directory upwards; null when this is not a checkout. */
  static Path find() {
    for (Path d = Path.of("").toAbsolutePath(); d != null; d = d.getParent()) {
      Path s = d.resolve("scripts/hf_peer.py");
      if (Files.isRegularFile(s)) {
        return s;
      }
    }
    return null;
  }

  /** Whether a {@code python3} runs here. */
  static boolean python3() {
    try {
      Process p = new ProcessBuilder("python3", "--version").redirectErrorStream(true).start();
      return p.waitFor(20, TimeUnit.SECONDS) && p.exitValue() == 0;
    } catch (IOException e) {
      return false;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    }
  }

  /** Runs the script with {@code args}, echoing its output; its exit status. */
  static int run(Path script, String... args) throws Exception {
    return runCapturing(script, args).exitStatus;
  }

  /** What a run printed (stdout and stderr together) and its exit status. */
  record Result(int exitStatus, String output) {}

  static Result runCapturing(Path script, String... args) throws Exception {
    List<String> cmd = new ArrayList<>(List.of("python3", script.toString()));
    cmd.addAll(List.of(args));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    byte[] output = p.getInputStream().readAllBytes();
    assertTrue(p.waitFor(60, TimeUnit.SECONDS), "hf_peer.py timed out");
    String text = new String(output, StandardCharsets.UTF_8);
    System.out.print(text);
    return new Result(p.exitValue(), text);
  }
}
