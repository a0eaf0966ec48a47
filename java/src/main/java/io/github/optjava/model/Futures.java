package io.github.optjava.model;

import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;

/** Waiting for work handed to a rank's or a part's own thread, the same way everywhere in this package. */
final class Futures {
  private Futures() {}

  /**
   * The task's result, waiting through interrupts (the task goes on regardless: returning early would let the
   * caller free memory it still uses); the interrupt is kept for the caller. A failure is rethrown as it was.
   */
  static <T> T await(Future<T> f) {
    boolean interrupted = false;
    try {
      while (true) {
        try {
          return f.get();
        } catch (InterruptedException e) {
          interrupted = true;
        }
      }
    } catch (ExecutionException e) {
      Throwable c = e.getCause();
      if (c instanceof RuntimeException re) {
        throw re;
      }
      if (c instanceof Error err) {
        throw err;
      }
      throw new IllegalStateException(c);
    } finally {
      if (interrupted) {
        Thread.currentThread().interrupt();
      }
    }
  }
}
