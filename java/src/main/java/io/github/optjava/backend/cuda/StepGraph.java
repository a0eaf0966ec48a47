package io.github.optjava.backend.cuda;

import static org.bytedeco.cuda.global.cudart.cudaFreeHost;
import static org.bytedeco.cuda.global.cudart.cudaGraphDestroy;
import static org.bytedeco.cuda.global.cudart.cudaGraphExecDestroy;
import static org.bytedeco.cuda.global.cudart.cudaMallocHost;
import static org.bytedeco.cuda.global.cudart.cudaMemcpyAsync;
import static org.bytedeco.cuda.global.cudart.cudaMemcpyHostToDevice;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.cuda.cudart.CUgraphExec_st;
import org.bytedeco.cuda.cudart.CUgraph_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.Pointer;

/**
 * One model step captured as a CUDA graph and replayed (see {@link CudaOps#graphStep}): the record of what
 * the step did, so that a replay can check it is the same step, and the memory that the graph's nodes name.
 *
 * <ul>
 *   <li>Activations: the step's {@code alloc} calls, in order, get the buffers of a {@link Workspace}
 *       shared by the graphs of one batch size and tokens per sequence (they never run at the same time: one
 *       stream, one step at a time), so a replay writes where the capture wrote.</li>
 *   <li>Index arrays: each distinct Java array of the step (by identity: the model passes one {@code slots}
 *       array to every layer) gets a region of this graph's pinned staging and device arena; the capture
 *       records its copy as a graph node, which reads the staging again at every launch. A replay only
 *       writes the new values into the staging.</li>
 *   <li>Ops: a signature per op (its name, the device addresses and sizes it was given); a replay computes
 *       the same and stops at the first difference, before anything was launched.</li>
 * </ul>
 */
final class StepGraph implements AutoCloseable {
  /** Activation buffers of one step shape (batch size, tokens per sequence), in the order the step allocates them. */
  static final class Workspace {
    final List<Pointer> buffers = new ArrayList<>();
    final List<Long> sizes = new ArrayList<>();
    long bytes;
  }

  private static final long ARENA_INTS = 1 << 16;

  /**
   * What a graph is replayed for: the KV store it reads and writes (compared by identity), the batch size, the new
   * tokens per sequence (1 for decode, more for a step of drafts) and the padded block-table width.
   */
  record Key(CudaKvStore store, int batch, int tokensPerSequence, int variant) {}

  final Key key;
  final Workspace workspace;
  private final List<Long> signatures = new ArrayList<>();
  private final List<long[]> regions = new ArrayList<>(); // distinct index arrays: {offset, length}
  private final Pointer host = new Pointer();  // pinned staging
  private final Pointer device;                // device arena
  private long used;
  private CUgraph_st graph;
  private CUgraphExec_st exec;

  // Cursors of the capture or replay in progress.
  private int allocCursor;
  private int opCursor;
  private int countAllocsOfCapture; // allocations the captured step made (a replay must make as many)
  private final Map<int[], Integer> seen = new IdentityHashMap<>();

  StepGraph(Key key, Workspace workspace, CudaOps.Allocator alloc) {
    this.key = key;
    this.workspace = workspace;
    int st = cudaMallocHost(host, 4 * ARENA_INTS);
    if (st != 0) {
      throw new CudaException("cudaMallocHost for a graph's index staging failed: error " + st);
    }
    try {
      device = alloc.malloc(4 * ARENA_INTS, "graph index arena");
    } catch (RuntimeException e) {
      cudaFreeHost(host);
      throw e;
    }
  }

  boolean instantiated() {
    return exec != null;
  }

  void begin() {
    allocCursor = 0;
    opCursor = 0;
    seen.clear();
  }

  /** Capture: the next workspace buffer, allocated on first use. */
  Pointer captureAlloc(long sizeClass, CudaOps.Allocator alloc) {
    int i = allocCursor++;
    if (i < workspace.buffers.size()) {
      if (workspace.sizes.get(i) != sizeClass) {
        throw new IllegalStateException("graph workspace buffer " + i + " is " + workspace.sizes.get(i)
            + " bytes, the step asked for " + sizeClass + ": steps of one shape must allocate alike");
      }
      return workspace.buffers.get(i);
    }
    Pointer p = alloc.malloc(sizeClass, "graph workspace");
    workspace.buffers.add(p);
    workspace.sizes.add(sizeClass);
    workspace.bytes += sizeClass;
    return p;
  }

  /** Replay: the buffer the capture got for this allocation. */
  Pointer replayAlloc(long sizeClass) {
    int i = allocCursor++;
    if (i >= workspace.buffers.size() || workspace.sizes.get(i) != sizeClass) {
      throw new IllegalStateException("graph replay diverged at allocation " + i);
    }
    return workspace.buffers.get(i);
  }

  /** Capture: stages the array in its own region and queues its copy (recorded as a graph node). */
  IntPointer captureInts(int[] values, CUstream_st stream) {
    Integer known = seen.get(values);
    if (known != null) {
      return IndexUploads.at(device, regions.get(known)[0]);
    }
    long n = Math.max(values.length, 1);
    if (used + n > ARENA_INTS) {
      throw new IllegalStateException("a step's index arrays exceed the graph arena (" + ARENA_INTS + " ints)");
    }
    long offset = used;
    used += (n + 31) / 32 * 32;
    seen.put(values, regions.size());
    regions.add(new long[] {offset, values.length});
    if (values.length > 0) {
      IndexUploads.at(host, offset).put(values, 0, values.length);
      int st = cudaMemcpyAsync(IndexUploads.at(device, offset), IndexUploads.at(host, offset), 4L * values.length,
          cudaMemcpyHostToDevice, stream);
      if (st != 0) {
        throw new CudaException("index copy in graph capture failed: error " + st);
      }
    }
    return IndexUploads.at(device, offset);
  }

  /** Replay: writes the array's new values where the graph's copy node reads them. */
  IntPointer replayInts(int[] values) {
    Integer known = seen.get(values);
    if (known != null) {
      return IndexUploads.at(device, regions.get(known)[0]);
    }
    int d = seen.size();
    if (d >= regions.size() || regions.get(d)[1] != values.length) {
      throw new IllegalStateException("graph replay diverged at index array " + d);
    }
    seen.put(values, d);
    long offset = regions.get(d)[0];
    if (values.length > 0) {
      IndexUploads.at(host, offset).put(values, 0, values.length);
    }
    return IndexUploads.at(device, offset);
  }

  void captureOp(long signature) {
    signatures.add(signature);
    opCursor++;
  }

  /** Replay: whether the op is the one the capture recorded at this point. */
  boolean replayOpMatches(long signature) {
    int i = opCursor++;
    return i < signatures.size() && signatures.get(i) == signature;
  }

  /** After a replay's last op: did the step do everything the capture did? */
  boolean replayComplete() {
    return opCursor == signatures.size() && allocCursor == countAllocsOfCapture && seen.size() == regions.size();
  }

  void finishCapture(CUgraph_st graph, CUgraphExec_st exec) {
    this.graph = graph;
    this.exec = exec;
    this.countAllocsOfCapture = allocCursor;
  }

  CUgraphExec_st exec() {
    return exec;
  }

  int ops() {
    return signatures.size();
  }

  @Override
  public void close() {
    if (exec != null) {
      cudaGraphExecDestroy(exec);
      exec = null;
    }
    if (graph != null) {
      cudaGraphDestroy(graph);
      graph = null;
    }
    if (!host.isNull()) {
      cudaFreeHost(host);
      host.setNull();
    }
    // The device arena and the workspace are freed by CudaOps (the workspace outlives single graphs).
  }

  Pointer deviceArena() {
    return device;
  }
}
