package io.github.optjava.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.parallel.Rendezvous;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * A model over the processes of a job ({@link Generator#openMultiProcess}), each "process" a thread of this JVM
 * with its own placement: everything between them goes over loopback TCP exactly as between machines. Rank 0's
 * generator gives the tokens of the one-process generator; the workers return once it closes.
 */
class MultiProcessGeneratorTest {
  private static final List<String> PROMPTS = List.of("Our team won the championship last year", "This",
      "Hello, my dog is cute and");

  static String fixture(String model) {
    try {
      return Path.of(MultiProcessGeneratorTest.class.getResource("/fixtures/models/" + model).toURI()).toString();
    } catch (URISyntaxException e) {
      throw new IllegalStateException(e);
    }
  }

  static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }

  private static GeneratorOptions options(int pp, int tp) {
    return GeneratorOptions.defaults().withDevice(Device.CPU).withThreads(1).withKvCacheTokens(1024)
        .withPipelineParallel(pp).withTensorParallel(tp);
  }

  /** Greedy with log-probs one by one, the prompts together (a ragged batch), and 2 beams. */
  private static List<String> run(Generator gen) {
    List<String> out = new ArrayList<>();
    SamplingParams greedy = SamplingParams.greedy().toBuilder().maxTokens(10).logprobs(1).build();
    for (String p : PROMPTS) {
      Choice c = gen.generate(p, greedy).choices().get(0);
      out.add(c.tokenIds() + " " + c.text());
    }
    List<CompletableFuture<Completion>> together = new ArrayList<>();
    for (String p : PROMPTS) {
      together.add(gen.generateAsync(p, greedy));
    }
    for (CompletableFuture<Completion> f : together) {
      out.add(f.join().choices().get(0).tokenIds().toString());
    }
    SamplingParams beams = SamplingParams.builder().temperature(0).numBeams(2).n(2).maxTokens(6).build();
    for (Choice c : gen.generate(PROMPTS.get(1), beams).choices()) {
      out.add("beam " + c.tokenIds());
    }
    // Twice: with prefix caching the second prefill starts from the first one's cached blocks.
    String longPrompt = "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age"
        + " of foolishness";
    for (int i = 0; i < 2; i++) {
      out.add("long " + gen.generate(longPrompt, greedy).choices().get(0).tokenIds());
    }
    return out;
  }

  private static double firstLogprob(Generator gen) {
    SamplingParams greedy = SamplingParams.greedy().toBuilder().maxTokens(3).logprobs(1).build();
    return gen.generate(PROMPTS.get(0), greedy).choices().get(0).logprobs().get(0).logprob();
  }

  /** With {@code features}: prefix caching and prompt lookup decoding on (the workers see only the block tables). */
  @ParameterizedTest(name = "pipeline {0} x tensor-parallel {1}, features {2}")
  @CsvSource({"2, 1, false", "1, 2, false", "2, 2, false", "2, 2, true"})
  void rankZeroGivesWhatOneProcessGives(int pp, int tp, boolean features) throws Exception {
    String model = fixture("tiny-opt");
    List<String> expected;
    double expectedLogprob;
    try (Generator single = Generator.open(model, options(1, 1).withPrefixCaching(false))) {
      expected = run(single);
      expectedLogprob = firstLogprob(single);
    }
    int world = pp * tp;
    int port = freePort();
    ExecutorService processes = Executors.newFixedThreadPool(world);
    try {
      List<Future<Optional<Generator>>> opened = new ArrayList<>();
      for (int r = 0; r < world; r++) {
        Rendezvous.Placement p = new Rendezvous.Placement(r, world, r, "127.0.0.1", port, "test");
        GeneratorOptions o = features ? options(pp, tp).withPrefixCaching(true).withPromptLookup(3)
            : options(pp, tp).withPrefixCaching(false);
        opened.add(processes.submit(() -> Generator.openMultiProcess(model, o, p, Duration.ofSeconds(30))));
      }
      try (Generator gen = opened.get(0).get(60, TimeUnit.SECONDS).orElseThrow()) {
        assertEquals(expected, run(gen));
        if (features) {
          assertTrue(gen.stats().prefixCachedTokens() > 0 && gen.stats().draftTokens() > 0, gen.stats().toString());
        }
        // pipeline stages alone: the same arithmetic; with tensor parallelism sums run in another order
        assertEquals(expectedLogprob, firstLogprob(gen), tp == 1 ? 0 : 1e-4);
      }
      for (int r = 1; r < world; r++) {
        assertTrue(opened.get(r).get(30, TimeUnit.SECONDS).isEmpty(), "worker " + r + " returns when rank 0 closes");
      }
    } finally {
      processes.shutdownNow();
    }
  }

  @Test
  void aWorldSizeThatIsNotTheLayoutIsRefusedBeforeConnecting() {
    Rendezvous.Placement p = new Rendezvous.Placement(0, 3, 0, "127.0.0.1", 1, "test");
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> Generator.openMultiProcess(fixture("tiny-opt"), options(2, 2), p, Duration.ofSeconds(1)));
    assertTrue(e.getMessage().contains("needs 4 processes, the launcher started 3"), e.getMessage());
  }

  /** int8 weights on CUDA run in one process only: refused before the model is looked for (a Hub id is not fetched). */
  @Test
  void int8OnCudaIsRefusedBeforeTheModelIsLookedFor() {
    Rendezvous.Placement p = new Rendezvous.Placement(0, 1, 0, "127.0.0.1", 1, "test");
    GeneratorOptions int8 = GeneratorOptions.defaults().withDevice(Device.CUDA).withQuantization(Quantization.INT8);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> Generator.openMultiProcess("nobody/no-such-model", int8, p, Duration.ofSeconds(1)));
    assertTrue(e.getMessage().contains("run on CUDA in one process only"), e.getMessage());
  }

  /**
   * Ranks that do not run the same job (another model, dtype or layout) are refused on every rank at the
   * rendezvous, naming what differs: before, a rank with another model ran the job to its end with wrong tokens, and
   * one with another layout hung until the 5-minute link timeout.
   */
  @Test
  void ranksThatDisagreeOnTheJobAreRefusedAtOnce() throws Exception {
    record Case(String model1, GeneratorOptions options1, String differs) {}
    List<Case> cases = List.of(
        new Case("tiny-opt-postln", options(2, 1), "config.json is "),
        new Case("tiny-opt", options(2, 1).withDtype(io.github.optjava.checkpoint.DType.F32), "dtype is as stored here "
            + "but F32 there"),
        new Case("tiny-opt", options(2, 1).withQuantization(Quantization.INT8), "quantization is NONE here but INT8"),
        new Case("tiny-opt", options(1, 2), "pipeline_stages is 2 here but 1 there"));
    for (Case c : cases) {
      int port = freePort();
      ExecutorService processes = Executors.newFixedThreadPool(2);
      try {
        Future<Optional<Generator>> rank0 = processes.submit(() -> Generator.openMultiProcess(fixture("tiny-opt"),
            options(2, 1), new Rendezvous.Placement(0, 2, 0, "127.0.0.1", port, "test"), Duration.ofSeconds(30)));
        Future<Optional<Generator>> rank1 = processes.submit(() -> Generator.openMultiProcess(fixture(c.model1()),
            c.options1(), new Rendezvous.Placement(1, 2, 1, "127.0.0.1", port, "test"), Duration.ofSeconds(30)));
        for (Future<Optional<Generator>> f : List.of(rank0, rank1)) {
          java.util.concurrent.ExecutionException e = assertThrows(java.util.concurrent.ExecutionException.class,
              () -> f.get(20, TimeUnit.SECONDS));
          assertTrue(e.getCause() instanceof Rendezvous.RendezvousException, String.valueOf(e.getCause()));
          assertTrue(e.getCause().getMessage().contains("runs another job than rank"), e.getCause().getMessage());
        }
        String m = assertThrows(java.util.concurrent.ExecutionException.class, rank0::get).getCause().getMessage();
        assertTrue(m.contains("rank 1 runs another job than rank 0: " + c.differs()), m);
      } finally {
        processes.shutdownNow();
      }
    }
  }

  /**
   * A worker that fails its own checks before the rendezvous (here: its machine lacks the model) stops rank 0 at once
   * with the worker's reason; before, rank 0 waited for the whole timeout and then said the worker did not join.
   */
  @Test
  void aWorkerFailingBeforeTheRendezvousStopsRankZeroWithItsReason() throws Exception {
    int port = freePort();
    ExecutorService processes = Executors.newFixedThreadPool(2);
    try {
      long t0 = System.nanoTime();
      Future<Optional<Generator>> rank0 = processes.submit(() -> Generator.openMultiProcess(fixture("tiny-opt"),
          options(2, 1), new Rendezvous.Placement(0, 2, 0, "127.0.0.1", port, "test"), Duration.ofSeconds(60)));
      String missing = Path.of(fixture("tiny-opt")).resolveSibling("not-copied-to-this-machine").toString();
      Future<Optional<Generator>> rank1 = processes.submit(() -> Generator.openMultiProcess(missing, options(2, 1),
          new Rendezvous.Placement(1, 2, 1, "127.0.0.1", port, "test"), Duration.ofSeconds(60)));
      Throwable own = assertThrows(java.util.concurrent.ExecutionException.class,
          () -> rank1.get(30, TimeUnit.SECONDS)).getCause();
      Throwable told = assertThrows(java.util.concurrent.ExecutionException.class,
          () -> rank0.get(30, TimeUnit.SECONDS)).getCause();
      assertTrue(told instanceof Rendezvous.RendezvousException, String.valueOf(told));
      assertTrue(own.getMessage().contains("not-copied-to-this-machine"), own.getMessage());
      String reason = own.getMessage().lines().findFirst().orElseThrow();
      assertTrue(told.getMessage().startsWith("rank 1 failed before joining: " + reason), told.getMessage());
      assertTrue((System.nanoTime() - t0) / 1e9 < 30, "at once, not at the 60 s timeout");
    } finally {
      processes.shutdownNow();
    }
  }

  @Test
  void aMissingWorkerIsATimeoutNamingIt() throws Exception {
    Rendezvous.Placement p = new Rendezvous.Placement(0, 2, 0, "127.0.0.1", freePort(), "test");
    Rendezvous.RendezvousException e = assertThrows(Rendezvous.RendezvousException.class,
        () -> Generator.openMultiProcess(fixture("tiny-opt"), options(2, 1), p, Duration.ofMillis(800)));
    assertTrue(e.getMessage().contains("rank 1 of 2 did not join"), e.getMessage());
  }
}
