package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Completion;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * A step that outlasts close()'s wait (a long prefill, a stuck peer): close() returns, the step ends on its own,
 * and what may be freed only after it (Generator.close frees the model and the KV cache so) is freed then, once;
 * before session 16 it was never freed.
 */
class EngineCloseWaitTest {
  private static final OptTokenizer TOKENIZER = TinyOpt.tokenizer();

  @Test
  void whatWaitsForTheLastStepIsFreedWhenItEnds() throws Exception {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    CountDownLatch inStep = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    model.beforeStep = () -> {
      inStep.countDown();
      awaitUninterruptibly(release);
    };
    Engine engine = new Engine(model, TOKENIZER, model.newCache(32, 4), 4, 128);
    CompletableFuture<Completion> running = engine.submit(TOKENIZER.encode("A prompt"),
        SamplingParams.greedy().toBuilder().maxTokens(4).build(), null);
    assertTrue(inStep.await(10, TimeUnit.SECONDS));
    engine.close(200_000_000L);
    assertFalse(engine.stopped(), "the step outlasted close()'s wait");
    AtomicInteger freed = new AtomicInteger();
    engine.whenStopped(freed::incrementAndGet);
    Thread.sleep(200);
    assertTrue(freed.get() == 0, "nothing is freed while the step runs");
    release.countDown();
    long deadline = System.nanoTime() + 10_000_000_000L;
    while (freed.get() == 0 && System.nanoTime() < deadline) {
      Thread.sleep(20);
    }
    assertTrue(engine.stopped());
    assertTrue(freed.get() == 1, "freed once, when the step ended: " + freed.get());
    assertThrows(Exception.class, () -> running.get(10, TimeUnit.SECONDS), "the request failed: closed");
    engine.whenStopped(freed::incrementAndGet); // after the end: at once
    assertTrue(freed.get() == 2);
  }

  @Test
  void queuedRequestsFailWhenCloseReturnsNotWhenTheLongStepEnds() throws Exception {
    // Session 27's review: with a step of a minute, close() returned after its wait but the queued requests' callers
    // stayed blocked until the step ended, although close() promises that pending requests fail.
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    AtomicInteger steps = new AtomicInteger();
    CountDownLatch firstStep = new CountDownLatch(1);
    CountDownLatch secondStep = new CountDownLatch(1);
    CountDownLatch releaseFirst = new CountDownLatch(1);
    CountDownLatch holdSecond = new CountDownLatch(1);
    model.beforeStep = () -> {
      int step = steps.incrementAndGet();
      if (step <= 2) {
        (step == 1 ? firstStep : secondStep).countDown();
        awaitUninterruptibly(step == 1 ? releaseFirst : holdSecond);
      }
    };
    Engine engine = new Engine(model, TOKENIZER, model.newCache(32, 4), 1, 128); // max batch 1: the second waits
    SamplingParams params = SamplingParams.greedy().toBuilder().maxTokens(4).build();
    CompletableFuture<Completion> running = engine.submit(TOKENIZER.encode("A prompt"), params, null);
    assertTrue(firstStep.await(10, TimeUnit.SECONDS));
    CompletableFuture<Completion> waiting = engine.submit(TOKENIZER.encode("Another"), params, null);
    releaseFirst.countDown(); // the loop moves the second request into its waiting list, then blocks in step 2
    assertTrue(secondStep.await(10, TimeUnit.SECONDS));
    CompletableFuture<Completion> queued = engine.submit(TOKENIZER.encode("A third"), params, null);
    engine.close(200_000_000L);
    assertFalse(engine.stopped(), "the step outlasted close()'s wait");
    for (CompletableFuture<Completion> f : java.util.List.of(waiting, queued)) {
      assertTrue(f.isCompletedExceptionally(), "a request that had not started is failed when close() returns");
    }
    assertFalse(running.isDone(), "the running request ends with its step");
    holdSecond.countDown();
    assertThrows(Exception.class, () -> running.get(10, TimeUnit.SECONDS), "the request failed: closed");
  }

  private static void awaitUninterruptibly(CountDownLatch latch) {
    boolean interrupted = false;
    while (true) { // close()'s interrupt does not end it: the step holds on, as a long native call would
      try {
        latch.await();
        break;
      } catch (InterruptedException e) {
        interrupted = true;
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
  }
}
