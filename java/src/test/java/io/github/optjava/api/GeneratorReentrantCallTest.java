package io.github.optjava.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A blocking call made on the generator's own thread (a dependent of a future it completed, a token callback) fails at
 * once instead of waiting for itself. (Found by session 26's concurrency review: {@code generateAsync(...).thenApply(c
 * -> generator.generate(...))} parked the engine thread in the inner call's wait, and every request of every caller
 * hung until close().)
 */
@Timeout(value = 90, threadMode = Timeout.ThreadMode.SEPARATE_THREAD) // on a regression: fail, never hang
class GeneratorReentrantCallTest {
  private static final SamplingParams THREE = SamplingParams.greedy().toBuilder().maxTokens(3).build();

  @Test
  void aBlockingCallFromADependentFailsAndTheGeneratorGoesOn() throws Exception {
    try (Generator g = Generator.open(GeneratorStressTest.dir("tiny-opt").toString(),
        GeneratorCloseAndCancelTest.small())) {
      CompletableFuture<Completion> inner = g.generateAsync("first", THREE).thenApply(c -> g.generate("second", THREE));
      ExecutionException e = assertThrows(ExecutionException.class,
          () -> inner.get(60, TimeUnit.SECONDS));
      assertInstanceOf(IllegalStateException.class, e.getCause());
      assertTrue(e.getCause().getMessage().contains("generator's own thread"), e.getCause().getMessage());
      CompletableFuture<Float> scored = g.generateAsync("first", THREE).thenApply(c -> g.score("x").logprobs()
          .isEmpty() ? 0f : 1f);
      assertInstanceOf(IllegalStateException.class,
          assertThrows(ExecutionException.class, () -> scored.get(60, TimeUnit.SECONDS)).getCause());
      // Chaining without blocking works, and the generator still serves everyone.
      Completion chained = g.generateAsync("first", THREE).thenCompose(c -> g.generateAsync("second", THREE))
          .get(60, TimeUnit.SECONDS);
      assertEquals(g.generate("second", THREE).choices().get(0).tokenIds(), chained.choices().get(0).tokenIds());
      assertEquals(2, g.generate(List.of("a", "b"), THREE).size());
      long deadline = System.nanoTime() + 5_000_000_000L;
      while (g.stats().running() + g.stats().waiting() > 0 && System.nanoTime() < deadline) {
        Thread.sleep(5);
      }
      assertEquals(0, g.stats().running() + g.stats().waiting(), "the inner requests were cancelled: " + g.stats());
    }
  }

  /** Reading a stream there would wait for chunks only that thread makes (found by the review of the fix above). */
  @Test
  void readingAStreamFromADependentFails() throws Exception {
    try (Generator g = Generator.open(GeneratorStressTest.dir("tiny-opt").toString(),
        GeneratorCloseAndCancelTest.small())) {
      CompletableFuture<String> read = g.generateAsync("first", THREE).thenApply(c -> {
        StringBuilder text = new StringBuilder();
        try (TokenStream s = g.stream("second", THREE)) {
          for (TokenStream.Chunk chunk : s) {
            text.append(chunk.text());
          }
        }
        return text.toString();
      });
      ExecutionException e = assertThrows(ExecutionException.class,
          () -> read.get(60, TimeUnit.SECONDS));
      assertInstanceOf(IllegalStateException.class, e.getCause());
      assertTrue(e.getCause().getMessage().contains("TokenStream read on the generator's own thread"),
          e.getCause().getMessage());
      StringBuilder text = new StringBuilder(); // read on this thread: fine
      try (TokenStream s = g.stream("second", THREE)) {
        for (TokenStream.Chunk chunk : s) {
          text.append(chunk.text());
        }
        assertEquals(s.completion().get(60, TimeUnit.SECONDS).text(), text.toString());
      }
    }
  }

  @Test
  void aBlockingCallFromATokenCallbackFails() {
    try (Generator g = Generator.open(GeneratorStressTest.dir("tiny-opt").toString(),
        GeneratorCloseAndCancelTest.small())) {
      RuntimeException[] seen = new RuntimeException[1];
      g.generate("first", THREE, chunk -> {
        try {
          g.generate("second", THREE);
        } catch (IllegalStateException e) {
          seen[0] = e;
        }
      });
      assertInstanceOf(IllegalStateException.class, seen[0]);
      assertEquals(3, g.generate("first", THREE).choices().get(0).tokenIds().size());
    }
  }
}
