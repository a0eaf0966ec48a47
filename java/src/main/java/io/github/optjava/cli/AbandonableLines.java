package io.github.optjava.cli;

import java.io.IOException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.BooleanSupplier;

/**
 * Input lines read on a daemon thread of their own, so that a command can stop waiting for the next one while stdin
 * stays open (a request/response client, a slow producer): once its multi-process job broke, or its stdout closed.
 * A blocking read of {@code System.in} cannot be interrupted; the thread is left blocked and ends with the JVM.
 */
final class AbandonableLines implements AutoCloseable {
  private final JsonLines lines;
  private final ExecutorService reader = Executors.newSingleThreadExecutor(r -> {
    Thread t = new Thread(r, "opt-stdin-reader");
    t.setDaemon(true);
    return t;
  });

  AbandonableLines(JsonLines lines) {
    this.lines = lines;
  }

  /**
   * The next line, or null at the end of the input or once {@code giveUp} (asked every 100 ms while waiting) says
   * so; then the line being read, if one comes, is dropped.
   */
  byte[] next(BooleanSupplier giveUp) throws IOException, InterruptedException {
    Future<byte[]> next = reader.submit(lines::next);
    while (true) {
      try {
        return next.get(100, TimeUnit.MILLISECONDS);
      } catch (TimeoutException e) {
        if (giveUp.getAsBoolean()) {
          return null;
        }
      } catch (ExecutionException e) {
        if (e.getCause() instanceof IOException io) {
          throw io;
        }
        if (e.getCause() instanceof Error err) {
          throw err; // an OutOfMemoryError reading a huge line stays what it is
        }
        throw e.getCause() instanceof RuntimeException r ? r : new IllegalStateException(e.getCause());
      }
    }
  }

  @Override
  public void close() {
    reader.shutdownNow();
  }
}
