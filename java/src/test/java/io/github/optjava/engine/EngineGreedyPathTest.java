package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Choice;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.model.CausalLm;
import io.github.optjava.model.OptConfig;
import io.github.optjava.model.OptModel;
import io.github.optjava.tokenizer.OptTokenizer;
import org.junit.jupiter.api.Test;

/**
 * Plain greedy requests take the model's argmax path ({@link CausalLm#greedy}: on a GPU no logits are
 * copied out), and give the same tokens and score as the logits path that log-prob requests take.
 */
class EngineGreedyPathTest {

  @Test
  void greedyUsesTheArgmaxPathWithTheLogitsPathsTokensAndScore() throws Exception {
    CpuOps ops = new CpuOps();
    OptModel model = TinyOpt.model(ops);
    OptConfig config = model.config();
    CountingModel counting = new CountingModel(model, false);
    KvCache cache = new KvCache(ops.kvStore(config.numHiddenLayers(), 32, 16, config.hiddenSize()));
    OptTokenizer tokenizer = TinyOpt.tokenizer();
    int[] prompt = tokenizer.encode("The capital of France is");
    try (Engine engine = new Engine(counting, tokenizer, cache, 4, 128)) {
      Choice greedy = engine.submit(prompt, SamplingParams.greedy().toBuilder().maxTokens(10).build(), null)
          .join().choices().get(0);
      assertEquals(0, counting.forwards, "a plain greedy request never needs the logits");
      assertTrue(counting.greedies >= 10, "greedy steps: " + counting.greedies);

      int greedies = counting.greedies;
      Choice withLogprobs = engine.submit(prompt,
          SamplingParams.greedy().toBuilder().maxTokens(10).logprobs(2).build(), null).join().choices().get(0);
      // since session 19 the alternatives come with the pick too (the model's top k: EngineLogitEditsTest compares
      // them with the logits path's)
      assertTrue(counting.greedies >= greedies + 10, "log-prob alternatives no longer need the logits");
      assertEquals(0, counting.forwards);
      assertEquals(10, withLogprobs.logprobs().size());
      assertTrue(withLogprobs.logprobs().stream().allMatch(t -> t.top().size() == 2), withLogprobs.logprobs().toString());
      assertEquals(withLogprobs.tokenIds(), greedy.tokenIds());
      assertEquals(withLogprobs.text(), greedy.text());
      assertEquals(withLogprobs.score(), greedy.score(), "the same log-softmax, computed the same way");
      assertEquals(withLogprobs.finishReason(), greedy.finishReason());
    }
    assertEquals(cache.store().blocks(), cache.freeBlocks());
  }

  /** Greedy draft tokens are checked by the argmax of every row where the logits are (greedyRows), not on the host. */
  @Test
  void greedyDraftsAreCheckedWithoutTheLogits() {
    CountingModel counting = new CountingModel(TinyOpt.model(new CpuOps()), false);
    OptTokenizer tokenizer = TinyOpt.tokenizer();
    int[] prompt = tokenizer.encode("the cat sat on the mat. the cat sat on the mat. the cat sat on the");
    SamplingParams greedy = SamplingParams.greedy().toBuilder().maxTokens(30).build(); // no processor: argmax only
    Choice plain;
    try (Engine engine = new Engine(counting, tokenizer, counting.newCache(32, 16), 4, 128)) {
      plain = engine.submit(prompt, greedy, null).join().choices().get(0);
    }
    try (Engine engine = new Engine(counting, tokenizer, counting.newCache(32, 16), 4, 128, 0, false, 4)) {
      Choice drafted = engine.submit(prompt, greedy, null).join().choices().get(0);
      engine.close();
      assertTrue(engine.stats().acceptedDraftTokens() > 0, engine.stats().toString());
      assertEquals(plain.tokenIds(), drafted.tokenIds());
      assertEquals(plain.score(), drafted.score());
    }
    assertEquals(0, counting.forwards, "neither run copied logits out");
  }
}
