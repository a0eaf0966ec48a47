package io.github.optjava.engine;

import io.github.optjava.api.Choice;
import io.github.optjava.api.Completion;
import io.github.optjava.api.SamplingParams;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** One submitted prompt: its sequences' results are gathered here. */
final class Request {
  private static final Logger LOG = LoggerFactory.getLogger(Request.class);

  final int[] promptIds;
  final SamplingParams params;
  final Engine.Listener listener;
  final CompletableFuture<Completion> future = new CompletableFuture<>();
  final long submitted = System.nanoTime();
  long firstToken;
  private final Choice[] choices;
  private int done;
  private final AtomicLong finishedCounter; // the engine's count, raised before the future completes
  private final AtomicBoolean ended = new AtomicBoolean();

  Request(int[] promptIds, SamplingParams params, Engine.Listener listener, AtomicLong finishedCounter) {
    this.promptIds = promptIds.clone();
    this.params = params;
    this.listener = listener;
    this.choices = new Choice[params.isBeamSearch() ? 0 : params.n()];
    this.finishedCounter = finishedCounter;
  }

  /**
   * Whether the caller gave up: through its listener, or by completing the future it holds ({@code cancel},
   * {@code orTimeout}, ...); or the request already ended (its listener failed: see {@link #onToken}).
   */
  boolean cancelled() {
    if (ended.get() || future.isDone()) {
      return true;
    }
    try {
      return listener.cancelled();
    } catch (RuntimeException e) {
      listenerFailed(e);
      return true;
    }
  }

  /**
   * Streams to the listener. A listener that throws fails its own request with that exception (its sequences
   * then end as cancelled, their blocks freed), never the others in the batch.
   */
  void onToken(int choice, int tokenId, String text) {
    if (ended.get() || future.isDone()) { // nothing after the caller gave up on the future
      return;
    }
    try {
      listener.onToken(choice, tokenId, text);
    } catch (RuntimeException e) {
      listenerFailed(e);
    }
  }

  private void listenerFailed(RuntimeException e) {
    LOG.warn("a request's listener threw; failing that request", e);
    fail(e);
  }

  /** Fails the request, once (its n sequences may each report the same failure). */
  void fail(Throwable e) {
    if (ended.compareAndSet(false, true)) {
      finishedCounter.incrementAndGet(); // first: a caller woken by the future sees itself counted
      future.completeExceptionally(e);
    }
  }

  void tokenProduced() {
    if (firstToken == 0) {
      firstToken = System.nanoTime();
    }
  }

  void choiceDone(Sequence s) {
    choices[s.choice] = s.toChoice();
    if (++done == choices.length) {
      completeWith(List.of(choices));
    }
  }

  void completeWith(List<Choice> result) {
    long end = System.nanoTime();
    int generated = 0;
    for (Choice c : result) {
      generated += c.tokenIds().size() - (params.echo() ? promptIds.length : 0);
    }
    List<Integer> prompt = new ArrayList<>(promptIds.length);
    for (int id : promptIds) {
      prompt.add(id);
    }
    Completion c = new Completion(List.copyOf(prompt), List.copyOf(result), generated,
        firstToken == 0 ? 0 : (firstToken - submitted) / 1e6, (end - submitted) / 1e6);
    if (ended.compareAndSet(false, true)) {
      finishedCounter.incrementAndGet();
      future.complete(c);
    }
  }
}
