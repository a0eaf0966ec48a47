package io.github.optjava.cli;

import static io.github.optjava.cli.CliTest.cli;
import static io.github.optjava.cli.CliTest.fixture;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code opt batch --multi-process} as a launcher runs it: separate JVMs, placed by torchrun's variables, the
 * same command line on each. Rank 0 prints what one process prints; the workers print nothing and exit 0.
 */
class CliMultiProcessTest {
  private static final String BATCH = String.join("\n",
      "{\"prompt\": \"Our team won the championship last year\", \"temperature\": 0, \"max_tokens\": 10}",
      "{\"prompt\": \"This\", \"temperature\": 0, \"num_beams\": 2, \"n\": 2, \"max_tokens\": 5}",
      "");

  /**
   * Two pipeline stages of two tensor-parallel ranks: four JVMs, so the all-reduce over TCP runs between real
   * processes. Tokens and texts match one process; log-probs to the last float bits (sums in another order).
   */
  @Test
  void twoStagesOfTwoRanksInFourJvmsPrintWhatOneProcessPrints(@TempDir Path tmp) throws Exception {
    String model = fixture("tiny-opt").toString();
    CliTest.Run single = cli(BATCH, "batch", "--model", model, "--device", "cpu");
    assertEquals(0, single.exit(), single.err());

    int port;
    try (ServerSocket s = new ServerSocket(0)) {
      port = s.getLocalPort();
    }
    String java = ProcessHandle.current().info().command().orElse("java");
    List<Process> procs = new ArrayList<>();
    int world = 4;
    try {
      for (int r = 0; r < world; r++) {
        ProcessBuilder pb = new ProcessBuilder(java, "-Xmx256m", "-cp", System.getProperty("java.class.path"),
            Main.class.getName(), "batch", "--model", model, "--device", "cpu", "--threads", "1",
            "--pipeline-parallel", "2", "--tensor-parallel", "2", "--multi-process");
        Map<String, String> env = pb.environment();
        env.keySet().removeIf(k -> k.startsWith("SLURM_") || k.startsWith("OMPI_") || k.startsWith("TORCHELASTIC"));
        env.put("RANK", String.valueOf(r));
        env.put("WORLD_SIZE", String.valueOf(world));
        env.put("LOCAL_RANK", String.valueOf(r));
        env.put("MASTER_ADDR", "127.0.0.1");
        env.put("MASTER_PORT", String.valueOf(port));
        pb.redirectOutput(tmp.resolve("out-" + r).toFile());
        pb.redirectError(tmp.resolve("err-" + r).toFile());
        Process p = pb.start();
        try (OutputStream in = p.getOutputStream()) {
          if (r == 0) {
            in.write(BATCH.getBytes(StandardCharsets.UTF_8)); // the requests go to rank 0 only
          }
        }
        procs.add(p);
      }
      for (int r = 0; r < world; r++) {
        Process p = procs.get(r);
        String err = "";
        boolean done = p.waitFor(180, TimeUnit.SECONDS);
        if (!done || p.exitValue() != 0) {
          err = Files.readString(tmp.resolve("err-" + r));
        }
        assertTrue(done, "rank " + r + " did not finish: " + err);
        assertEquals(0, p.exitValue(), "rank " + r + " exit code; its stderr: " + err);
      }
    } finally {
      procs.forEach(Process::destroyForcibly);
    }
    String numbers = "-?\\d+\\.\\d+(E-?\\d+)?";
    assertEquals(single.out().replaceAll(numbers, "#"), Files.readString(tmp.resolve("out-0")).replaceAll(numbers, "#"));
    for (int r = 1; r < world; r++) {
      assertEquals("", Files.readString(tmp.resolve("out-" + r)), "a worker prints nothing");
    }
  }

  /** Two JVMs of a tensor-parallel job ({@code opt batch}), heartbeats every second, a peer given up after 2 s. */
  private static List<Process> startPair(Path tmp, String model, String command) throws IOException {
    int port;
    try (ServerSocket s = new ServerSocket(0)) {
      port = s.getLocalPort();
    }
    String java = ProcessHandle.current().info().command().orElse("java");
    List<Process> procs = new ArrayList<>();
    for (int r = 0; r < 2; r++) {
      ProcessBuilder pb = new ProcessBuilder(java, "-Xmx256m", "-D" + io.github.optjava.parallel.Mesh.HEARTBEAT_PROPERTY
          + "=2", "-cp", System.getProperty("java.class.path"), Main.class.getName(), command, "--model", model,
          "--device", "cpu", "--threads", "1", "--tensor-parallel", "2", "--multi-process");
      Map<String, String> env = pb.environment();
      env.keySet().removeIf(k -> k.startsWith("SLURM_") || k.startsWith("OMPI_") || k.startsWith("TORCHELASTIC"));
      env.put("RANK", String.valueOf(r));
      env.put("WORLD_SIZE", "2");
      env.put("LOCAL_RANK", String.valueOf(r));
      env.put("MASTER_ADDR", "127.0.0.1");
      env.put("MASTER_PORT", String.valueOf(port));
      pb.redirectError(tmp.resolve("err-" + r).toFile());
      if (r == 1) {
        pb.redirectOutput(tmp.resolve("out-1").toFile());
      }
      procs.add(pb.start());
    }
    return procs;
  }

  private static String read(Path p) {
    try {
      return Files.readString(p);
    } catch (IOException e) {
      return e.toString();
    }
  }

  private static void signal(Process p, String sig) throws Exception {
    assertEquals(0, new ProcessBuilder("kill", "-" + sig, String.valueOf(p.pid())).start().waitFor());
  }

  /**
   * A process that stops (SIGSTOP: its links stay open, as with a hung process or a machine cut off) ends the job
   * within the heartbeat's silence, on either side, stdin staying open: a stopped worker makes rank 0's {@code batch}
   * answer the pending request with an error naming it and exit 1, or, with no request pending, exit 1 all the same
   * (review, session 16: it waited for the next input line; {@code score} too); a stopped rank 0 makes the worker
   * exit 1 naming rank 0.
   * Before, both waited forever (commands have no timeout; collectives waited 5 minutes).
   */
  @ParameterizedTest(name = "{2}: rank {0} stopped, a request pending: {1}")
  @CsvSource({"1, true, batch", "1, false, batch", "0, false, batch", "1, false, score"})
  void aStoppedProcessEndsTheJobWithinTheHeartbeatSilence(int stopped, boolean pendingRequest, String command,
      @TempDir Path dir) throws Exception {
    org.junit.jupiter.api.Assumptions.assumeTrue(Files.isExecutable(Path.of("/usr/bin/kill"))
        || Files.isExecutable(Path.of("/bin/kill")), "needs kill(1) to stop a process");
    String request = command.equals("score") ? "{\"text\": \"This is\"}\n"
        : "{\"prompt\": \"This\", \"temperature\": 0, \"max_tokens\": 4}\n";
    List<Process> procs = startPair(dir, fixture("tiny-opt").toString(), command);
    try {
      Process rank0 = procs.get(0);
      java.io.BufferedReader answers = new java.io.BufferedReader(new java.io.InputStreamReader(
          rank0.getInputStream(), StandardCharsets.UTF_8));
      OutputStream requests = rank0.getOutputStream();
      requests.write(request.getBytes(StandardCharsets.UTF_8));
      requests.flush();
      String first = answers.readLine();
      assertTrue(first != null && first.contains(command.equals("score") ? "\"total_logprob\"" : "\"text\""),
          first + " / " + read(dir.resolve("err-0")));
      long t0 = System.nanoTime();
      Process survivor = procs.get(1 - stopped);
      signal(procs.get(stopped), "STOP");
      if (pendingRequest) {
        requests.write(request.getBytes(StandardCharsets.UTF_8)); // waits in an all-reduce for the stopped rank
        requests.flush();
        String second = answers.readLine();
        assertTrue(second != null && second.contains("rank 1 sent no heartbeat for 2 s"), second);
      }
      assertTrue(survivor.waitFor(30, TimeUnit.SECONDS), () -> "rank " + (1 - stopped) + " did not end: "
          + read(dir.resolve("err-" + (1 - stopped))));
      double seconds = (System.nanoTime() - t0) / 1e9;
      String err = read(dir.resolve("err-" + (1 - stopped)));
      assertEquals(1, survivor.exitValue(), err);
      assertTrue(err.contains("rank " + stopped + " sent no heartbeat for 2 s"), err);
      if (stopped == 1 && !pendingRequest) {
        assertTrue(err.contains("the multi-process job failed while waiting for input"), err);
      }
      assertTrue(seconds < 20, seconds + " s");
    } finally {
      for (Process p : procs) {
        p.destroyForcibly(); // SIGKILL ends a stopped process too
      }
    }
  }

  @Test
  void withoutLauncherVariablesAJobOfOneNeedsDegreeOne() throws IOException {
    Map<String, String> env = System.getenv();
    org.junit.jupiter.api.Assumptions.assumeTrue(env.keySet().stream().noneMatch(k -> k.equals("RANK")
        || k.equals("WORLD_SIZE") || k.startsWith("OMPI_COMM_WORLD_") || k.equals("SLURM_NTASKS")));
    CliTest.Run r = cli("", "generate", "--model", fixture("tiny-opt").toString(), "--device", "cpu", "--prompt",
        "This", "--pipeline-parallel", "2", "--multi-process");
    assertEquals(1, r.exit(), r.err());
    assertTrue(r.err().contains("needs 2 processes, the launcher started 1"), r.err());
  }
}
