package io.github.optjava.backend.cuda;

import static org.bytedeco.cuda.global.cudart.cudaFreeHost;
import static org.bytedeco.cuda.global.cudart.cudaGetErrorString;
import static org.bytedeco.cuda.global.cudart.cudaMallocHost;
import static org.bytedeco.cuda.global.cudart.cudaStreamSynchronize;

import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.javacpp.Pointer;

/**
 * Pinned host memory for one kind of small upload a step makes after its graph (the logit edits, a sampled step's
 * parameters), reused step after step. From pageable memory {@code cudaMemcpyAsync} may first wait for everything the
 * stream holds, the whole forward pass; from pinned memory it is queued at once. The step's read waits for the copy
 * ({@link #waited}); a step that failed before its read is waited for before the memory is written again.
 * One thread at a time, as the {@link CudaOps} that owns it.
 */
final class PinnedStaging {
  private final String what;
  private Pointer host;
  private long bytes;
  private boolean pending;

  PinnedStaging(String what) {
    this.what = what;
  }

  /** At least {@code need} bytes to write and copy from on {@code stream}, the copy to be queued next. */
  Pointer take(long need, CUstream_st stream) {
    if (pending) { // a step that failed before its read may still be copying from it
      check("cudaStreamSynchronize (" + what + ")", cudaStreamSynchronize(stream));
      pending = false;
    }
    if (bytes < need) {
      free();
      long size = Math.max(need, 4096);
      Pointer p = new Pointer();
      check("cudaMallocHost of " + size + " bytes (" + what + ")", cudaMallocHost(p, size));
      host = p;
      bytes = size;
    }
    pending = true;
    return host;
  }

  /** The stream was synchronised: no copy from this memory is pending. */
  void waited() {
    pending = false;
  }

  /** Its size in bytes (0 before the first {@link #take}). */
  long bytes() {
    return bytes;
  }

  void free() {
    if (host != null) {
      cudaFreeHost(host);
      host = null;
      bytes = 0;
    }
  }

  private static void check(String call, int status) {
    if (status != 0) {
      throw new CudaException(call + " failed: " + cudaGetErrorString(status).getString());
    }
  }
}
