package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Choice;
import io.github.optjava.api.Completion;
import io.github.optjava.api.FinishReason;
import io.github.optjava.api.GeneratorStats;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.model.OptConfig;
import io.github.optjava.model.OptModel;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** {@link Engine#stats}: the figures a monitor reads, against what the requests did. */
class EngineStatsTest {
  private final CpuOps ops = new CpuOps();
  private final OptModel model = TinyOpt.model(ops);
  private final OptConfig config = model.config();
  private final OptTokenizer tokenizer = TinyOpt.tokenizer();

  private KvCache cache(int blocks) {
    return new KvCache(ops.kvStore(config.numHiddenLayers(), blocks, 16, config.hiddenSize()));
  }

  /** The snapshot once the loop has published the state after the last step (it may lag by one step). */
  private static GeneratorStats settled(Engine engine) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    GeneratorStats s = engine.stats();
    while ((s.running() > 0 || s.waiting() > 0 || s.kvCacheBlocksUsed() > 0) && System.nanoTime() < deadline) {
      Thread.sleep(5);
      s = engine.stats();
    }
    return s;
  }

  @Test
  void countsStepsAndTokensOfAGreedyRequest() throws Exception {
    try (Engine engine = new Engine(model, tokenizer, cache(32), 8, 128)) {
      GeneratorStats fresh = engine.stats();
      assertEquals(new GeneratorStats(0, 0, 0, 0, 0, 32, 16, 0, 0, 0, 0, 0, 0, 0, 0), fresh);
      assertEquals(0.0, fresh.kvCacheUsage());

      int[] prompt = tokenizer.encode("The capital of France is");
      // min_tokens = max_tokens: EOS cannot end it early, so the step count is known.
      SamplingParams p = SamplingParams.greedy().toBuilder().maxTokens(12).minTokens(12).build();
      List<GeneratorStats> during = new ArrayList<>();
      Completion c = engine.submit(prompt, p, (choice, token, text) -> during.add(engine.stats())).join();
      assertEquals(12, c.completionTokens());
      assertEquals(1, engine.stats().requestsFinished(), "counted before the caller's join returns");

      GeneratorStats after = settled(engine);
      assertEquals(0, after.running());
      assertEquals(0, after.kvCacheBlocksUsed(), "every block back in the pool");
      assertEquals(12, after.steps(), "one prefill step, then 11 decode steps");
      assertEquals(prompt.length + 11, after.tokensProcessed());
      assertEquals(1, after.requestsFinished());

      // Seen from the listener (on the engine thread, in a step): the snapshot published before that step.
      assertEquals(12, during.size());
      assertEquals(1, during.get(0).running());
      assertEquals(0, during.get(0).steps());
      assertEquals(1, during.get(1).steps());
      assertEquals(KvCacheBlocks.forTokens(prompt.length + 1), during.get(1).kvCacheBlocksUsed(),
          "the prompt and the first generated token's slot");
      assertTrue(during.get(11).kvCacheUsage() > 0);
    }
  }

  @Test
  void aRequestBehindAFullBatchIsWaiting() throws Exception {
    try (Engine engine = new Engine(model, tokenizer, cache(32), 1, 128)) { // a batch of one sequence
      CountDownLatch secondSubmitted = new CountDownLatch(1);
      List<GeneratorStats> seen = new ArrayList<>();
      SamplingParams p = SamplingParams.greedy().toBuilder().maxTokens(4).minTokens(4).build();
      CompletableFuture<Completion> first = engine.submit(tokenizer.encode("Hello"), p, (choice, token, text) -> {
        try {
          assertTrue(secondSubmitted.await(10, TimeUnit.SECONDS));
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
        seen.add(engine.stats());
      });
      CompletableFuture<Completion> second = engine.submit(tokenizer.encode("Once upon a time"), p, null);
      secondSubmitted.countDown();
      first.join();
      second.join();
      assertEquals(4, seen.size());
      for (GeneratorStats s : seen) {
        assertEquals(1, s.running());
        assertEquals(1, s.waiting(), "the second request waits for the batch's only place");
      }
      GeneratorStats after = settled(engine);
      assertEquals(2, after.requestsFinished());
      assertEquals(8, after.steps());
    }
  }

  @Test
  void beamSearchStepsAreCountedAndItsCacheShown() throws Exception {
    try (Engine engine = new Engine(model, tokenizer, cache(32), 8, 128)) {
      int[] prompt = tokenizer.encode("The capital of France is");
      SamplingParams beams = SamplingParams.greedy().toBuilder().numBeams(3).maxTokens(6).minTokens(6).build();
      engine.submit(prompt, beams, null).join();
      GeneratorStats s = settled(engine);
      assertEquals(1, s.requestsFinished());
      // The prompt once, then one step per token for the three beams (the last token needs no step of its own).
      assertEquals(6, s.steps());
      assertEquals(prompt.length + 5 * 3, s.tokensProcessed());
      assertEquals(0, s.kvCacheBlocksUsed());
    }
  }

  @Test
  void requestsFailedByCloseAreNotWaiting() {
    Engine engine = new Engine(model, tokenizer, cache(32), 2, 128);
    List<CompletableFuture<Completion>> futures = new ArrayList<>();
    for (int i = 0; i < 20; i++) {
      futures.add(engine.submit(tokenizer.encode("Hello"), SamplingParams.greedy().toBuilder().maxTokens(20).build(),
          null));
    }
    engine.close();
    for (CompletableFuture<Completion> f : futures) {
      assertTrue(f.isDone(), "every request ends: with its result or the close");
    }
    GeneratorStats s = engine.stats();
    assertEquals(0, s.waiting(), "failed requests are not waiting: " + s);
    assertEquals(20, s.requestsFinished());
  }

  @Test
  void preemptionsAndSharedPromptsShowInTheCounters() throws Exception {
    // The preemption test's setting: a 6-block cache far too small for the batch.
    String[] prompts = EnginePreemptionTest.PROMPTS;
    List<SamplingParams> params = EnginePreemptionTest.PARAMS;
    try (Engine engine = new Engine(model, tokenizer, cache(6), 8, 128)) {
      List<CompletableFuture<Completion>> futures = new ArrayList<>();
      int promptTokens = 0;
      for (int i = 0; i < prompts.length; i++) {
        int[] ids = tokenizer.encode(prompts[i]);
        promptTokens += ids.length;
        futures.add(engine.submit(ids, params.get(i), null));
      }
      // What the sequences would process without preemption: each request's prompt once (the n = 2 request's
      // second completion forks the first's cache), then one token per later step of each sequence: every
      // generated token but the last, and the last one too when an EOS step ended the sequence.
      int unpreempted = promptTokens;
      for (CompletableFuture<Completion> f : futures) {
        for (Choice c : f.join().choices()) {
          unpreempted += c.tokenIds().size() - 1 + (c.finishReason() == FinishReason.EOS ? 1 : 0);
        }
      }
      GeneratorStats s = settled(engine);
      assertEquals(4, s.requestsFinished());
      assertEquals(0, s.preempted());
      assertEquals(0, s.kvCacheBlocksUsed());
      assertEquals(engine.preemptions(), s.preemptions());
      assertTrue(s.preemptions() > 0, "a 6-block cache cannot hold these requests at once");
      assertEquals(1, s.forkedPrefills(), "the n = 2 request's second completion shares the prefill");
      // A recomputation processes a prefix again where a decode step would have processed one token.
      assertTrue(s.tokensProcessed() > unpreempted, s.tokensProcessed() + " tokens processed, " + unpreempted
          + " without preemption");
    }
  }

  /** Block arithmetic of the 16-token blocks used here. */
  private static final class KvCacheBlocks {
    static int forTokens(int tokens) {
      return (tokens + 15) / 16;
    }
  }
}
