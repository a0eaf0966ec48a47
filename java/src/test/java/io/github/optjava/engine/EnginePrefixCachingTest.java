package io.github.optjava.engine;

import static io.github.optjava.engine.SameChoices.assertSameChoices;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Choice;
import io.github.optjava.api.Completion;
import io.github.optjava.api.GeneratorStats;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * Prefix caching: requests whose prompts start with the tokens of earlier ones take those KV blocks instead of
 * computing them, and get exactly what they get without it. On {@link CpuOps} a row's result does not depend on
 * what else is in its step or how much of its prefix that step computed, so "exactly" is bit for bit.
 */
class EnginePrefixCachingTest {
  private static final OptTokenizer TOKENIZER = TinyOpt.tokenizer();
  private static final String SYSTEM = "You are a helpful assistant. Answer briefly and truthfully. It was the best of "
      + "times, it was the worst of times, it was the age of wisdom, it was the age of foolishness.";
  private static final String[] QUESTIONS = {" Q: Who wrote this?", " Q: What year?", " Q: Why?",
      " Q: Who wrote this? A:", ""};

  /** Greedy, seeded sampling, log-probs with alternatives, echo (which never reuses), n = 2. */
  private static List<SamplingParams> params() {
    return List.of(
        SamplingParams.greedy().toBuilder().maxTokens(24).minTokens(24).build(),
        SamplingParams.builder().temperature(0.8).topK(40).topP(0.9).seed(3L).maxTokens(16).build(),
        SamplingParams.greedy().toBuilder().maxTokens(20).logprobs(2).build(),
        SamplingParams.greedy().toBuilder().maxTokens(6).echo(true).logprobs(1).build(),
        SamplingParams.builder().temperature(0.9).seed(11L).n(2).maxTokens(12).build());
  }

  private record Run(List<List<Choice>> choices, GeneratorStats stats) {}

  /**
   * Every prompt (system prompt + question, each with each sampling setting), one request after another when
   * {@code oneByOne}, else all at once; with or without prefix caching.
   */
  private static Run run(int blocks, int blockSize, int maxStepTokens, boolean prefixCaching, boolean oneByOne) {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    try (Engine engine = new Engine(model, TOKENIZER, model.newCache(blocks, blockSize), 4, 128, maxStepTokens,
        prefixCaching, 0)) {
      List<CompletableFuture<Completion>> futures = new ArrayList<>();
      for (String q : QUESTIONS) {
        for (SamplingParams p : params()) {
          futures.add(engine.submit(TOKENIZER.encode(SYSTEM + q), p, null));
          if (oneByOne) {
            futures.get(futures.size() - 1).join();
          }
        }
      }
      List<List<Choice>> out = new ArrayList<>();
      for (CompletableFuture<Completion> f : futures) {
        out.add(f.join().choices());
      }
      engine.close(); // the loop publishes its last step's figures as it ends
      return new Run(out, engine.stats());
    }
  }

  @Test
  void cachedPrefixesGiveWhatComputedOnesGiveAndSkipTheirTokens() {
    int system = TOKENIZER.encode(SYSTEM).length;
    assertTrue(system >= 32, "a system prompt of several 8-token blocks: " + system);
    Run plain = run(64, 8, 0, false, true);
    Run cached = run(64, 8, 0, true, true);
    assertSameChoices(plain.choices(), cached.choices(), "one request after another");
    assertEquals(0, plain.stats().prefixCachedTokens());
    assertEquals(0, plain.stats().kvCacheBlocksCached(), "without prefix caching no block is kept");
    // Every non-echo request after the first reuses at least the system prompt's whole blocks.
    long reusers = QUESTIONS.length * params().size() - QUESTIONS.length - 1;
    assertTrue(cached.stats().prefixCachedTokens() >= reusers * (system / 8 * 8),
        "tokens taken from the cache: " + cached.stats().prefixCachedTokens());
    assertEquals(plain.stats().tokensProcessed(), cached.stats().tokensProcessed() + cached.stats().prefixCachedTokens(),
        "every token is either computed or taken from the cache");
    assertTrue(cached.stats().kvCacheBlocksCached() > 0, "the blocks stay cached when the requests end");
    assertEquals(0, cached.stats().kvCacheBlocksUsed(), "held by no sequence");
  }

  @Test
  void aSmallCacheEvictsPreemptsAndStillGivesTheSameTokens() {
    Run plain = run(64, 4, 0, false, false);
    for (int maxStepTokens : new int[] {0, 8}) {
      // 32 blocks of 4 tokens: cached blocks are taken back while others run, sequences are preempted and take
      // their own cached blocks back when they resume; with a budget, prefills are chunked as well.
      Run cached = run(32, 4, maxStepTokens, true, false);
      assertSameChoices(plain.choices(), cached.choices(), "all at once, 32 blocks, budget " + maxStepTokens);
      assertTrue(cached.stats().preemptions() > 0, "32 blocks cannot hold the batch");
      assertTrue(cached.stats().prefixCachedTokens() > 0, "some prefixes were still cached when needed");
    }
  }

  @Test
  void aPipelineOfTwoStagesReusesTheBlocksOfBothStagesAndChecksDrafts() {
    SamplingParams greedy = SamplingParams.greedy().toBuilder().maxTokens(12).minTokens(12).build();
    List<List<Integer>> got = new ArrayList<>();
    for (boolean prefixCaching : new boolean[] {false, true}) {
      // with prefix caching, drafts too (prompt lookup): their rows go through both stages and are truncated in both
      try (io.github.optjava.model.PipelineOptModel pipe = TinyOpt.pipeline(2);
          Engine engine = new Engine(pipe, TOKENIZER, pipe.newCache(64, 8), 4, 128, 0, prefixCaching,
              prefixCaching ? 3 : 0)) {
        List<Integer> tokens = new ArrayList<>();
        for (String q : QUESTIONS) {
          tokens.addAll(engine.submit(TOKENIZER.encode(SYSTEM + q), greedy, null).join().choices().get(0).tokenIds());
        }
        got.add(tokens);
        engine.close();
        assertEquals(prefixCaching, engine.stats().prefixCachedTokens() > 0);
        assertEquals(prefixCaching, engine.stats().draftTokens() > 0);
      }
    }
    assertEquals(got.get(0), got.get(1));
  }

  @Test
  void anEchoRequestComputesEveryPromptRow() {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    int[] prompt = TOKENIZER.encode(SYSTEM);
    SamplingParams echo = SamplingParams.greedy().toBuilder().maxTokens(0).echo(true).logprobs(0).build();
    try (Engine engine = new Engine(model, TOKENIZER, model.newCache(64, 8), 4, 128, 0, true, 0)) {
      Completion first = engine.submit(prompt, echo, null).join();
      Completion again = engine.submit(prompt, echo, null).join();
      assertEquals(first.choices().get(0).logprobs(), again.choices().get(0).logprobs());
      // A plain request for the same prompt reuses the echo requests' blocks.
      engine.submit(prompt, SamplingParams.greedy().toBuilder().maxTokens(1).build(), null).join();
      engine.close(); // the loop publishes its last step's figures as it ends
      int reused = (prompt.length - 1) / 8 * 8; // whole blocks, never the last prompt token
      assertEquals(reused, engine.stats().prefixCachedTokens(), "echo scores every prompt row: only the plain request"
          + " skipped any");
      assertEquals(3L * prompt.length - reused, engine.stats().tokensProcessed());
    }
  }
}
