package io.github.optjava.checkpoint;

import java.util.Collection;
import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;

/**
 * A checkpoint that shows a progress bar on stderr as its tensors are taken (loading a large model onto
 * a device takes a while). The bar appears only on an interactive terminal, so logs and tests stay clean.
 */
public final class LoadProgress implements Checkpoint {
  private static final long MIB = 1L << 20;

  private final Checkpoint delegate;
  private final String task;
  private final long totalBytes;
  private ProgressBar bar;

  private LoadProgress(Checkpoint delegate, String task, long totalBytes) {
    this.delegate = delegate;
    this.task = task;
    this.totalBytes = totalBytes;
  }

  /**
   * {@code checkpoint} itself when stderr is not a terminal, else a wrapper whose bar expects every
   * tensor to be taken {@code passes} times (once per tensor-parallel rank).
   */
  public static Checkpoint wrap(Checkpoint checkpoint, String task, int passes) {
    return wrap(checkpoint, task, passes, System.console() != null);
  }

  static Checkpoint wrap(Checkpoint checkpoint, String task, int passes, boolean interactive) {
    if (!interactive) {
      return checkpoint;
    }
    long bytes = 0;
    for (TensorInfo t : checkpoint.tensors()) {
      bytes += t.byteSize();
    }
    return new LoadProgress(checkpoint, task, bytes * passes);
  }

  @Override
  public String format() {
    return delegate.format();
  }

  @Override
  public Collection<TensorInfo> tensors() {
    return delegate.tensors();
  }

  @Override
  public boolean contains(String name) {
    return delegate.contains(name);
  }

  @Override
  public synchronized Tensor tensor(String name) {
    Tensor t = delegate.tensor(name);
    if (bar == null) {
      bar = new ProgressBarBuilder().setTaskName(task).setInitialMax(Math.max(1, totalBytes / MIB))
          .setUnit("MiB", 1).showSpeed().setConsumer(new ConsoleProgressBarConsumer(System.err)).build();
    }
    bar.stepBy(t.info().byteSize() / MIB);
    return t;
  }

  @Override
  public void validateData() {
    delegate.validateData();
  }

  @Override
  public synchronized void close() {
    if (bar != null) {
      bar.stepTo(bar.getMax());
      bar.close();
      bar = null;
    }
    delegate.close();
  }

  @Override
  public String toString() {
    return delegate.toString();
  }
}
