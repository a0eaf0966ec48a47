package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Completion;
import io.github.optjava.api.GeneratorStats;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import org.junit.jupiter.api.Test;

/**
 * A listener that throws (a streaming client that went away) fails its own request with that exception, and only
 * it: the other requests in the batch complete as they would alone, and every KV block comes back, including
 * those of the completions that forked from an n > 1 request's prompt in the step where the listener threw.
 */
class EngineListenerFailureTest {
  private static final OptTokenizer TOKENIZER = TinyOpt.tokenizer();

  @Test
  void aThrowingListenerFailsOnlyItsRequestAndLeaksNoBlocks() {
    int[] prompt = TOKENIZER.encode("A prompt of a few blocks, long enough to share some full ones.");
    SamplingParams greedy = SamplingParams.greedy().toBuilder().maxTokens(12).minTokens(12).build();
    SamplingParams pair = SamplingParams.builder().temperature(0.9).seed(1L).n(2).maxTokens(8).build();
    List<Integer> alone;
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    try (Engine engine = new Engine(model, TOKENIZER, model.newCache(32, 4), 4, 128)) {
      alone = engine.submit(prompt, greedy, null).join().choices().get(0).tokenIds();
    }
    for (boolean prefixCaching : new boolean[] {false, true}) {
      Engine engine = new Engine(model, TOKENIZER, model.newCache(32, 4), 4, 128, 0, prefixCaching, 0);
      try {
        CompletableFuture<Completion> bystander = engine.submit(prompt, greedy, null);
        IllegalStateException gone = new IllegalStateException("the client went away");
        CompletableFuture<Completion> failing = engine.submit(prompt, pair, (c, t, s) -> {
          throw gone;
        });
        CompletionException e = assertThrows(CompletionException.class, failing::join);
        assertEquals(gone, e.getCause());
        assertEquals(alone, bystander.join().choices().get(0).tokenIds(), "the other request is unharmed");
      } finally {
        engine.close(); // the loop publishes its last figures as it ends
      }
      GeneratorStats s = engine.stats();
      assertEquals(0, s.kvCacheBlocksUsed(), "prefix caching " + prefixCaching + ": blocks still held: " + s);
      assertEquals(2, s.requestsFinished());
      assertTrue(s.forkedPrefills() > 0, "the n = 2 request forked before its listener threw: " + s);
    }
  }
}
