package io.github.optjava.engine;

import static io.github.optjava.engine.SameChoices.assertSameChoices;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Choice;
import io.github.optjava.api.Completion;
import io.github.optjava.api.GeneratorStats;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * Chunked prefill ({@code maxStepTokens}): prompts longer than a step's token budget are fed over several steps
 * while the running sequences keep decoding, and every request gets exactly what it gets without chunks. On
 * {@link CpuOps} a row's result does not depend on what else is in its step, so "exactly" is bit for bit.
 */
class EngineChunkedPrefillTest {
  private static final OptTokenizer TOKENIZER = TinyOpt.tokenizer();
  private static final String LONG = "It was the best of times, it was the worst of times, it was the age of wisdom, "
      + "it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity";
  private static final String[] PROMPTS = {LONG, "Once upon a time", "def add(a, b):", LONG.substring(0, 60),
      LONG + ", it was the season of Light"};

  /** Greedy, seeded sampling, log-probs with alternatives, echo, n = 2 (a shared, chunked prefill). */
  private static List<SamplingParams> params() {
    return List.of(
        SamplingParams.greedy().toBuilder().maxTokens(40).minTokens(40).build(),
        SamplingParams.builder().temperature(0.8).topK(40).topP(0.9).seed(3L).maxTokens(16).build(),
        SamplingParams.greedy().toBuilder().maxTokens(40).minTokens(40).logprobs(2).build(),
        SamplingParams.greedy().toBuilder().maxTokens(8).echo(true).logprobs(1).build(),
        SamplingParams.builder().temperature(0.9).seed(11L).n(2).maxTokens(12).build());
  }

  /** The choices of every request, and the engine's counters at the end. */
  private record Run(List<List<Choice>> choices, GeneratorStats stats) {}

  private static Run run(CountingModel model, int blocks, int maxStepTokens) {
    try (Engine engine = new Engine(model, TOKENIZER, model.newCache(blocks, 16), 4, 128, maxStepTokens)) {
      List<CompletableFuture<Completion>> futures = new ArrayList<>();
      for (int i = 0; i < PROMPTS.length; i++) {
        futures.add(engine.submit(TOKENIZER.encode(PROMPTS[i]), params().get(i), null));
      }
      List<List<Choice>> out = new ArrayList<>();
      for (CompletableFuture<Completion> f : futures) {
        out.add(f.join().choices());
      }
      return new Run(out, engine.stats());
    }
  }

  @Test
  void chunkedPrefillsGiveWhatWholeOnesGive() {
    int longest = TOKENIZER.encode(PROMPTS[4]).length;
    assertTrue(longest > 3 * 8, "prompts long enough for several chunks: " + longest);
    for (boolean samplesOnDevice : new boolean[] {false, true}) {
      String what = samplesOnDevice ? "a model that samples where the logits are" : "host sampling";
      Run whole = run(new CountingModel(TinyOpt.model(new CpuOps()), samplesOnDevice), 64, 0);
      assertEquals(0, whole.stats().preemptions());
      for (int budget : new int[] {4, 8, 13}) {
        Run chunked = run(new CountingModel(TinyOpt.model(new CpuOps()), samplesOnDevice), 64, budget);
        assertSameChoices(whole.choices(), chunked.choices(), what + ", budget " + budget);
        assertTrue(chunked.stats().steps() > whole.stats().steps(), "chunks take more steps");
      }
      // A cache too small for the batch: chunks, preemption and recomputation (itself chunked) together.
      Run small = run(new CountingModel(TinyOpt.model(new CpuOps()), samplesOnDevice), 8, 8);
      assertSameChoices(whole.choices(), small.choices(), what + ", 8 blocks, budget 8");
      assertTrue(small.stats().preemptions() > 0, "8 blocks cannot hold the batch");
    }
  }

  @Test
  void runningSequencesKeepDecodingWhileALongPromptIsPrefilled() {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    int[] longPrompt = TOKENIZER.encode(LONG + LONG);
    List<String> events = Collections.synchronizedList(new ArrayList<>());
    SamplingParams p = SamplingParams.greedy().toBuilder().maxTokens(30).minTokens(30).build();
    try (Engine engine = new Engine(model, TOKENIZER, model.newCache(64, 16), 4, 128, 8)) {
      CompletableFuture<Completion> running = engine.submit(TOKENIZER.encode("Hello"), p,
          (choice, token, text) -> events.add("running"));
      CompletableFuture<Completion> arriving = engine.submit(longPrompt, p,
          (choice, token, text) -> events.add("long"));
      running.join();
      arriving.join();
      GeneratorStats stats = engine.stats();
      assertEquals(2, stats.requestsFinished());
      int before = events.indexOf("long");
      // The long prompt's chunks take at most 7 of each step's 8 tokens: about longPrompt / 7 steps, one token
      // of the running request each. Without chunks it would be one step, with at most one token before it.
      assertTrue(before >= longPrompt.length / 8, "the running request produced " + before
          + " tokens while a " + longPrompt.length + "-token prompt was prefilled in chunks");
      assertTrue(model.maxStepTokens <= 8, "no step fed more than the budget: " + model.maxStepTokens);
    }
  }

  /**
   * The first completion of an n = 2 request is preempted in the middle of its chunked prefill (six decoding
   * requests grow into its blocks faster than its 2-token chunks fill them). Resumed, it forks its sibling as usual: both complete as they do alone.
   * Cancelled meanwhile, both end CANCELLED (the sibling, which never forked, used to be left behind and the
   * request never completed).
   */
  @Test
  void aFirstCompletionPreemptedMidPrefillEndsWithItsSiblings() throws Exception {
    SamplingParams decoding = SamplingParams.greedy().toBuilder().maxTokens(60).minTokens(60).build();
    SamplingParams pair = SamplingParams.builder().temperature(0.9).seed(5L).n(2).maxTokens(3).build();
    int[] longPrompt = TOKENIZER.encode(LONG);
    assertTrue(longPrompt.length >= 40, "a 40-token prompt: " + longPrompt.length);
    List<Choice> alone;
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    try (Engine engine = new Engine(model, TOKENIZER, model.newCache(64, 4), 8, 128, 8)) {
      alone = engine.submit(longPrompt, pair, null).join().choices();
    }
    for (boolean cancel : new boolean[] {false, true}) {
      // The first step waits until the n = 2 request is queued: it is admitted after the decoders, so it is the
      // one preempted when they grow.
      java.util.concurrent.CountDownLatch inFirstStep = new java.util.concurrent.CountDownLatch(1);
      java.util.concurrent.CountDownLatch queued = new java.util.concurrent.CountDownLatch(1);
      model.beforeStep = () -> {
        inFirstStep.countDown();
        try {
          assertTrue(queued.await(10, java.util.concurrent.TimeUnit.SECONDS));
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      };
      try (Engine engine = new Engine(model, TOKENIZER, model.newCache(36, 4), 8, 128, 8)) {
        List<CompletableFuture<Completion>> decoders = new ArrayList<>();
        for (String prompt : new String[] {"Hello", "Once upon", "def f", "A B", "Why", "In 1999"}) {
          decoders.add(engine.submit(TOKENIZER.encode(prompt), decoding, null));
        }
        assertTrue(inFirstStep.await(10, java.util.concurrent.TimeUnit.SECONDS));
        CompletableFuture<Completion> b = engine.submit(longPrompt, pair, new Engine.Listener() {
          @Override
          public void onToken(int choice, int tokenId, String text) {}

          @Override
          public boolean cancelled() {
            return cancel;
          }
        });
        queued.countDown();
        model.beforeStep = () -> { };
        List<Choice> got = b.get(30, java.util.concurrent.TimeUnit.SECONDS).choices();
        for (CompletableFuture<Completion> d : decoders) {
          d.join();
        }
        assertTrue(engine.stats().preemptions() > 0, "the decoders' growth preempts the chunked prefill");
        assertEquals(2, got.size());
        if (cancel) {
          for (Choice c : got) {
            assertEquals(io.github.optjava.api.FinishReason.CANCELLED, c.finishReason());
          }
        } else {
          assertSameChoices(List.of(alone), List.of(got), "resumed after a preemption mid-prefill");
        }
      }
    }
  }

  @Test
  void moreCompletionsThanTheBudgetTakeTurns() {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    SamplingParams six = SamplingParams.builder().temperature(0.9).seed(2L).n(6).maxTokens(5).build();
    int[] prompt = TOKENIZER.encode("Once upon a time");
    List<Choice> unlimited;
    try (Engine engine = new Engine(model, TOKENIZER, model.newCache(64, 16), 4, 128)) {
      unlimited = engine.submit(prompt, six, null).join().choices();
    }
    model.maxStepTokens = 0;
    try (Engine engine = new Engine(model, TOKENIZER, model.newCache(64, 16), 4, 128, 4)) {
      assertSameChoices(List.of(unlimited), List.of(engine.submit(prompt, six, null).join().choices()), "n = 6, budget 4");
    }
    assertTrue(model.maxStepTokens <= 4, "no step fed more than the budget: " + model.maxStepTokens);
  }

  @Test
  void anEmptyPromptIsRefused() {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    try (Engine engine = new Engine(model, TOKENIZER, model.newCache(8, 16), 4, 128)) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> engine.submit(new int[0], SamplingParams.greedy(), null));
      assertTrue(e.getMessage().contains("empty"), e.getMessage());
    }
  }

  @Test
  void theBudgetMustHoldEveryDecodeToken() {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> new Engine(model, TOKENIZER, model.newCache(8, 16), 4, 128, 3));
    assertTrue(e.getMessage().contains("at least 4"), e.getMessage());
  }
}
