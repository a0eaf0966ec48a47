package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Completion;
import io.github.optjava.api.GeneratorStats;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * A request that is cancelled, or whose own settings make a pick impossible, ends alone and at once: it does not go
 * on prefilling, wait in the queue, stream after its cancel, or take the batch down with it. (From a review's
 * reproducers.)
 */
class EngineIsolationTest {
  private static final OptTokenizer TOKENIZER = TinyOpt.tokenizer();

  private static int[] prompt(int n) {
    int[] p = new int[n];
    p[0] = 2;
    for (int i = 1; i < n; i++) {
      p[i] = 100 + i;
    }
    return p;
  }

  @Test
  void aRequestCancelledDuringItsChunkedPrefillStopsThere() throws Exception {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    CountDownLatch firstStep = new CountDownLatch(1);
    CountDownLatch cancelled = new CountDownLatch(1);
    AtomicInteger calls = new AtomicInteger();
    model.beforeStep = () -> {
      if (calls.incrementAndGet() == 1) {
        firstStep.countDown();
        try {
          cancelled.await(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
    };
    SamplingParams twenty = SamplingParams.greedy().toBuilder().maxTokens(20).minTokens(20).build();
    Engine engine = new Engine(model, TOKENIZER, model.newCache(64, 4), 4, 128, 4); // 4 tokens per step: 25 chunks
    try {
      CompletableFuture<Completion> f = engine.submit(prompt(100), twenty, null);
      assertTrue(firstStep.await(10, TimeUnit.SECONDS));
      f.cancel(true); // during its first chunk
      cancelled.countDown();
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
      while (engine.stats().requestsFinished() == 0 && System.nanoTime() < deadline) {
        Thread.sleep(5);
      }
    } finally {
      cancelled.countDown();
      engine.close();
    }
    GeneratorStats s = engine.stats();
    assertTrue(s.steps() <= 2, "a cancelled request prefilled on for " + s.steps() + " steps");
    assertEquals(0, s.kvCacheBlocksUsed());
  }

  @Test
  void aRequestCancelledBehindTheHeadOfTheQueueLeavesItAtOnce() throws Exception {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    model.beforeStep = () -> {
      try {
        Thread.sleep(20);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    };
    int[] prompt = TOKENIZER.encode("Once upon a time");
    SamplingParams sixty = SamplingParams.greedy().toBuilder().maxTokens(60).minTokens(60).build();
    try (Engine engine = new Engine(model, TOKENIZER, model.newCache(64, 16), 1, 128)) { // a batch of one
      engine.submit(prompt, sixty, null); // runs
      engine.submit(prompt, sixty, null); // waits
      CompletableFuture<Completion> c = engine.submit(prompt, sixty, null); // waits behind it
      Thread.sleep(200);
      c.cancel(true);
      Thread.sleep(300); // several steps
      GeneratorStats s = engine.stats();
      assertEquals(1, s.waiting(), "only the second request still waits: " + s);
      assertEquals(1, s.requestsFinished(), "the cancelled one is counted as finished: " + s);
    }
  }

  @Test
  void noTokenIsStreamedAfterTheFutureIsCancelled() {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    int[] prompt = TOKENIZER.encode("Once upon a time");
    SamplingParams thirty = SamplingParams.greedy().toBuilder().maxTokens(30).minTokens(30).logprobs(0).build();
    AtomicReference<CompletableFuture<Completion>> y = new AtomicReference<>();
    AtomicInteger afterCancel = new AtomicInteger();
    AtomicInteger xTokens = new AtomicInteger();
    try (Engine engine = new Engine(model, TOKENIZER, model.newCache(64, 16), 4, 128)) {
      // X's listener cancels Y in the middle of a step, as another thread could: Y's pick is made, not committed.
      CompletableFuture<Completion> x = engine.submit(prompt, thirty, (c, t, s) -> {
        if (xTokens.incrementAndGet() == 10 && y.get() != null) {
          y.get().cancel(true);
        }
      });
      y.set(engine.submit(prompt, thirty, (c, t, s) -> {
        if (y.get() != null && y.get().isCancelled()) {
          afterCancel.incrementAndGet();
        }
      }));
      x.join();
    }
    assertEquals(0, afterCancel.get());
  }

  @Test
  void aRequestThatBansEveryTokenFailsAloneNotTheBatch() throws Exception {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    List<List<Integer>> everyToken = new ArrayList<>();
    for (int t = 0; t < model.config().vocabSize(); t++) {
      everyToken.add(List.of(t));
    }
    // EOS alone is never a bad word (as in HF), but min tokens bans it: nothing is left to sample.
    SamplingParams impossible = SamplingParams.builder().temperature(1.0).seed(1L).maxTokens(5).minTokens(5)
        .badWordsIds(everyToken).build();
    int[] prompt = TOKENIZER.encode("Once upon a time");
    try (Engine engine = new Engine(model, TOKENIZER, model.newCache(64, 16), 4, 128)) {
      CompletableFuture<Completion> other = engine.submit(prompt,
          SamplingParams.greedy().toBuilder().maxTokens(40).minTokens(40).build(), null);
      Thread.sleep(50); // in the batch when the impossible request joins it
      CompletableFuture<Completion> failing = engine.submit(prompt, impossible, null);
      Exception e = assertThrows(Exception.class, failing::join);
      assertTrue(e.getCause().getMessage().contains("cannot sample"), e.toString());
      assertEquals(40, other.join().choices().get(0).tokenIds().size(), "the other request completes");
    }
  }
}
