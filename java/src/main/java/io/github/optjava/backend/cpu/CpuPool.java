package io.github.optjava.backend.cpu;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A fixed set of daemon worker threads that run one data-parallel loop at a time, for the fast CPU ops.
 *
 * <p>Why not an {@code ExecutorService}: a decode step of a small model is about a hundred short
 * parallel loops (one per linear layer, attention, ...), some taking only tens of microseconds. Futures
 * and a shared queue cost several microseconds per task and per wake-up; here the calling thread takes
 * part in the work itself, idle workers spin briefly before parking (the next loop usually follows within
 * microseconds), and work is handed out in chunks claimed from one atomic counter, which also balances
 * uneven chunks (ragged attention) and a core that is busy with something else.
 *
 * <p>Parallelism is {@code threads}: the caller plus {@code threads - 1} workers. Loops from several
 * calling threads are serialised (one runs at a time); a loop started from inside a loop body runs
 * inline on that thread.
 */
final class CpuPool implements AutoCloseable {

  /** A loop body over the index range {@code [from, to)}. */
  @FunctionalInterface
  interface Range {
    void run(int from, int to);
  }

  /**
   * How long an idle thread spins before parking. Decode issues its parallel loops microseconds apart, and
   * waking a parked thread costs tens of microseconds, so a short spin keeps an empty loop at about 1.2 µs
   * (measured: 2-core VM); parking after it keeps idle workers from burning a core between requests.
   */
  private static final long SPIN_NANOS = 50_000;

  private static final AtomicInteger POOLS = new AtomicInteger();

  private final int threads;
  private final Thread[] workers;
  private final ReentrantLock callers = new ReentrantLock();
  private final ThreadLocal<Boolean> insideLoop = ThreadLocal.withInitial(() -> false);
  private volatile Job job;            // the current loop; written before generation is bumped
  private volatile long generation;    // bumped once per loop: workers wait for it to change
  private volatile boolean closed;

  CpuPool(int threads) {
    if (threads < 1) {
      throw new IllegalArgumentException("threads must be at least 1, got " + threads);
    }
    this.threads = threads;
    this.workers = new Thread[threads - 1];
    int pool = POOLS.incrementAndGet();
    for (int i = 0; i < workers.length; i++) {
      Thread t = new Thread(this::workerLoop, "opt-cpu-" + pool + "-worker-" + (i + 1));
      t.setDaemon(true); // never keeps the JVM alive: a forgotten close() costs nothing at exit
      workers[i] = t;
      t.start();
    }
  }

  boolean isClosed() {
    return closed;
  }

  /** The parallelism: calling thread plus workers. */
  int threads() {
    return threads;
  }

  /**
   * Runs {@code body} over {@code [0, n)} in chunks of {@code grain} indices (the last may be shorter),
   * on all threads, and returns when every chunk is done. The first exception thrown by a chunk is
   * rethrown here (the other chunks still finish first).
   */
  void forRange(int n, int grain, Range body) {
    if (closed) {
      throw new IllegalStateException("FastCpuOps used after close");
    }
    if (n <= 0) {
      return;
    }
    int g = Math.max(1, grain);
    if (workers.length == 0 || n <= g || insideLoop.get()) {
      body.run(0, n); // nothing to share, or nested: splitting would only add overhead (or deadlock)
      return;
    }
    callers.lock();
    try {
      Job j = new Job(n, g, body, workers.length);
      job = j;
      generation++; // volatile write publishes job to the workers
      for (Thread w : workers) {
        LockSupport.unpark(w);
      }
      runChunks(j);
      j.awaitWorkers();
      j.rethrow();
    } finally {
      callers.unlock();
    }
  }

  private void runChunks(Job j) {
    insideLoop.set(true);
    try {
      j.runChunks();
    } finally {
      insideLoop.set(false);
    }
  }

  private void workerLoop() {
    long seen = 0;
    while (true) {
      long spinStart = System.nanoTime();
      while (generation == seen && !closed) {
        if (System.nanoTime() - spinStart < SPIN_NANOS) {
          Thread.onSpinWait();
        } else {
          LockSupport.park(this); // forRange unparks every worker after bumping generation
        }
      }
      if (generation == seen) {
        return; // closed, and no loop is waiting for this worker
      }
      seen = generation; // a loop published before close() still gets this worker: its caller waits for it
      Job j = job;
      runChunks(j);
      j.workerDone();
    }
  }

  /** Stops the workers (they exit once their current chunk is done). Closing twice is harmless. */
  @Override
  public void close() {
    closed = true;
    for (Thread w : workers) {
      LockSupport.unpark(w);
    }
  }

  /** One parallel loop: a chunk counter shared by all threads and a count of workers still busy. */
  private static final class Job {
    private final int n;
    private final int grain;
    private final Range body;
    private final AtomicInteger next = new AtomicInteger();
    private final AtomicInteger busyWorkers;
    private final Thread caller = Thread.currentThread();
    private volatile Throwable failure;

    Job(int n, int grain, Range body, int workers) {
      this.n = n;
      this.grain = grain;
      this.body = body;
      this.busyWorkers = new AtomicInteger(workers);
    }

    void runChunks() {
      int from;
      while ((from = next.getAndAdd(grain)) < n) {
        if (failure != null) {
          continue; // drain the counter quickly: the loop has failed anyway
        }
        try {
          body.run(from, Math.min(n, from + grain));
        } catch (Throwable t) {
          if (failure == null) {
            failure = t;
          }
        }
      }
    }

    void workerDone() {
      if (busyWorkers.decrementAndGet() == 0) {
        LockSupport.unpark(caller);
      }
    }

    void awaitWorkers() {
      long spinStart = System.nanoTime();
      while (busyWorkers.get() > 0) {
        if (System.nanoTime() - spinStart < SPIN_NANOS) {
          Thread.onSpinWait();
        } else {
          LockSupport.park(this); // the last worker unparks the caller
        }
      }
    }

    void rethrow() {
      Throwable t = failure;
      if (t instanceof RuntimeException r) {
        throw r;
      }
      if (t instanceof Error e) {
        throw e;
      }
      if (t != null) {
        throw new IllegalStateException(t);
      }
    }
  }
}
