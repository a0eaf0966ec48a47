package io.github.optjava.backend.cuda;

import static org.bytedeco.cuda.global.nccl.ncclAllGather;
import static org.bytedeco.cuda.global.nccl.ncclAllReduce;
import static org.bytedeco.cuda.global.nccl.ncclBfloat16;
import static org.bytedeco.cuda.global.nccl.ncclCommDestroy;
import static org.bytedeco.cuda.global.nccl.ncclCommInitAll;
import static org.bytedeco.cuda.global.nccl.ncclFloat16;
import static org.bytedeco.cuda.global.nccl.ncclFloat32;
import static org.bytedeco.cuda.global.nccl.ncclGetErrorString;
import static org.bytedeco.cuda.global.nccl.ncclSum;

import io.github.optjava.backend.Mat;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.parallel.TpGroup;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.cuda.nccl.ncclComm;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.PointerPointer;

/**
 * A tensor-parallel group over NCCL for the GPUs of one process ({@code ncclCommInitAll}); one instance
 * per rank, each used from that rank's thread. At world size 1 no communicator is created and every
 * collective is a no-op, so the single-GPU path never depends on NCCL being installed.
 */
public final class NcclTpGroup implements TpGroup {
  private final int rank;
  private final int world;
  private final ncclComm comm; // null at world size 1
  private boolean closed;

  private NcclTpGroup(int rank, int world, ncclComm comm) {
    this.rank = rank;
    this.world = world;
    this.comm = comm;
  }

  /** One group member per device, rank i on {@code devices[i]}. */
  public static List<NcclTpGroup> create(int... devices) {
    List<NcclTpGroup> out = new ArrayList<>();
    if (devices.length == 1) {
      out.add(new NcclTpGroup(0, 1, null));
      return out;
    }
    try {
      Loader.load(org.bytedeco.cuda.global.nccl.class);
    } catch (Throwable t) {
      throw new CudaException("NCCL (libnccl.so.2) could not be loaded: " + CudaProbe.rootMessage(t)
          + "; install NCCL for CUDA 13 or add its directory to opt.cuda.libpath");
    }
    PointerPointer<ncclComm> comms = new PointerPointer<>(devices.length);
    int st = ncclCommInitAll(comms, devices.length, devices);
    if (st != 0) {
      throw new CudaException("ncclCommInitAll over devices " + java.util.Arrays.toString(devices) + " failed: "
          + ncclGetErrorString(st).getString());
    }
    for (int i = 0; i < devices.length; i++) {
      out.add(new NcclTpGroup(i, devices.length, new ncclComm(comms.get(i))));
    }
    return out;
  }

  @Override
  public int rank() {
    return rank;
  }

  @Override
  public int worldSize() {
    return world;
  }

  @Override
  public void allReduce(Mat m) {
    if (world == 1) {
      return;
    }
    CudaMat c = CudaMat.of(m);
    check("ncclAllReduce", ncclAllReduce(c.ptr(), c.ptr(), (long) c.rows * c.cols, ncclType(c.dtype), ncclSum, comm,
        null));
  }

  @Override
  public void allGather(Mat out, Mat in) {
    if (world == 1) {
      if (out != in) {
        throw new IllegalArgumentException("at world size 1, allGather's output is its input: pass the same matrix");
      }
      return;
    }
    CudaMat o = CudaMat.of(out);
    CudaMat i = CudaMat.of(in);
    if ((long) o.rows * o.cols != (long) world * i.rows * i.cols) {
      throw new IllegalArgumentException("allGather: " + o + " cannot hold " + world + " × " + i);
    }
    check("ncclAllGather", ncclAllGather(i.ptr(), o.ptr(), (long) i.rows * i.cols, ncclType(i.dtype), comm, null));
  }

  private static int ncclType(DType t) {
    return switch (t) {
      case F32 -> ncclFloat32;
      case F16 -> ncclFloat16;
      case BF16 -> ncclBfloat16;
    };
  }

  private void check(String what, int status) {
    if (status != 0) {
      throw new CudaException(what + " failed on rank " + rank + ": " + ncclGetErrorString(status).getString());
    }
  }

  @Override
  public synchronized void close() {
    if (!closed && comm != null) {
      ncclCommDestroy(comm);
    }
    closed = true;
  }
}
