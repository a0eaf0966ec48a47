package io.github.optjava.backend.cuda;

import static org.bytedeco.cuda.global.cudart.cudaEventCreate;
import static org.bytedeco.cuda.global.cudart.cudaEventDestroy;
import static org.bytedeco.cuda.global.cudart.cudaEventElapsedTime;
import static org.bytedeco.cuda.global.cudart.cudaEventRecord;

import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.cudart.CUstream_st;

/**
 * The GPU time of replayed decode steps: from just before the graph's launch to the end of the copy that reads its
 * tokens back, with two CUDA events per step. Set next to the step's wall time, it splits a decode step into
 * GPU work and what the host adds (preparing the step in Java, the launch, the wait for the result): which of the
 * two bounds batch-1 decode. {@code opt bench} turns it on ({@link CudaOps#timeGraphSteps}); off, it costs nothing.
 *
 * <p>It also times the host's part of the same steps (session 18: the host added 0.05 ms per step at opt-1.3b batch 1
 * and 0.13 ms at 6.7b, not explained): the walk through the step's ops that checks them against the capture and
 * stages the new index values (from {@link #walkStart} to {@link #start}), the {@code cudaGraphLaunch} call, and the
 * wait from the launch's return to the end of the synchronisation that reads the tokens. The rest of a step's wall
 * time is outside these ops (the model's and the caller's bookkeeping).
 */
final class GraphStepTimer implements AutoCloseable {
  private final CUevent_st start = new CUevent_st();
  private final CUevent_st stop = new CUevent_st();
  private boolean started;
  private double totalMs;
  private long steps;
  private long walkStartNs = -1;  // -1: this step's walk was not seen (a step that was not a replay)
  private long launchStartNs;
  private long launchEndNs;
  private long walkNs;
  private long launchNs;
  private long waitNs;

  GraphStepTimer() {
    if (cudaEventCreate(start) != 0 || cudaEventCreate(stop) != 0) {
      close();
      throw new CudaException("cudaEventCreate failed (graph step timer)");
    }
  }

  /** When a replayed step begins (before its ops are walked). */
  void walkStart() {
    walkStartNs = System.nanoTime();
  }

  /** Before the graph's launch. */
  void start(CUstream_st stream) {
    launchStartNs = System.nanoTime();
    cudaEventRecord(start, stream);
    started = true;
  }

  /** After {@code cudaGraphLaunch} returned. */
  void launched() {
    launchEndNs = System.nanoTime();
  }

  /** After the read-back is queued; {@link #collect} after the stream has been synchronised. */
  void stop(CUstream_st stream) {
    if (started) {
      cudaEventRecord(stop, stream);
    }
  }

  /** Adds the step's time (the stream is synchronised: both events have completed). */
  void collect() {
    if (!started) {
      return;
    }
    started = false;
    long now = System.nanoTime();
    float[] ms = new float[1];
    if (cudaEventElapsedTime(ms, start, stop) == 0) {
      totalMs += ms[0];
      steps++;
      walkNs += walkStartNs >= 0 ? launchStartNs - walkStartNs : 0;
      launchNs += launchEndNs - launchStartNs;
      waitNs += now - launchEndNs;
    }
    walkStartNs = -1;
  }

  /** A step that ended otherwise (its logits read, or a failure): not counted. */
  void abandon() {
    started = false;
    walkStartNs = -1;
  }

  double totalMs() {
    return totalMs;
  }

  long steps() {
    return steps;
  }

  /** Host milliseconds of the counted steps: the ops' walk, the graph launch call, the wait (see the class). */
  double walkMs() {
    return walkNs / 1e6;
  }

  double launchMs() {
    return launchNs / 1e6;
  }

  double waitMs() {
    return waitNs / 1e6;
  }

  void reset() {
    totalMs = 0;
    steps = 0;
    walkNs = 0;
    launchNs = 0;
    waitNs = 0;
  }

  @Override
  public void close() {
    if (!start.isNull()) {
      cudaEventDestroy(start);
    }
    if (!stop.isNull()) {
      cudaEventDestroy(stop);
    }
  }
}
