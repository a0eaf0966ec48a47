package io.github.optjava.backend.cuda;

import static org.bytedeco.cuda.global.cudart.cudaFree;
import static org.bytedeco.cuda.global.cudart.cudaFreeHost;
import static org.bytedeco.cuda.global.cudart.cudaMallocHost;
import static org.bytedeco.cuda.global.cudart.cudaMemcpyAsync;
import static org.bytedeco.cuda.global.cudart.cudaMemcpyHostToDevice;
import static org.bytedeco.cuda.global.cudart.cudaStreamSynchronize;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.Pointer;

/**
 * The host index arrays of the ops (token ids, positions, cache slots, block tables) on their way to the
 * device, without making the host wait: each array is copied into a pinned staging arena and sent by an
 * asynchronous copy on the ops' stream, at its own offset of a device arena of the same size. A
 * synchronous {@code cudaMemcpy} per array (the first version) blocked the host until the GPU had
 * finished everything queued before it, a hundred times per decode step.
 *
 * <p>The arena is append-only between synchronisation points: the staging bytes of a queued copy are
 * never overwritten before the copy ran. {@link #reset} starts over; call it only when the stream is known
 * idle (after the step's synchronous read of the logits). When the arena is full it synchronises and
 * starts over itself. An array whose contents were already uploaded since the last reset (the slots and
 * block tables that every layer of a step uses) is not copied again.
 */
final class IndexUploads implements AutoCloseable {
  private static final int ALIGN_INTS = 32; // 128-byte aligned offsets

  private final CudaOps.Allocator deviceAlloc;
  private final CUstream_st stream;
  private Pointer host;    // pinned staging, capacity ints
  private Pointer device;  // device arena, capacity ints
  private long capacity;
  private long used;
  private final Map<Contents, Long> seen = new HashMap<>(); // contents uploaded since the reset -> offset

  /** An int array compared by contents (a private copy: the caller may reuse its array). */
  private record Contents(int[] values, int hash) {
    static Contents of(int[] values) {
      return new Contents(values, Arrays.hashCode(values));
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Contents c && c.hash == hash && Arrays.equals(c.values, values);
    }

    @Override
    public int hashCode() {
      return hash;
    }
  }

  IndexUploads(CudaOps.Allocator deviceAlloc, CUstream_st stream, long initialInts) {
    this.deviceAlloc = deviceAlloc;
    this.stream = stream;
    allocate(initialInts);
  }

  private void allocate(long ints) {
    Pointer h = new Pointer();
    int st = cudaMallocHost(h, 4 * ints);
    if (st != 0) {
      throw new CudaException("cudaMallocHost of " + 4 * ints + " bytes for the index staging failed: error " + st);
    }
    try {
      device = deviceAlloc.malloc(4 * ints, "index arena");
    } catch (RuntimeException e) {
      cudaFreeHost(h);
      throw e;
    }
    host = h;
    capacity = ints;
    used = 0;
  }

  /** A device pointer to a copy of {@code values}, valid for work queued before the next {@link #reset}. */
  IntPointer upload(int[] values) {
    Contents key = Contents.of(values);
    Long earlier = seen.get(key);
    if (earlier != null) {
      return at(device, earlier);
    }
    long n = Math.max(values.length, 1);
    if (used + n > capacity) {
      sync();
      if (n > capacity) { // grow: the old arena is idle after sync()
        free();
        allocate(Math.max(n, 2 * capacity));
      }
    }
    long offset = used;
    used += (n + ALIGN_INTS - 1) / ALIGN_INTS * ALIGN_INTS;
    if (values.length > 0) {
      at(host, offset).put(values, 0, values.length);
      int st = cudaMemcpyAsync(at(device, offset), at(host, offset), 4L * values.length, cudaMemcpyHostToDevice,
          stream);
      if (st != 0) {
        throw new CudaException("index upload (cudaMemcpyAsync of " + values.length + " ints) failed: error " + st);
      }
    }
    seen.put(new Contents(values.clone(), key.hash), offset);
    return at(device, offset);
  }

  /** Starts the arena over; the caller guarantees the stream has finished the copies queued so far. */
  void reset() {
    used = 0;
    seen.clear();
  }

  private void sync() {
    int st = cudaStreamSynchronize(stream); // this stream's copies only: other streams may be capturing
    if (st != 0) {
      throw new CudaException("cudaStreamSynchronize failed: error " + st);
    }
    reset();
  }

  /**
   * An int pointer at {@code base + 4 × offsetInts}, made by address (no JavaCPP position arithmetic, whose
   * unit differs between typed pointers and the {@code void*} of {@code cudaMemcpyAsync}).
   */
  static IntPointer at(Pointer base, long offsetInts) {
    long target = base.address() + 4 * offsetInts; // not named "address": that is the field set below
    return new IntPointer((Pointer) null) {
      {
        address = target;
      }
    };
  }

  private void free() {
    if (host != null) {
      cudaFreeHost(host);
      host = null;
    }
    if (device != null) {
      cudaFree(device);
      device = null;
    }
  }

  @Override
  public void close() {
    free();
    seen.clear();
  }
}
