package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Choice;
import io.github.optjava.api.Completion;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.BatchBuckets;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.model.BucketedCpuOps;
import io.github.optjava.model.OptModel;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * Continuous batching over decode steps padded to bucket sizes (what {@code -Dopt.cuda.batchBuckets} does for CUDA
 * graphs; {@code Ops.decodeBatchBucket}): requests of different lengths join and leave, so the batch size changes
 * from step to step, and every request gets the tokens (and log-probs) it gets without padding, greedy and sampled.
 */
class EnginePaddedDecodeTest {

  private static List<List<Choice>> run(CpuOps ops, List<int[]> prompts, List<SamplingParams> params) {
    return run(ops, prompts, params, 256, new long[1]);
  }

  /** {@code prompts} on a cache of {@code blocks} blocks of 4 tokens; {@code preemptions[0]}: the engine's count. */
  private static List<List<Choice>> run(CpuOps ops, List<int[]> prompts, List<SamplingParams> params, int blocks,
      long[] preemptions) {
    OptModel model = TinyOpt.model(ops);
    try (model; KvCache cache = model.newCache(blocks, 4)) {
      List<List<Choice>> out = new ArrayList<>();
      try (Engine engine = new Engine(model, TinyOpt.tokenizer(), cache, 6, 128)) {
        List<CompletableFuture<Completion>> futures = new ArrayList<>();
        for (int i = 0; i < prompts.size(); i++) {
          futures.add(engine.submit(prompts.get(i), params.get(i), null));
        }
        for (CompletableFuture<Completion> f : futures) {
          out.add(f.join().choices());
        }
        preemptions[0] = engine.preemptions();
      }
      assertEquals(cache.store().blocks(), cache.freeBlocks(), "every block back in the pool");
      return out;
    }
  }

  @Test
  void requestsGetTheirUnpaddedTokensWhileTheBatchSizeChanges() {
    Random r = new Random(11);
    List<int[]> prompts = new ArrayList<>();
    List<SamplingParams> params = new ArrayList<>();
    for (int i = 0; i < 14; i++) {
      int[] prompt = new int[3 + r.nextInt(20)];
      for (int j = 0; j < prompt.length; j++) {
        prompt[j] = 4 + r.nextInt(1000);
      }
      prompts.add(prompt);
      SamplingParams.Builder b = i % 3 == 0 ? SamplingParams.greedy().toBuilder().logprobs(1)
          : SamplingParams.builder().temperature(0.8).topK(i % 2 == 0 ? 40 : 0).seed(100 + i).logprobs(1);
      params.add(b.maxTokens(2 + r.nextInt(30)).minTokens(2).build());
    }
    BucketedCpuOps bucketed = new BucketedCpuOps();
    List<List<Choice>> plain = run(new CpuOps(), prompts, params);
    List<List<Choice>> padded = run(bucketed, prompts, params);
    SameChoices.assertSameChoices(plain, padded, "decode steps padded to buckets");
    for (int b : bucketed.graphBatches) {
      assertEquals(BatchBuckets.of(b), b, "graph steps at bucket sizes only: " + bucketed.graphBatches);
    }
    assertTrue(new java.util.TreeSet<>(bucketed.graphBatches).size() >= 2, "the batch size changed: "
        + new java.util.TreeSet<>(bucketed.graphBatches));
    assertTrue(bucketed.paddedSteps.get() >= 5, "steps padded: " + bucketed.paddedSteps.get());

    // A cache far too small: sequences are preempted and recomputed, and the padding block (a sequence's last
    // resort) changes no token (how many are preempted depends on when the engine's thread sees the requests)
    long[] plainPreemptions = new long[1];
    long[] paddedPreemptions = new long[1];
    BucketedCpuOps tight = new BucketedCpuOps();
    plain = run(new CpuOps(), prompts, params, 24, plainPreemptions);
    padded = run(tight, prompts, params, 24, paddedPreemptions);
    SameChoices.assertSameChoices(plain, padded, "decode steps padded to buckets, a small cache");
    assertTrue(paddedPreemptions[0] > 0, "the cache was too small: something must have been preempted");
    assertTrue(tight.paddedSteps.get() >= 5, "steps padded: " + tight.paddedSteps.get());
  }

  /**
   * The padding block holds nothing between steps, so it must not cost the sequences a block: a request that
   * needs every block of the cache (what {@code submit} accepts: it fits the empty cache) still runs after
   * padded steps took the padding block, and every block is back in the pool at the end.
   */
  @Test
  void aRequestThatFillsTheCacheRunsAfterPaddedSteps() {
    BucketedCpuOps bucketed = new BucketedCpuOps();
    OptModel model = TinyOpt.model(bucketed);
    try (model; KvCache cache = model.newCache(8, 4)) {
      try (Engine engine = new Engine(model, TinyOpt.tokenizer(), cache, 6, 128)) {
        // three completions of one prompt decode together: batches of 3, padded to 4
        engine.submit(new int[] {2, 10, 20}, SamplingParams.builder().temperature(0.8).seed(5L).n(3).maxTokens(5)
            .minTokens(5).build(), null).join();
        assertTrue(bucketed.paddedSteps.get() > 0, "no step was padded");
        int[] prompt = {2, 31, 41, 59, 26, 53};
        int max = 8 * 4 - prompt.length; // prompt + max_tokens: all 8 blocks of 4 tokens
        List<Choice> choices = engine.submit(prompt, SamplingParams.greedy().toBuilder().maxTokens(max)
            .minTokens(max).build(), null).join().choices();
        assertEquals(max, choices.get(0).tokenIds().size());
      }
      assertEquals(cache.store().blocks(), cache.freeBlocks(), "every block back in the pool");
    }
  }
}
