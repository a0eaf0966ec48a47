package io.github.optjava.api;

import io.github.optjava.backend.Ops;
import io.github.optjava.backend.cpu.FastCpuOps;
import io.github.optjava.checkpoint.DType;

/**
 * Creates the ops of a device. The CUDA ops are created in their own method so that the CPU path never
 * loads a class that touches {@code org.bytedeco.cuda.*}.
 */
final class Backends {
  private Backends() {}

  /**
   * The multithreaded CPU ops ({@code threads} 0: one per available processor), quantizing and keeping the KV cache
   * as {@code options} ask.
   */
  static Ops cpu(int threads, GeneratorOptions options) {
    int n = threads == 0 ? Runtime.getRuntime().availableProcessors() : threads;
    return FastCpuOps.create(n, options.quantization() == Quantization.INT8, halfKvCacheOnCpu(options.kvCacheDtype()));
  }

  /**
   * Refuses what {@code device} cannot run: int8 weights on several GPUs (CUDA runs them on one GPU:
   * native/src/linear_int8.cu, verified on an H100 on 2026-11-27), a BF16 KV cache on the CPU, a KV-cache dtype
   * other than the activations' on CUDA.
   * Called with the device asked for (before anything is downloaded: AUTO checks nothing yet) and again with the
   * device chosen.
   */
  static void requireSupported(GeneratorOptions options, Device device) {
    Quantization quantization = options.quantization();
    boolean oneGpu = options.tensorParallel() == 1 && options.pipelineParallel() == 1;
    if (quantization != Quantization.NONE && device == Device.CUDA && !oneGpu) {
      throw new IllegalArgumentException("int8 weights (Quantization." + quantization + ", --quantize "
          + quantization.name().toLowerCase(java.util.Locale.ROOT) + ") run on one GPU only so far, and tensor "
          + "parallel " + options.tensorParallel() + " × pipeline parallel " + options.pipelineParallel()
          + " was asked for: use Quantization.NONE (--quantize none) for a model over several GPUs, or Device.CPU "
          + "(--device cpu) for int8 over several CPU ranks");
    }
    if (device == Device.CUDA) {
      requireCudaKvCacheDtype(options.kvCacheDtype(), options.dtype());
    } else if (device == Device.CPU) {
      halfKvCacheOnCpu(options.kvCacheDtype());
    }
  }

  /** Whether the CPU keeps an fp16 KV cache: F16 yes, null or F32 no (float32); BF16 is refused. */
  static boolean halfKvCacheOnCpu(DType kvCacheDtype) {
    if (kvCacheDtype == DType.BF16) {
      throw new IllegalArgumentException("the CPU backend keeps its KV cache in F32 or F16, not BF16: use "
          + "withKvCacheDtype(DType.F16) (--kv-cache-dtype f16) for half the memory");
    }
    return kvCacheDtype == DType.F16;
  }

  /**
   * On CUDA the KV cache is in the activations' dtype ({@code dtype}, F16 when null): a different kvCacheDtype is
   * refused.
   */
  static void requireCudaKvCacheDtype(DType kvCacheDtype, DType dtype) {
    DType activations = dtype == null ? DType.F16 : dtype;
    if (kvCacheDtype != null && kvCacheDtype != activations) {
      throw new IllegalArgumentException("on CUDA the KV cache is kept in the activations' dtype (" + activations
          + "), not " + kvCacheDtype + ": leave kvCacheDtype unset (--kv-cache-dtype auto) or set it to "
          + activations);
    }
  }

  /** CUDA ops on GPU 0; weights and activations in {@code dtype} (F16 when null), Linear weights int8 if asked. */
  static Ops cuda(DType dtype, boolean int8) {
    io.github.optjava.backend.cuda.CudaOps ops = (io.github.optjava.backend.cuda.CudaOps) cuda(0, dtype);
    ops.useInt8Linears(int8); // the decoder layers' Linear weights as int8 (Quantization.INT8)
    return ops;
  }

  /** CUDA ops on GPU {@code device}. */
  static Ops cuda(int device, DType dtype) {
    return new io.github.optjava.backend.cuda.CudaOps(device, dtype == null ? DType.F16 : dtype);
  }

  /**
   * A tensor-parallel model over GPUs 0 .. tp-1, one NCCL rank per GPU (ncclCommInitAll), each rank's ops on
   * its GPU. Refuses a degree above the number of visible GPUs.
   */
  static io.github.optjava.model.ParallelOptModel cudaTensorParallel(io.github.optjava.model.OptConfig config,
      io.github.optjava.model.OptWeights weights, DType dtype, int tp) {
    requireGpus(tp, "tensor parallelism of degree " + tp, "lower tensorParallel");
    return new io.github.optjava.model.ParallelOptModel(config, weights, r -> cuda(r, dtype), dtype,
        io.github.optjava.backend.cuda.NcclTpGroup.create(range(0, tp)));
  }

  /**
   * A pipeline of {@code pp} stages of {@code tp} ranks each: stage s's rank r on GPU {@code s * tp + r}, the
   * ranks of a stage joined by NCCL (no communicator at tp 1), hidden states between stages through the host.
   */
  static io.github.optjava.model.PipelineOptModel cudaPipeline(io.github.optjava.model.OptConfig config,
      io.github.optjava.model.OptWeights weights, DType dtype, int pp, int tp) {
    requireGpus(pp * tp, pp + " pipeline stages" + (tp > 1 ? " × " + tp + " tensor-parallel ranks" : ""),
        "lower pipelineParallel or tensorParallel");
    io.github.optjava.parallel.Shard.requireDegree(tp, config.numAttentionHeads(), config.ffnDim());
    return new io.github.optjava.model.PipelineOptModel(config, weights, (s, r) -> cuda(s * tp + r, dtype), dtype,
        pp, s -> io.github.optjava.backend.cuda.NcclTpGroup.create(range(s * tp, tp)));
  }

  /**
   * The NCCL group of this process's pipeline stage in a multi-process job: the stage's rank 0 makes the NCCL
   * id and sends it to the stage's other ranks over the job's links; each joins on {@code device}. No
   * communicator at one rank per stage.
   */
  static io.github.optjava.parallel.TpGroup ncclStageGroup(io.github.optjava.parallel.Mesh mesh,
      io.github.optjava.model.JobLayout layout, int device) {
    if (layout.tp() == 1) {
      return io.github.optjava.parallel.TpGroup.single();
    }
    int stage = layout.stageOf(mesh.rank());
    int rank = layout.rankInStage(mesh.rank());
    io.github.optjava.parallel.Mesh.Channel ch = io.github.optjava.parallel.Mesh.Channel.COLLECTIVE;
    byte[] bytes;
    if (rank == 0) {
      bytes = io.github.optjava.backend.cuda.NcclTpGroup.newUniqueId();
      for (int r = 1; r < layout.tp(); r++) {
        io.github.optjava.parallel.Mesh.Link link = mesh.link(layout.jobRank(stage, r), ch);
        link.writeBytes(bytes);
        link.flush();
      }
    } else {
      bytes = mesh.link(layout.jobRank(stage, 0), ch).readBytes();
    }
    return io.github.optjava.backend.cuda.NcclTpGroup.join(rank, layout.tp(), bytes, device);
  }

  /**
   * How this process's pipeline stage hands hidden states to the next one in a multi-process job on GPUs: NCCL
   * send/recv over one communicator of the whole job (job rank 0 makes its id and sends it to every process
   * over the command links). A job of one stage has nothing to hand on: the TCP transport, never used.
   */
  static io.github.optjava.parallel.StageTransport ncclJobTransport(io.github.optjava.parallel.Mesh mesh,
      io.github.optjava.model.JobLayout layout, int device) {
    if (layout.stages() == 1) {
      return new io.github.optjava.parallel.MeshStageTransport(mesh);
    }
    io.github.optjava.parallel.Mesh.Channel control = io.github.optjava.parallel.Mesh.Channel.CONTROL;
    byte[] id;
    if (mesh.rank() == 0) {
      id = io.github.optjava.backend.cuda.NcclTpGroup.newUniqueId();
      for (int w = 1; w < mesh.worldSize(); w++) {
        io.github.optjava.parallel.Mesh.Link link = mesh.link(w, control);
        link.writeBytes(id);
        link.flush();
      }
    } else {
      id = mesh.link(0, control).readBytes();
    }
    return io.github.optjava.backend.cuda.NcclStageTransport.join(mesh.rank(), mesh.worldSize(), id, device);
  }

  private static void requireGpus(int needed, String what, String remedy) {
    int gpus = io.github.optjava.backend.cuda.CudaProbe.probe().devices().size();
    if (needed > gpus) {
      throw new IllegalArgumentException(what + " on CUDA needs " + needed + " GPUs, one per rank; " + gpus
          + " visible (CUDA_VISIBLE_DEVICES): " + remedy);
    }
  }

  private static int[] range(int first, int count) {
    int[] out = new int[count];
    for (int i = 0; i < count; i++) {
      out[i] = first + i;
    }
    return out;
  }
}
