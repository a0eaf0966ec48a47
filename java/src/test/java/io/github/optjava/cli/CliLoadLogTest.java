package io.github.optjava.cli;

import static io.github.optjava.cli.CliTest.cli;
import static io.github.optjava.cli.CliTest.fixture;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import io.github.optjava.backend.cuda.CudaProbe;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/** The INFO lines a user reads while a model loads (slf4j-simple writes them to System.err, captured here). */
class CliLoadLogTest {

  private record Logged(CliTest.Run run, List<String> log) {}

  /** Runs the CLI with System.err captured: the log, which goes there, not to the run's own err stream. */
  private static Logged logged(Supplier<CliTest.Run> cli) {
    PrintStream saved = System.err;
    ByteArrayOutputStream buf = new ByteArrayOutputStream();
    System.setErr(new PrintStream(buf, true, StandardCharsets.UTF_8));
    CliTest.Run run;
    try {
      run = cli.get();
    } finally {
      System.setErr(saved);
    }
    String log = buf.toString(StandardCharsets.UTF_8);
    saved.print(log); // still in the test's output
    return new Logged(run, log.lines().toList());
  }

  private static String line(Logged l, String containing) {
    return l.log().stream().filter(s -> s.contains(containing)).findFirst()
        .orElseThrow(() -> new AssertionError("no log line with '" + containing + "' in " + l.log()));
  }

  private static String model() {
    return fixture("tiny-opt").toString();
  }

  /** --multi-process with no launcher's variables says it runs a job of one process (session 26's review). */
  @Test
  void multiProcessWithoutALauncherSaysSo() {
    assumeFalse(System.getenv().containsKey("RANK") || System.getenv().containsKey("WORLD_SIZE")
        || System.getenv().containsKey("OMPI_COMM_WORLD_SIZE") || System.getenv().containsKey("SLURM_NTASKS"));
    Logged l = logged(() -> cli("", "generate", "--model", model(), "--device", "cpu", "--prompt", "Hello",
        "--max-tokens", "2", "--multi-process"));
    assertEquals(0, l.run().exit(), l.run().err());
    assertTrue(line(l, "--multi-process without a launcher").contains("a job of this one process"));
  }

  /** generate runs one prompt: its KV cache holds its sequences (the beams), not the shared default of 16. */
  @Test
  void generateSizesTheKvCacheForItsOwnSequences() {
    Logged one = logged(() -> cli("", "generate", "--model", model(), "--device", "cpu", "--prompt", "Hello",
        "--max-tokens", "1"));
    assertEquals(0, one.run().exit(), one.run().err());
    assertTrue(line(one, "KV cache").contains("for max batch 1 × 128 positions"), line(one, "KV cache"));
    Logged beams = logged(() -> cli("", "generate", "--model", model(), "--device", "cpu", "--prompt", "Hello",
        "--max-tokens", "2", "--temperature", "0", "--num-beams", "3"));
    assertEquals(0, beams.run().exit(), beams.run().err());
    assertTrue(line(beams, "KV cache").contains("for max batch 3 × 128 positions"), line(beams, "KV cache"));
    Logged set = logged(() -> cli("", "generate", "--model", model(), "--device", "cpu", "--prompt", "Hello",
        "--max-tokens", "1", "--max-batch", "5"));
    assertTrue(line(set, "KV cache").contains("for max batch 5 × 128 positions"), line(set, "KV cache"));
  }

  @Test
  void autoWithoutCudaSaysSoInOneShortLineAndCudaFailsWithTheWholeReason() {
    CudaProbe.Result probe = CudaProbe.probe();
    assumeFalse(probe.usable(), "CUDA is usable here");
    Logged auto = logged(() -> cli("", "generate", "--model", model(), "--device", "auto", "--prompt", "Hello",
        "--max-tokens", "1"));
    assertEquals(0, auto.run().exit(), auto.run().err());
    String info = line(auto, "using the CPU");
    assertTrue(info.startsWith("[INFO] "), info);
    assertTrue(info.length() <= 120, "one short line, the details at DEBUG: " + info);

    CliTest.Run cuda = cli("", "generate", "--model", model(), "--device", "cuda", "--prompt", "Hello");
    assertEquals(1, cuda.exit(), cuda.err());
    assertTrue(cuda.err().contains(probe.reason()) && cuda.err().contains("GPU prerequisites"), cuda.err());
  }

  @Test
  void theLoadLineSaysWhereTheKvCacheSizeComesFrom() {
    // tiny-opt has 128 positions: the default size is room for --max-batch sequences of that length.
    Logged batch = logged(() -> cli("", "generate", "--model", model(), "--device", "cpu", "--prompt", "Hello",
        "--max-tokens", "1", "--max-batch", "8"));
    assertEquals(0, batch.run().exit(), batch.run().err());
    String loaded = line(batch, "loaded tiny-opt");
    assertTrue(loaded.contains("KV cache 1024 tokens (64 blocks of 16) for max batch 8 × 128 positions; "
        + "kvCacheTokens (--kv-cache-tokens) sets it"), loaded);

    Logged set = logged(() -> cli("", "generate", "--model", model(), "--device", "cpu", "--prompt", "Hello",
        "--max-tokens", "1", "--kv-cache-tokens", "512"));
    assertEquals(0, set.run().exit(), set.run().err());
    assertTrue(line(set, "loaded tiny-opt").contains("KV cache 512 tokens (32 blocks of 16) as set by "
        + "kvCacheTokens (--kv-cache-tokens)"), line(set, "loaded tiny-opt"));
  }
}
