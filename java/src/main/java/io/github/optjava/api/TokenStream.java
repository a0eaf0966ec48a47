package io.github.optjava.api;

import java.util.Iterator;
import java.util.NoSuchElementException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;

/**
 * A completion as it is generated, pulled chunk by chunk:
 * <pre>{@code
 * try (TokenStream stream = generator.stream("Once upon a time", SamplingParams.greedy())) {
 *   for (TokenStream.Chunk c : stream) {
 *     System.out.print(c.text());
 *   }
 *   Completion done = stream.completion().join();
 * }
 * }</pre>
 * Closing (or {@link #cancel()}) stops generation at the next step; the completion then finishes with
 * {@link FinishReason#CANCELLED} (a request still waiting for a batch slot ends at once). A beam search has no
 * partial result to give: its completion then fails with a {@link java.util.concurrent.CancellationException}.
 * Iterate from one thread.
 */
public final class TokenStream implements Iterable<TokenStream.Chunk>, AutoCloseable {

  /**
   * Newly final text of one choice. {@code text} may be empty (a token that completes no character yet,
   * or text held back because it may begin a stop string); {@code tokenId} is -1 for the final flush. With
   * {@code echo} the prompt's text is not streamed (it is in {@link Choice#text}). With beam search
   * ({@code numBeams > 1}) the beams are known only when generation ends: each choice's whole
   * {@link Choice#text} then comes as one chunk with {@code tokenId} -1 (with {@code echo}, the prompt's text
   * first, as in that field).
   */
  public record Chunk(int choice, int tokenId, String text) {}

  private static final Object END = new Object();
  private final LinkedBlockingQueue<Object> queue = new LinkedBlockingQueue<>();
  private volatile boolean cancelled;
  private CompletableFuture<Completion> completion;
  /** Whether the caller is the generator's own thread, which must never wait for a chunk it would produce itself. */
  private java.util.function.BooleanSupplier onGeneratorThread = () -> false;

  TokenStream() {}

  void push(Chunk c) {
    queue.add(c);
  }

  /**
   * @param finalChoices beam search: the beams are known only at the end, each one's text comes as one chunk
   * @param onGeneratorThread whether the calling thread is the generator's own (iterating there would wait for ever)
   */
  void attach(CompletableFuture<Completion> f, boolean finalChoices,
      java.util.function.BooleanSupplier onGeneratorThread) {
    this.completion = f;
    this.onGeneratorThread = onGeneratorThread;
    f.whenComplete((c, e) -> {
      if (finalChoices && c != null) {
        c.choices().forEach(choice -> queue.add(new Chunk(choice.index(), -1, choice.text())));
      }
      queue.add(END);
    });
  }

  boolean isCancelled() {
    return cancelled;
  }

  /** Asks the generator to stop this completion; chunks already produced can still be read. */
  public void cancel() {
    cancelled = true;
  }

  /** The whole result, available when the stream has ended (exceptionally if generation failed). */
  public CompletableFuture<Completion> completion() {
    return completion;
  }

  @Override
  public Iterator<Chunk> iterator() {
    return new Iterator<>() {
      private Object next;

      @Override
      public boolean hasNext() {
        if (next == null) {
          next = queue.poll();
        }
        if (next == null && onGeneratorThread.getAsBoolean()) {
          cancel(); // nobody can read this stream: its request stops at the next step
          throw new IllegalStateException("a TokenStream read on the generator's own thread (a dependent of a future it "
              + "completed, or a token callback) would wait for ever for the chunks that thread produces; read it on "
              + "another thread, or use generateAsync");
        }
        if (next == null) {
          try {
            next = queue.take();
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            cancel();
            return false;
          }
          if (next == END) {
            queue.add(END); // stay ended for later calls
          }
        }
        return next != END;
      }

      @Override
      public Chunk next() {
        if (!hasNext()) {
          throw new NoSuchElementException("the stream has ended");
        }
        Chunk c = (Chunk) next;
        next = null;
        return c;
      }
    };
  }

  @Override
  public void close() {
    cancel();
  }
}
