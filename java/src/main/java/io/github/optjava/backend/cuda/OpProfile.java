package io.github.optjava.backend.cuda;

import static org.bytedeco.cuda.global.cudart.cudaEventCreate;
import static org.bytedeco.cuda.global.cudart.cudaEventDestroy;
import static org.bytedeco.cuda.global.cudart.cudaEventElapsedTime;
import static org.bytedeco.cuda.global.cudart.cudaEventRecord;
import static org.bytedeco.cuda.global.cudart.cudaEventSynchronize;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.cudart.CUstream_st;

/**
 * GPU time per op name, measured with CUDA events between consecutive ops of eager steps
 * ({@code -Dopt.cuda.profile=true}; graphs are off then, since a graph is one launch). An event is
 * recorded before each op and at the end of the step; the time between two events is the earlier op's
 * (kernels run in stream order, so it is that op's GPU time plus any gap where the GPU waited for the
 * host, which is exactly what a step loses to launches). A diagnostic: events cost a little each.
 */
final class OpProfile implements AutoCloseable {
  private final CUstream_st stream;
  private final List<CUevent_st> pool = new ArrayList<>();
  private final List<String> names = new ArrayList<>();
  private int used;
  private final Map<String, double[]> totals = new TreeMap<>(); // name -> {ms, count}

  OpProfile(CUstream_st stream) {
    this.stream = stream;
  }

  /** An op named {@code name} is about to be queued. */
  void before(String name) {
    record();
    names.add(name);
  }

  /** The step ends: waits for it and adds each op's time to the totals. */
  void endStep() {
    if (names.isEmpty()) {
      return;
    }
    record();
    cudaEventSynchronize(pool.get(used - 1));
    float[] ms = new float[1];
    for (int i = 0; i < names.size(); i++) {
      cudaEventElapsedTime(ms, pool.get(i), pool.get(i + 1));
      double[] t = totals.computeIfAbsent(names.get(i), k -> new double[2]);
      t[0] += ms[0];
      t[1]++;
    }
    names.clear();
    used = 0;
  }

  private void record() {
    if (used == pool.size()) {
      CUevent_st e = new CUevent_st();
      if (cudaEventCreate(e) != 0) {
        throw new CudaException("cudaEventCreate failed (op profile)");
      }
      pool.add(e);
    }
    cudaEventRecord(pool.get(used++), stream);
  }

  /**
   * Forgets the totals so far (warm-up runs: cold caches, lazily loaded cuBLAS kernels, algorithm choice). Between
   * steps only: ops queued outside a step (a GEMM timed on its own) were added to the next step's totals.
   */
  void reset() {
    totals.clear();
  }

  /** One line per op name, the largest total first: total ms, calls, ms per call, share of all. */
  String summary() {
    double all = totals.values().stream().mapToDouble(t -> t[0]).sum();
    StringBuilder b = new StringBuilder(String.format(Locale.ROOT, "GPU time per op (%.1f ms in all):%n", all));
    totals.entrySet().stream()
        .sorted((x, y) -> Double.compare(y.getValue()[0], x.getValue()[0]))
        .forEach(e -> b.append(String.format(Locale.ROOT, "  %-22s %10.2f ms %8d calls %9.4f ms/call %5.1f %%%n",
            e.getKey(), e.getValue()[0], (long) e.getValue()[1], e.getValue()[0] / e.getValue()[1],
            100 * e.getValue()[0] / all)));
    return b.toString();
  }

  @Override
  public void close() {
    pool.forEach(e -> cudaEventDestroy(e));
    pool.clear();
  }
}
