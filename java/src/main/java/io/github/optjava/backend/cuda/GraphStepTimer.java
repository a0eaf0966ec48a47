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
 */
final class GraphStepTimer implements AutoCloseable {
  private final CUevent_st start = new CUevent_st();
  private final CUevent_st stop = new CUevent_st();
  private boolean started;
  private double totalMs;
  private long steps;

  GraphStepTimer() {
    if (cudaEventCreate(start) != 0 || cudaEventCreate(stop) != 0) {
      close();
      throw new CudaException("cudaEventCreate failed (graph step timer)");
    }
  }

  /** Before the graph's launch. */
  void start(CUstream_st stream) {
    cudaEventRecord(start, stream);
    started = true;
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
    float[] ms = new float[1];
    if (cudaEventElapsedTime(ms, start, stop) == 0) {
      totalMs += ms[0];
      steps++;
    }
  }

  /** A step that ended otherwise (its logits read, or a failure): not counted. */
  void abandon() {
    started = false;
  }

  double totalMs() {
    return totalMs;
  }

  long steps() {
    return steps;
  }

  void reset() {
    totalMs = 0;
    steps = 0;
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
