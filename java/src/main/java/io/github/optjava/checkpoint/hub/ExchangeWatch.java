package io.github.optjava.checkpoint.hub;

import java.io.IOException;
import java.net.http.HttpResponse;
import java.net.http.HttpResponse.BodyHandler;
import java.net.http.HttpResponse.BodySubscriber;
import java.net.http.HttpTimeoutException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Flow;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Waits for one asynchronous HTTP exchange, giving up when no data has arrived for the read timeout
 * or when the waiting thread is interrupted, and then cancelling the exchange.
 *
 * <p>Why not {@code HttpClient.send}: its timeout covers only the wait for the response headers,
 * and on Java 17 a thread blocked reading a response body stream ignores interrupts, so a stalled
 * connection would hang a download forever.
 */
final class ExchangeWatch {

  private final long readTimeoutNanos;
  private final long deadline; // System.nanoTime() by which the whole exchange must end (when total is not null)
  private final Duration total;
  private volatile long lastActivity;
  private volatile boolean answered;
  private volatile Flow.Subscription subscription;

  ExchangeWatch(Duration connectTimeout, Duration readTimeout) {
    this(connectTimeout, readTimeout, null);
  }

  /**
   * @param total the longest the whole exchange may take however steadily data trickles in (a small answer sent
   *     a byte at a time would otherwise hold the caller for hours), or {@code null} for no limit (a download)
   */
  ExchangeWatch(Duration connectTimeout, Duration readTimeout, Duration total) {
    this.readTimeoutNanos = readTimeout.toNanos();
    this.total = total;
    this.deadline = total == null ? 0 : System.nanoTime() + total.toNanos();
    // Until the first answer, connecting may take its own timeout on top of the read timeout.
    this.lastActivity = System.nanoTime() + connectTimeout.toNanos();
  }

  /** Wraps a handler so that the headers and every chunk of the body count as activity. */
  <T> BodyHandler<T> track(BodyHandler<T> handler) {
    return info -> {
      answered = true;
      lastActivity = System.nanoTime();
      return new Tracked<>(handler.apply(info));
    };
  }

  /** Whether the server's answer (status and headers) arrived. */
  boolean answered() {
    return answered;
  }

  /**
   * The response once its body is complete.
   *
   * @throws HttpTimeoutException if no data arrived for the read timeout (exchange cancelled)
   * @throws InterruptedException if the caller was interrupted (exchange cancelled)
   * @throws IOException the exchange's own failure, e.g. a refused or broken connection
   */
  <T> HttpResponse<T> await(CompletableFuture<HttpResponse<T>> response)
      throws IOException, InterruptedException {
    while (true) {
      long now = System.nanoTime();
      // (nanoTime may be negative: compared by differences only, and no sentinel value that a difference overflows)
      if (total != null && now - deadline >= 0) {
        abort(response);
        throw new HttpTimeoutException(String.format(Locale.ROOT,
            "the answer took more than %.1f s, the most a request for metadata may take (4 read timeouts "
                + "after the connect timeout; HF_HUB_DOWNLOAD_TIMEOUT sets the read timeout)", total.toMillis() / 1e3));
      }
      long left = total == null ? lastActivity + readTimeoutNanos - now
          : Math.min(lastActivity + readTimeoutNanos - now, deadline - now);
      if (lastActivity + readTimeoutNanos - now <= 0) {
        abort(response);
        throw new HttpTimeoutException(String.format(Locale.ROOT,
            "no data for %.1f s (the read timeout; HF_HUB_DOWNLOAD_TIMEOUT sets it)",
            readTimeoutNanos / 1e9));
      }
      try {
        return response.get(left, TimeUnit.NANOSECONDS);
      } catch (TimeoutException e) {
        // Data may have arrived meanwhile: the loop re-checks against the latest activity.
      } catch (InterruptedException e) {
        abort(response);
        throw e;
      } catch (ExecutionException e) {
        throw rethrow(e.getCause());
      }
    }
  }

  private void abort(CompletableFuture<?> response) {
    response.cancel(true);
    Flow.Subscription s = subscription;
    if (s != null) {
      s.cancel(); // stops the body flow and closes the connection
    }
  }

  private static IOException rethrow(Throwable cause) {
    while ((cause instanceof CompletionException || cause instanceof ExecutionException)
        && cause.getCause() != null) {
      cause = cause.getCause();
    }
    if (cause instanceof IOException io) {
      return io;
    }
    if (cause instanceof RuntimeException re) {
      throw re;
    }
    if (cause instanceof Error error) {
      throw error;
    }
    return new IOException(cause);
  }

  /** Delegates to the real subscriber, recording activity and the subscription (to cancel it). */
  private final class Tracked<T> implements BodySubscriber<T> {
    private final BodySubscriber<T> delegate;

    Tracked(BodySubscriber<T> delegate) {
      this.delegate = delegate;
    }

    @Override
    public void onSubscribe(Flow.Subscription s) {
      subscription = s;
      delegate.onSubscribe(s);
    }

    @Override
    public void onNext(List<ByteBuffer> items) {
      lastActivity = System.nanoTime();
      delegate.onNext(items);
    }

    @Override
    public void onError(Throwable error) {
      delegate.onError(error);
    }

    @Override
    public void onComplete() {
      delegate.onComplete();
    }

    @Override
    public CompletionStage<T> getBody() {
      return delegate.getBody();
    }
  }
}
