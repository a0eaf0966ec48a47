package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Choice;
import io.github.optjava.api.Completion;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.model.OptConfig;
import io.github.optjava.model.OptModel;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * A KV cache far too small for the batch: requests are admitted by their prompts, sequences are preempted
 * when the cache runs out and recomputed later, and every request still gets exactly what it gets alone
 * (greedy, and seeded sampling with n = 2), with every block back in the pool at the end.
 */
class EnginePreemptionTest {
  /** Four requests (five sequences: one has n = 2) of up to ~50 tokens each, for a 6-block cache of 16 tokens. */
  static final String[] PROMPTS = {"The capital of France is", "Once upon a time", "def add(a, b):", "Hello"};
  static final List<SamplingParams> PARAMS = List.of(
      SamplingParams.greedy().toBuilder().maxTokens(40).build(),
      SamplingParams.greedy().toBuilder().maxTokens(36).build(),
      SamplingParams.builder().temperature(0.8).seed(7L).n(2).maxTokens(30).build(),
      SamplingParams.greedy().toBuilder().maxTokens(44).build());

  @Test
  void preemptedSequencesResumeWithTheTokensTheyWouldHaveHadAlone() throws Exception {
    CpuOps ops = new CpuOps();
    OptModel model = TinyOpt.model(ops);
    OptConfig config = model.config();
    OptTokenizer tokenizer = TinyOpt.tokenizer();
    String[] prompts = PROMPTS;
    List<SamplingParams> params = PARAMS;

    // Alone: a cache with room for everything, one request at a time.
    List<List<Choice>> alone = new ArrayList<>();
    KvCache big = new KvCache(ops.kvStore(config.numHiddenLayers(), 64, 16, config.hiddenSize()));
    try (Engine engine = new Engine(model, tokenizer, big, 8, 128)) {
      for (int i = 0; i < prompts.length; i++) {
        alone.add(engine.submit(tokenizer.encode(prompts[i]), params.get(i), null).join().choices());
      }
    }

    // Together, in a cache of 6 blocks × 16 tokens: 96 tokens for 5 sequences of up to ~50 tokens each.
    KvCache small = new KvCache(ops.kvStore(config.numHiddenLayers(), 6, 16, config.hiddenSize()));
    try (Engine engine = new Engine(model, tokenizer, small, 8, 128)) {
      List<CompletableFuture<Completion>> futures = new ArrayList<>();
      for (int i = 0; i < prompts.length; i++) {
        futures.add(engine.submit(tokenizer.encode(prompts[i]), params.get(i), null));
      }
      for (int i = 0; i < prompts.length; i++) {
        List<Choice> together = futures.get(i).join().choices();
        assertEquals(alone.get(i).size(), together.size());
        for (int c = 0; c < together.size(); c++) {
          assertEquals(alone.get(i).get(c).tokenIds(), together.get(c).tokenIds(), "request " + i + " choice " + c);
          assertEquals(alone.get(i).get(c).text(), together.get(c).text());
          assertEquals(alone.get(i).get(c).finishReason(), together.get(c).finishReason());
          assertEquals(alone.get(i).get(c).score(), together.get(c).score(), 1e-4);
        }
      }
      assertTrue(engine.preemptions() > 0, "the cache was too small: something must have been preempted");
    }
    assertEquals(small.store().blocks(), small.freeBlocks(), "every block returned to the pool");
  }
}
