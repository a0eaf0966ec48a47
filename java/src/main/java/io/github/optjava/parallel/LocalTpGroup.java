package io.github.optjava.parallel;

import io.github.optjava.backend.Mat;
import io.github.optjava.backend.Ops;
import io.github.optjava.backend.cpu.CpuOps;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.BrokenBarrierException;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A tensor-parallel group of {@code world} ranks inside one process, one thread per rank, over CPU
 * matrices: the in-process stand-in for {@code NcclTpGroup}, so the sharded model is tested without GPUs.
 *
 * <p>Every collective is one rendezvous on a {@link CyclicBarrier}: each rank deposits a copy of its
 * data, the last rank to arrive combines the deposits <em>in rank order</em> (so the float sums are the
 * same on every run, whatever the thread timing), and each rank copies the result back. A rank that does
 * not arrive within the timeout breaks the group: the waiting ranks get an {@link IllegalStateException}
 * naming the collective and the missing ranks, and the group is unusable afterwards.
 */
public final class LocalTpGroup implements TpGroup {
  /** How long a collective waits for the slowest rank unless {@link #create(int, Duration)} says otherwise. */
  public static final Duration DEFAULT_TIMEOUT = Duration.ofMinutes(2);

  /** Moves data in and out of CPU matrices (any dtype to read, float32 to write); it holds no state. */
  private static final Ops HOST = new CpuOps();

  private final Rendezvous shared;
  private final int rank;

  private LocalTpGroup(Rendezvous shared, int rank) {
    this.shared = shared;
    this.rank = rank;
  }

  /** The {@code world} members of a new group, rank i at index i; collectives time out after 2 minutes. */
  public static List<TpGroup> create(int world) {
    return create(world, DEFAULT_TIMEOUT);
  }

  /** The {@code world} members of a new group whose collectives give up after {@code timeout}. */
  public static List<TpGroup> create(int world, Duration timeout) {
    if (world < 1) {
      throw new IllegalArgumentException("tensor-parallel world size must be at least 1, got " + world);
    }
    if (timeout.isNegative() || timeout.isZero()) {
      throw new IllegalArgumentException("collective timeout must be positive, got " + timeout);
    }
    Rendezvous shared = new Rendezvous(world, timeout);
    List<TpGroup> ranks = new ArrayList<>(world);
    for (int r = 0; r < world; r++) {
      ranks.add(new LocalTpGroup(shared, r));
    }
    return Collections.unmodifiableList(ranks);
  }

  @Override
  public int rank() {
    return rank;
  }

  @Override
  public int worldSize() {
    return shared.world;
  }

  @Override
  public void allReduce(Mat m) {
    if (shared.world == 1) {
      return;
    }
    HOST.write(m, shared.exchange(rank, Op.ALL_REDUCE, HOST.read(m)));
  }

  @Override
  public void allGather(Mat out, Mat in) {
    if ((long) out.rows() * out.cols() != (long) shared.world * in.rows() * in.cols()) {
      throw new IllegalArgumentException("allGather on rank " + rank + ": a " + out.rows() + " × " + out.cols()
          + " output cannot hold " + shared.world + " × (" + in.rows() + " × " + in.cols() + ")");
    }
    HOST.write(out, shared.exchange(rank, Op.ALL_GATHER, HOST.read(in)));
  }

  /**
   * Breaks the group's barrier for good: ranks waiting in a collective, and any that arrive later, get the
   * "group is broken" error at once. (A reset would not do: it breaks only the ranks already waiting, and a rank
   * that arrives after it would wait for the failed one until the timeout.)
   */
  @Override
  public void abort() {
    shared.aborted = true;
    try {
      // An arrival that cannot wait breaks the barrier (TimeoutException) and it stays broken; should every
      // other rank be waiting already, this arrival trips it instead, and the failed rank's missing deposit
      // makes the combine fail, which breaks it as well.
      shared.barrier.await(0, TimeUnit.NANOSECONDS);
    } catch (TimeoutException | BrokenBarrierException | RuntimeException e) {
      // broken, as intended
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** Nothing to free: the group lives as long as its ranks are referenced. */
  @Override
  public void close() {}

  private enum Op {
    ALL_REDUCE("allReduce"),
    ALL_GATHER("allGather");

    final String label;

    Op(String label) {
      this.label = label;
    }
  }

  /** The state the ranks of one group share. */
  private static final class Rendezvous {
    final int world;
    final Duration timeout;
    final CyclicBarrier barrier;
    // Written by each rank into its own slot before await(), read by the barrier action; the barrier
    // orders those accesses (actions before await happen-before the action, which happens-before returns).
    final float[][] deposits;
    final Op[] ops;
    float[] result;  // the combined data of the last round, read by every rank after await()
    String mismatch; // why the last round could not be combined, or null
    volatile boolean aborted; // a rank failed (abort): the barrier is broken for good

    Rendezvous(int world, Duration timeout) {
      this.world = world;
      this.timeout = timeout;
      this.deposits = new float[world][];
      this.ops = new Op[world];
      this.barrier = new CyclicBarrier(world, this::combine);
    }

    /**
     * Deposits {@code data} for {@code rank}, waits for every rank, and returns the combined result. The
     * result of round n is only replaced in round n + 1, whose action runs after every rank (hence this
     * one) has arrived again, so reading it after {@code await} is safe without a second barrier.
     */
    float[] exchange(int rank, Op op, float[] data) {
      if (aborted) {
        throw new IllegalStateException("rank " + rank + " of " + world + ": " + op.label + " on a group that another "
            + "rank aborted after failing; the group is broken: create a new one");
      }
      deposits[rank] = data;
      ops[rank] = op;
      try {
        barrier.await(timeout.toNanos(), TimeUnit.NANOSECONDS);
      } catch (TimeoutException e) {
        throw new IllegalStateException("rank " + rank + " of " + world + ": " + op.label + " timed out after "
            + timeout.toMillis() + " ms; rank(s) " + missing() + " never arrived. Every rank must call the same "
            + "collectives in the same order; a rank that failed or stopped leaves the others waiting; the group "
            + "is broken: create a new one", e);
      } catch (BrokenBarrierException e) {
        throw new IllegalStateException("rank " + rank + " of " + world + ": " + op.label + " aborted because another "
            + (aborted ? "rank failed" : "rank timed out or was interrupted") + "; the group is broken: create a new one",
            e);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("rank " + rank + " of " + world + ": interrupted while waiting in "
            + op.label + "; the group is broken: create a new one", e);
      }
      if (mismatch != null) {
        throw new IllegalStateException("rank " + rank + " of " + world + ": " + mismatch);
      }
      return result;
    }

    /** The barrier action, run by the last rank to arrive while the others wait. */
    private void combine() {
      mismatch = null;
      result = null;
      if (aborted) { // tripped by abort()'s arrival: the failed rank deposited nothing
        mismatch = "another rank failed and aborted the group; the group is broken: create a new one";
        clearDeposits();
        return;
      }
      Op op = ops[0];
      int n = deposits[0].length;
      for (int r = 1; r < world; r++) {
        if (ops[r] != op || deposits[r].length != n) {
          mismatch = "ranks disagree on the collective: rank 0 called " + op.label + " with " + n + " floats, rank "
              + r + " called " + ops[r].label + " with " + deposits[r].length + "; every rank must call the same "
              + "collectives on matrices of the same shape, in the same order";
          clearDeposits();
          return;
        }
      }
      if (op == Op.ALL_REDUCE) {
        float[] sum = deposits[0].clone();
        for (int r = 1; r < world; r++) { // rank order: the same rounding on every run
          float[] d = deposits[r];
          for (int i = 0; i < n; i++) {
            sum[i] += d[i];
          }
        }
        result = sum;
      } else {
        float[] all = new float[world * n];
        for (int r = 0; r < world; r++) {
          System.arraycopy(deposits[r], 0, all, r * n, n);
        }
        result = all;
      }
      clearDeposits();
    }

    private void clearDeposits() {
      for (int r = 0; r < world; r++) {
        deposits[r] = null;
        ops[r] = null;
      }
    }

    /** The ranks that have not deposited in the current round (a diagnostic: read without the barrier). */
    private List<Integer> missing() {
      List<Integer> out = new ArrayList<>();
      for (int r = 0; r < world; r++) {
        if (deposits[r] == null) {
          out.add(r);
        }
      }
      return out;
    }
  }
}
