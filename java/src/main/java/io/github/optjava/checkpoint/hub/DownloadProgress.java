package io.github.optjava.checkpoint.hub;

import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;

/** A download's progress bar on stderr (file name, bytes done of total, speed), or nothing. */
final class DownloadProgress implements AutoCloseable {

  private static final long KIB = 1L << 10;
  private static final long MIB = 1L << 20;

  private final ProgressBar bar;

  private DownloadProgress(ProgressBar bar) {
    this.bar = bar;
  }

  /** A bar for {@code totalBytes} of {@code fileName}, or a no-op when {@code enabled} is false. */
  static DownloadProgress start(boolean enabled, String fileName, long totalBytes) {
    if (!enabled) {
      return new DownloadProgress(null);
    }
    ProgressBar bar =
        new ProgressBarBuilder()
            .setTaskName(fileName)
            .setInitialMax(totalBytes)
            // MiB for weights; KiB keeps small JSON files from showing as "0/0MiB".
            .setUnit(totalBytes >= MIB ? "MiB" : "KiB", totalBytes >= MIB ? MIB : KIB)
            .showSpeed()
            // stderr: stdout may carry generated text that a caller pipes elsewhere.
            .setConsumer(new ConsoleProgressBarConsumer(System.err))
            .build();
    return new DownloadProgress(bar);
  }

  void advance(long bytes) {
    if (bar != null) {
      bar.stepBy(bytes);
    }
  }

  @Override
  public void close() {
    if (bar != null) {
      bar.close();
    }
  }
}
