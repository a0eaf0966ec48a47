package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Completion;
import io.github.optjava.api.FinishReason;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/**
 * Closing and cancelling at the edges (on the engine's own thread, behind a beam search, with a listener whose flag
 * flips): the defects a review of session 16's engine changes found, one test each.
 */
class EngineCloseAndCancelEdgesTest {
  private static final OptTokenizer TOKENIZER = TinyOpt.tokenizer();

  /**
   * close() called on the engine's own thread (a listener, or a dependent of a future the loop completes, such as
   * {@code f.whenComplete((c, e) -> generator.close())}) joins its own thread: the interrupt it just sent itself
   * makes the first join throw, then join(10 s) on the current thread always times out. The engine thread stalls
   * 10 s inside the callback (and Generator.close then logs that a step outlasted its wait).
   */
  @Test
  void closeFromTheEngineThreadDoesNotStallIt() throws Exception {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    Engine engine = new Engine(model, TOKENIZER, model.newCache(32, 4), 4, 128);
    AtomicLong closeNanos = new AtomicLong(-1);
    AtomicInteger freed = new AtomicInteger();
    CountDownLatch closed = new CountDownLatch(1);
    CompletableFuture<Completion> f = engine.submit(TOKENIZER.encode("A prompt"),
        SamplingParams.greedy().toBuilder().maxTokens(3).build(), null);
    f.whenComplete((c, e) -> { // the loop completes f: this runs on the engine thread
      long t0 = System.nanoTime();
      engine.close();
      closeNanos.set(System.nanoTime() - t0);
      engine.whenStopped(freed::incrementAndGet);
      closed.countDown();
    });
    assertTrue(closed.await(30, TimeUnit.SECONDS));
    long deadline = System.nanoTime() + 5_000_000_000L;
    while (freed.get() == 0 && System.nanoTime() < deadline) {
      Thread.sleep(10);
    }
    assertEquals(1, freed.get(), "freed once the loop ended");
    double secs = closeNanos.get() / 1e9;
    assertTrue(secs < 1, "close() on the engine thread blocked it for " + secs + " s");
  }

  /**
   * A public Engine.Listener whose cancelled() does not stay true (the Javadoc only says "read a volatile flag")
   * makes admit()'s new branch build a Choice with a null finish reason: the request's cancelled() is asked once by
   * the removeIf and again by cancelIfAsked(), whose false answer leaves finish unset.
   */
  @Test
  void aQueuedRequestCancelledByItsListenerAlwaysEndsCancelled() throws Exception {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    Engine engine = new Engine(model, TOKENIZER, model.newCache(64, 4), 1, 128);
    try {
      CountDownLatch inStep = new CountDownLatch(1);
      CountDownLatch release = new CountDownLatch(1);
      model.beforeStep = () -> {
        inStep.countDown();
        try {
          release.await();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      };
      CompletableFuture<Completion> running = engine.submit(TOKENIZER.encode("Hold the slot"),
          SamplingParams.greedy().toBuilder().maxTokens(3).build(), null);
      assertTrue(inStep.await(10, TimeUnit.SECONDS));
      AtomicInteger asked = new AtomicInteger();
      CompletableFuture<Completion> queued = engine.submit(TOKENIZER.encode("Queued"),
          SamplingParams.greedy().toBuilder().maxTokens(3).build(),
          cancelledWhen(() -> asked.incrementAndGet() == 1)); // the caller gave up once, then the flag was reset
      model.beforeStep = () -> { };
      release.countDown();
      running.get(10, TimeUnit.SECONDS);
      Completion c = queued.get(10, TimeUnit.SECONDS);
      assertNotNull(c.choices().get(0).finishReason(), "choice: " + c.choices().get(0));
    } finally {
      engine.close();
    }
  }

  /**
   * close() while a beam search runs: the search stops at its next step, then admit() goes on admitting the
   * non-beam requests queued behind it (only a beam request at the head looks at `closed`), and the loop runs a
   * whole step (a prefill) for them after close() before it notices.
   */
  @Test
  void noStepRunsForQueuedRequestsAfterClose() throws Exception {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    Engine engine = new Engine(model, TOKENIZER, model.newCache(64, 4), 4, 128);
    CountDownLatch holding = new CountDownLatch(1);
    CountDownLatch releaseHold = new CountDownLatch(1);
    CountDownLatch inBeam = new CountDownLatch(1);
    CountDownLatch releaseBeam = new CountDownLatch(1);
    model.beforeStep = () -> {
      // the greedy request steps through greedy(), the beam through beamTopK() (forward() with processors)
      boolean beamStep = model.beamSteps > 0 || model.forwards > 0;
      (beamStep ? inBeam : holding).countDown();
      boolean interrupted = false;
      while (true) {
        try {
          (beamStep ? releaseBeam : releaseHold).await();
          break;
        } catch (InterruptedException e) {
          interrupted = true;
        }
      }
      if (interrupted) {
        Thread.currentThread().interrupt();
      }
    };
    CompletableFuture<Completion> hold = engine.submit(TOKENIZER.encode("Hold the batch"),
        SamplingParams.greedy().toBuilder().maxTokens(1).build(), null);
    assertTrue(holding.await(10, TimeUnit.SECONDS));
    // Queued while the batch is busy: the beam first, greedy requests behind it (all drained into `waiting`).
    CompletableFuture<Completion> beam = engine.submit(TOKENIZER.encode("A beam"),
        SamplingParams.builder().numBeams(2).maxTokens(8).build(), null);
    List<CompletableFuture<Completion>> behind = new ArrayList<>();
    for (int i = 0; i < 3; i++) {
      behind.add(engine.submit(TOKENIZER.encode("Greedy behind the beam " + i),
          SamplingParams.greedy().toBuilder().maxTokens(8).build(), null));
    }
    releaseHold.countDown();
    hold.get(10, TimeUnit.SECONDS);
    assertTrue(inBeam.await(10, TimeUnit.SECONDS), "the beam search runs");
    int greediesBefore = model.greedies;
    Thread closer = new Thread(() -> engine.close());
    closer.start();
    Thread.sleep(200); // closed is set; the beam's step is still held
    releaseBeam.countDown();
    closer.join(15_000);
    assertTrue(engine.stopped());
    for (CompletableFuture<Completion> f : behind) {
      assertTrue(f.isCompletedExceptionally());
    }
    assertTrue(beam.isCompletedExceptionally());
    assertEquals(greediesBefore, model.greedies, "steps run for requests admitted after close()");
  }

  /**
   * TokenStream's Javadoc (session 16): closing a stream "still waiting for a batch slot ends at once". Not while a
   * beam search runs: admit() runs the search inline, so nothing drains `incoming` or scans `waiting` until the
   * whole search is over, and the cancelled request waits for it.
   */
  @Test
  void aRequestCancelledBehindARunningBeamSearchEndsAtOnce() throws Exception {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    Engine engine = new Engine(model, TOKENIZER, model.newCache(64, 4), 4, 128);
    try {
      CountDownLatch inBeam = new CountDownLatch(1);
      model.beforeStep = () -> { // a slow model: 50 ms a step
        inBeam.countDown();
        try {
          Thread.sleep(50);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      };
      CompletableFuture<Completion> beam = engine.submit(TOKENIZER.encode("A beam"),
          SamplingParams.builder().numBeams(2).maxTokens(40).minTokens(40).build(), null);
      assertTrue(inBeam.await(10, TimeUnit.SECONDS));
      java.util.concurrent.atomic.AtomicBoolean gaveUp = new java.util.concurrent.atomic.AtomicBoolean();
      CompletableFuture<Completion> queued = engine.submit(TOKENIZER.encode("Queued"),
          SamplingParams.greedy().toBuilder().maxTokens(3).build(), cancelledWhen(gaveUp::get));
      Thread.sleep(100);
      long t0 = System.nanoTime();
      gaveUp.set(true);
      Completion c = queued.get(60, TimeUnit.SECONDS);
      double secs = (System.nanoTime() - t0) / 1e9;
      boolean beamDoneFirst = beam.isDone();
      assertEquals(FinishReason.CANCELLED, c.choices().get(0).finishReason());
      assertTrue(!beamDoneFirst, "the cancelled request waited " + secs + " s for the beam search to end");
    } finally {
      engine.close();
    }
  }

  /** A listener that ignores tokens and reports cancellation as {@code cancelled} says. */
  private static Engine.Listener cancelledWhen(java.util.function.BooleanSupplier cancelled) {
    return new Engine.Listener() {
      @Override
      public void onToken(int choice, int tokenId, String text) {}

      @Override
      public boolean cancelled() {
        return cancelled.getAsBoolean();
      }
    };
  }
}
