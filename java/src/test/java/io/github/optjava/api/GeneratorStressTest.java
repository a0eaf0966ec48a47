package io.github.optjava.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.optjava.engine.KvCache;
import java.lang.reflect.Field;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Collectors;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Randomised stress test of the engine through the public API: many client threads, one generator with a tiny
 * KV cache (preemption), prefix caching, chunked prefill, prompt lookup, cancellation of every kind, beam search,
 * n > 1 seeded sampling, log-probs, echo and score. Every request that was not cancelled must equal the same
 * request run alone on a fresh, roomy generator; every cancelled one must end promptly; afterwards the KV pool is
 * whole and consistent. Seeds: -Dstress.seeds=1,2,3 (default a few); requests per seed: -Dstress.requests.
 */
class GeneratorStressTest {

  static final double LP_TOL = 1e-4;

  enum Kind { GREEDY, SAMPLED, ECHO, SCORE, BEAM }

  enum Mode { SYNC, ASYNC, STREAM, CALLBACK }

  enum Cancel { NONE, FUTURE, STREAM_CLOSE, INTERRUPT, TIMEOUT, THROW }

  record Spec(int id, Kind kind, String prompt, SamplingParams params, Mode mode, Cancel cancel, int cancelMs,
      int cancelChunks, int startDelayMs, boolean tooBig) {
    boolean cancels() {
      return cancel != Cancel.NONE;
    }
  }

  record Config(String model, int blockSize, int blocks, int maxBatch, int maxStepTokens, int promptLookup,
      boolean prefixCaching, int clients, int tp, int pp) {}

  static final class Outcome {
    volatile Completion completion;
    volatile Score score;
    volatile Throwable error;
    final List<TokenStream.Chunk> chunks = java.util.Collections.synchronizedList(new ArrayList<>());
    volatile boolean cancelIssued;
    volatile long endedNanos;
    volatile long cancelNanos;
  }

  static final class ListenerBoom extends RuntimeException {
    ListenerBoom() {
      super("the listener threw on purpose");
    }
  }

  static Path dir(String model) {
    try {
      return Path.of(GeneratorStressTest.class.getResource("/fixtures/models/" + model).toURI());
    } catch (URISyntaxException e) {
      throw new IllegalStateException(e);
    }
  }

  static List<Long> seeds() {
    String s = System.getProperty("stress.seeds", "1,2,3,4");
    if (s.contains("..")) {
      String[] p = s.split("\\.\\.");
      List<Long> out = new ArrayList<>();
      for (long i = Long.parseLong(p[0]); i <= Long.parseLong(p[1]); i++) {
        out.add(i);
      }
      return out;
    }
    return Arrays.stream(s.split(",")).map(String::trim).map(Long::parseLong).toList();
  }

  static final String[] SHARED = {
      "You are a helpful assistant. Answer briefly and clearly, with facts only. ",
      "Translate the following sentence into French, keeping the meaning: ",
      "Q: What is the capital of France? A: Paris. Q: What is the capital of Spain? A: Madrid. Q: ",
  };
  static final String[] TAILS = {
      "The capital of", "Once upon a time there", "def f(x): return x + 1", "Hello world", "A B C D E F",
      "In 1999 the", "Why is the sky", "Lorem ipsum dolor sit amet", "one two three one two three one two",
      "1, 2, 3, 1, 2, 3, 1, 2, 3,", "the cat sat on the mat and the cat sat on the", "x",
  };

  static Config config(Random r) {
    int blockSize = new int[] {4, 8, 16}[r.nextInt(3)];
    int blocks = blockSize == 16 ? 8 + r.nextInt(3) : blockSize == 8 ? 16 + r.nextInt(4) : 32 + r.nextInt(6);
    int maxBatch = 2 + r.nextInt(7);
    int maxStep = r.nextInt(3) == 0 ? 0 : maxBatch + r.nextInt(24);
    int lookup = r.nextInt(3) == 0 ? 0 : 1 + r.nextInt(4);
    boolean prefix = r.nextInt(6) != 0;
    String model = r.nextInt(4) == 0 ? "tiny-opt-postln" : "tiny-opt";
    int par = Integer.getInteger("stress.parallel", 0) == 0 ? 0 : r.nextInt(3); // 0: one part; 1: tp 2; 2: pp 2
    return new Config(model, blockSize, blocks, maxBatch, maxStep, lookup, prefix, 4 + r.nextInt(8),
        par == 1 ? 2 : 1, par == 2 ? 2 : 1);
  }

  static Spec spec(int id, Random r, Config c, Generator g) {
    Kind kind;
    int k = r.nextInt(100);
    kind = k < 40 ? Kind.GREEDY : k < 70 ? Kind.SAMPLED : k < 80 ? Kind.ECHO : k < 88 ? Kind.SCORE : Kind.BEAM;
    String prompt = (r.nextInt(3) == 0 ? "" : SHARED[r.nextInt(SHARED.length)]) + TAILS[r.nextInt(TAILS.length)]
        + (r.nextBoolean() ? "" : " " + r.nextInt(100));
    int promptTokens = g.tokenizer().encodeWithBos(prompt).length;
    int pool = c.blocks() * c.blockSize();
    boolean tooBig = r.nextInt(40) == 0;
    SamplingParams.Builder b = SamplingParams.builder();
    int seqs = 1;
    switch (kind) {
      case GREEDY -> {
        b.temperature(0);
        if (r.nextInt(3) == 0) {
          b.logprobs(r.nextInt(4));
        }
        if (r.nextInt(4) == 0) {
          b.repetitionPenalty(1.3);
        }
        if (r.nextInt(5) == 0) {
          b.noRepeatNgramSize(2 + r.nextInt(2));
        }
        if (r.nextInt(6) == 0) {
          b.stop(List.of(new String[] {"e", " the", "\n", "a"}[r.nextInt(4)]));
        }
        if (r.nextInt(6) == 0) {
          b.presencePenalty(0.5).frequencyPenalty(0.3);
        }
        if (r.nextInt(8) == 0) {
          b.logitBias(Map.of(13, 5.0, 5, -10.0));
        }
      }
      case SAMPLED -> {
        b.temperature(0.6 + r.nextDouble());
        if (r.nextBoolean()) {
          b.topK(5 + r.nextInt(40));
        }
        if (r.nextBoolean()) {
          b.topP(0.7 + 0.3 * r.nextDouble());
        }
        if (r.nextInt(5) == 0) {
          b.minP(0.05);
        }
        if (r.nextInt(6) == 0) {
          b.typicalP(0.9);
        }
        if (r.nextInt(4) == 0) {
          b.logprobs(r.nextInt(3));
        }
        if (r.nextInt(6) == 0) {
          b.stop(List.of(" a"));
        }
        seqs = r.nextInt(6) == 0 ? 4 + r.nextInt(3) : 1 + r.nextInt(3);
        b.n(seqs);
        if (r.nextInt(8) == 0) {
          b.echo(true);
        }
        b.seed(r.nextLong());
      }
      case ECHO -> {
        b.temperature(0).echo(true);
        if (r.nextBoolean()) {
          b.logprobs(r.nextInt(3));
        }
      }
      case SCORE -> {
      }
      case BEAM -> {
        seqs = 2 + r.nextInt(2);
        b.numBeams(seqs).n(1 + r.nextInt(seqs));
        if (r.nextInt(3) == 0) {
          b.logprobs(0);
        }
        if (r.nextInt(4) == 0) {
          b.earlyStopping(true);
        }
      }
    }
    int maxTokens;
    int fits = Math.min(128, c.blocks() / seqs * c.blockSize()); // most tokens per sequence that submit accepts
    if (kind == Kind.SCORE) {
      maxTokens = 0;
      tooBig = false;
    } else if (tooBig) {
      maxTokens = Math.max(1, Math.min(128 - promptTokens, fits - promptTokens + 1 + r.nextInt(c.blockSize())));
    } else {
      int room = Math.min(fits - promptTokens, kind == Kind.BEAM ? 12 : 48);
      maxTokens = room < 1 ? 1 : (kind == Kind.ECHO && r.nextInt(3) == 0) ? 0 : 1 + r.nextInt(room);
    }
    if (kind != Kind.SCORE) {
      int total = promptTokens + maxTokens;
      tooBig = total > 128 || seqs * ((total + c.blockSize() - 1) / c.blockSize()) > c.blocks();
    }
    b.maxTokens(maxTokens);
    SamplingParams params = kind == Kind.SCORE ? null : b.build();
    Mode mode = kind == Kind.SCORE ? Mode.SYNC : Mode.values()[r.nextInt(4)];
    Cancel cancel = Cancel.NONE;
    if (r.nextInt(4) == 0 && !tooBig) {
      cancel = switch (mode) {
        case SYNC -> Cancel.INTERRUPT;
        case CALLBACK -> r.nextBoolean() ? Cancel.INTERRUPT : Cancel.THROW;
        case ASYNC -> r.nextBoolean() ? Cancel.FUTURE : Cancel.TIMEOUT;
        case STREAM -> Cancel.STREAM_CLOSE;
      };
    }
    return new Spec(id, kind, prompt, params, mode, cancel, r.nextInt(60), r.nextInt(6), r.nextInt(40), tooBig);
  }

  /** Runs one spec on {@code g}, recording what happened; never throws. */
  static void run(Generator g, Spec s, Outcome o, ScheduledExecutorService timer) {
    Thread me = Thread.currentThread();
    Object lock = new Object();
    boolean[] running = {true};
    try {
      if (s.cancel() == Cancel.INTERRUPT) {
        timer.schedule(() -> {
          synchronized (lock) {
            if (running[0]) {
              o.cancelIssued = true;
              o.cancelNanos = System.nanoTime();
              me.interrupt();
            }
          }
        }, s.cancelMs(), TimeUnit.MILLISECONDS);
      }
      if (s.kind() == Kind.SCORE) {
        o.score = g.score(s.prompt());
        return;
      }
      switch (s.mode()) {
        case SYNC -> o.completion = g.generate(s.prompt(), s.params());
        case CALLBACK -> o.completion = g.generate(s.prompt(), s.params(), ch -> {
          o.chunks.add(ch);
          if (s.cancel() == Cancel.THROW && o.chunks.size() > s.cancelChunks()) {
            o.cancelIssued = true;
            throw new ListenerBoom();
          }
        });
        case ASYNC -> {
          CompletableFuture<Completion> f = g.generateAsync(s.prompt(), s.params());
          if (s.cancel() == Cancel.TIMEOUT) {
            f.orTimeout(Math.max(1, s.cancelMs()), TimeUnit.MILLISECONDS);
            o.cancelIssued = true; // may or may not fire
          } else if (s.cancel() == Cancel.FUTURE) {
            timer.schedule(() -> {
              o.cancelNanos = System.nanoTime();
              o.cancelIssued = true;
              f.cancel(true);
            }, s.cancelMs(), TimeUnit.MILLISECONDS);
          }
          o.completion = f.get(120, TimeUnit.SECONDS);
        }
        case STREAM -> {
          try (TokenStream ts = g.stream(s.prompt(), s.params())) {
            int seen = 0;
            for (TokenStream.Chunk ch : ts) {
              o.chunks.add(ch);
              if (s.cancel() == Cancel.STREAM_CLOSE && ++seen >= s.cancelChunks()) {
                o.cancelIssued = true;
                o.cancelNanos = System.nanoTime();
                ts.cancel();
                break;
              }
            }
            o.completion = ts.completion().get(120, TimeUnit.SECONDS);
          }
        }
      }
    } catch (ExecutionException e) {
      o.error = e.getCause();
    } catch (Throwable e) {
      o.error = e;
    } finally {
      synchronized (lock) {
        running[0] = false;
      }
      Thread.interrupted();
      o.endedNanos = System.nanoTime();
    }
  }

  static GeneratorOptions options(Config c) {
    return GeneratorOptions.defaults().withDevice(Device.CPU).withThreads(2).withMaxSequenceLength(128)
        .withKvBlockSize(c.blockSize()).withKvCacheTokens(c.blocks() * c.blockSize()).withMaxBatchSize(c.maxBatch())
        .withMaxStepTokens(c.maxStepTokens()).withPromptLookup(c.promptLookup()).withPrefixCaching(c.prefixCaching())
        .withTensorParallel(c.tp()).withPipelineParallel(c.pp());
  }

  static GeneratorOptions referenceOptions(Config c) {
    return GeneratorOptions.defaults().withTensorParallel(c.tp()).withPipelineParallel(c.pp()).withDevice(Device.CPU)
        .withThreads(2).withMaxSequenceLength(128)
        .withKvCacheTokens(4096).withMaxBatchSize(8).withPrefixCaching(false);
  }

  static List<Long> seedList() {
    return seeds();
  }

  @ParameterizedTest(name = "seed {0}")
  @MethodSource("seedList")
  void randomMixUnderCachePressureMatchesSoloRuns(long seed) throws Exception {
    Random r = new Random(seed);
    Config c = config(r);
    int requests = Integer.getInteger("stress.requests", 60);
    List<String> problems = new ArrayList<>();
    String header = "seed " + seed + " " + c;
    System.out.println("[stress] " + header);
    List<Spec> specs = new ArrayList<>();
    try (Generator g = Generator.open(dir(c.model()).toString(), options(c))) {
      TOK = g.tokenizer();
      for (int i = 0; i < requests; i++) {
        specs.add(spec(i, r, c, g));
      }
      // Ground truth: each spec alone, on a fresh generator with a roomy cache, no caching / lookup / chunking.
      Map<Integer, Object> ref = new HashMap<>();
      try (Generator solo = Generator.open(dir(c.model()).toString(), referenceOptions(c))) {
        for (Spec s : specs) {
          if (s.tooBig()) {
            continue;
          }
          ref.put(s.id(), s.kind() == Kind.SCORE ? solo.score(s.prompt()) : solo.generate(s.prompt(), s.params()));
        }
      }
      Outcome[] out = new Outcome[requests];
      ExecutorService clients = Executors.newFixedThreadPool(c.clients());
      ScheduledExecutorService timer = Executors.newScheduledThreadPool(1);
      List<Future<?>> futures = new ArrayList<>();
      long t0 = System.nanoTime();
      for (Spec s : specs) {
        Outcome o = new Outcome();
        out[s.id()] = o;
        futures.add(clients.submit(() -> {
          try {
            Thread.sleep(s.startDelayMs());
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
          run(g, s, o, timer);
        }));
      }
      for (Future<?> f : futures) {
        try {
          f.get(240, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
          problems.add("client did not finish in time (deadlock?)\n" + threadDump());
          break;
        }
      }
      clients.shutdownNow();
      timer.shutdownNow();
      double secs = (System.nanoTime() - t0) / 1e9;

      int compared = 0;
      int cancelledSeen = 0;
      for (Spec s : specs) {
        Outcome o = out[s.id()];
        String tag = "#" + s.id() + " " + s.kind() + "/" + s.mode() + "/" + s.cancel() + " prompt=\"" + s.prompt()
            + "\" " + s.params();
        if (s.tooBig()) {
          if (!(o.error instanceof IllegalArgumentException)) {
            problems.add(tag + ": too big, expected IllegalArgumentException, got " + o.error + " / " + o.completion);
          }
          continue;
        }
        Object expected = ref.get(s.id());
        if (o.error != null) {
          boolean documented = s.cancels() && (o.error instanceof CancellationException
              || (s.cancel() == Cancel.THROW && o.error instanceof ListenerBoom)
              || (s.cancel() == Cancel.TIMEOUT && o.error instanceof TimeoutException)
              || (s.kind() == Kind.BEAM && s.cancel() == Cancel.STREAM_CLOSE && o.error instanceof CancellationException));
          if (!documented) {
            problems.add(tag + ": unexpected " + stack(o.error));
          } else {
            cancelledSeen++;
          }
          continue;
        }
        if (s.kind() == Kind.SCORE) {
          String d = compareScore((Score) expected, o.score);
          if (d != null) {
            problems.add(tag + ": " + d);
          }
          compared++;
          continue;
        }
        Completion got = o.completion;
        Completion want = (Completion) expected;
        if (got == null) {
          problems.add(tag + ": no completion and no error");
          continue;
        }
        boolean cancelled = got.choices().stream().anyMatch(ch -> ch.finishReason() == FinishReason.CANCELLED);
        if (cancelled) {
          cancelledSeen++;
          if (!s.cancels()) {
            problems.add(tag + ": CANCELLED without a cancel: " + got);
            continue;
          }
          String d = comparePrefix(want, got, s);
          if (d != null) {
            problems.add(tag + ": cancelled result is not a prefix of the solo run: " + d);
          }
        } else {
          String d = compare(want, got, s);
          if (d != null && s.kind() == Kind.SAMPLED && c.prefixCaching() && (d.contains("tokens differ")
              || d.contains("logprob"))) {
            // documented: prefix caching changes a prefill's sums (up to float rounding), so a draw near a
            // boundary of the cumulative walk may move
            System.out.println("[stress] note (rounding, prefix caching): " + tag + ": " + d);
          } else if (d != null) {
            problems.add(tag + ": " + d);
          }
          compared++;
        }
        if ((s.mode() == Mode.STREAM && !(s.cancel() == Cancel.STREAM_CLOSE && o.cancelIssued))
            || s.mode() == Mode.CALLBACK) {
          String d = compareChunks(got, o.chunks, s);
          if (d != null) {
            problems.add(tag + ": stream: " + d);
          }
        }
        if (o.cancelNanos != 0 && o.endedNanos - o.cancelNanos > 5_000_000_000L) {
          problems.add(tag + ": took " + (o.endedNanos - o.cancelNanos) / 1e9 + " s to end after its cancel");
        }
      }
      // Quiescence: nothing running, queued or preempted; every KV block free; the cache's books consistent.
      GeneratorStats st = awaitIdle(g);
      if (st.running() + st.waiting() + st.preempted() != 0 || st.kvCacheBlocksUsed() != 0) {
        problems.add("not idle after all requests: " + st);
      }
      String books = checkBooks(g);
      if (books != null) {
        problems.add("KV cache books: " + books);
      }
      // The engine still serves.
      try {
        Completion after = g.generateAsync("After the storm", SamplingParams.greedy().toBuilder().maxTokens(5).build())
            .get(30, TimeUnit.SECONDS);
        assertEquals(FinishReason.LENGTH, after.finishReason());
      } catch (Exception e) {
        problems.add("engine does not serve after the run: " + stack(e));
      }
      System.out.printf("[stress] seed %d: %d requests, %d compared, %d cancelled, %.1f s, %s%n", seed, requests,
          compared, cancelledSeen, secs, g.stats());
    }
    if (!problems.isEmpty()) {
      fail(header + "\n" + problems.size() + " problem(s):\n" + String.join("\n", problems));
    }
  }

  /**
   * Closing with requests in flight: every request ends (exceptionally with IllegalStateException, or normally if
   * it had finished), streams end, nothing hangs; the engine's threads end.
   */
  @ParameterizedTest(name = "seed {0}")
  @MethodSource("seedList")
  void closeWithRequestsInFlightEndsThemAll(long seed) throws Exception {
    Random r = new Random(seed * 7919);
    Config c = config(r);
    List<String> problems = new ArrayList<>();
    Set<Thread> existing = Thread.getAllStackTraces().keySet();
    Generator g = Generator.open(dir(c.model()).toString(), options(c));
    List<Spec> specs = new ArrayList<>();
    for (int i = 0; i < 20; i++) {
      Spec s = spec(i, r, c, g);
      specs.add(new Spec(s.id(), s.kind(), s.prompt(), s.params(), s.mode(), Cancel.NONE, 0, 0, s.startDelayMs(),
          s.tooBig()));
    }
    ExecutorService clients = Executors.newFixedThreadPool(8);
    ScheduledExecutorService timer = Executors.newScheduledThreadPool(1);
    List<Outcome> outs = new ArrayList<>();
    List<Future<?>> futures = new ArrayList<>();
    for (Spec s : specs) {
      Outcome o = new Outcome();
      outs.add(o);
      futures.add(clients.submit(() -> run(g, s, o, timer)));
    }
    Thread.sleep(20 + r.nextInt(300));
    long t0 = System.nanoTime();
    Thread closer = new Thread(g::close);
    closer.start();
    closer.join(20_000);
    if (closer.isAlive()) {
      problems.add("close() did not return in 20 s\n" + threadDump());
    }
    double closeSecs = (System.nanoTime() - t0) / 1e9;
    for (int i = 0; i < futures.size(); i++) {
      try {
        futures.get(i).get(30, TimeUnit.SECONDS);
      } catch (TimeoutException e) {
        problems.add("#" + i + " " + specs.get(i).kind() + "/" + specs.get(i).mode() + " did not end after close\n"
            + threadDump());
        break;
      }
      Outcome o = outs.get(i);
      Spec s = specs.get(i);
      if (o.error != null && !(o.error instanceof IllegalStateException)
          && !(s.tooBig() && o.error instanceof IllegalArgumentException)) {
        problems.add("#" + i + " " + s.kind() + "/" + s.mode() + ": unexpected " + stack(o.error));
      }
      if (o.error == null && o.completion != null
          && o.completion.choices().stream().anyMatch(ch -> ch.finishReason() == FinishReason.CANCELLED)) {
        problems.add("#" + i + " " + s.kind() + "/" + s.mode() + ": CANCELLED on close: " + o.completion);
      }
    }
    clients.shutdownNow();
    timer.shutdownNow();
    try {
      g.generate("late", SamplingParams.greedy());
      problems.add("generate after close did not throw");
    } catch (IllegalStateException expected) {
      // documented
    }
    long deadline = System.nanoTime() + 5_000_000_000L;
    List<String> alive;
    do {
      alive = Thread.getAllStackTraces().keySet().stream().filter(t -> !existing.contains(t))
          .filter(t -> t.getName().startsWith("opt-engine") || t.getName().startsWith("opt-cpu"))
          .filter(Thread::isAlive).map(Thread::getName).toList();
      Thread.sleep(10);
    } while (!alive.isEmpty() && System.nanoTime() < deadline);
    if (!alive.isEmpty()) {
      problems.add("threads alive after close: " + alive);
    }
    System.out.printf("[stress-close] seed %d %s: close took %.2f s%n", seed, c, closeSecs);
    if (!problems.isEmpty()) {
      fail("seed " + seed + " " + c + "\n" + String.join("\n", problems));
    }
  }

  // ---- comparisons ----

  static String compare(Completion want, Completion got, Spec s) {
    if (want.choices().size() != got.choices().size()) {
      return "choices " + got.choices().size() + " != " + want.choices().size();
    }
    if (!want.promptTokenIds().equals(got.promptTokenIds())) {
      return "prompt ids differ";
    }
    for (int i = 0; i < want.choices().size(); i++) {
      Choice w = want.choices().get(i);
      Choice o = got.choices().get(i);
      if (!w.tokenIds().equals(o.tokenIds())) {
        String d = "choice " + i + " tokens differ at " + firstDiff(w.tokenIds(), o.tokenIds());
        int at = 0;
        while (at < w.tokenIds().size() && at < o.tokenIds().size() && w.tokenIds().get(at).equals(o.tokenIds().get(at))) {
          at++;
        }
        int lpAt = at - (s.params().echo() ? want.promptTokenIds().size() : 0);
        if (lpAt >= 0 && lpAt < w.logprobs().size() && lpAt < o.logprobs().size()) {
          d += " logprobs there want " + w.logprobs().get(lpAt) + " got " + o.logprobs().get(lpAt);
        }
        return d;
      }
      if (!w.text().equals(o.text())) {
        return "choice " + i + " text differs";
      }
      if (w.finishReason() != o.finishReason()) {
        return "choice " + i + " finish " + o.finishReason() + " != " + w.finishReason();
      }
      String d = compareLogprobs(w.logprobs(), o.logprobs());
      if (d != null) {
        return "choice " + i + " " + d;
      }
      if (Math.abs(w.score() - o.score()) > 1e-3 * Math.max(1, Math.abs(w.score()))) {
        return "choice " + i + " score " + o.score() + " != " + w.score();
      }
    }
    return null;
  }

  static String comparePrefix(Completion want, Completion got, Spec s) {
    if (s.kind() == Kind.BEAM) {
      return null; // beams are chosen at the end
    }
    for (int i = 0; i < got.choices().size(); i++) {
      Choice o = got.choices().get(i);
      Choice w = want.choices().get(i);
      List<Integer> wt = w.tokenIds();
      List<Integer> ot = o.tokenIds();
      if (ot.size() > wt.size() || !wt.subList(0, ot.size()).equals(ot)) {
        return "choice " + i + " tokens " + ot + " vs " + wt;
      }
      if (!w.text().startsWith(o.text()) && o.finishReason() == FinishReason.CANCELLED) {
        // the text of a cancelled choice may include a held-back stop prefix... only a problem if it diverges
        if (s.params().stop().isEmpty()) {
          return "choice " + i + " text \"" + o.text() + "\" vs \"" + w.text() + "\"";
        }
      }
    }
    return null;
  }

  static String compareChunks(Completion got, List<TokenStream.Chunk> chunks, Spec s) {
    if (got.choices().stream().anyMatch(ch -> ch.finishReason() == FinishReason.CANCELLED)) {
      // the streamed text must be a prefix of the choice's text
      for (Choice ch : got.choices()) {
        String streamed = chunks.stream().filter(x -> x.choice() == ch.index()).map(TokenStream.Chunk::text)
            .collect(Collectors.joining());
        String text = s.params().echo() ? ch.text().substring(Math.min(ch.text().length(), echoLen(got, s))) : ch.text();
        if (!text.startsWith(streamed) && !streamed.startsWith(text)) {
          return "choice " + ch.index() + " streamed \"" + streamed + "\" vs text \"" + text + "\"";
        }
      }
      return null;
    }
    for (Choice ch : got.choices()) {
      String streamed = chunks.stream().filter(x -> x.choice() == ch.index()).map(TokenStream.Chunk::text)
          .collect(Collectors.joining());
      String text = ch.text();
      if (s.params().echo() && s.kind() != Kind.BEAM) {
        text = text.substring(Math.min(text.length(), echoLen(got, s)));
      }
      if (!streamed.equals(text)) {
        return "choice " + ch.index() + " streamed \"" + streamed + "\" != text \"" + text + "\"";
      }
    }
    return null;
  }

  static io.github.optjava.tokenizer.OptTokenizer TOK;

  static int echoLen(Completion got, Spec s) {
    int[] ids = got.promptTokenIds().stream().mapToInt(Integer::intValue).toArray();
    return TOK.decode(ids, true, false).length();
  }

  static String compareScore(Score want, Score got) {
    if (!want.tokenIds().equals(got.tokenIds())) {
      return "score tokens differ";
    }
    return compareLogprobs(want.logprobs(), got.logprobs());
  }

  static String compareLogprobs(List<TokenLogprob> want, List<TokenLogprob> got) {
    if (want.size() != got.size()) {
      return "logprobs " + got.size() + " != " + want.size();
    }
    for (int i = 0; i < want.size(); i++) {
      TokenLogprob w = want.get(i);
      TokenLogprob o = got.get(i);
      if (w.tokenId() != o.tokenId()) {
        return "logprob " + i + " token " + o.tokenId() + " != " + w.tokenId();
      }
      if ((w.logprob() == null) != (o.logprob() == null)
          || (w.logprob() != null && Math.abs(w.logprob() - o.logprob()) > LP_TOL)) {
        return "logprob " + i + " " + o.logprob() + " != " + w.logprob();
      }
      if (w.top().size() != o.top().size()) {
        return "logprob " + i + " top size " + o.top().size() + " != " + w.top().size();
      }
      for (Map.Entry<String, Double> e : w.top().entrySet()) {
        Double v = o.top().get(e.getKey());
        if (v != null && Math.abs(v - e.getValue()) > LP_TOL) {
          return "logprob " + i + " top " + e.getKey() + " " + v + " != " + e.getValue();
        }
      }
    }
    return null;
  }

  static String firstDiff(List<Integer> a, List<Integer> b) {
    int i = 0;
    while (i < a.size() && i < b.size() && a.get(i).equals(b.get(i))) {
      i++;
    }
    return i + " (want " + a.subList(i, Math.min(a.size(), i + 5)) + " got " + b.subList(i, Math.min(b.size(), i + 5))
        + ", lengths " + a.size() + "/" + b.size() + ")";
  }

  // ---- engine state ----

  static GeneratorStats awaitIdle(Generator g) throws InterruptedException {
    long deadline = System.nanoTime() + 10_000_000_000L;
    GeneratorStats st;
    do {
      st = g.stats();
      if (st.running() + st.waiting() + st.preempted() == 0 && st.kvCacheBlocksUsed() == 0) {
        return st;
      }
      Thread.sleep(10);
    } while (System.nanoTime() < deadline);
    return st;
  }

  static Object field(Object o, String name) throws ReflectiveOperationException {
    Field f = o.getClass().getDeclaredField(name);
    f.setAccessible(true);
    return f.get(o);
  }

  /** The KV cache's internal books, read once the engine is idle (the loop then only polls its queue). */
  @SuppressWarnings("unchecked")
  static String checkBooks(Generator g) throws ReflectiveOperationException {
    KvCache cache = (KvCache) field(g, "cache");
    int blocks = cache.store().blocks();
    ArrayDeque<Integer> free = (ArrayDeque<Integer>) field(cache, "free");
    Map<Long, int[]> tables = (Map<Long, int[]>) field(cache, "tables");
    Map<Long, Integer> lengths = (Map<Long, Integer>) field(cache, "lengths");
    int[] refs = (int[]) field(cache, "refs");
    Object[] keyOf = (Object[]) field(cache, "keyOf");
    Map<Object, Integer> index = (Map<Object, Integer>) field(cache, "index");
    LinkedHashSet<Integer> cached = (LinkedHashSet<Integer>) field(cache, "cached");
    int padding = (int) field(cache, "paddingBlock");
    List<String> bad = new ArrayList<>();
    if (!tables.isEmpty()) {
      bad.add("tables left: " + tables.keySet());
    }
    if (!lengths.isEmpty()) {
      bad.add("lengths left: " + lengths);
    }
    for (int b = 0; b < blocks; b++) {
      if (refs[b] != 0) {
        bad.add("block " + b + " refs " + refs[b]);
      }
    }
    Set<Integer> seen = new HashSet<>();
    for (int b : free) {
      if (!seen.add(b)) {
        bad.add("block " + b + " twice in free");
      }
    }
    for (int b : cached) {
      if (!seen.add(b)) {
        bad.add("block " + b + " in free and cached");
      }
      if (keyOf[b] == null) {
        bad.add("cached block " + b + " has no key");
      }
    }
    if (padding >= 0 && !seen.add(padding)) {
      bad.add("padding block " + padding + " also free");
    }
    if (seen.size() != blocks) {
      bad.add("free+cached+padding = " + seen.size() + " of " + blocks);
    }
    for (Map.Entry<Object, Integer> e : index.entrySet()) {
      if (keyOf[e.getValue()] != e.getKey()) {
        bad.add("index entry for block " + e.getValue() + " not its key");
      }
    }
    for (int b = 0; b < blocks; b++) {
      if (keyOf[b] != null && !Integer.valueOf(b).equals(index.get(keyOf[b]))) {
        bad.add("block " + b + " keyed but not indexed");
      }
    }
    return bad.isEmpty() ? null : String.join("; ", bad);
  }

  static String stack(Throwable e) {
    java.io.StringWriter w = new java.io.StringWriter();
    e.printStackTrace(new java.io.PrintWriter(w));
    String s = w.toString();
    return s.length() > 3000 ? s.substring(0, 3000) + "..." : s;
  }

  static String threadDump() {
    StringBuilder sb = new StringBuilder();
    for (Map.Entry<Thread, StackTraceElement[]> e : Thread.getAllStackTraces().entrySet()) {
      String n = e.getKey().getName();
      if (n.startsWith("opt-") || n.startsWith("pool") || n.startsWith("main") || n.startsWith("Thread")) {
        sb.append(n).append(" ").append(e.getKey().getState()).append('\n');
        for (StackTraceElement f : e.getValue()) {
          sb.append("    at ").append(f).append('\n');
        }
      }
    }
    return sb.toString();
  }
}
