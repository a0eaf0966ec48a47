package io.github.optjava.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.model.CausalLm;
import java.lang.reflect.Field;
import java.lang.reflect.Proxy;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/** Closing and cancelling through the public API: what a review of session 16's engine changes found. */
class GeneratorCloseEdgesTest {

  /**
   * Choice's Javadoc: logprobs are "per token of tokenIds, when logprobs or echo was asked for". An echo stream
   * closed while it waits in the queue ends at once with CANCELLED and the prompt's ids; its prompt was never read,
   * so each of its tokens has an entry with a null log-prob (it had none at all).
   */
  @Test
  void anEchoStreamClosedWhileQueuedHasALogprobPerToken() throws Exception {
    try (Generator g = Generator.open(GeneratorStressTest.dir("tiny-opt").toString(),
        GeneratorCloseAndCancelTest.small().withMaxBatchSize(1))) {
      CompletableFuture<Completion> running = g.generateAsync("Hold the only slot", SamplingParams.greedy()
          .toBuilder().maxTokens(110).build());
      while (g.stats().running() == 0) {
        Thread.sleep(1);
      }
      TokenStream queued = g.stream("Queued behind it", SamplingParams.greedy().toBuilder().maxTokens(5)
          .echo(true).build());
      Thread.sleep(20);
      queued.close();
      Completion c = queued.completion().get(60, TimeUnit.SECONDS);
      Choice choice = c.choices().get(0);
      assertEquals(FinishReason.CANCELLED, choice.finishReason());
      assertEquals(choice.tokenIds().size(), choice.logprobs().size(), "a log-prob per token id: " + choice);
      for (int i = 0; i < choice.tokenIds().size(); i++) {
        assertEquals(choice.tokenIds().get(i), choice.logprobs().get(i).tokenId());
        assertEquals(null, choice.logprobs().get(i).logprob(), "never read: no score");
      }
      running.cancel(false);
    }
  }

  /** Generator.close() twice frees the model twice (with a step that outlasted the wait: on two threads). */
  @Test
  void closingTwiceFreesOnce() throws Exception {
    Generator g = Generator.open(GeneratorStressTest.dir("tiny-opt").toString(), GeneratorCloseAndCancelTest.small());
    Field f = Generator.class.getDeclaredField("model");
    f.setAccessible(true);
    CausalLm real = (CausalLm) f.get(g);
    AtomicInteger closes = new AtomicInteger();
    CausalLm counting = (CausalLm) Proxy.newProxyInstance(CausalLm.class.getClassLoader(),
        new Class<?>[] {CausalLm.class}, (proxy, m, args) -> {
          if (m.getName().equals("close") && m.getParameterCount() == 0) {
            closes.incrementAndGet();
          }
          try {
            return m.invoke(real, args);
          } catch (java.lang.reflect.InvocationTargetException e) {
            throw e.getCause();
          }
        });
    f.set(g, counting);
    g.close();
    g.close();
    assertEquals(1, closes.get(), "model.close() calls");
  }

  /**
   * A natural pattern, closing the generator when the last request is done ({@code f.thenRun(g::close)}), runs
   * close() on the engine's thread: it blocks that thread for 10 s and warns that a step outlasted its wait.
   */
  @Test
  void closingFromACompletionCallbackReturnsPromptly() throws Exception {
    Generator g = Generator.open(GeneratorStressTest.dir("tiny-opt").toString(), GeneratorCloseAndCancelTest.small());
    AtomicLong nanos = new AtomicLong();
    CountDownLatch done = new CountDownLatch(1);
    g.generateAsync("Hello", SamplingParams.greedy().toBuilder().maxTokens(3).build()).thenRun(() -> {
      long t0 = System.nanoTime();
      g.close();
      nanos.set(System.nanoTime() - t0);
      done.countDown();
    });
    assertTrue(done.await(30, TimeUnit.SECONDS));
    assertTrue(nanos.get() < 1_000_000_000L, "close() in a completion callback took " + nanos.get() / 1e9 + " s");
  }

  /**
   * Javadoc: "Closing again does nothing; a close called while another thread's is under way returns when that one
   * does". Session 27's reviews: a second close() waited another 10 s for a step that outlasted the first close's
   * wait; then, made to return at once, it returned before the queued requests had failed.
   */
  @Test
  void aCloseWhileAnotherIsUnderWayReturnsWithItAndAThirdAtOnce() throws Exception {
    Generator g = Generator.open(GeneratorStressTest.dir("tiny-opt").toString(),
        GeneratorCloseAndCancelTest.small().withMaxBatchSize(1));
    CountDownLatch inStep = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    // A chunk callback runs on the engine's thread, inside the step's commit: holding it holds the step.
    Thread caller = new Thread(() -> {
      try {
        g.generate("Hello", SamplingParams.greedy().toBuilder().maxTokens(3).build(), chunk -> {
          inStep.countDown();
          Generator.awaitUninterruptibly(release); // as a long native call, close()'s interrupts do not end it
        });
      } catch (RuntimeException expected) {
        // the generator was closed
      }
    });
    caller.start();
    assertTrue(inStep.await(30, TimeUnit.SECONDS));
    CompletableFuture<Completion> queued = g.generateAsync("Queued", SamplingParams.greedy().toBuilder().maxTokens(3)
        .build());
    AtomicLong firstReturned = new AtomicLong();
    Thread first = new Thread(() -> {
      g.close();
      firstReturned.set(System.nanoTime());
    });
    first.start();
    Thread.sleep(300); // the first close() is waiting for the step
    AtomicLong secondReturned = new AtomicLong();
    java.util.concurrent.atomic.AtomicBoolean queuedDoneThen = new java.util.concurrent.atomic.AtomicBoolean();
    Thread second = new Thread(() -> {
      g.close();
      secondReturned.set(System.nanoTime());
      queuedDoneThen.set(queued.isDone());
    });
    second.start();
    Thread.sleep(300);
    assertEquals(0, secondReturned.get(), "the second close waits for the first");
    release.countDown(); // the step ends: the first close returns, then the second
    first.join(30_000);
    second.join(30_000);
    caller.join(30_000);
    assertTrue(secondReturned.get() >= firstReturned.get() && firstReturned.get() > 0);
    assertTrue(queuedDoneThen.get(), "the queued request had failed when the second close returned");
    long t0 = System.nanoTime();
    g.close();
    assertTrue(System.nanoTime() - t0 < 1_000_000_000L, "a close after the first has returned returns at once");
  }
}
