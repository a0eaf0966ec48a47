package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Completion;
import io.github.optjava.api.GeneratorStats;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.Test;

/**
 * A caller that completes the future it got from {@code submit} (cancel, or a timeout through {@code orTimeout})
 * stops its request: a queued one never runs, a running one ends at the next step and gives its blocks back.
 */
class EngineFutureCancellationTest {
  private static final OptTokenizer TOKENIZER = TinyOpt.tokenizer();
  private static final SamplingParams LONG = SamplingParams.greedy().toBuilder().maxTokens(100).minTokens(100).build();

  @Test
  void aCancelledFutureStopsItsRunningRequestAndItsQueuedOne() throws Exception {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    int[] prompt = TOKENIZER.encode("Once upon a time");
    CountDownLatch started = new CountDownLatch(3);
    Engine engine = new Engine(model, TOKENIZER, model.newCache(64, 16), 1, 128); // a batch of one: B waits for A
    try {
      CompletableFuture<Completion> a = engine.submit(prompt, LONG, (c, t, s) -> started.countDown());
      CompletableFuture<Completion> b = engine.submit(prompt, LONG, null);
      assertTrue(started.await(10, TimeUnit.SECONDS), "A is running");
      b.cancel(true); // while queued
      a.cancel(true); // while running
      assertThrows(CancellationException.class, a::join);
      // Both end: a third request gets the batch slot and completes with all 100 tokens.
      Completion c = engine.submit(prompt, LONG, null).get(30, TimeUnit.SECONDS);
      assertEquals(100, c.choices().get(0).tokenIds().size());
    } finally {
      engine.close();
    }
    GeneratorStats s = engine.stats();
    assertEquals(3, s.requestsFinished());
    assertEquals(0, s.kvCacheBlocksUsed(), "A's blocks came back: " + s);
    // A stopped after a few of its 100 steps, B never ran: far fewer than the 3 x 100 decode steps.
    assertTrue(s.steps() < 150, "steps: " + s.steps());
  }

  /** Beam search runs alone: a cancelled one must not hold the engine until its last step. */
  @Test
  void aCancelledBeamSearchStopsAndFreesTheEngine() throws Exception {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    CountDownLatch firstStep = new CountDownLatch(1);
    CountDownLatch cancelled = new CountDownLatch(1);
    model.beforeStep = () -> {
      firstStep.countDown();
      try {
        cancelled.await(10, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    };
    SamplingParams beams = SamplingParams.builder().temperature(0).numBeams(3).maxTokens(100).build();
    Engine engine = new Engine(model, TOKENIZER, model.newCache(64, 16), 4, 128);
    try {
      CompletableFuture<Completion> search = engine.submit(TOKENIZER.encode("Once upon a time"), beams, null);
      assertTrue(firstStep.await(10, TimeUnit.SECONDS));
      search.cancel(true);
      cancelled.countDown();
      Completion next = engine.submit(TOKENIZER.encode("Hello"), SamplingParams.greedy().toBuilder().maxTokens(3)
          .build(), null).get(30, TimeUnit.SECONDS);
      assertEquals(3, next.choices().get(0).tokenIds().size());
    } finally {
      cancelled.countDown();
      engine.close();
    }
    assertTrue(engine.stats().steps() < 20, "the search stopped after its cancel: " + engine.stats());
    assertEquals(0, engine.stats().kvCacheBlocksUsed(), "the beams' blocks came back");
  }

  @Test
  void aTimedOutFutureStopsItsRequest() throws Exception {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    CountDownLatch release = new CountDownLatch(1);
    model.beforeStep = () -> {
      try {
        release.await(10, TimeUnit.SECONDS); // every step waits until the timeout has fired
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    };
    Engine engine = new Engine(model, TOKENIZER, model.newCache(64, 16), 4, 128);
    try {
      CompletableFuture<Completion> f = engine.submit(TOKENIZER.encode("Hello"), LONG, null)
          .orTimeout(200, TimeUnit.MILLISECONDS);
      Exception e = assertThrows(Exception.class, f::join);
      assertTrue(e.getCause() instanceof TimeoutException, e.toString());
      release.countDown();
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
      while (engine.stats().running() > 0 && System.nanoTime() < deadline) {
        Thread.sleep(10);
      }
    } finally {
      release.countDown();
      engine.close();
    }
    assertTrue(engine.stats().steps() < 20, "the request stopped soon after its timeout: " + engine.stats());
    assertEquals(0, engine.stats().kvCacheBlocksUsed());
  }
}
