package io.github.optjava.cli;

import static org.bytedeco.cuda.global.cudart.cudaEventCreate;
import static org.bytedeco.cuda.global.cudart.cudaEventDestroy;
import static org.bytedeco.cuda.global.cudart.cudaEventElapsedTime;
import static org.bytedeco.cuda.global.cudart.cudaEventRecord;
import static org.bytedeco.cuda.global.cudart.cudaEventSynchronize;
import static org.bytedeco.cuda.global.cudart.cudaFree;
import static org.bytedeco.cuda.global.cudart.cudaGetDeviceProperties;
import static org.bytedeco.cuda.global.cudart.cudaGetErrorString;
import static org.bytedeco.cuda.global.cudart.cudaMalloc;
import static org.bytedeco.cuda.global.cudart.cudaMemcpy;
import static org.bytedeco.cuda.global.cudart.cudaMemcpyDeviceToDevice;
import static org.bytedeco.cuda.global.cudart.cudaMemset;
import static org.bytedeco.cuda.global.cudart.cudaSetDevice;

import io.github.optjava.backend.cuda.CudaException;
import java.util.Arrays;
import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.cudart.cudaDeviceProp;
import org.bytedeco.javacpp.Pointer;

/**
 * The device-to-device copy bandwidth of a GPU, the practical memory-bandwidth limit that {@code opt bench}
 * compares decode steps with (a decode step mostly streams weights and KV cache once, as a copy streams its
 * buffer). Loaded only on the CUDA path: the CPU path must never load {@code org.bytedeco.cuda} classes.
 */
final class CopyBandwidth {
  /** Far larger than the L2 cache (50 MiB on an H100), so the copy measures device memory, not the cache. */
  static final long BUFFER_BYTES = 256L << 20;
  private static final int WARM_UP = 2;
  private static final int TRIALS = 9;

  /** The median bandwidth in GB/s (1e9 bytes, read + written) and the device's name. */
  record Result(double gbps, String deviceName) {}

  private CopyBandwidth() {}

  /**
   * Copies one {@link #BUFFER_BYTES} buffer into another on {@code device}, timed with CUDA events (host
   * timers would add the launch latency, several percent of a 0.2 ms copy); the median of the trials after
   * the warm-up. Each copy counts twice its size: it reads the source and writes the destination.
   */
  static Result measure(int device) {
    check("cudaSetDevice", cudaSetDevice(device));
    String name;
    try (cudaDeviceProp prop = new cudaDeviceProp()) {
      check("cudaGetDeviceProperties", cudaGetDeviceProperties(prop, device));
      name = prop.name().getString().trim();
    }
    Pointer src = new Pointer();
    Pointer dst = new Pointer();
    CUevent_st start = new CUevent_st();
    CUevent_st stop = new CUevent_st();
    try {
      check("cudaMalloc", cudaMalloc(src, BUFFER_BYTES));
      check("cudaMalloc", cudaMalloc(dst, BUFFER_BYTES));
      check("cudaMemset", cudaMemset(src, 1, BUFFER_BYTES)); // defined contents, pages mapped before timing
      check("cudaEventCreate", cudaEventCreate(start));
      check("cudaEventCreate", cudaEventCreate(stop));
      float[] ms = new float[1];
      double[] gbps = new double[TRIALS];
      for (int i = 0; i < WARM_UP + TRIALS; i++) {
        check("cudaEventRecord", cudaEventRecord(start));
        check("cudaMemcpy", cudaMemcpy(dst, src, BUFFER_BYTES, cudaMemcpyDeviceToDevice));
        check("cudaEventRecord", cudaEventRecord(stop));
        check("cudaEventSynchronize", cudaEventSynchronize(stop));
        check("cudaEventElapsedTime", cudaEventElapsedTime(ms, start, stop));
        if (i >= WARM_UP) {
          gbps[i - WARM_UP] = 2.0 * BUFFER_BYTES / (ms[0] / 1e3) / 1e9;
        }
      }
      Arrays.sort(gbps);
      return new Result(gbps[TRIALS / 2], name);
    } finally {
      if (!start.isNull()) {
        cudaEventDestroy(start);
      }
      if (!stop.isNull()) {
        cudaEventDestroy(stop);
      }
      if (!src.isNull()) {
        cudaFree(src);
      }
      if (!dst.isNull()) {
        cudaFree(dst);
      }
    }
  }

  private static void check(String what, int status) {
    if (status != 0) {
      throw new CudaException("copy bandwidth: " + what + " failed: " + cudaGetErrorString(status).getString()
          + " (" + status + ")");
    }
  }
}
