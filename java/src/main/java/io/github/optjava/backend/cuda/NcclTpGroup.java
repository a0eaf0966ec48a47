package io.github.optjava.backend.cuda;

import static org.bytedeco.cuda.global.nccl.ncclAllGather;
import static org.bytedeco.cuda.global.nccl.ncclAllReduce;
import static org.bytedeco.cuda.global.nccl.ncclBfloat16;
import static org.bytedeco.cuda.global.nccl.ncclCommAbort;
import static org.bytedeco.cuda.global.nccl.ncclCommDestroy;
import static org.bytedeco.cuda.global.cudart.cudaSetDevice;
import static org.bytedeco.cuda.global.nccl.ncclCommInitAll;
import static org.bytedeco.cuda.global.nccl.ncclCommInitRank;
import static org.bytedeco.cuda.global.nccl.ncclGetUniqueId;
import static org.bytedeco.cuda.global.nccl.ncclFloat16;
import static org.bytedeco.cuda.global.nccl.ncclFloat32;
import static org.bytedeco.cuda.global.nccl.ncclGetErrorString;
import static org.bytedeco.cuda.global.nccl.ncclSum;

import io.github.optjava.backend.Mat;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.parallel.TpGroup;
import java.util.ArrayList;
import java.util.List;
import io.github.optjava.parallel.Rendezvous;
import java.time.Duration;
import org.bytedeco.cuda.nccl.ncclComm;
import org.bytedeco.cuda.nccl.ncclUniqueId;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.PointerPointer;

/**
 * A tensor-parallel group over NCCL: for the GPUs of one process ({@link #create}, ncclCommInitAll), or one
 * member per process ({@link #forProcess}, {@link #join} with an id handed over by the caller, e.g. over the
 * job's {@code Mesh}); one instance per rank, each used from that rank's thread. At world size 1 {@link #create}
 * makes no communicator and every collective is a no-op, so the single-GPU path never depends on NCCL being
 * installed. NCCL has no timeout: a rank that fails calls {@link #abort} on its peers' members (in one process)
 * so that they stop waiting; across processes the launcher ends the job.
 */
public final class NcclTpGroup implements TpGroup {
  private final int rank;
  private final int world;
  private final ncclComm comm; // null at world size 1
  private boolean closed;
  private final java.util.concurrent.atomic.AtomicBoolean aborted = new java.util.concurrent.atomic.AtomicBoolean();

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
    loadNccl();
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

  /**
   * This process's member of a multi-process group (one GPU per process, any number of machines): rank 0
   * makes the NCCL unique id and hands it to the others through the TCP {@link Rendezvous} on
   * {@code MASTER_ADDR:MASTER_PORT}, then every rank joins the communicator on {@code device}. At world size 1
   * it still makes a real (one-rank) communicator, so the NCCL path can be checked on one GPU.
   *
   * @throws io.github.optjava.parallel.Rendezvous.RendezvousException when the processes do not all meet
   */
  public static NcclTpGroup forProcess(Rendezvous.Placement p, int device, Duration timeout) {
    byte[] id = p.rank() == 0 ? newUniqueId() : new byte[0];
    return join(p.rank(), p.worldSize(), Rendezvous.exchange(p, id, timeout), device);
  }

  /** A new NCCL unique id: made by one rank of a group and handed to the others (any way: TCP, a file). */
  public static byte[] newUniqueId() {
    loadNccl();
    try (ncclUniqueId id = new ncclUniqueId()) {
      int st = ncclGetUniqueId(id);
      if (st != 0) {
        throw new CudaException("ncclGetUniqueId failed: " + ncclGetErrorString(st).getString());
      }
      byte[] bytes = new byte[NCCL_UNIQUE_ID_BYTES];
      id.internal().get(bytes);
      return bytes;
    }
  }

  /**
   * This process's (or thread's) member of the group of {@code world} ranks that share {@code uniqueId}, on
   * {@code device}: blocks until every rank has joined (ncclCommInitRank).
   */
  public static NcclTpGroup join(int rank, int world, byte[] uniqueId, int device) {
    loadNccl();
    if (uniqueId.length != NCCL_UNIQUE_ID_BYTES) {
      throw new CudaException("an NCCL id of " + uniqueId.length + " bytes, not " + NCCL_UNIQUE_ID_BYTES);
    }
    int st = cudaSetDevice(device);
    if (st != 0) {
      throw new CudaException("cudaSetDevice(" + device + ") failed for rank " + rank + ": error " + st);
    }
    try (ncclUniqueId id = new ncclUniqueId()) {
      id.internal().put(uniqueId);
      ncclComm comm = new ncclComm();
      st = ncclCommInitRank(comm, world, id, rank);
      if (st != 0) {
        throw new CudaException("ncclCommInitRank (rank " + rank + " of " + world + " on cuda:" + device
            + ") failed: " + ncclGetErrorString(st).getString());
      }
      return new NcclTpGroup(rank, world, comm);
    }
  }

  private static final int NCCL_UNIQUE_ID_BYTES = 128; // NCCL_UNIQUE_ID_BYTES in nccl.h

  private static void loadNccl() {
    try {
      Loader.load(org.bytedeco.cuda.global.nccl.class);
    } catch (Throwable t) {
      throw new CudaException("NCCL (libnccl.so.2) could not be loaded: " + CudaProbe.rootMessage(t)
          + "; install NCCL for CUDA 13 or add its directory to opt.cuda.libpath");
    }
  }

  /** True when a communicator exists (also a one-rank one, from {@link #forProcess}). */
  @Override
  public boolean communicates() {
    return comm != null;
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
    if (comm == null) { // world size 1 without a communicator
      return;
    }
    requireNotAborted("allReduce");
    CudaMat c = CudaMat.of(m);
    check("ncclAllReduce", ncclAllReduce(c.ptr(), c.ptr(), (long) c.rows * c.cols, ncclType(c.dtype), ncclSum, comm,
        null));
  }

  @Override
  public void allGather(Mat out, Mat in) {
    if (comm != null) {
      requireNotAborted("allGather");
    }
    if (comm == null) {
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
    if (!closed && !aborted.get() && comm != null) {
      ncclCommDestroy(comm);
    }
    closed = true;
  }

  /** The communicator, handed to {@link NcclStageTransport}, which then owns it (this member is not closed). */
  ncclComm communicator() {
    return comm;
  }

  private void requireNotAborted(String what) {
    if (aborted.get()) {
      throw new CudaException(what + " on rank " + rank + " of " + world + ": the group was aborted after another "
          + "rank failed; the model is unusable: close it and load it again");
    }
  }

  /**
   * ncclCommAbort: the NCCL calls of this rank that wait for a failed peer return an error (on their own
   * threads), and the communicator is freed. Not synchronized: it must run while another thread is inside NCCL.
   */
  @Override
  public void abort() {
    if (comm != null && aborted.compareAndSet(false, true)) {
      ncclCommAbort(comm);
    }
  }
}
