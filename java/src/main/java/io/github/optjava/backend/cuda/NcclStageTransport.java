package io.github.optjava.backend.cuda;

import static org.bytedeco.cuda.global.nccl.ncclBfloat16;
import static org.bytedeco.cuda.global.nccl.ncclCommAbort;
import static org.bytedeco.cuda.global.nccl.ncclCommDestroy;
import static org.bytedeco.cuda.global.nccl.ncclFloat16;
import static org.bytedeco.cuda.global.nccl.ncclFloat32;
import static org.bytedeco.cuda.global.nccl.ncclGetErrorString;
import static org.bytedeco.cuda.global.nccl.ncclGroupEnd;
import static org.bytedeco.cuda.global.nccl.ncclGroupStart;
import static org.bytedeco.cuda.global.nccl.ncclRecv;
import static org.bytedeco.cuda.global.nccl.ncclSend;

import io.github.optjava.backend.Mat;
import io.github.optjava.backend.Ops;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.parallel.StageTransport;
import java.util.concurrent.atomic.AtomicBoolean;
import org.bytedeco.cuda.nccl.ncclComm;

/**
 * Hidden states between pipeline stages in different processes as NCCL send/recv, GPU to GPU (NVLink or
 * InfiniBand, no host copy), over one communicator of the whole job (its rank = the job rank). The transfers
 * go on the legacy default stream, as {@link NcclTpGroup}'s collectives: {@link CudaOps}' blocking stream
 * orders itself with it, so a receive completes before the next op reads the matrix and a send reads it after
 * the op that wrote it. Written 2026-11-26 without several GPUs: unverified.
 */
public final class NcclStageTransport implements StageTransport {
  private final int rank;
  private final ncclComm comm;
  private final AtomicBoolean aborted = new AtomicBoolean();
  private boolean closed;

  private NcclStageTransport(int rank, ncclComm comm) {
    this.rank = rank;
    this.comm = comm;
  }

  /** This process's member of the job-wide communicator: {@code uniqueId} from job rank 0, on {@code device}. */
  public static NcclStageTransport join(int rank, int world, byte[] uniqueId, int device) {
    NcclTpGroup g = NcclTpGroup.join(rank, world, uniqueId, device);
    return new NcclStageTransport(rank, g.communicator());
  }

  @Override
  public void receive(Ops ops, Mat x, int from) {
    requireUsable();
    CudaMat c = CudaMat.of(x);
    check("ncclRecv from rank " + from, ncclRecv(c.ptr(), (long) c.rows * c.cols, type(c.dtype), from, comm, null));
  }

  @Override
  public void send(Ops ops, Mat x, int[] to) {
    if (to.length == 0) {
      return;
    }
    requireUsable();
    CudaMat c = CudaMat.of(x);
    check("ncclGroupStart", ncclGroupStart()); // one group: the sends to a stage's ranks go out together
    int status = 0;
    for (int peer : to) {
      int st = ncclSend(c.ptr(), (long) c.rows * c.cols, type(c.dtype), peer, comm, null);
      status = status == 0 ? st : status;
    }
    check("ncclGroupEnd", ncclGroupEnd());
    check("ncclSend", status);
  }

  private static int type(DType t) {
    return switch (t) {
      case F32 -> ncclFloat32;
      case F16 -> ncclFloat16;
      case BF16 -> ncclBfloat16;
    };
  }

  private void requireUsable() {
    if (aborted.get()) {
      throw new CudaException("rank " + rank + ": the job's NCCL transport was aborted after a failure");
    }
  }

  private void check(String what, int status) {
    if (status != 0) {
      throw new CudaException(what + " failed on rank " + rank + ": " + ncclGetErrorString(status).getString());
    }
  }

  @Override
  public void abort() {
    if (aborted.compareAndSet(false, true)) {
      ncclCommAbort(comm);
    }
  }

  @Override
  public synchronized void close() {
    if (!closed && !aborted.get()) {
      ncclCommDestroy(comm);
    }
    closed = true;
  }
}
