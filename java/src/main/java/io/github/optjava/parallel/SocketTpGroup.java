package io.github.optjava.parallel;

import io.github.optjava.backend.Mat;
import io.github.optjava.backend.Ops;
import io.github.optjava.backend.cpu.CpuOps;
import java.util.ArrayList;
import java.util.List;

/**
 * A tensor-parallel group across processes over {@link Mesh} links, for CPU ranks (on GPUs the group is
 * an {@code NcclTpGroup}). Each rank sends its data to every other member and combines what it receives
 * <em>in rank order</em>, exactly as {@link LocalTpGroup} does, so a group of processes gives the same
 * bits as the same group of threads. Every member sends to everyone: fine for the few ranks of a CPU job.
 */
public final class SocketTpGroup implements TpGroup {
  private static final Ops HOST = new CpuOps();
  /** Sends run beside the receives, so that no two ranks block on each other's full socket buffers. */
  private static final java.util.concurrent.ExecutorService SENDERS = java.util.concurrent.Executors
      .newCachedThreadPool(task -> {
        Thread t = new Thread(task, "opt-tp-send");
        t.setDaemon(true);
        return t;
      });

  private final Mesh mesh;
  private final int[] members; // the job ranks of this group, in group-rank order
  private final int rank;

  /**
   * @param members the job ranks of the group in group-rank order; this process is one of them
   */
  public SocketTpGroup(Mesh mesh, int[] members) {
    this.mesh = mesh;
    this.members = members.clone();
    int me = -1;
    for (int i = 0; i < members.length; i++) {
      if (members[i] == mesh.rank()) {
        me = i;
      }
    }
    if (me < 0) {
      throw new IllegalArgumentException("rank " + mesh.rank() + " is not in the group " + java.util.Arrays.toString(
          members));
    }
    this.rank = me;
  }

  @Override
  public int rank() {
    return rank;
  }

  @Override
  public int worldSize() {
    return members.length;
  }

  @Override
  public void allReduce(Mat m) {
    if (members.length == 1) {
      return;
    }
    float[][] all = exchange(HOST.read(m));
    float[] sum = all[0].clone();
    for (int r = 1; r < all.length; r++) { // rank order: the same rounding on every rank and run
      float[] d = all[r];
      for (int i = 0; i < sum.length; i++) {
        sum[i] += d[i];
      }
    }
    HOST.write(m, sum);
  }

  @Override
  public void allGather(Mat out, Mat in) {
    if ((long) out.rows() * out.cols() != (long) members.length * in.rows() * in.cols()) {
      throw new IllegalArgumentException("allGather on rank " + rank + ": a " + out.rows() + " × " + out.cols()
          + " output cannot hold " + members.length + " × (" + in.rows() + " × " + in.cols() + ")");
    }
    float[][] all = exchange(HOST.read(in));
    int n = all[0].length;
    float[] joined = new float[members.length * n];
    for (int r = 0; r < all.length; r++) {
      System.arraycopy(all[r], 0, joined, r * n, n);
    }
    HOST.write(out, joined);
  }

  /** Every member's data in group-rank order (this rank's included). */
  private float[][] exchange(float[] mine) {
    List<java.util.concurrent.Future<?>> senders = new ArrayList<>();
    for (int r = 0; r < members.length; r++) {
      if (r == rank) {
        continue;
      }
      Mesh.Link link = mesh.link(members[r], Mesh.Channel.COLLECTIVE);
      senders.add(SENDERS.submit(() -> {
        link.writeFloats(mine);
        link.flush();
      }));
    }
    float[][] all = new float[members.length][];
    all[rank] = mine;
    for (int r = 0; r < members.length; r++) {
      if (r != rank) {
        all[r] = mesh.link(members[r], Mesh.Channel.COLLECTIVE).readFloats();
        if (all[r].length != mine.length) {
          throw new IllegalStateException("rank " + rank + " of the group: rank " + r + " sent " + all[r].length
              + " floats, this rank has " + mine.length + "; every rank must call the same collectives in order");
        }
      }
    }
    for (java.util.concurrent.Future<?> f : senders) {
      try {
        f.get();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted in a collective", e);
      } catch (java.util.concurrent.ExecutionException e) {
        throw e.getCause() instanceof RuntimeException r ? r : new IllegalStateException(e.getCause());
      }
    }
    return all;
  }

  /** The links belong to the mesh, which its owner closes. */
  @Override
  public void close() {}
}
