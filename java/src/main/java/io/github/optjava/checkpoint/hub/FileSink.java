package io.github.optjava.checkpoint.hub;

import io.github.optjava.checkpoint.CheckpointException;
import java.io.IOException;
import java.net.http.HttpResponse.BodySubscriber;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.security.MessageDigest;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Flow;

/**
 * Writes a response body into a file as it arrives (on HttpClient's threads), hashing it and
 * counting bytes. {@link #stop()} guarantees no write happens after it returns, so the caller can
 * then close and delete the file safely.
 */
final class FileSink implements BodySubscriber<Long> {

  private final FileChannel out;
  private final MessageDigest digest;
  private final DownloadProgress progress;
  private final long limit;
  private final CompletableFuture<Long> body = new CompletableFuture<>();
  private Flow.Subscription subscription;
  private long received;
  private boolean stopped;

  /**
   * @param digest updated with every byte, or {@code null}
   * @param limit the most bytes accepted; more fails the download early
   */
  FileSink(FileChannel out, MessageDigest digest, DownloadProgress progress, long limit) {
    this.out = out;
    this.digest = digest;
    this.progress = progress;
    this.limit = limit;
  }

  @Override
  public synchronized void onSubscribe(Flow.Subscription s) {
    subscription = s;
    if (stopped) {
      s.cancel();
    } else {
      s.request(1);
    }
  }

  @Override
  public synchronized void onNext(List<ByteBuffer> items) {
    if (stopped) {
      return;
    }
    try {
      for (ByteBuffer item : items) {
        int n = item.remaining();
        if (received + n > limit) {
          throw new CheckpointException("the server sent more than the " + limit + " bytes announced.");
        }
        if (digest != null) {
          digest.update(item.duplicate());
        }
        while (item.hasRemaining()) {
          out.write(item);
        }
        received += n;
        progress.advance(n);
      }
    } catch (IOException e) {
      // Unchecked, so that a local disk problem is not mistaken for a network one.
      fail(new CheckpointException("cannot write the download to disk: " + e, e));
      return;
    } catch (RuntimeException e) {
      fail(e);
      return;
    }
    subscription.request(1);
  }

  @Override
  public void onError(Throwable error) {
    body.completeExceptionally(error);
  }

  @Override
  public void onComplete() {
    body.complete(received());
  }

  @Override
  public CompletionStage<Long> getBody() {
    return body;
  }

  /** Whether the server started sending this body. */
  synchronized boolean started() {
    return subscription != null;
  }

  synchronized long received() {
    return received;
  }

  /** Stops writing for good (waits for a write in progress) and cancels the body flow. */
  synchronized void stop() {
    stopped = true;
    if (subscription != null) {
      subscription.cancel();
    }
  }

  private void fail(RuntimeException e) {
    stopped = true;
    subscription.cancel();
    body.completeExceptionally(e);
  }
}
