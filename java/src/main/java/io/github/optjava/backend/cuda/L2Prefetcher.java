package io.github.optjava.backend.cuda;

import static org.bytedeco.cuda.global.cudart.cudaEventCreateWithFlags;
import static org.bytedeco.cuda.global.cudart.cudaEventDestroy;
import static org.bytedeco.cuda.global.cudart.cudaEventDisableTiming;
import static org.bytedeco.cuda.global.cudart.cudaEventRecord;
import static org.bytedeco.cuda.global.cudart.cudaGetErrorString;
import static org.bytedeco.cuda.global.cudart.cudaStreamCreateWithFlags;
import static org.bytedeco.cuda.global.cudart.cudaStreamDestroy;
import static org.bytedeco.cuda.global.cudart.cudaStreamNonBlocking;
import static org.bytedeco.cuda.global.cudart.cudaStreamWaitEvent;

import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.javacpp.Pointer;

/**
 * Streams weights towards L2 on a second stream while the main stream runs kernels that move few bytes
 * ({@code -Dopt.cuda.prefetch=load|hint}, session 12, not yet run on a GPU; {@link CudaOps#prefetch}): a fork (an
 * event on the main stream that the second one waits for), {@code opt_prefetch_l2} per weight there, and a join
 * (an event on the second stream that the main one waits for) before the op that reads them. Inside a stream
 * capture the fork and join become edges of the graph, so a replayed graph holds the branch; a capture must not end
 * with the branch unjoined. Nothing is computed on the second stream: results never depend on it.
 */
final class L2Prefetcher implements AutoCloseable {
  private final CUstream_st side = new CUstream_st();
  private final CUevent_st fork = new CUevent_st();
  private final CUevent_st join = new CUevent_st();
  private final int hint; // opt_prefetch_l2's: 0 loads, 1 prefetch hints
  private boolean pending; // forked and not yet joined

  L2Prefetcher(boolean hints) {
    this.hint = hints ? 1 : 0;
    check("cudaStreamCreateWithFlags", cudaStreamCreateWithFlags(side, cudaStreamNonBlocking));
    try {
      check("cudaEventCreateWithFlags", cudaEventCreateWithFlags(fork, cudaEventDisableTiming));
      check("cudaEventCreateWithFlags", cudaEventCreateWithFlags(join, cudaEventDisableTiming));
    } catch (RuntimeException e) {
      close();
      throw e;
    }
  }

  /** Forks from {@code main}, starts streaming each of {@code bytes[i]} at {@code weights[i]}, and leaves it pending. */
  void start(CUstream_st main, Pointer[] weights, long[] bytes) {
    join(main); // one branch at a time
    check("cudaEventRecord (fork)", cudaEventRecord(fork, main));
    check("cudaStreamWaitEvent (fork)", cudaStreamWaitEvent(side, fork, 0));
    pending = true; // from here a join is owed, whatever fails below
    RuntimeException failed = null;
    try {
      for (int i = 0; i < weights.length; i++) {
        int st = OptKernels.opt_prefetch_l2(weights[i], bytes[i], hint, side);
        if (st != 0) {
          throw new CudaException("opt_prefetch_l2 failed: " + cudaGetErrorString(st).getString());
        }
      }
    } catch (RuntimeException e) {
      failed = e;
    }
    // Recorded even after a failed launch: the join event must mark this fork's branch, or the owed join would wait
    // on an older record (inside a capture: an event of no capture or of another one, which is invalid).
    int st = cudaEventRecord(join, side);
    if (failed != null) {
      throw failed;
    }
    check("cudaEventRecord (join)", st);
  }

  /** Makes {@code main} wait for the pending branch, if any. */
  void join(CUstream_st main) {
    if (pending) {
      pending = false;
      check("cudaStreamWaitEvent (join)", cudaStreamWaitEvent(main, join, 0));
    }
  }

  boolean pending() {
    return pending;
  }

  @Override
  public void close() { // idempotent: a handle destroyed twice may be another object's by then
    pending = false;
    if (!join.isNull()) {
      cudaEventDestroy(join);
      join.setNull();
    }
    if (!fork.isNull()) {
      cudaEventDestroy(fork);
      fork.setNull();
    }
    if (!side.isNull()) {
      cudaStreamDestroy(side);
      side.setNull();
    }
  }

  private static void check(String what, int status) {
    if (status != 0) {
      throw new CudaException(what + " failed: " + cudaGetErrorString(status).getString());
    }
  }
}
