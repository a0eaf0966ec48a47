package io.github.optjava.backend.cuda;

import static org.bytedeco.cuda.global.cublas.CUBLAS_COMPUTE_32F;
import static org.bytedeco.cuda.global.cublas.CUBLAS_GEMM_DEFAULT;
import static org.bytedeco.cuda.global.cublas.CUBLAS_OP_N;
import static org.bytedeco.cuda.global.cublas.CUBLAS_OP_T;
import static org.bytedeco.cuda.global.cublas.cublasCreate_v2;
import static org.bytedeco.cuda.global.cublas.cublasDestroy_v2;
import static org.bytedeco.cuda.global.cublas.cublasGemmEx;
import static org.bytedeco.cuda.global.cudart.CUDA_R_16BF;
import static org.bytedeco.cuda.global.cudart.CUDA_R_16F;
import static org.bytedeco.cuda.global.cudart.CUDA_R_32F;
import static org.bytedeco.cuda.global.cudart.cudaDeviceSynchronize;
import static org.bytedeco.cuda.global.cublas.cublasSetStream_v2;
import static org.bytedeco.cuda.global.cublas.cublasSetWorkspace_v2;
import static org.bytedeco.cuda.global.cudart.cudaFree;
import static org.bytedeco.cuda.global.cudart.cudaFreeHost;
import static org.bytedeco.cuda.global.cudart.cudaGetLastError;
import static org.bytedeco.cuda.global.cudart.cudaGraphDestroy;
import static org.bytedeco.cuda.global.cudart.cudaGraphInstantiate;
import static org.bytedeco.cuda.global.cudart.cudaGraphLaunch;
import static org.bytedeco.cuda.global.cudart.cudaMemcpyAsync;
import static org.bytedeco.cuda.global.cudart.cudaStreamBeginCapture;
import static org.bytedeco.cuda.global.cudart.cudaStreamCaptureModeRelaxed;
import static org.bytedeco.cuda.global.cudart.cudaStreamCreate;
import static org.bytedeco.cuda.global.cudart.cudaStreamDestroy;
import static org.bytedeco.cuda.global.cudart.cudaStreamEndCapture;
import static org.bytedeco.cuda.global.cudart.cudaStreamSynchronize;
import static org.bytedeco.cuda.global.cudart.cudaMallocHost;
import static org.bytedeco.cuda.global.cudart.cudaGetErrorString;
import static org.bytedeco.cuda.global.cudart.cudaMalloc;
import static org.bytedeco.cuda.global.cudart.cudaMemGetInfo;
import static org.bytedeco.cuda.global.cudart.cudaMemcpy;
import static org.bytedeco.cuda.global.cudart.cudaMemcpyDeviceToHost;
import static org.bytedeco.cuda.global.cudart.cudaMemcpyHostToDevice;
import static org.bytedeco.cuda.global.cudart.cudaMemset;
import static org.bytedeco.cuda.global.cudart.cudaSetDevice;

import io.github.optjava.backend.AttentionBatch;
import io.github.optjava.backend.GraphStepFailedException;
import io.github.optjava.backend.KvStore;
import io.github.optjava.backend.LogitEdits;
import io.github.optjava.backend.Mat;
import io.github.optjava.backend.Ops;
import io.github.optjava.backend.RowMath;
import io.github.optjava.backend.SamplingRows;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.checkpoint.Half;
import io.github.optjava.checkpoint.Tensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.bytedeco.cuda.cublas.cublasContext;
import org.bytedeco.cuda.cudart.CUgraphExec_st;
import org.bytedeco.cuda.cudart.CUgraph_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.ShortPointer;
import org.bytedeco.javacpp.SizeTPointer;

/**
 * {@link Ops} on one NVIDIA GPU: our kernels ({@link OptKernels}) and cuBLAS GEMMs (fp16/bf16/fp32 in,
 * fp32 compute; Linears through cuBLASLt). Every matrix on the device has the one storage dtype chosen at
 * construction (checkpoint weights are converted on upload). Every op of an instance runs in order on its own
 * blocking stream (capturable, unlike the legacy one), and decode steps are captured once and replayed as CUDA
 * graphs ({@link #graphStep}). The {@code -Dopt.cuda.*} switches, their defaults and why: {@link CudaSwitches}.
 *
 * <p>Debugging: {@code -Dopt.cuda.sync=true} synchronises after every op, so an asynchronous kernel
 * error is reported by the op that caused it.
 */
public final class CudaOps implements Ops {
  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(CudaOps.class);
  /** The attention kernels {@link #useAttentionKernel} takes (see {@code opt.cuda.attention}). */
  public static final java.util.List<String> ATTENTION_KERNELS = CudaSwitches.ATTENTION_KERNELS;
  private static final long CUBLAS_WORKSPACE_BYTES = 32L << 20;
  /**
   * Scratch for the split-KV attention: 64 KiB of inline-combine counters (zeroed at allocation, left zero by every
   * launch), then the partials, (rows × heads × splits × (headDim + 2)) floats; the launcher fits to it.
   */
  private static final long ATTENTION_WORKSPACE_BYTES = 8L << 20;
  /** Graphs kept at most (each holds its index arena; workspaces are shared per batch size and tokens per step). */
  private static final int MAX_GRAPHS = 64;

  private final int device;
  private final DType dtype;
  private final CUstream_st stream = new CUstream_st(); // every op of this instance, in order
  private final cublasContext cublas = new cublasContext();
  private Pointer cublasWorkspace;
  private LtGemm lt; // -Dopt.cuda.gemm=lt (or useLtGemm); shares cuBLAS's workspace on the same stream
  private boolean ltTuning = CudaSwitches.LT_TUNE; // -Dopt.cuda.ltTune (or useLtTuning): LtGemm.useTuning
  private int gemvMaxRows; // -Dopt.cuda.gemv (or useGemv): Linears of 1..gemvMaxRows rows run the gemv kernel
  private int tcRows; // -Dopt.cuda.tcLinear (or useTcLinear): Linears of up to tcRows rows run linear_tc.cu's kernel
  private int tcSplit; // -Dopt.cuda.tcSplit (or useTcSplit): its warps per group of outputs, 0 = auto
  private boolean tcOneRow = CudaSwitches.TC_ONE_ROW; // -Dopt.cuda.tcOneRow (or useTcOneRow): 16-bit 1-row Linears too
  private int gemvSplit; // -Dopt.cuda.gemvSplit (or useGemvSplit): warps per output group, 0 = auto
  private boolean int8Linears; // useInt8Linears: linearWeight quantizes to int8 (CudaInt8Mat)
  private long int8ScratchElements; // the largest int8 Linear weight: the dequantized copy's size for GEMMs
  private CudaMat int8Scratch; // that copy, allocated at the first dequantization; freed on close
  private long gemvLaunches;

  // CUDA graphs of decode steps and steps of drafts (graphStep): EAGER runs ops as they come; CAPTURE records them
  // into a graph; REPLAY checks them against the graph and launches it when the step reads its result.
  private enum Mode { EAGER, CAPTURE, REPLAY }

  private Mode mode = Mode.EAGER;
  private StepGraph current;
  private final boolean graphsEnabled;
  private OpProfile profile; // -Dopt.cuda.profile=true only
  private GraphStepTimer stepTimer; // timeGraphSteps(true) only
  private long replays;
  private long captures;
  private boolean launchedUnsynchronised; // a graph launched whose step has not been synchronised yet
  private boolean graphsBroken; // a capture failed: run eagerly from then on
  private final java.util.LinkedHashMap<StepGraph.Key, StepGraph> graphs =
      new java.util.LinkedHashMap<>(16, 0.75f, true);
  // (batch, tokens per sequence) -> the activation buffers its graphs share
  private final java.util.Map<java.util.List<Integer>, StepGraph.Workspace> workspaces = new java.util.HashMap<>();
  private final java.util.Map<StepGraph.Key, Integer> eagerRuns = new java.util.HashMap<>();
  private AttentionBatch flattenedBatch; // the last attention batch and its padded block-table array, so
  private int[] flattenedTables;         // every layer of a step uploads the same array object
  private boolean finishedEarly;         // finishStep ended the current step before its pick (endStep: once)
  private Pointer argmaxScratch;         // float32 logits and int32 indexes for argmaxRows
  private Pointer editScratch;           // the packed LogitEdits of a step (editLogits), on the device
  private long editScratchBytes;
  private final PinnedStaging editStaging = new PinnedStaging("logit edits");
  private final PinnedStaging pickStaging = new PinnedStaging("sampling and beam parameters");
  private long argmaxScratchBytes;
  private String attentionKernel = CudaSwitches.ATTENTION; // checked in the constructor
  private AttentionBatch tiledBatch;  // the last batch's tile map (tiled / tc kernel), made once per batch object
  private int tiledRows;              // the rows per tile of that map: 16 (tiled) or 64 (tc)
  private int[] tileSeq;
  private int[] tileFirst;
  private boolean deviceLogprobs = CudaSwitches.DEVICE_LOGPROB;
  private boolean deviceSampling = CudaSwitches.DEVICE_SAMPLING;
  private boolean deviceScores = CudaSwitches.DEVICE_SCORES;
  private boolean deviceBeams = CudaSwitches.DEVICE_BEAMS;
  private final boolean deviceMinP = CudaSwitches.DEVICE_MIN_P;
  private boolean deviceTypical = CudaSwitches.DEVICE_TYPICAL;
  private boolean deviceMixedPicks = CudaSwitches.DEVICE_MIXED_PICKS;
  private boolean samplerWeights = CudaSwitches.SAMPLER_WEIGHTS;
  private boolean inlineCombine = CudaSwitches.INLINE_COMBINE;
  private boolean groupedSplit;
  private boolean draftGraphs;
  private boolean batchBuckets = CudaSwitches.BATCH_BUCKETS;
  private Pointer attentionWorkspace; // allocated on the first split-KV attention (never during a capture)
  private final ActivationPool pool = new ActivationPool();
  private final IndexUploads uploads;
  private Pointer readBuffer; // pinned host memory for read(): a faster copy than to pageable memory
  private long readBufferBytes;
  private boolean closed;

  /** Device memory for helpers of this class: {@link #malloc}, with its out-of-memory handling. */
  interface Allocator {
    Pointer malloc(long bytes, String what);
  }

  /**
   * @param device index of the GPU ({@code cuda:N})
   * @param dtype  storage dtype of weights and activations on the device
   */
  public CudaOps(int device, DType dtype) {
    this(device, dtype, CudaSwitches.GRAPHS);
  }

  /**
   * @param device index of the GPU ({@code cuda:N})
   * @param dtype  storage dtype of weights and activations on the device
   * @param graphs whether decode steps (and steps of drafts, with {@link #useDraftGraphs}) may be replayed as CUDA
   *     graphs ({@link #graphStep})
   */
  public CudaOps(int device, DType dtype, boolean graphs) {
    this.device = device;
    this.dtype = dtype;
    this.graphsEnabled = graphs && !CudaSwitches.SYNC && !CudaSwitches.PROFILE;
    this.gemvMaxRows = CudaSwitches.gemvRows(CudaSwitches.GEMV); // bad settings fail before anything is allocated
    this.tcRows = CudaSwitches.tcLinearRows(CudaSwitches.TC_LINEAR);
    this.tcSplit = CudaSwitches.tcSplit(CudaSwitches.TC_SPLIT);
    this.gemvSplit = CudaSwitches.gemvSplit(CudaSwitches.GEMV_SPLIT);
    this.groupedSplit = CudaSwitches.groupedSplit();
    this.draftGraphs = CudaSwitches.draftGraphs();
    boolean vectorNorm = CudaSwitches.vectorNorm();
    if (!ATTENTION_KERNELS.contains(CudaSwitches.ATTENTION)) {
      throw new IllegalArgumentException("opt.cuda.attention='" + CudaSwitches.ATTENTION + "': use one of "
          + ATTENTION_KERNELS);
    }
    CudaSwitches.Chained chainedMode = CudaSwitches.chained(CudaSwitches.CHAINED);
    check("cudaSetDevice(" + device + ")", cudaSetDevice(device));
    if (chainedMode == CudaSwitches.Chained.ON) {
      requireChainedSupported(); // before anything is allocated: a refusal leaks nothing
    }
    boolean chained = chainedMode == CudaSwitches.Chained.ON
        || (chainedMode == CudaSwitches.Chained.AUTO && OptKernels.opt_chained_launch_supported() != 0);
    // A created stream (graphs cannot capture the legacy default stream), blocking: the legacy stream's
    // synchronous copies and frees and NCCL still order themselves with it.
    check("cudaStreamCreate", cudaStreamCreate(stream));
    int st = cublasCreate_v2(cublas);
    if (st != 0) {
      cudaStreamDestroy(stream);
      throw new CudaException("cublasCreate failed with status " + st + " on cuda:" + device);
    }
    try {
      checkCublas("cublasSetStream", cublasSetStream_v2(cublas, stream));
      // Our own workspace: cuBLAS must not allocate while a graph is being captured.
      cublasWorkspace = malloc(CUBLAS_WORKSPACE_BYTES, "cuBLAS workspace");
      checkCublas("cublasSetWorkspace", cublasSetWorkspace_v2(cublas, cublasWorkspace, CUBLAS_WORKSPACE_BYTES));
      lt = CudaSwitches.LT_GEMM ? new LtGemm(cublasWorkspace, CUBLAS_WORKSPACE_BYTES) : null;
      uploads = new IndexUploads(this::malloc, stream, 1 << 20); // the last that can fail
      profile = CudaSwitches.PROFILE ? new OpProfile(stream) : null;
      if (chained) {
        OptKernels.opt_set_chained_launch(1); // checked supported before anything was allocated
      }
      if (vectorNorm) {
        OptKernels.opt_set_vector_layernorm(1);
      }
    } catch (RuntimeException | LinkageError e) { // LinkageError: a cuBLASLt symbol missing from this runtime
      if (lt != null) {
        lt.close();
      }
      cublasDestroy_v2(cublas);
      if (cublasWorkspace != null) {
        cudaFree(cublasWorkspace);
      }
      cudaStreamDestroy(stream);
      throw e;
    }
  }

  private static void checkCublas(String what, int status) {
    if (status != 0) {
      throw new CudaException(what + " failed with cuBLAS status " + status);
    }
  }

  @Override
  public String name() {
    return "cuda:" + device + "-" + dtype.name().toLowerCase(java.util.Locale.ROOT) + (int8Linears ? "-int8" : "");
  }

  public DType dtype() {
    return dtype;
  }

  // ---- memory ----

  private Pointer malloc(long bytes, String what) {
    requireOpen();
    Pointer p = new Pointer();
    int st = cudaMalloc(p, Math.max(bytes, 1));
    // cudaErrorMemoryAllocation: give back cached activations and try again (never while capturing: cudaFree
    // would break the capture). The failed call left its error as the thread's last error, which the next
    // kernel launch would report as its own: clear it.
    if (st == 2 && mode != Mode.CAPTURE && pool.trim() > 0) {
      cudaGetLastError();
      st = cudaMalloc(p, Math.max(bytes, 1));
    }
    if (st != 0) {
      cudaGetLastError();
    }
    if (st == 2) {
      throw new CudaOutOfMemoryException(what, bytes, memoryInfo());
    }
    check("cudaMalloc for " + what, st);
    return p;
  }

  /** "free X of Y GiB" for error messages. */
  String memoryInfo() {
    try (SizeTPointer free = new SizeTPointer(1); SizeTPointer total = new SizeTPointer(1)) {
      if (cudaMemGetInfo(free, total) != 0) {
        return "device memory unknown";
      }
      return String.format("%.2f GiB free of %.2f GiB", free.get() / 1073741824.0, total.get() / 1073741824.0);
    }
  }

  @Override
  public Mat weight(Tensor tensor) {
    requireEager("weight");
    long[] shape = tensor.shape();
    if (shape.length < 1 || shape.length > 2) {
      throw new IllegalArgumentException("tensor " + tensor.name() + " has rank " + shape.length + ": expected 1 or 2");
    }
    int rows = shape.length == 1 ? 1 : Math.toIntExact(shape[0]);
    int cols = Math.toIntExact(shape[shape.length - 1]);
    Tensor t = tensor.to(dtype);
    ByteBuffer data = t.data();
    CudaMat m = new CudaMat(malloc(CudaMat.bytes(rows, cols, dtype), "weight " + tensor.name()), rows, cols, dtype);
    try (BytePointer host = data.isDirect() ? new BytePointer(data) : copy(data)) {
      check("upload of " + tensor.name(), cudaMemcpy(m.ptr(), host, m.bytes(), cudaMemcpyHostToDevice));
    } catch (RuntimeException e) {
      m.close();
      throw e;
    }
    return m;
  }

  /**
   * A Linear weight: as {@link #weight}, or with {@link #useInt8Linears} quantized on the host
   * ({@link io.github.optjava.backend.Int8Rows}: the CPU ops' integers and scales) and uploaded as int8 values and
   * float32 row scales.
   */
  @Override
  public Mat linearWeight(Tensor tensor) {
    if (!int8Linears) {
      return weight(tensor);
    }
    requireEager("linearWeight");
    io.github.optjava.backend.Int8Rows q = io.github.optjava.backend.Int8Rows.quantize(tensor);
    Pointer values = malloc(Math.max(1L, (long) q.rows() * q.cols()), "int8 weight " + tensor.name());
    Pointer scales = null;
    try {
      scales = malloc(4L * Math.max(1, q.rows()), "int8 scales " + tensor.name());
      try (BytePointer hv = new BytePointer(q.values()); FloatPointer hs = new FloatPointer(q.scales())) {
        check("upload of " + tensor.name(), cudaMemcpy(values, hv, (long) q.rows() * q.cols(), cudaMemcpyHostToDevice));
        check("upload of " + tensor.name() + " scales", cudaMemcpy(scales, hs, 4L * q.rows(), cudaMemcpyHostToDevice));
      }
    } catch (RuntimeException e) {
      cudaFree(values);
      if (scales != null) {
        cudaFree(scales);
      }
      throw e;
    }
    int8ScratchElements = Math.max(int8ScratchElements, (long) q.rows() * q.cols());
    return new CudaInt8Mat(values, scales, q.rows(), q.cols());
  }

  /**
   * Whether {@link #linearWeight} stores Linear weights as int8 (weight-only quantization; session 11, not yet run on
   * a GPU): decode steps of up to {@link #gemvMaxRows} rows read the int8 weights directly
   * (native/src/linear_int8.cu), larger steps dequantize each weight into a scratch matrix for the GEMM. Set before
   * the model's weights are loaded.
   */
  public void useInt8Linears(boolean on) {
    int8Linears = on;
  }

  /** Whether Linear weights are quantized to int8 (see {@link #useInt8Linears}). */
  public boolean int8Linears() {
    return int8Linears;
  }

  private static BytePointer copy(ByteBuffer heap) {
    byte[] bytes = new byte[heap.remaining()];
    heap.duplicate().get(bytes);
    return new BytePointer(bytes);
  }

  /** Activation memory comes from the {@link ActivationPool} and goes back to it on close. */
  @Override
  public Mat alloc(int rows, int cols) {
    long sizeClass = ActivationPool.sizeClass(CudaMat.bytes(rows, cols, dtype));
    if (mode != Mode.EAGER) { // the graph's workspace: the same buffers at every replay, kept by the graph
      try {
        Pointer p = mode == Mode.CAPTURE ? current.captureAlloc(sizeClass, this::malloc)
            : current.replayAlloc(sizeClass);
        return new CudaMat(p, rows, cols, dtype, released -> { });
      } catch (RuntimeException e) {
        throw graphFailed("allocation of " + rows + " × " + cols, e);
      }
    }
    Pointer p = pool.take(sizeClass);
    if (p == null) {
      p = malloc(sizeClass, "activations " + rows + " × " + cols);
    }
    return new CudaMat(p, rows, cols, dtype, released -> pool.give(released, sizeClass));
  }

  @Override
  public void write(Mat dst, float[] src) {
    requireEager("write");
    CudaMat d = CudaMat.of(dst);
    if (src.length != d.rows * d.cols) {
      throw new IllegalArgumentException(src.length + " floats for a " + d);
    }
    ByteBuffer b = ByteBuffer.allocateDirect((int) d.bytes()).order(ByteOrder.nativeOrder());
    for (float v : src) {
      switch (d.dtype) {
        case F32 -> b.putFloat(v);
        case F16 -> b.putShort(Half.fromFloat(v));
        case BF16 -> b.putShort(Half.bfloat16FromFloat(v));
      }
    }
    b.flip();
    try (BytePointer host = new BytePointer(b)) {
      check("write", cudaMemcpy(d.ptr(), host, d.bytes(), cudaMemcpyHostToDevice));
    }
  }

  /**
   * Copies into pinned memory, then to the heap in one bulk get (an element-wise {@code get(i)} is a JNI
   * call per element: a millisecond for one row of logits). The copy waits for all queued work, so the
   * index arena can start over afterwards.
   */
  @Override
  public float[] read(Mat src) {
    CudaMat s = CudaMat.of(src);
    endStep();
    int n = s.rows * s.cols;
    float[] out = new float[n];
    Pointer host = readBuffer(s.bytes());
    check("read", cudaMemcpyAsync(host, s.ptr(), s.bytes(), cudaMemcpyDeviceToHost, stream));
    stepTimerStop();
    check("read (synchronise)", cudaStreamSynchronize(stream));
    stepTimerCollect();
    launchedUnsynchronised = false;
    uploads.reset(); // the stream is idle: every queued index copy has run
    if (s.dtype == DType.F32) {
      new FloatPointer(host).get(out);
      return out;
    }
    short[] bits = new short[n];
    new ShortPointer(host).get(bits);
    Half.toFloats(bits, out, s.dtype == DType.BF16);
    return out;
  }

  /** The pinned read buffer, grown to at least {@code bytes}. */
  private Pointer readBuffer(long bytes) {
    requireOpen();
    if (readBufferBytes < bytes) {
      if (readBuffer != null) {
        cudaFreeHost(readBuffer);
        readBuffer = null;
        readBufferBytes = 0;
      }
      long size = Math.max(bytes, 1 << 20);
      Pointer p = new Pointer();
      check("cudaMallocHost of " + size + " bytes (read buffer)", cudaMallocHost(p, size));
      readBuffer = p;
      readBufferBytes = size;
    }
    return readBuffer;
  }

  @Override
  public long freeMemory() {
    try (SizeTPointer free = new SizeTPointer(1); SizeTPointer total = new SizeTPointer(1)) {
      check("cudaMemGetInfo", cudaMemGetInfo(free, total));
      return free.get() + pool.cachedBytes();
    }
  }

  /**
   * Refuses, before any is uploaded, weights larger than this GPU's free memory (cached activations included):
   * without it a model too large for one GPU loaded until some tensor's allocation failed, and that error's advice
   * (lower the KV cache) did not fit. Weights are stored in this backend's dtype ({@link #weight} converts), or as
   * int8 values plus a float scale per row, so {@code elementBytes} (the loaded dtype) is not used.
   */
  @Override
  public void requireRoomForWeights(String what, long linearElements, long otherElements, int elementBytes) {
    long bytes = linearElements * (int8Linears ? 1 : dtype.bytes()) + otherElements * dtype.bytes();
    if (bytes > freeMemory()) {
      throw new IllegalStateException(String.format(java.util.Locale.ROOT, "not enough GPU memory for %s: they need "
          + "about %.2f GiB in %s, and %s (%s); %s", what,
          bytes / 1073741824.0, int8Linears ? "int8 Linears" : dtype.name().toLowerCase(java.util.Locale.ROOT),
          memoryInfo(), name(), int8Linears
              ? "int8 weights run on one GPU only so far: use a GPU with more memory, or --quantize none over more "
                  + "GPUs (--tensor-parallel, --pipeline-parallel)"
              : "spread the model over more GPUs (--tensor-parallel, --pipeline-parallel; "
                  + "GeneratorOptions.withTensorParallel), --quantize int8 on one GPU (half the Linears' bytes), or "
                  + "use a GPU with more memory"));
    }
  }

  @Override
  public int kvElementBytes() {
    return dtype.bytes();
  }

  @Override
  public KvStore kvStore(int layers, int blocks, int blockSize, int width) {
    requireEager("kvStore");
    long bytes = (long) blocks * blockSize * width * dtype.bytes();
    Pointer[] keys = new Pointer[layers];
    Pointer[] values = new Pointer[layers];
    CudaKvStore kv = new CudaKvStore(layers, blocks, blockSize, width, dtype, keys, values);
    try {
      for (int l = 0; l < layers; l++) {
        keys[l] = malloc(bytes, "KV cache (" + layers + " layers × 2 × " + blocks * blockSize + " tokens)");
        values[l] = malloc(bytes, "KV cache (" + layers + " layers × 2 × " + blocks * blockSize + " tokens)");
      }
    } catch (RuntimeException e) {
      kv.close();
      throw e;
    }
    return kv;
  }

  /** A device copy of host ints for the ops queued next (see {@link IndexUploads}). */
  private IntPointer ints(int[] values) {
    requireOpen(); // close() freed the arena
    if (mode == Mode.EAGER) {
      return uploads.upload(values);
    }
    try {
      return mode == Mode.CAPTURE ? current.captureInts(values, stream) : current.replayInts(values);
    } catch (RuntimeException e) {
      throw graphFailed("index upload of " + values.length + " ints", e);
    }
  }

  // ---- ops ----

  @Override
  public void embedding(Mat out, Mat table, int[] ids) {
    CudaMat o = CudaMat.of(out);
    CudaMat t = CudaMat.of(table);
    // The kernel trusts these shapes (CpuOps checks them too): a mismatch would read/write out of bounds.
    require(o.cols == t.cols && ids.length <= o.rows,
        () -> "embedding: out " + o + ", table " + t + ", " + ids.length + " ids");
    IntPointer d = ints(ids);
    if (!launch("embedding", o.address(), t.address(), d.address(), ids.length, o.cols, t.rows)) {
      return;
    }
    op("embedding", switch (dtype) {
      case F32 -> OptKernels.opt_embedding_f32(o.f32(), t.f32(), d, ids.length, o.cols, t.rows, stream);
      case F16 -> OptKernels.opt_embedding_f16(o.bits(), t.bits(), d, ids.length, o.cols, t.rows, stream);
      case BF16 -> OptKernels.opt_embedding_bf16(o.bits(), t.bits(), d, ids.length, o.cols, t.rows, stream);
    });
  }

  @Override
  public void addPositions(Mat x, Mat table, int[] positions) {
    CudaMat o = CudaMat.of(x);
    CudaMat t = CudaMat.of(table);
    require(o.cols == t.cols && positions.length <= o.rows,
        () -> "addPositions: x " + o + ", table " + t + ", " + positions.length + " positions");
    for (int p : positions) {
      if (p < 0 || p + 2 >= t.rows) {
        throw new IllegalArgumentException("position " + p + " is outside the position table (" + (t.rows - 2)
            + " positions)");
      }
    }
    IntPointer d = ints(positions);
    if (!launch("addPositions", o.address(), t.address(), d.address(), positions.length, o.cols, t.rows)) {
      return;
    }
    op("addPositions", switch (dtype) {
      case F32 -> OptKernels.opt_add_positions_f32(o.f32(), t.f32(), d, positions.length, o.cols, t.rows, stream);
      case F16 -> OptKernels.opt_add_positions_f16(o.bits(), t.bits(), d, positions.length, o.cols, t.rows, stream);
      case BF16 -> OptKernels.opt_add_positions_bf16(o.bits(), t.bits(), d, positions.length, o.cols, t.rows, stream);
    });
  }

  @Override
  public void layerNorm(Mat out, Mat x, Mat gamma, Mat beta, float eps) {
    CudaMat o = CudaMat.of(out);
    CudaMat in = CudaMat.of(x);
    CudaMat g = CudaMat.of(gamma);
    CudaMat b = CudaMat.of(beta);
    require(o.rows == in.rows && o.cols == in.cols && g.rows * g.cols == in.cols && b.rows * b.cols == in.cols,
        () -> "layerNorm: out " + o + ", x " + in + ", gamma " + g + ", beta " + b);
    if (!launch("layerNorm", o.address(), in.address(), g.address(), b.address(), in.rows, in.cols,
        Float.floatToIntBits(eps))) {
      return;
    }
    op("layerNorm", switch (dtype) {
      case F32 -> OptKernels.opt_layernorm_f32(o.f32(), in.f32(), g.f32(), b.f32(), in.rows, in.cols, eps, stream);
      case F16 -> OptKernels.opt_layernorm_f16(o.bits(), in.bits(), g.bits(), b.bits(), in.rows, in.cols, eps, stream);
      case BF16 -> OptKernels.opt_layernorm_bf16(o.bits(), in.bits(), g.bits(), b.bits(), in.rows, in.cols, eps, stream);
    });
  }

  @Override
  public void linear(Mat out, Mat x, Mat w, Mat bias, boolean relu) {
    if (w instanceof CudaInt8Mat q) {
      linearInt8(out, x, q, bias, relu);
      return;
    }
    CudaMat o = CudaMat.of(out);
    CudaMat in = CudaMat.of(x);
    CudaMat wt = CudaMat.of(w);
    if (wt.cols != in.cols || o.cols != wt.rows || o.rows != in.rows) {
      throw new IllegalArgumentException("linear: x " + in + ", w " + wt + ", out " + o);
    }
    require(bias == null || (long) CudaMat.of(bias).rows * CudaMat.of(bias).cols == o.cols,
        () -> "linear: bias " + (bias == null ? null : CudaMat.of(bias)) + " for out " + o);
    if (tcLinear(in, wt.address(), false)) {
      linearTc(o, in, wt, bias == null ? null : CudaMat.of(bias), relu);
      return;
    }
    boolean small = in.rows >= 1 && in.rows <= gemvMaxRows;
    String name = small ? "linear (gemv)" : "linear";
    if (!launch(name, o.address(), in.address(), wt.address(), bias == null ? 0 : CudaMat.of(bias).address(),
        relu ? 1 : 0, in.rows, in.cols, o.cols, small ? gemvSplit : 1)) {
      return;
    }
    if (small) {
      CudaMat b = bias == null ? null : CudaMat.of(bias);
      int r = relu ? 1 : 0;
      op(name, switch (dtype) {
        case F32 -> OptKernels.opt_linear_small_f32(o.f32(), in.f32(), wt.f32(), b == null ? null : b.f32(), in.rows,
            in.cols, o.cols, r, gemvSplit, stream);
        case F16 -> OptKernels.opt_linear_small_f16(o.bits(), in.bits(), wt.bits(), b == null ? null : b.bits(),
            in.rows, in.cols, o.cols, r, gemvSplit, stream);
        case BF16 -> OptKernels.opt_linear_small_bf16(o.bits(), in.bits(), wt.bits(), b == null ? null : b.bits(),
            in.rows, in.cols, o.cols, r, gemvSplit, stream);
      });
      gemvLaunches++;
      return;
    }
    // Row-major out (T×N) = x (T×K) · wᵀ is, column-major, outᵀ (N×T) = W (N×K, stored as K×N: op T) · xᵀ (K×T).
    requireOpen(); // the cuBLAS handle is destroyed by close()
    if (lt != null && lt.matmul(o, in, wt, bias == null ? null : CudaMat.of(bias), relu, dtype, stream,
        mode == Mode.CAPTURE)) {
      op("linear (cuBLASLt)", 0);
      return;
    }
    int type = cudaType(dtype);
    try (FloatPointer one = new FloatPointer(1f); FloatPointer zero = new FloatPointer(0f)) {
      int st = cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, wt.rows, in.rows, in.cols, one,
          wt.ptr(), type, wt.cols, in.ptr(), type, in.cols, zero, o.ptr(), type, o.cols,
          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
      if (st != 0) {
        throw new CudaException("linear: cublasGemmEx failed with status " + st + " (" + in + " · " + wt + "ᵀ)");
      }
    }
    if (bias != null || relu) {
      CudaMat b = bias == null ? null : CudaMat.of(bias); // its length was checked above
      int r = relu ? 1 : 0;
      op("linear bias/relu", switch (dtype) {
        case F32 -> OptKernels.opt_bias_act_f32(o.f32(), b == null ? null : b.f32(), o.rows, o.cols, r, stream);
        case F16 -> OptKernels.opt_bias_act_f16(o.bits(), b == null ? null : b.bits(), o.rows, o.cols, r, stream);
        case BF16 -> OptKernels.opt_bias_act_bf16(o.bits(), b == null ? null : b.bits(), o.rows, o.cols, r, stream);
      });
    } else {
      op("linear", 0);
    }
  }

  private static int cudaType(DType t) {
    return switch (t) {
      case F32 -> CUDA_R_32F;
      case F16 -> CUDA_R_16F;
      case BF16 -> CUDA_R_16BF;
    };
  }

  @Override
  public void addInPlace(Mat x, Mat y) {
    CudaMat a = CudaMat.of(x);
    CudaMat b = CudaMat.of(y);
    require(a.rows == b.rows && a.cols == b.cols, () -> "addInPlace: x " + a + ", y " + b);
    int n = a.rows * a.cols;
    if (!launch("addInPlace", a.address(), b.address(), n)) {
      return;
    }
    op("addInPlace", switch (dtype) {
      case F32 -> OptKernels.opt_residual_add_f32(a.f32(), b.f32(), n, stream);
      case F16 -> OptKernels.opt_residual_add_f16(a.bits(), b.bits(), n, stream);
      case BF16 -> OptKernels.opt_residual_add_bf16(a.bits(), b.bits(), n, stream);
    });
  }

  @Override
  public void addBiasLayerNorm(Mat x, Mat y, Mat bias, Mat out, Mat gamma, Mat beta, float eps) {
    CudaMat a = CudaMat.of(x);
    CudaMat b = CudaMat.of(y);
    CudaMat bs = bias == null ? null : CudaMat.of(bias);
    CudaMat o = CudaMat.of(out);
    CudaMat g = CudaMat.of(gamma);
    CudaMat be = CudaMat.of(beta);
    require(a.rows == b.rows && a.cols == b.cols && o.rows == a.rows && o.cols == a.cols
        && (bs == null || (long) bs.rows * bs.cols == a.cols) && g.rows * g.cols == a.cols
        && be.rows * be.cols == a.cols,
        () -> "addBiasLayerNorm: x " + a + ", y " + b + ", bias " + bs + ", out " + o + ", gamma " + g + ", beta " + be);
    if (!launch("addBiasLayerNorm", a.address(), b.address(), bs == null ? 0 : bs.address(), o.address(), g.address(),
        be.address(), a.rows, a.cols, Float.floatToIntBits(eps))) {
      return;
    }
    op("addBiasLayerNorm", switch (dtype) {
      case F32 -> OptKernels.opt_add_layernorm_f32(a.f32(), b.f32(), bs == null ? null : bs.f32(), o.f32(), g.f32(),
          be.f32(), a.rows, a.cols, eps, stream);
      case F16 -> OptKernels.opt_add_layernorm_f16(a.bits(), b.bits(), bs == null ? null : bs.bits(), o.bits(),
          g.bits(), be.bits(), a.rows, a.cols, eps, stream);
      case BF16 -> OptKernels.opt_add_layernorm_bf16(a.bits(), b.bits(), bs == null ? null : bs.bits(), o.bits(),
          g.bits(), be.bits(), a.rows, a.cols, eps, stream);
    });
  }

  /**
   * Whether a Linear of x over the int8 weight w reads the int8 values directly: few rows, whole 16-value chunks and
   * a 16-byte aligned x (the kernel refuses anything else; such Linears dequantize instead).
   */
  private boolean int8Gemv(CudaMat in, CudaInt8Mat w) {
    return in.rows >= 1 && in.rows <= gemvMaxRows && w.cols % 16 == 0 && in.address() % 16 == 0;
  }

  /**
   * {@link #linear} over an int8 weight: the int8 matrix-vector kernel for the few rows of a decode step, else the
   * weight dequantized into {@link #int8Scratch} (rounded to the activations' dtype) and the usual GEMM path.
   */
  private void linearInt8(Mat out, Mat x, CudaInt8Mat w, Mat bias, boolean relu) {
    CudaMat o = CudaMat.of(out);
    CudaMat in = CudaMat.of(x);
    CudaMat b = bias == null ? null : CudaMat.of(bias);
    require(w.cols == in.cols && o.cols == w.rows && o.rows == in.rows
        && (b == null || (long) b.rows * b.cols == o.cols),
        () -> "linear (int8): x " + in + ", w " + w + ", out " + o + ", bias " + b);
    if (tcLinear(in, w.address(), true)) {
      linearInt8Tc(o, in, w, b, relu);
      return;
    }
    if (!int8Gemv(in, w)) {
      linear(out, x, dequantized(w), bias, relu);
      return;
    }
    String name = "linear (int8 gemv)";
    if (!launch(name, o.address(), in.address(), w.address(), b == null ? 0 : b.address(), relu ? 1 : 0, in.rows,
        in.cols, o.cols, gemvSplit)) {
      return;
    }
    int r = relu ? 1 : 0;
    op(name, switch (dtype) {
      case F32 -> OptKernels.opt_linear_int8_small_f32(o.f32(), in.f32(), w.values(), w.scales(),
          b == null ? null : b.f32(), in.rows, in.cols, o.cols, r, gemvSplit, stream);
      case F16 -> OptKernels.opt_linear_int8_small_f16(o.bits(), in.bits(), w.values(), w.scales(),
          b == null ? null : b.bits(), in.rows, in.cols, o.cols, r, gemvSplit, stream);
      case BF16 -> OptKernels.opt_linear_int8_small_bf16(o.bits(), in.bits(), w.values(), w.scales(),
          b == null ? null : b.bits(), in.rows, in.cols, o.cols, r, gemvSplit, stream);
    });
    gemvLaunches++;
  }

  /** {@link #qkvProjectAppend} through the int8 q/k/v kernel (its rows and chunks checked by the caller). */
  private void qkvProjectAppendInt8(Mat q, KvStore kv, int layer, CudaMat in, CudaInt8Mat w, Mat bias,
      int[] slots) {
    CudaKvStore s = CudaKvStore.of(kv);
    CudaMat qm = CudaMat.of(q);
    CudaMat bs = bias == null ? null : CudaMat.of(bias);
    int width = s.width;
    require(w.rows == 3 * width && w.cols == in.cols && qm.cols == width && qm.rows >= in.rows
        && (bs == null || (long) bs.rows * bs.cols == 3L * width),
        () -> "qkvProjectAppend (int8): q " + qm + ", x " + in + ", w " + w + ", bias " + bs + ", width " + width);
    IntPointer d = ints(slots);
    Pointer kc = s.keys[layer];
    Pointer vc = s.values[layer];
    String name = "qkvProjectAppend (int8 gemv)";
    if (!launch(name, qm.address(), kc.address(), vc.address(), in.address(), w.address(),
        bs == null ? 0 : bs.address(), d.address(), in.rows, in.cols, width, s.slots(), gemvSplit)) {
      return;
    }
    op(name, switch (dtype) {
      case F32 -> OptKernels.opt_linear_int8_small_qkv_f32(qm.f32(), new FloatPointer(kc), new FloatPointer(vc),
          in.f32(), w.values(), w.scales(), bs == null ? null : bs.f32(), d, in.rows, in.cols, width, s.slots(),
          gemvSplit, stream);
      case F16 -> OptKernels.opt_linear_int8_small_qkv_f16(qm.bits(), new ShortPointer(kc), new ShortPointer(vc),
          in.bits(), w.values(), w.scales(), bs == null ? null : bs.bits(), d, in.rows, in.cols, width, s.slots(),
          gemvSplit, stream);
      case BF16 -> OptKernels.opt_linear_int8_small_qkv_bf16(qm.bits(), new ShortPointer(kc), new ShortPointer(vc),
          in.bits(), w.values(), w.scales(), bs == null ? null : bs.bits(), d, in.rows, in.cols, width, s.slots(),
          gemvSplit, stream);
    });
    gemvLaunches++;
  }

  /**
   * Whether a Linear of x (rows, k) goes to linear_tc.cu's tensor-core kernel ({@code -Dopt.cuda.tcLinear}, session 22,
   * off): up to {@link #tcRows} rows, from 2 for 16-bit weights (one row keeps the matrix-vector kernel unless
   * {@link #tcOneRow}) and from 1 for int8 weights, which take fp16 activations only; k in whole steps of the kernel (32
   * values, or 64 of int8) and x and the weight 16-byte aligned (the kernel refuses anything else).
   */
  private boolean tcLinear(CudaMat in, long weightAddress, boolean int8) {
    return in.rows >= (int8 || tcOneRow ? 1 : 2) && in.rows <= tcRows
        && (int8 ? dtype == DType.F16 : dtype != DType.F32) && in.cols % (int8 ? 64 : 32) == 0
        && in.address() % 16 == 0 && weightAddress % 16 == 0;
  }

  /** {@link #linear} over a 16-bit weight on the tensor-core kernel ({@link #tcLinear} checked by the caller). */
  private void linearTc(CudaMat o, CudaMat in, CudaMat wt, CudaMat b, boolean relu) {
    String name = "linear (tc)";
    if (!launch(name, o.address(), in.address(), wt.address(), b == null ? 0 : b.address(), relu ? 1 : 0, in.rows,
        in.cols, o.cols, tcSplit)) {
      return;
    }
    int r = relu ? 1 : 0;
    ShortPointer bias = b == null ? null : b.bits();
    op(name, dtype == DType.F16
        ? OptKernels.opt_linear_tc_f16(o.bits(), in.bits(), wt.bits(), bias, in.rows, in.cols, o.cols, r, tcSplit,
            stream)
        : OptKernels.opt_linear_tc_bf16(o.bits(), in.bits(), wt.bits(), bias, in.rows, in.cols, o.cols, r, tcSplit,
            stream));
  }

  /** {@link #linear} over an int8 weight on the tensor-core kernel ({@link #tcLinear} checked by the caller). */
  private void linearInt8Tc(CudaMat o, CudaMat in, CudaInt8Mat w, CudaMat b, boolean relu) {
    String name = "linear (int8 tc)";
    if (!launch(name, o.address(), in.address(), w.address(), b == null ? 0 : b.address(), relu ? 1 : 0, in.rows,
        in.cols, o.cols, tcSplit)) {
      return;
    }
    op(name, OptKernels.opt_linear_int8_tc_f16(o.bits(), in.bits(), w.values(), w.scales(),
        b == null ? null : b.bits(), in.rows, in.cols, o.cols, relu ? 1 : 0, tcSplit, stream));
  }

  /**
   * {@link #qkvProjectAppend} on the tensor-core kernel: the stacked weight (rows × cols) is {@code dense} (16-bit) or
   * {@code int8} (one of them null; {@link #tcLinear} and the slot count checked by the caller).
   */
  private void qkvProjectAppendTc(Mat q, KvStore kv, int layer, CudaMat in, int rows, int cols, long weightAddress,
      Mat weight, Mat bias, int[] slots) {
    CudaKvStore s = CudaKvStore.of(kv);
    CudaMat qm = CudaMat.of(q);
    CudaMat bs = bias == null ? null : CudaMat.of(bias);
    int width = s.width;
    require(rows == 3 * width && cols == in.cols && qm.cols == width && qm.rows >= in.rows
        && (bs == null || (long) bs.rows * bs.cols == 3L * width),
        () -> "qkvProjectAppend (tc): q " + qm + ", x " + in + ", w " + weight + ", bias " + bs + ", width " + width);
    IntPointer d = ints(slots);
    Pointer kc = s.keys[layer];
    Pointer vc = s.values[layer];
    String name = "qkvProjectAppend (tc)";
    if (!launch(name, qm.address(), kc.address(), vc.address(), in.address(), weightAddress,
        bs == null ? 0 : bs.address(), d.address(), in.rows, in.cols, width, s.slots(), tcSplit)) {
      return;
    }
    ShortPointer b = bs == null ? null : bs.bits();
    ShortPointer k = new ShortPointer(kc);
    ShortPointer v = new ShortPointer(vc);
    if (weight instanceof CudaInt8Mat w8) {
      op(name, OptKernels.opt_linear_int8_tc_qkv_f16(qm.bits(), k, v, in.bits(), w8.values(), w8.scales(), b, d,
          in.rows, in.cols, width, s.slots(), tcSplit, stream));
    } else {
      ShortPointer w = CudaMat.of(weight).bits();
      op(name, dtype == DType.F16
          ? OptKernels.opt_linear_tc_qkv_f16(qm.bits(), k, v, in.bits(), w, b, d, in.rows, in.cols, width, s.slots(),
              tcSplit, stream)
          : OptKernels.opt_linear_tc_qkv_bf16(qm.bits(), k, v, in.bits(), w, b, d, in.rows, in.cols, width, s.slots(),
              tcSplit, stream));
    }
  }

  /**
   * Sets the most rows a Linear may have to run the tensor-core kernel, 0 to 32 (0 = off; see {@code opt.cuda.tcLinear}).
   * Tests and {@code opt bench --variants} compare it with the other paths on one instance. Between steps only.
   */
  public void useTcLinear(int rows) {
    requireEager("useTcLinear");
    int n = CudaSwitches.tcLinearRows(Integer.toString(rows));
    if (n != tcRows) {
      discardGraphs(); // captured with the other Linear path
      tcRows = n;
    }
  }

  /** The most rows a Linear may have to run the tensor-core kernel (0 = off). */
  public int tcLinearRows() {
    return tcRows;
  }

  /**
   * Sets the tensor-core Linear's warps per group of outputs: 1, 2, 4, 8, or 0 = auto (see {@code opt.cuda.tcSplit}).
   * Between steps only.
   */
  public void useTcSplit(int split) {
    requireEager("useTcSplit");
    int s = CudaSwitches.tcSplit(Integer.toString(split));
    if (s != tcSplit) {
      discardGraphs(); // captured with the other split
      tcSplit = s;
    }
  }

  /** The tensor-core Linear's warps per group of outputs (0 = auto). */
  public int tcSplit() {
    return tcSplit;
  }

  /**
   * Whether 16-bit Linears of one row run the tensor-core kernel too (with {@link #useTcLinear}; see
   * {@code opt.cuda.tcOneRow}), instead of the matrix-vector kernel. Between steps only.
   */
  public void useTcOneRow(boolean on) {
    requireEager("useTcOneRow");
    if (on != tcOneRow) {
      discardGraphs(); // captured with the other Linear path
      tcOneRow = on;
    }
  }

  /** Whether 16-bit Linears of one row run the tensor-core kernel (when it is on). */
  public boolean usesTcOneRow() {
    return tcOneRow;
  }

  /**
   * w dequantized into the scratch matrix (one per instance, as large as the largest int8 weight loaded: allocated
   * at the first use, which is an eager step, so that graphs capture a fixed address; a larger weight loaded later
   * grows it in an eager step and drops the graphs that wrote the old one), viewed as w's shape.
   */
  private Mat dequantized(CudaInt8Mat w) {
    long needed = (long) w.rows * w.cols;
    if (int8Scratch == null || needed > (long) int8Scratch.rows * int8Scratch.cols) {
      requireEager("allocating the int8 dequantization scratch");
      if (int8Scratch != null) {
        discardGraphs(); // they write the old scratch
        int8Scratch.close();
        int8Scratch = null;
      }
      long elements = Math.max(int8ScratchElements, needed);
      int8Scratch = new CudaMat(malloc(elements * dtype.bytes(), "int8 dequantization scratch"),
          1, Math.toIntExact(elements), dtype);
    }
    CudaMat view = new CudaMat(int8Scratch.ptr(), w.rows, w.cols, dtype, released -> { });
    if (!launch("dequantInt8", view.address(), w.address(), w.rows, w.cols)) {
      return view;
    }
    op("dequantInt8", switch (dtype) {
      case F32 -> OptKernels.opt_dequant_int8_f32(view.f32(), w.values(), w.scales(), w.rows, w.cols, stream);
      case F16 -> OptKernels.opt_dequant_int8_f16(view.bits(), w.values(), w.scales(), w.rows, w.cols, stream);
      case BF16 -> OptKernels.opt_dequant_int8_bf16(view.bits(), w.values(), w.scales(), w.rows, w.cols, stream);
    });
    return view;
  }

  @Override
  public void qkvAppend(Mat q, KvStore kv, int layer, Mat qkv, Mat bias, int[] slots) {
    CudaKvStore s = CudaKvStore.of(kv);
    CudaMat qm = CudaMat.of(q);
    CudaMat in = CudaMat.of(qkv);
    CudaMat bs = bias == null ? null : CudaMat.of(bias);
    int w = s.width;
    require(in.cols == 3 * w && qm.cols == w && slots.length <= in.rows && slots.length <= qm.rows
        && (bs == null || (long) bs.rows * bs.cols == 3L * w),
        () -> "qkvAppend: q " + qm + ", qkv " + in + ", bias " + bs + ", " + slots.length + " slots, cache width " + w);
    IntPointer d = ints(slots);
    Pointer kc = s.keys[layer];
    Pointer vc = s.values[layer];
    if (!launch("qkvAppend", qm.address(), kc.address(), vc.address(), in.address(), bs == null ? 0 : bs.address(),
        d.address(), slots.length, w, s.slots())) {
      return;
    }
    op("qkvAppend", switch (dtype) {
      case F32 -> OptKernels.opt_qkv_append_f32(qm.f32(), new FloatPointer(kc), new FloatPointer(vc), in.f32(),
          bs == null ? null : bs.f32(), d, slots.length, w, s.slots(), stream);
      case F16 -> OptKernels.opt_qkv_append_f16(qm.bits(), new ShortPointer(kc), new ShortPointer(vc), in.bits(),
          bs == null ? null : bs.bits(), d, slots.length, w, s.slots(), stream);
      case BF16 -> OptKernels.opt_qkv_append_bf16(qm.bits(), new ShortPointer(kc), new ShortPointer(vc), in.bits(),
          bs == null ? null : bs.bits(), d, slots.length, w, s.slots(), stream);
    });
  }

  /**
   * With the matrix-vector kernel on ({@code opt.cuda.gemv}) and 1–8 rows: the q/k/v product and its epilogue in
   * one launch ({@code opt_linear_small_qkv}); otherwise the GEMM then {@link #qkvAppend}.
   */
  @Override
  public void qkvProjectAppend(Mat q, KvStore kv, int layer, Mat qkv, Mat x, Mat w, Mat bias, int[] slots) {
    CudaMat in = CudaMat.of(x);
    if (w instanceof CudaInt8Mat q8) {
      if (slots.length == in.rows && tcLinear(in, q8.address(), true)) {
        qkvProjectAppendTc(q, kv, layer, in, q8.rows, q8.cols, q8.address(), q8, bias, slots);
      } else if (!int8Gemv(in, q8) || slots.length != in.rows) { // through linear (int8 kernel or dequantized GEMM)
        Ops.super.qkvProjectAppend(q, kv, layer, qkv, x, w, bias, slots);
      } else {
        qkvProjectAppendInt8(q, kv, layer, in, q8, bias, slots);
      }
      return;
    }
    if (slots.length == in.rows && tcLinear(in, CudaMat.of(w).address(), false)) {
      CudaMat wt = CudaMat.of(w);
      qkvProjectAppendTc(q, kv, layer, in, wt.rows, wt.cols, wt.address(), wt, bias, slots);
      return;
    }
    if (in.rows < 1 || in.rows > gemvMaxRows || slots.length != in.rows) {
      Ops.super.qkvProjectAppend(q, kv, layer, qkv, x, w, bias, slots);
      return;
    }
    CudaKvStore s = CudaKvStore.of(kv);
    CudaMat qm = CudaMat.of(q);
    CudaMat wt = CudaMat.of(w);
    CudaMat bs = bias == null ? null : CudaMat.of(bias);
    int width = s.width;
    require(wt.rows == 3 * width && wt.cols == in.cols && qm.cols == width && qm.rows >= in.rows
        && (bs == null || (long) bs.rows * bs.cols == 3L * width),
        () -> "qkvProjectAppend: q " + qm + ", x " + in + ", w " + wt + ", bias " + bs + ", cache width " + width);
    IntPointer d = ints(slots);
    Pointer kc = s.keys[layer];
    Pointer vc = s.values[layer];
    if (!launch("qkvProjectAppend (gemv)", qm.address(), kc.address(), vc.address(), in.address(), wt.address(),
        bs == null ? 0 : bs.address(), d.address(), in.rows, in.cols, width, s.slots(), gemvSplit)) {
      return;
    }
    op("qkvProjectAppend (gemv)", switch (dtype) {
      case F32 -> OptKernels.opt_linear_small_qkv_f32(qm.f32(), new FloatPointer(kc), new FloatPointer(vc), in.f32(),
          wt.f32(), bs == null ? null : bs.f32(), d, in.rows, in.cols, width, s.slots(), gemvSplit, stream);
      case F16 -> OptKernels.opt_linear_small_qkv_f16(qm.bits(), new ShortPointer(kc), new ShortPointer(vc),
          in.bits(), wt.bits(), bs == null ? null : bs.bits(), d, in.rows, in.cols, width, s.slots(), gemvSplit, stream);
      case BF16 -> OptKernels.opt_linear_small_qkv_bf16(qm.bits(), new ShortPointer(kc), new ShortPointer(vc),
          in.bits(), wt.bits(), bs == null ? null : bs.bits(), d, in.rows, in.cols, width, s.slots(), gemvSplit, stream);
    });
    gemvLaunches++;
  }

  @Override
  public void kvAppend(KvStore kv, int layer, Mat k, Mat v, int[] slots) {
    CudaKvStore s = CudaKvStore.of(kv);
    CudaMat km = CudaMat.of(k);
    CudaMat vm = CudaMat.of(v);
    require(km.cols == s.width && vm.cols == s.width && slots.length <= km.rows && slots.length <= vm.rows,
        () -> "kvAppend: k " + km + ", v " + vm + ", " + slots.length + " slots, cache width " + s.width);
    IntPointer d = ints(slots);
    Pointer kc = s.keys[layer];
    Pointer vc = s.values[layer];
    if (!launch("kvAppend", km.address(), vm.address(), kc.address(), vc.address(), d.address(), slots.length,
        s.width, s.slots())) {
      return;
    }
    op("kvAppend", switch (dtype) {
      case F32 -> OptKernels.opt_kv_append_f32(new FloatPointer(kc), new FloatPointer(vc), km.f32(), vm.f32(), d,
          slots.length, s.width, s.slots(), stream);
      case F16 -> OptKernels.opt_kv_append_f16(new ShortPointer(kc), new ShortPointer(vc), km.bits(), vm.bits(), d,
          slots.length, s.width, s.slots(), stream);
      case BF16 -> OptKernels.opt_kv_append_bf16(new ShortPointer(kc), new ShortPointer(vc), km.bits(), vm.bits(), d,
          slots.length, s.width, s.slots(), stream);
    });
  }

  @Override
  public void attention(Mat out, Mat q, KvStore kv, int layer, AttentionBatch batch, int heads, float scale) {
    CudaKvStore s = CudaKvStore.of(kv);
    CudaMat o = CudaMat.of(out);
    CudaMat qm = CudaMat.of(q);
    int total = batch.totalQueries();
    require(heads > 0 && s.width % heads == 0,
        () -> "attention: cache width " + s.width + " is not a multiple of " + heads + " heads");
    require(qm.cols == s.width && o.cols == s.width && total <= qm.rows && total <= o.rows,
        () -> "attention: q " + qm + ", out " + o + ", " + total + " queries, cache width " + s.width);
    int n = batch.sequences();
    for (int i = 0; i < n; i++) { // the tiled kernel addresses rows from query_start: keep them inside the batch
      int seq = i;
      require(batch.queryStart()[i] >= 0 && (long) batch.queryStart()[i] + batch.queryCount()[i] <= total,
          () -> "attention: sequence " + seq + " has query rows " + batch.queryStart()[seq] + " .. "
              + (batch.queryStart()[seq] + batch.queryCount()[seq] - 1) + ", outside the batch's " + total + " rows");
    }
    int[] tables = flatTables(batch);
    int maxBlocks = n == 0 ? 1 : tables.length / n;
    IntPointer dt = ints(tables);
    IntPointer ds = ints(batch.queryStart());
    IntPointer dc = ints(batch.queryCount());
    IntPointer dl = ints(batch.contextLength());
    int headDim = s.width / heads;
    Pointer kc = s.keys[layer];
    Pointer vc = s.values[layer];
    // tiled / tc: steps with a prompt (some sequence brings several tokens); split: the rest, and head_dim > 128
    boolean prompt = total > n && headDim <= 128;
    boolean wantsTc = attentionKernel.equals("tc") || attentionKernel.equals("fa");
    boolean fa = prompt && attentionKernel.equals("fa") && dtype != DType.F32
        && (headDim == 64 || headDim == 80 || headDim == 128);
    boolean tc = !fa && prompt && wantsTc && dtype != DType.F32 && headDim % 16 == 0;
    boolean tiled = !fa && !tc && prompt && (attentionKernel.equals("tiled") || wantsTc);
    boolean split = !fa && !tc && !tiled && !attentionKernel.equals("first");
    if (split && attentionWorkspace == null) {
      requireEager("the first split-KV attention"); // eager warm-up steps come before any capture
      attentionWorkspace = malloc(ATTENTION_WORKSPACE_BYTES, "attention workspace");
      // the kernel's contract: zero before the first use (its counters); the launches keep them zero
      check("cudaMemset(attention workspace)", cudaMemset(attentionWorkspace, 0, ATTENTION_WORKSPACE_BYTES));
    }
    IntPointer dts = null;
    IntPointer dtf = null;
    if (tiled || tc || fa) {
      tileMap(batch, tc || fa ? 64 : 16);
      dts = ints(tileSeq);
      dtf = ints(tileFirst);
    }
    String kernel = fa ? "attention-fa" : tc ? "attention-tc" : tiled ? "attention-tiled" : split ? "attention-split"
        : "attention";
    if (!launch(kernel, o.address(), qm.address(), kc.address(), vc.address(), dt.address(), ds.address(),
        dc.address(), dl.address(), n, total, heads, headDim, s.blockSize, s.blocks, maxBlocks,
        Float.floatToIntBits(scale), dts == null ? 0 : dts.address())) {
      return;
    }
    if (fa) {
      int tiles = tileSeq.length;
      op("attention (fa)", dtype == DType.F16
          ? OptKernels.opt_attention_fa_f16(o.bits(), qm.bits(), new ShortPointer(kc), new ShortPointer(vc), dt, ds,
              dc, dl, dts, dtf, tiles, n, heads, headDim, s.blockSize, maxBlocks, s.blocks, scale, stream)
          : OptKernels.opt_attention_fa_bf16(o.bits(), qm.bits(), new ShortPointer(kc), new ShortPointer(vc), dt, ds,
              dc, dl, dts, dtf, tiles, n, heads, headDim, s.blockSize, maxBlocks, s.blocks, scale, stream));
      return;
    }
    if (tc) {
      int tiles = tileSeq.length;
      op("attention (tc)", dtype == DType.F16
          ? OptKernels.opt_attention_tc_f16(o.bits(), qm.bits(), new ShortPointer(kc), new ShortPointer(vc), dt, ds,
              dc, dl, dts, dtf, tiles, n, heads, headDim, s.blockSize, maxBlocks, s.blocks, scale, stream)
          : OptKernels.opt_attention_tc_bf16(o.bits(), qm.bits(), new ShortPointer(kc), new ShortPointer(vc), dt, ds,
              dc, dl, dts, dtf, tiles, n, heads, headDim, s.blockSize, maxBlocks, s.blocks, scale, stream));
      return;
    }
    if (tiled) {
      int tiles = tileSeq.length;
      op("attention (tiled)", switch (dtype) {
        case F32 -> OptKernels.opt_attention_tiled_f32(o.f32(), qm.f32(), new FloatPointer(kc), new FloatPointer(vc),
            dt, ds, dc, dl, dts, dtf, tiles, n, heads, headDim, s.blockSize, maxBlocks, s.blocks, scale, stream);
        case F16 -> OptKernels.opt_attention_tiled_f16(o.bits(), qm.bits(), new ShortPointer(kc), new ShortPointer(vc),
            dt, ds, dc, dl, dts, dtf, tiles, n, heads, headDim, s.blockSize, maxBlocks, s.blocks, scale, stream);
        case BF16 -> OptKernels.opt_attention_tiled_bf16(o.bits(), qm.bits(), new ShortPointer(kc),
            new ShortPointer(vc), dt, ds, dc, dl, dts, dtf, tiles, n, heads, headDim, s.blockSize, maxBlocks, s.blocks,
            scale, stream);
      });
      return;
    }
    if (split) {
      FloatPointer ws = new FloatPointer(attentionWorkspace);
      long wsBytes = ATTENTION_WORKSPACE_BYTES;
      // opt_kernels.h: OPT_ATTENTION_INLINE_COMBINE = 1, OPT_ATTENTION_GROUPED = 2
      int merge = (inlineCombine ? 1 : 0) | (groupedSplit ? 2 : 0);
      op("attention (split)", switch (dtype) {
        case F32 -> OptKernels.opt_attention_split_f32(o.f32(), qm.f32(), new FloatPointer(kc), new FloatPointer(vc),
            dt, ds, dc, dl, n, total, heads, headDim, s.blockSize, maxBlocks, s.blocks, scale, ws, wsBytes, merge,
            stream);
        case F16 -> OptKernels.opt_attention_split_f16(o.bits(), qm.bits(), new ShortPointer(kc), new ShortPointer(vc),
            dt, ds, dc, dl, n, total, heads, headDim, s.blockSize, maxBlocks, s.blocks, scale, ws, wsBytes, merge,
            stream);
        case BF16 -> OptKernels.opt_attention_split_bf16(o.bits(), qm.bits(), new ShortPointer(kc),
            new ShortPointer(vc), dt, ds, dc, dl, n, total, heads, headDim, s.blockSize, maxBlocks, s.blocks, scale,
            ws, wsBytes, merge, stream);
      });
      return;
    }
    op("attention", switch (dtype) {
      case F32 -> OptKernels.opt_attention_f32(o.f32(), qm.f32(), new FloatPointer(kc), new FloatPointer(vc), dt, ds,
          dc, dl, n, total, heads, headDim, s.blockSize, maxBlocks, s.blocks, scale, stream);
      case F16 -> OptKernels.opt_attention_f16(o.bits(), qm.bits(), new ShortPointer(kc), new ShortPointer(vc), dt,
          ds, dc, dl, n, total, heads, headDim, s.blockSize, maxBlocks, s.blocks, scale, stream);
      case BF16 -> OptKernels.opt_attention_bf16(o.bits(), qm.bits(), new ShortPointer(kc), new ShortPointer(vc), dt,
          ds, dc, dl, n, total, heads, headDim, s.blockSize, maxBlocks, s.blocks, scale, stream);
    });
  }

  /**
   * The tile map of the batch for the tiled (16 rows per tile, attention_tiled.cu) or tensor-core (64 rows,
   * attention_tc.cu) kernel: each sequence's query rows cut into tiles of {@code rowsPerTile}.
   */
  private void tileMap(AttentionBatch batch, int rowsPerTile) {
    if (batch == tiledBatch && rowsPerTile == tiledRows) {
      return;
    }
    int tiles = 0;
    for (int c : batch.queryCount()) {
      tiles += (c + rowsPerTile - 1) / rowsPerTile;
    }
    tileSeq = new int[tiles];
    tileFirst = new int[tiles];
    for (int s = 0, t = 0; s < batch.sequences(); s++) {
      for (int first = 0; first < batch.queryCount()[s]; first += rowsPerTile, t++) {
        tileSeq[t] = s;
        tileFirst[t] = first;
      }
    }
    tiledBatch = batch;
    tiledRows = rowsPerTile;
  }

  /**
   * The batch's block tables as one row-major (sequences × widest table) array padded with -1, made once per
   * batch object: every layer of a step then uploads the same array (one copy per step, and the identity
   * that graph replays go by). The batch must not change between the layers of a step.
   */
  private int[] flatTables(AttentionBatch batch) {
    if (batch != flattenedBatch) {
      int n = batch.sequences();
      int maxBlocks = 1;
      for (int[] t : batch.blockTables()) {
        maxBlocks = Math.max(maxBlocks, t.length);
      }
      int[] tables = new int[n * maxBlocks];
      java.util.Arrays.fill(tables, -1);
      for (int i = 0; i < n; i++) {
        System.arraycopy(batch.blockTables()[i], 0, tables, i * maxBlocks, batch.blockTables()[i].length);
      }
      flattenedBatch = batch;
      flattenedTables = tables;
    }
    return flattenedTables;
  }

  @Override
  public void kvCopyBlocks(KvStore kv, int[] src, int[] dst) {
    requireEager("kvCopyBlocks");
    CudaKvStore s = CudaKvStore.of(kv);
    require(src.length == dst.length,
        () -> "kvCopyBlocks: " + src.length + " sources, " + dst.length + " destinations");
    for (int i = 0; i < src.length; i++) { // the kernel skips a bad block silently; CpuOps throws
      int from = src[i];
      int to = dst[i];
      require(from >= 0 && from < s.blocks && to >= 0 && to < s.blocks,
          () -> "kvCopyBlocks: block " + from + " -> " + to + " outside the cache (" + s.blocks + " blocks)");
    }
    IntPointer ds = ints(src);
    IntPointer dd = ints(dst);
    for (int l = 0; l < s.layers; l++) {
      Pointer kc = s.keys[l];
      Pointer vc = s.values[l];
      op("kvCopyBlocks", switch (dtype) {
        case F32 -> OptKernels.opt_kv_copy_blocks_f32(new FloatPointer(kc), new FloatPointer(vc), ds, dd, src.length,
            s.blockSize, s.width, s.blocks, stream);
        case F16 -> OptKernels.opt_kv_copy_blocks_f16(new ShortPointer(kc), new ShortPointer(vc), ds, dd, src.length,
            s.blockSize, s.width, s.blocks, stream);
        case BF16 -> OptKernels.opt_kv_copy_blocks_bf16(new ShortPointer(kc), new ShortPointer(vc), ds, dd,
            src.length, s.blockSize, s.width, s.blocks, stream);
      });
    }
  }

  @Override
  public void gatherRows(Mat out, Mat x, int[] rows) {
    CudaMat o = CudaMat.of(out);
    CudaMat in = CudaMat.of(x);
    require(o.cols == in.cols && rows.length <= o.rows, () -> "gatherRows: out " + o + ", x " + in + ", " + rows.length
        + " rows");
    IntPointer d = ints(rows);
    if (!launch("gatherRows", o.address(), in.address(), d.address(), rows.length, in.cols, in.rows)) {
      return;
    }
    op("gatherRows", switch (dtype) {
      case F32 -> OptKernels.opt_gather_rows_f32(o.f32(), in.f32(), d, rows.length, in.cols, in.rows, stream);
      case F16 -> OptKernels.opt_gather_rows_f16(o.bits(), in.bits(), d, rows.length, in.cols, in.rows, stream);
      case BF16 -> OptKernels.opt_gather_rows_bf16(o.bits(), in.bits(), d, rows.length, in.cols, in.rows, stream);
    });
  }

  // ---- CUDA graphs ----

  /**
   * Starts a step that the model promises to repeat op for op whenever it passes the same
   * {@code (kv, batch, tokensPerSequence, variant)}: the decode steps of one batch size over one KV store, or its
   * steps of drafts with as many tokens per sequence (variant: the padded width of the block tables). The first
   * such step runs eagerly (kernels load, cuBLAS chooses its algorithms), the second is
   * captured into a CUDA graph, later ones only check each op against the capture and write the new index
   * values; the graph is launched when the step reads its result ({@link #read} or {@link #argmaxRows}). One
   * launch instead of hundreds: the host no longer paces the GPU. {@code -Dopt.cuda.graphs=false} turns it off.
   */
  @Override
  public void graphStep(KvStore kv, int batch, int tokensPerSequence, int variant) {
    requireEager("graphStep");
    if (!graphsEnabled || graphsBroken || (tokensPerSequence > 1 && !draftGraphs)) {
      return;
    }
    if (launchedUnsynchronised) { // a read failed after its launch: the graph may still read the staging
      check("cudaStreamSynchronize", cudaStreamSynchronize(stream));
      launchedUnsynchronised = false;
    }
    StepGraph.Key key = new StepGraph.Key(CudaKvStore.of(kv), batch, tokensPerSequence, variant);
    StepGraph g = graphs.get(key);
    if (g != null) {
      if (stepTimer != null) {
        stepTimer.walkStart();
      }
      g.begin();
      current = g;
      mode = Mode.REPLAY;
      return;
    }
    if (eagerRuns.merge(key, 1, Integer::sum) < 2) {
      forgetClosedStores(); // a new key: perhaps a new cache, after others were closed
      return;
    }
    // one workspace per shape: steps of another row count allocate other sizes
    StepGraph.Workspace ws = workspaces.computeIfAbsent(java.util.List.of(batch, tokensPerSequence),
        b -> new StepGraph.Workspace());
    if (ws.buffers.isEmpty()) {
      pool.trim(); // the capture allocates its workspace and cannot give cached activations back meanwhile
    }
    g = new StepGraph(key, ws, this::malloc);
    int st = cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed);
    if (st != 0) { // run this step and the later ones eagerly
      cudaGetLastError();
      discard(g);
      LOG.warn("cudaStreamBeginCapture failed on cuda:{} ({}): {} run without CUDA graphs", device,
          errorString(st), stopGraphs(key));
      return;
    }
    g.begin();
    current = g;
    mode = Mode.CAPTURE;
  }

  /** Ends a step begun by {@link #graphStep} that failed before reading its result: nothing is launched. */
  @Override
  public void graphAbort() {
    Mode m = mode;
    StepGraph g = current;
    mode = Mode.EAGER;
    current = null;
    if (m == Mode.CAPTURE) {
      CUgraph_st partial = new CUgraph_st();
      cudaStreamEndCapture(stream, partial); // ends the capture whatever its state
      if (!partial.isNull()) {
        cudaGraphDestroy(partial);
      }
      cudaGetLastError(); // an invalidated capture leaves its error behind: not the next kernel's
      discard(g);
    }
  }

  /**
   * A capture or replay went wrong: abandons the step (nothing of it ran), forgets the graph, runs every
   * later step eagerly, and tells the caller to run this one again op by op.
   */
  private GraphStepFailedException graphFailed(String what, RuntimeException cause) {
    StepGraph g = current;
    Mode m = mode;
    graphAbort();
    if (m == Mode.REPLAY && g != null && graphs.remove(g.key) != null) {
      discard(g);
    }
    String off = stopGraphs(g == null ? null : g.key);
    LOG.warn("CUDA graph {} failed at {} on cuda:{} ({}): {} run without graphs from now on",
        m == Mode.CAPTURE ? "capture" : "replay", what, device, cause.getMessage(), off);
    return new GraphStepFailedException("CUDA graph " + (m == Mode.CAPTURE ? "capture" : "replay") + " failed at "
        + what + ": " + cause.getMessage(), cause);
  }

  /**
   * After a graph of {@code key} failed: no more graphs of its kind. A step of drafts (more than one token per
   * sequence, {@link #useDraftGraphs}) only turns off draft graphs, so that decode keeps its graphs; anything else
   * turns graphs off for this instance. Returns what now runs without graphs, for the log.
   */
  private String stopGraphs(StepGraph.Key key) {
    if (key != null && key.tokensPerSequence() > 1) {
      draftGraphs = false;
      return "steps of drafts";
    }
    graphsBroken = true;
    return "all steps";
  }

  /**
   * Whether an op should launch now: always when eager; while capturing, after recording its signature; never
   * during a replay (the graph launches it), after checking it is the op the capture recorded here.
   */
  private boolean launch(String name, long... args) {
    if (mode == Mode.EAGER) {
      if (profile != null) {
        profile.before(name);
      }
      return true;
    }
    long sig = name.hashCode();
    for (long a : args) {
      sig = sig * 1_000_003L + a;
    }
    if (mode == Mode.CAPTURE) {
      current.captureOp(sig);
      return true;
    }
    if (!current.replayOpMatches(sig)) {
      throw graphFailed("op " + name, new IllegalStateException("the step differs from the captured one of the "
          + "same KV store, batch size, tokens per sequence and table width"));
    }
    return false;
  }

  @Override
  public void finishStep() {
    endStep();
    finishedEarly = true; // the pick's own endStep after it must not abandon the step's timing or profile again
  }

  /** Finishes a graph step before its result is read: instantiates a capture, then launches the graph. */
  private void endStep() {
    if (mode == Mode.EAGER) {
      if (finishedEarly) { // finishStep ended this step already
        finishedEarly = false;
        return;
      }
      if (stepTimer != null) {
        stepTimer.abandon(); // no graph launched in this step (a failed read may have left one started)
      }
      if (profile != null) {
        profile.endStep();
      }
      return;
    }
    finishedEarly = false;
    Mode m = mode;
    StepGraph g = current;
    mode = Mode.EAGER;
    current = null;
    if (m == Mode.CAPTURE) {
      CUgraph_st graph = new CUgraph_st();
      int st = cudaStreamEndCapture(stream, graph);
      CUgraphExec_st exec = new CUgraphExec_st();
      if (st == 0) {
        st = cudaGraphInstantiate(exec, graph, 0L);
      }
      if (st != 0) {
        cudaGetLastError();
        if (!graph.isNull()) {
          cudaGraphDestroy(graph);
        }
        discard(g);
        LOG.warn("CUDA graph capture failed on cuda:{} ({}): {} run without graphs", device, errorString(st),
            stopGraphs(g.key));
        throw new GraphStepFailedException("CUDA graph capture failed: " + errorString(st), null);
      }
      g.finishCapture(graph, exec);
      captures++;
      forgetClosedStores();
      graphs.put(g.key, g);
      if (graphs.size() > MAX_GRAPHS) {
        var eldest = graphs.entrySet().iterator().next();
        graphs.remove(eldest.getKey());
        discard(eldest.getValue());
      }
    } else if (!g.replayComplete()) {
      current = g;
      mode = Mode.REPLAY;
      throw graphFailed("the step's end", new IllegalStateException("the step did less than the captured one"));
    }
    if (stepTimer != null) {
      stepTimer.start(stream);
    }
    int st = cudaGraphLaunch(g.exec(), stream);
    if (st != 0) {
      if (stepTimer != null) {
        stepTimer.abandon();
      }
      cudaGetLastError();
      graphs.remove(g.key);
      discard(g);
      LOG.warn("cudaGraphLaunch failed on cuda:{} ({}): {} run without graphs", device, errorString(st),
          stopGraphs(g.key));
      throw new GraphStepFailedException("cudaGraphLaunch failed: " + errorString(st), null);
    }
    if (stepTimer != null) {
      stepTimer.launched();
    }
    replays++;
    launchedUnsynchronised = true;
  }

  /** Frees a graph and its index arena (not its workspace: other graphs of its shape share that). */
  private void discard(StepGraph g) {
    g.close();
    cudaFree(g.deviceArena());
  }

  /** Drops the graphs (and eager-run counts) of KV stores closed since: they can never be replayed again. */
  private void forgetClosedStores() {
    eagerRuns.keySet().removeIf(k -> k.store().isClosed());
    for (var it = graphs.entrySet().iterator(); it.hasNext(); ) {
      var e = it.next();
      if (e.getKey().store().isClosed()) {
        it.remove();
        discard(e.getValue());
      }
    }
  }

  /** Frees every captured step graph: after a change of kernels, so that later steps capture the new ones. */
  private void discardGraphs() {
    for (StepGraph g : graphs.values()) {
      discard(g);
    }
    graphs.clear();
    eagerRuns.clear();
  }

  /**
   * Chooses the attention kernel of this instance: {@code first}, {@code split}, {@code tiled} or {@code tc}
   * (see {@code -Dopt.cuda.attention}, which sets the default). Between steps only.
   */
  public void useAttentionKernel(String name) {
    requireEager("useAttentionKernel");
    if (!ATTENTION_KERNELS.contains(name)) {
      throw new IllegalArgumentException("attention kernel '" + name + "': use one of " + ATTENTION_KERNELS);
    }
    if (!name.equals(attentionKernel)) {
      discardGraphs();
    }
    attentionKernel = name;
  }

  /** The attention kernel in use (see {@link #useAttentionKernel}). */
  public String attentionKernel() {
    return attentionKernel;
  }

  /** Whether Linears go through cuBLASLt (see {@link #useLtGemm}). */
  public boolean usesLtGemm() {
    return lt != null;
  }

  /**
   * Whether cuBLASLt chooses the algorithm of each Linear shape of up to 64 rows by timing its heuristic's first
   * candidates (see {@code opt.cuda.ltTune}; session 14, verified on an H100 in session 17: no faster, so off). Between
   * steps only; this instance's graphs are discarded and its cuBLASLt plans made again.
   */
  public void useLtTuning(boolean on) {
    requireEager("useLtTuning");
    if (on != ltTuning) {
      discardGraphs();
      ltTuning = on;
      if (lt != null) {
        lt.useTuning(on);
      }
    }
  }

  /** Whether cuBLASLt's algorithms are chosen by timing (see {@link #useLtTuning}). */
  public boolean usesLtTuning() {
    return ltTuning;
  }

  /** cuBLASLt shapes whose algorithm was chosen by timing so far (tests check that tuning really ran). */
  public long ltTunedShapes() {
    return lt == null ? 0 : lt.tunedShapes();
  }

  /**
   * Tests only ({@link LtGemm#forceChoice}): tuned cuBLASLt plans made from now on take the heuristic's candidate
   * {@code index} when it ran, not the fastest; -1 restores the fastest. Graphs are discarded and plans made again.
   */
  void forceLtChoice(int index) {
    requireEager("forceLtChoice");
    discardGraphs();
    if (lt != null) {
      lt.forceChoice(index);
    }
  }

  /** The candidate index the last tuned cuBLASLt plan took (-1 before any, or without cuBLASLt; tests). */
  int ltLastChoice() {
    return lt == null ? -1 : lt.lastChoice();
  }

  /** Linears of 1 to this many rows run the matrix-vector kernel; 0: none (see {@link #useGemv}). */
  public int gemvMaxRows() {
    return gemvMaxRows;
  }

  /** Whether Linears go through cuBLASLt (tests run both; see {@code opt.cuda.gemm}). Between steps only. */
  public void useLtGemm(boolean on) {
    requireEager("useLtGemm");
    if (on == (lt != null)) {
      return;
    }
    discardGraphs(); // captured with the other GEMM path (and, when turning it off, with this handle's kernels)
    if (on) {
      check("cudaSetDevice(" + device + ")", cudaSetDevice(device));
      lt = new LtGemm(cublasWorkspace, CUBLAS_WORKSPACE_BYTES);
      lt.useTuning(ltTuning);
    } else {
      lt.close();
      lt = null;
    }
  }

  /**
   * Starts the per-op GPU times of {@code -Dopt.cuda.profile=true} afresh (a no-op without it): {@code opt bench}
   * calls it after its warm-up, whose first run pays for lazily loaded kernels and cuBLAS's algorithm choice.
   */
  public void resetProfile() {
    if (profile != null) {
      profile.reset();
    }
  }

  /** Warps per output group of the matrix-vector kernel, 1, 2 or 4; 0 = auto (see {@link #useGemvSplit}). */
  public int gemvSplit() {
    return gemvSplit;
  }

  /**
   * Warps per output group of the matrix-vector kernel: 1, 2, 4, or 0 for a choice per shape (see
   * {@code opt.cuda.gemvSplit}). Between steps only.
   */
  public void useGemvSplit(int split) {
    requireEager("useGemvSplit");
    if (split != 0 && split != 1 && split != 2 && split != 4) {
      throw new IllegalArgumentException("the matrix-vector kernel's split is 1, 2, 4 or 0 (auto), not " + split);
    }
    if (split != gemvSplit) {
      discardGraphs(); // captured with the other kernel
      gemvSplit = split;
    }
  }

  /** {@link #useGemv(int)} with 8 rows (on) or 0 (off). */
  public void useGemv(boolean on) {
    useGemv(on ? CudaSwitches.GEMV_MAX_ROWS : 0);
  }

  /**
   * Linears of 1 to {@code maxRows} rows run the matrix-vector kernel, 0 to 8 (0: none; see {@code opt.cuda.gemv}).
   * Between steps only.
   */
  public void useGemv(int maxRows) {
    requireEager("useGemv");
    if (maxRows < 0 || maxRows > CudaSwitches.GEMV_MAX_ROWS) {
      throw new IllegalArgumentException("matrix-vector Linears take 0 to " + CudaSwitches.GEMV_MAX_ROWS
          + " rows, not " + maxRows);
    }
    if (maxRows != gemvMaxRows) {
      discardGraphs(); // captured with the other Linear path
      gemvMaxRows = maxRows;
    }
  }

  /**
   * Turns chained (programmatic dependent) launches of the decode kernels on or off for the whole process (see
   * {@code opt.cuda.chained}); on needs compute capability 9.0 or newer and is refused below it. Between steps
   * only; this instance's graphs are discarded (captured with the other launches).
   */
  public void useChainedLaunches(boolean on) {
    requireEager("useChainedLaunches");
    if (on) {
      requireChainedSupported();
    }
    discardGraphs();
    OptKernels.opt_set_chained_launch(on ? 1 : 0);
  }

  private void requireChainedSupported() {
    check("cudaSetDevice(" + device + ")", cudaSetDevice(device));
    if (OptKernels.opt_chained_launch_supported() == 0) {
      throw new IllegalStateException("chained launches need a GPU of compute capability 9.0 or newer running "
          + "kernels compiled for it (cuda:" + device + " is not, or the kernel library was built without sm_90); "
          + "leave opt.cuda.chained off here");
    }
  }

  /** Whether chained launches are on in this process (see {@link #useChainedLaunches}). */
  public static boolean chainedLaunches() {
    return OptKernels.opt_chained_launch() != 0;
  }

  /**
   * Process-wide: whether layer norms of rows of whole 16-byte chunks run the vector kernel (see
   * {@code opt.cuda.vecNorm}). Between steps only; this instance's graphs are discarded (another instance's keep the
   * kernel they captured, which computes the same function).
   */
  public void useVectorNorm(boolean on) {
    requireEager("useVectorNorm");
    if (on != vectorNorm()) {
      discardGraphs();
      OptKernels.opt_set_vector_layernorm(on ? 1 : 0);
    }
  }

  /** Whether the vector layer norm is on in this process (see {@link #useVectorNorm}). */
  public static boolean vectorNorm() {
    return OptKernels.opt_vector_layernorm() != 0;
  }

  /**
   * How many times in this process the launchers chose each counted kernel ({@link OptKernels#opt_launch_count};
   * eager steps and graph captures, not replays), by name: grouped_split, vector_layernorm, split_gemv (written
   * behind flags in sessions 11 and 12, defaults since session 17; a kernel still behind a flag gets a counter too).
   * {@code opt bench} reports the difference over a run, so that a variant whose kernel never ran (a launcher's
   * fallback for a shape it does not serve) is not read as that kernel's speed.
   */
  public static java.util.Map<String, Long> newKernelLaunches() {
    java.util.Map<String, Long> m = new java.util.LinkedHashMap<>();
    m.put("grouped_split", OptKernels.opt_launch_count(OptKernels.COUNT_GROUPED_SPLIT));
    m.put("vector_layernorm", OptKernels.opt_launch_count(OptKernels.COUNT_VECTOR_LAYERNORM));
    m.put("split_gemv", OptKernels.opt_launch_count(OptKernels.COUNT_SPLIT_GEMV));
    m.put("tc_linear", OptKernels.opt_launch_count(OptKernels.COUNT_TC_LINEAR));
    return m;
  }

  /** How many Linears ran the matrix-vector kernel so far (tests check that its path really ran). */
  public long gemvLaunches() {
    return gemvLaunches;
  }

  /** How many Linears went through cuBLASLt so far (tests check that its path really ran). */
  public long ltLaunches() {
    return lt == null ? 0 : lt.launches();
  }

  /** Whether greedy log-probs come from the device kernel (see {@code opt.cuda.deviceLogprob}). */
  boolean usesDeviceLogprobs() {
    return deviceLogprobs;
  }

  /** Whether greedy log-probs come from the device kernel (tests run both; see {@code opt.cuda.deviceLogprob}). */
  void useDeviceLogprobs(boolean onDevice) {
    deviceLogprobs = onDevice;
  }

  /**
   * Times every replayed graph step (decode; drafts too, with {@link #useDraftGraphs}) on the GPU from now on (on) or
   * stops (off); see {@link GraphStepTimer}. For {@code opt bench}: set next to a step's wall time, it tells GPU work
   * from what the host adds.
   */
  public void timeGraphSteps(boolean on) {
    requireEager("timeGraphSteps");
    if (on && stepTimer == null) {
      check("cudaSetDevice(" + device + ")", cudaSetDevice(device));
      stepTimer = new GraphStepTimer();
    } else if (!on && stepTimer != null) {
      stepTimer.close();
      stepTimer = null;
    }
  }

  /** GPU milliseconds per replayed graph step since the timer was reset, or NaN without any (see timeGraphSteps). */
  public double graphStepGpuMillis() {
    return stepTimer == null || stepTimer.steps() == 0 ? Double.NaN : stepTimer.totalMs() / stepTimer.steps();
  }

  /**
   * The host's milliseconds per timed replayed step since the timer was reset: {walk of the step's ops, the
   * cudaGraphLaunch call, the wait for the tokens}, or null without any step (see {@link GraphStepTimer}).
   */
  public double[] graphStepHostMillis() {
    if (stepTimer == null || stepTimer.steps() == 0) {
      return null;
    }
    double n = stepTimer.steps();
    return new double[] {stepTimer.walkMs() / n, stepTimer.launchMs() / n, stepTimer.waitMs() / n};
  }

  /**
   * Starts (on) or stops the range a profiler started with {@code --profile-from-start off} records (ncu, nsys):
   * {@code opt bench} marks a decode run with it under {@code -Dopt.cuda.profilerRange=true}, so that
   * scripts/device-check.sh times each kernel of the replayed decode graphs and nothing else.
   */
  public void profilerRange(boolean on) {
    check("cudaSetDevice(" + device + ")", cudaSetDevice(device));
    check(on ? "cudaProfilerStart" : "cudaProfilerStop", OptKernels.opt_profiler_range(on ? 1 : 0));
  }

  /** Starts the timed steps afresh (after a warm-up). */
  public void resetGraphStepTimes() {
    if (stepTimer != null) {
      stepTimer.reset();
    }
  }

  private void stepTimerStop() {
    if (stepTimer != null) {
      stepTimer.stop(stream);
    }
  }

  private void stepTimerCollect() {
    if (stepTimer != null) {
      stepTimer.collect();
    }
  }

  /** Decode-step graphs captured and kept (for tests and diagnostics). */
  public int graphCount() {
    return graphs.size();
  }

  /** Step graphs captured so far, including those dropped since (for tests and diagnostics). */
  public long graphCaptures() {
    return captures;
  }

  /** Graph launches so far, captures included (for tests and diagnostics). */
  public long graphLaunches() {
    return replays;
  }

  private void requireEager(String what) {
    if (mode != Mode.EAGER) {
      graphAbort();
      throw new IllegalStateException(what + " inside a graph step: a step ends with read() or argmaxRows()");
    }
  }

  /**
   * The first index of each row's maximum (NaN counting as the largest), on the device: a decode step copies
   * back 4 bytes per sequence instead of its whole row of logits.
   */
  @Override
  public int[] argmaxRows(Mat logits) {
    return argmaxRows(logits, null);
  }

  /** As {@link #argmaxRows(Mat)}, with each pick's log-softmax computed on the device too (float32). */
  @Override
  public int[] argmaxRows(Mat logits, double[] logprobs) {
    return argmaxRows(logits, logprobs, LogitEdits.NONE);
  }

  /** As {@link #argmaxRows(Mat, double[])} after {@code edits} changed the float32 copy of the logits. */
  @Override
  public int[] argmaxRows(Mat logits, double[] logprobs, LogitEdits edits) {
    if ((logprobs != null && !deviceLogprobs) || (!edits.isEmpty() && !CudaSwitches.DEVICE_EDITS)) {
      return Ops.super.argmaxRows(logits, logprobs, edits); // read() + RowMath on the host
    }
    CudaMat s = endStepFor(logits, edits);
    int n = s.rows;
    int vocab = s.cols;
    long f32Bytes = dtype == DType.F32 ? 0 : 4L * n * vocab;
    Pointer scratch = argmaxScratch(f32Bytes + 8L * Math.max(n, 1)); // logits as f32, then n ints, n floats
    FloatPointer values = logitsAsFloat32(s, scratch, "argmax");
    editLogits(values, edits, (long) n * vocab);
    IntPointer index = IndexUploads.at(scratch, f32Bytes / 4);
    FloatPointer lp = new FloatPointer(IndexUploads.at(scratch, f32Bytes / 4 + n));
    op("argmax", logprobs == null ? OptKernels.opt_argmax_f32(index, values, n, vocab, stream)
        : OptKernels.opt_argmax_logprob_f32(index, lp, values, n, vocab, stream));
    return readTokens(index, n, logprobs, "argmax");
  }

  /**
   * As {@link #argmaxRows(Mat, double[], LogitEdits)} with each row's {@code k} most likely tokens and their log-probs
   * ({@code opt_top_logprobs_f32}) after the edits: one copy back of the picks, their log-probs and the k pairs.
   */
  @Override
  public int[] argmaxRows(Mat logits, double[] logprobs, LogitEdits edits, int k, int[] topIds,
      double[] topLogprobs) {
    if (k == 0) {
      return argmaxRows(logits, logprobs, edits);
    }
    if (logprobs == null || !deviceLogprobs || !CudaSwitches.DEVICE_TOP_LOGPROBS
        || (!edits.isEmpty() && !CudaSwitches.DEVICE_EDITS)) {
      return Ops.super.argmaxRows(logits, logprobs, edits, k, topIds, topLogprobs);
    }
    CudaMat s = endStepFor(logits, edits);
    int n = s.rows;
    int vocab = s.cols;
    if (n == 0) {
      return new int[0];
    }
    // Scratch: [logits as f32][n picks][n log-probs][n·k ids][n·k log-probs]: the last four read back at once
    long f32Bytes = dtype == DType.F32 ? 0 : 4L * n * vocab;
    long readBytes = 8L * n + 8L * n * k;
    Pointer scratch = argmaxScratch(f32Bytes + readBytes);
    FloatPointer values = logitsAsFloat32(s, scratch, "argmax");
    editLogits(values, edits, (long) n * vocab);
    long at = f32Bytes / 4;
    IntPointer index = IndexUploads.at(scratch, at);
    FloatPointer lp = new FloatPointer(IndexUploads.at(scratch, at + n));
    IntPointer ids = IndexUploads.at(scratch, at + 2L * n);
    FloatPointer topLp = new FloatPointer(IndexUploads.at(scratch, at + 2L * n + (long) n * k));
    op("argmax", OptKernels.opt_argmax_logprob_f32(index, lp, values, n, vocab, stream));
    op("top log-probs", OptKernels.opt_top_logprobs_f32(ids, topLp, values, n, vocab, k, stream));
    Pointer host = readBack(index, readBytes, "top log-probs");
    readTopPairs(host, n, k, topIds, topLogprobs);
    return tokensAndLogprobs(host, n, logprobs);
  }

  /** The n·k ids and then n·k float log-probs that follow n tokens and n log-probs at {@code host}. */
  private static void readTopPairs(Pointer host, int n, int k, int[] topIds, double[] topLogprobs) {
    new IntPointer(IndexUploads.at(host, 2L * n)).get(topIds, 0, n * k);
    float[] g = new float[n * k];
    new FloatPointer(IndexUploads.at(host, 2L * n + (long) n * k)).get(g);
    for (int i = 0; i < n * k; i++) {
      topLogprobs[i] = g[i];
    }
  }

  /**
   * Beam search's candidates on the device ({@code opt_beam_topk_f32}): the row numbers and beam scores go up from
   * pinned memory, {@code k} ids and scores per beam come back in one copy.
   */
  @Override
  public void beamTopK(Mat logits, int[] rows, float[] base, int k, int[] ids, float[] scores) {
    beamTopK(logits, rows, base, k, ids, scores, LogitEdits.NONE);
  }

  /**
   * As {@link #beamTopK(Mat, int[], float[], int, int[], float[])} with a beam's processors as {@code edits} on the
   * log-probabilities: {@code opt_log_softmax_rows_f32} into scratch, {@code opt_edit_logits_f32} on it, then
   * {@code opt_beam_topk_f32} over log-probabilities.
   */
  @Override
  public void beamTopK(Mat logits, int[] rows, float[] base, int k, int[] ids, float[] scores, LogitEdits edits) {
    if (!deviceBeams || (!edits.isEmpty() && !CudaSwitches.DEVICE_EDITS)) {
      Ops.super.beamTopK(logits, rows, base, k, ids, scores, edits);
      return;
    }
    CudaMat s = endStepFor(logits, edits);
    RowMath.requireBeamLists(rows, base, k, ids, scores, s.rows); // after endStep: no capture or replay half done
    int n = rows.length;
    if (n == 0) {
      return;
    }
    int vocab = s.cols;
    // Scratch: [logits as f32][their log-softmax, with edits][n·k ids][n·k scores][n rows][n bases]: the ids and
    // scores read back at once
    long f32Bytes = dtype == DType.F32 ? 0 : 4L * s.rows * vocab; // every row of the step (padding too)
    long lpBytes = edits.isEmpty() ? 0 : 4L * s.rows * vocab;
    long readBytes = 8L * n * k;
    long outAt = (f32Bytes + lpBytes) / 4;
    Pointer scratch = argmaxScratch(f32Bytes + lpBytes + readBytes + 8L * n);
    FloatPointer values = logitsAsFloat32(s, scratch, "beam top-k");
    if (!edits.isEmpty()) {
      FloatPointer lp = new FloatPointer(IndexUploads.at(scratch, f32Bytes / 4));
      op("log-softmax rows", OptKernels.opt_log_softmax_rows_f32(lp, values, s.rows, vocab, stream));
      editLogits(lp, edits, (long) s.rows * vocab);
      values = lp;
    }
    long paramsAt = outAt + 2L * n * k;
    // pinned: a copy from pageable memory would first wait for the step's kernels
    Pointer staging = pickStaging.take(8L * n, stream);
    new IntPointer(staging).put(rows);
    new FloatPointer(IndexUploads.at(staging, n)).put(base);
    check("beam top-k parameters", cudaMemcpyAsync(IndexUploads.at(scratch, paramsAt), staging, 8L * n,
        cudaMemcpyHostToDevice, stream));
    IntPointer outIds = IndexUploads.at(scratch, outAt);
    FloatPointer outScores = new FloatPointer(IndexUploads.at(scratch, outAt + (long) n * k));
    op("beam top-k", OptKernels.opt_beam_topk_f32(outIds, outScores, values, IndexUploads.at(scratch, paramsAt),
        new FloatPointer(IndexUploads.at(scratch, paramsAt + n)), n, vocab, k, edits.isEmpty() ? 0 : 1, stream));
    Pointer host = readBack(outIds, readBytes, "beam top-k");
    new IntPointer(host).get(ids, 0, n * k);
    new FloatPointer(IndexUploads.at(host, (long) n * k)).get(scores, 0, n * k);
  }

  /**
   * The start of every pick op (argmax, top-k, sampling, beam candidates): ends the step (its capture or replay),
   * then checks the edits against the logits; checked after, so that a failure leaves no capture half done.
   */
  private CudaMat endStepFor(Mat logits, LogitEdits edits) {
    CudaMat s = CudaMat.of(logits);
    endStep();
    requireEditsInside(edits, s);
    return s;
  }

  private static void requireEditsInside(LogitEdits edits, CudaMat logits) {
    long total = (long) logits.rows * logits.cols;
    for (int at : edits.index()) {
      if (at < 0 || at >= total) {
        throw new IllegalArgumentException("a logit edit at " + at + " lies outside the " + logits.rows + " × "
            + logits.cols + " logits (built for another vocabulary or row count?)");
      }
    }
  }

  /**
   * Applies {@code edits} to the float32 logits at {@code values} ({@code total} of them) with one kernel after
   * one copy of the packed edits from pinned memory (a copy from pageable memory would wait for the step's kernels
   * before it starts).
   */
  private void editLogits(FloatPointer values, LogitEdits edits, long total) {
    if (edits.isEmpty()) {
      return;
    }
    int[] packed = edits.packed();
    long bytes = 4L * packed.length;
    Pointer staging = editStaging.take(bytes, stream);
    if (editScratchBytes < editStaging.bytes()) { // the device copy grows with the staging memory
      if (editScratch != null) {
        cudaFree(editScratch);
        editScratch = null;
        editScratchBytes = 0;
      }
      editScratch = malloc(editStaging.bytes(), "logit edits");
      editScratchBytes = editStaging.bytes();
    }
    new IntPointer(staging).put(packed);
    check("logit edits upload", cudaMemcpyAsync(editScratch, staging, bytes, cudaMemcpyHostToDevice, stream));
    op("logit edits", OptKernels.opt_edit_logits_f32(values, new IntPointer(editScratch), edits.count(), total,
        stream));
  }

  /** The logits as float32 for the picking kernels: themselves in f32, else converted into {@code scratch}. */
  private FloatPointer logitsAsFloat32(CudaMat s, Pointer scratch, String what) {
    if (dtype == DType.F32) {
      return s.f32();
    }
    FloatPointer values = new FloatPointer(scratch);
    int count = Math.multiplyExact(s.rows, s.cols);
    op(what + " (to float32)", dtype == DType.F16
        ? OptKernels.opt_to_f32_f16(values, s.bits(), count, stream)
        : OptKernels.opt_to_f32_bf16(values, s.bits(), count, stream));
    return values;
  }

  /**
   * Ends the step: copies the n tokens at {@code tokens} (and, when {@code logprobs} is not null, the n float
   * log-probs right after them: one copy) to the host and waits for them.
   */
  private int[] readTokens(IntPointer tokens, int n, double[] logprobs, String what) {
    return tokensAndLogprobs(readBack(tokens, (logprobs == null ? 4L : 8L) * n, what), n, logprobs);
  }

  /**
   * Ends the step: copies {@code bytes} from {@code from} to the pinned read buffer, waits for them (and so for every
   * upload the step queued), and returns the buffer.
   */
  private Pointer readBack(Pointer from, long bytes, String what) {
    Pointer host = readBuffer(Math.max(bytes, 8));
    check(what + " read", cudaMemcpyAsync(host, from, bytes, cudaMemcpyDeviceToHost, stream));
    stepTimerStop();
    check(what + " read (synchronise)", cudaStreamSynchronize(stream));
    stepTimerCollect();
    launchedUnsynchronised = false;
    editStaging.waited();
    pickStaging.waited();
    uploads.reset();
    return host;
  }

  /** The n tokens at {@code host}, and when {@code logprobs} is not null the n float log-probs after them. */
  private static int[] tokensAndLogprobs(Pointer host, int n, double[] logprobs) {
    int[] out = new int[n];
    new IntPointer(host).get(out);
    if (logprobs != null) {
      float[] f = new float[n];
      new FloatPointer(IndexUploads.at(host, n)).get(f);
      for (int i = 0; i < n; i++) {
        logprobs[i] = f[i];
      }
    }
    return out;
  }

  @Override
  public boolean samplesOnDevice() {
    return deviceSampling;
  }

  @Override
  public boolean samplesTypicalOnDevice() {
    return deviceSampling && deviceTypical;
  }

  /**
   * Whether rows with typical sampling draw on the device ({@link #sampleRows}; else they are read back and drawn by
   * the same rules on the host; see {@code opt.cuda.deviceTypical}).
   */
  public void useDeviceTypical(boolean onDevice) {
    deviceTypical = onDevice;
  }

  /** Whether {@link #sampleRows} with greedy rows among drawn ones stays on the device (its fallbacks read the rows). */
  @Override
  public boolean picksMixedRowsOnDevice() {
    return deviceSampling && deviceMixedPicks && deviceLogprobs;
  }

  /**
   * Whether the split-KV decode attention merges its splits in the kernel itself (see {@code opt.cuda.inlineCombine})
   * instead of in a second kernel. Between steps only; this instance's graphs are discarded (captured the other way).
   */
  public void useInlineCombine(boolean on) {
    requireEager("useInlineCombine");
    if (on != inlineCombine) {
      discardGraphs();
      inlineCombine = on;
    }
  }

  /**
   * Whether steps of drafts are replayed as CUDA graphs too (see {@code opt.cuda.draftGraphs}). Between steps only.
   */
  public void useDraftGraphs(boolean on) {
    requireEager("useDraftGraphs");
    draftGraphs = on;
  }

  /**
   * Whether decode steps are padded to a few batch sizes when graphs are on (see {@code opt.cuda.batchBuckets}).
   * Between steps only.
   */
  public void useBatchBuckets(boolean on) {
    requireEager("useBatchBuckets");
    batchBuckets = on;
  }

  /** Whether decode steps are padded to bucket sizes (see {@link #useBatchBuckets}). */
  public boolean usesBatchBuckets() {
    return batchBuckets;
  }

  /** With graphs and {@link #useBatchBuckets} on: {@link io.github.optjava.backend.BatchBuckets#of}; else n. */
  @Override
  public int decodeBatchBucket(int n) {
    return batchBuckets && graphsEnabled && !graphsBroken && n > 0 ? io.github.optjava.backend.BatchBuckets.of(n) : n;
  }

  /** Whether steps of drafts are replayed as CUDA graphs (see {@link #useDraftGraphs}). */
  public boolean usesDraftGraphs() {
    return draftGraphs;
  }

  /** Whether the split-KV attention merges its splits in the kernel (see {@link #useInlineCombine}). */
  public boolean usesInlineCombine() {
    return inlineCombine;
  }

  /**
   * Whether the split-KV decode attention reads each key row with a group of threads (see
   * {@code opt.cuda.groupedSplit}). Between steps only; this instance's graphs are discarded (captured the other way).
   */
  public void useGroupedSplit(boolean on) {
    requireEager("useGroupedSplit");
    if (on != groupedSplit) {
      discardGraphs();
      groupedSplit = on;
    }
  }

  /** Whether the split-KV attention reads key rows with a group of threads (see {@link #useGroupedSplit}). */
  public boolean usesGroupedSplit() {
    return groupedSplit;
  }

  /** Whether beam search's candidates come from the device kernel (see {@code opt.cuda.deviceBeams}). */
  public void useDeviceBeams(boolean onDevice) {
    deviceBeams = onDevice;
  }

  /** Whether beam search's candidates come from the device kernel. */
  public boolean usesDeviceBeams() {
    return deviceBeams;
  }

  /**
   * Whether a step mixing greedy and sampled rows picks both on the device ({@link #sampleRows} with temperature 0
   * rows; tests run both; see {@code opt.cuda.deviceMixedPicks}).
   */
  public void useDeviceMixedPicks(boolean onDevice) {
    deviceMixedPicks = onDevice;
  }

  /**
   * Whether the sampler keeps each row's s and then its weights in scratch memory, so that its passes after the
   * first read them back instead of dividing and exponentiating again (a parity test and the device check's engine
   * row run both; see {@code opt.cuda.samplerWeights}).
   */
  public void useSamplerWeights(boolean on) {
    samplerWeights = on;
  }

  /** Whether the sampler keeps each row's s and weights in scratch memory. */
  public boolean usesSamplerWeights() {
    return samplerWeights;
  }

  /** Whether a step mixing greedy and sampled rows picks both on the device. */
  public boolean usesDeviceMixedPicks() {
    return deviceMixedPicks;
  }

  /** Whether echo scores come from the device kernel (tests run both; see {@code opt.cuda.deviceScores}). */
  public void useDeviceScores(boolean onDevice) {
    deviceScores = onDevice;
  }

  /** Whether echo scores come from the device kernel. */
  public boolean usesDeviceScores() {
    return deviceScores;
  }

  @Override
  public boolean scoresOnDevice() {
    return deviceScores;
  }

  @Override
  public double[] tokenLogprobs(Mat logits, int[] tokens) {
    if (!deviceScores) {
      return Ops.super.tokenLogprobs(logits, tokens);
    }
    return scoreRows(logits, tokens, 0, null, null);
  }

  /**
   * With {@code k} alternatives per row: the top-k kernel of a greedy request's alternatives
   * ({@code opt_top_logprobs_f32}) over each chunk the scores read, its pairs copied back with the scores (an echo
   * request with {@code logprobs}: k pairs per prompt row instead of the rows).
   */
  @Override
  public double[] tokenLogprobs(Mat logits, int[] tokens, int k, int[] topIds, double[] topLogprobs) {
    if (k == 0) {
      return tokenLogprobs(logits, tokens);
    }
    if (!deviceScores || !deviceLogprobs || !CudaSwitches.DEVICE_TOP_LOGPROBS) {
      return Ops.super.tokenLogprobs(logits, tokens, k, topIds, topLogprobs);
    }
    return scoreRows(logits, tokens, k, topIds, topLogprobs);
  }

  /** {@link #tokenLogprobs} on the device, with {@code k} alternatives per row when {@code k > 0}. */
  private double[] scoreRows(Mat logits, int[] tokens, int k, int[] topIds, double[] topLogprobs) {
    CudaMat s = CudaMat.of(logits);
    require(tokens.length == s.rows, () -> "tokenLogprobs: " + tokens.length + " tokens for " + s.rows + " rows");
    require(k == 0 || (topIds.length >= (long) s.rows * k && topLogprobs.length >= (long) s.rows * k),
        () -> "tokenLogprobs: room for " + Math.min(topIds.length, topLogprobs.length) + " alternatives, not "
            + s.rows + " rows of " + k);
    endStep();
    int n = s.rows;
    int cols = s.cols;
    if (n == 0) {
      return new double[0];
    }
    // In chunks of rows, so that the float32 copy of fp16/bf16 logits stays small (a 2,047-row prompt's would be
    // 412 MB: more than a device whose KV cache took the free memory has left).
    int chunkRows = (int) Math.max(1, Math.min(n, (16L << 20) / (4L * cols)));
    long f32Bytes = dtype == DType.F32 ? 0 : 4L * chunkRows * cols;
    // one chunk's logits as f32, then n float log-probs, n·k int ids and n·k float log-probs: the last three read
    // back at once
    long readBytes = 4L * n + 8L * n * k;
    Pointer scratch = argmaxScratch(f32Bytes + readBytes);
    FloatPointer lp = new FloatPointer(IndexUploads.at(scratch, f32Bytes / 4));
    IntPointer ids = IndexUploads.at(scratch, f32Bytes / 4 + n);
    FloatPointer topLp = new FloatPointer(IndexUploads.at(scratch, f32Bytes / 4 + n + (long) n * k));
    long elementBytes = dtype == DType.F32 ? 4 : 2;
    for (int r0 = 0; r0 < n; r0 += chunkRows) {
      int rows = Math.min(chunkRows, n - r0);
      Pointer src = byteOffset(s.ptr(), (long) r0 * cols * elementBytes);
      FloatPointer values;
      if (dtype == DType.F32) {
        values = new FloatPointer(src);
      } else {
        values = new FloatPointer(scratch);
        int count = Math.multiplyExact(rows, cols);
        op("tokenLogprobs (to float32)", dtype == DType.F16
            ? OptKernels.opt_to_f32_f16(values, new ShortPointer(src), count, stream)
            : OptKernels.opt_to_f32_bf16(values, new ShortPointer(src), count, stream));
      }
      IntPointer d = ints(java.util.Arrays.copyOfRange(tokens, r0, r0 + rows));
      op("tokenLogprobs", OptKernels.opt_token_logprob_f32(new FloatPointer(IndexUploads.at(lp, r0)), values, d, rows,
          cols, stream));
      if (k > 0) {
        op("tokenLogprobs (top log-probs)", OptKernels.opt_top_logprobs_f32(IndexUploads.at(ids, (long) r0 * k),
            new FloatPointer(IndexUploads.at(topLp, (long) r0 * k)), values, rows, cols, k, stream));
      }
    }
    Pointer host = readBuffer(readBytes);
    check("tokenLogprobs read", cudaMemcpyAsync(host, lp, readBytes, cudaMemcpyDeviceToHost, stream));
    stepTimerStop();
    check("tokenLogprobs read (synchronise)", cudaStreamSynchronize(stream));
    stepTimerCollect();
    launchedUnsynchronised = false;
    uploads.reset();
    float[] f = new float[n];
    new FloatPointer(host).get(f);
    double[] out = new double[n];
    for (int i = 0; i < n; i++) {
      out[i] = f[i];
    }
    if (k > 0) {
      new IntPointer(IndexUploads.at(host, n)).get(topIds, 0, n * k);
      float[] g = new float[n * k];
      new FloatPointer(IndexUploads.at(host, n + (long) n * k)).get(g);
      for (int i = 0; i < n * k; i++) {
        topLogprobs[i] = g[i];
      }
    }
    return out;
  }

  /** A pointer {@code bytes} past {@code base} (for a row range of a device matrix). */
  private static Pointer byteOffset(Pointer base, long bytes) {
    long target = base.address() + bytes; // not named "address": that is the field set below
    return new Pointer((Pointer) null) {
      {
        address = target;
      }
    };
  }

  /** Whether sampled steps draw on the device (tests run both; see {@code opt.cuda.deviceSampling}). */
  public void useDeviceSampling(boolean onDevice) {
    deviceSampling = onDevice;
  }

  /**
   * One token per row drawn where the logits are ({@code opt_sample_rows_f32}), with each row's {@code k} alternatives
   * when {@code k > 0} ({@code opt_sample_rows_top_f32}): one copy back of the tokens, log-probs and k pairs. Rows at
   * temperature 0 are greedy: when every row is, this is {@link #argmaxRows}; when some are, the sampler draws the
   * others and the argmax kernels run over the same edited rows, and both results come back in one copy (the greedy
   * rows' then replace the sampler's). (The shorter overloads are {@link Ops}' defaults, which come here.)
   */
  @Override
  public int[] sampleRows(Mat logits, SamplingRows rows, double[] logprobs, LogitEdits edits, int k, int[] topIds,
      double[] topLogprobs) {
    if (rows.rows() != logits.rows()) {
      throw new IllegalArgumentException("sampleRows: " + rows.rows() + " rows of parameters for " + logits.rows()
          + " rows of logits");
    }
    float[] temperature = rows.temperature();
    int greedy = 0;
    for (float t : temperature) {
      greedy += t == 0f ? 1 : 0;
    }
    if (greedy > 0 && greedy == logits.rows()) {
      return argmaxRows(logits, logprobs, edits, k, topIds, topLogprobs);
    }
    if (!deviceSampling || (!edits.isEmpty() && !CudaSwitches.DEVICE_EDITS) || (!deviceMinP && rows.anyMinP())
        || (!deviceTypical && rows.anyTypical())
        || (k > 0 && (logprobs == null || !CudaSwitches.DEVICE_TOP_LOGPROBS))
        || (greedy > 0 && (!deviceMixedPicks || !deviceLogprobs))) {
      return Ops.super.sampleRows(logits, rows, logprobs, edits, k, topIds, topLogprobs);
    }
    CudaMat s = endStepFor(logits, edits);
    int n = s.rows;
    int vocab = s.cols;
    if (n == 0) {
      return new int[0];
    }
    // Scratch: [logits as f32][n tokens][n log-probs][n·k ids][n·k log-probs] (the sampler's), with greedy rows the
    // same again (the argmax's; both read back at once), then the parameters: [n temperatures][n top-k][n top-p]
    // [n min-p][n typical-p][pad][n uniforms], then with the weights cache the rows' weights (n·vocab floats)
    long f32Bytes = dtype == DType.F32 ? 0 : 4L * n * vocab;
    long partBytes = 8L * n + 8L * n * k;
    long readBytes = (greedy > 0 ? 2 : 1) * partBytes;
    long paramsAt = f32Bytes + readBytes;
    long uniformAt = (paramsAt + 20L * n + 7) / 8 * 8;
    long weightsAt = uniformAt + 8L * Math.max(n, 1);
    boolean cacheWeights = samplerWeights; // s, then the weights: each pass after the first reads them back
    Pointer scratch = argmaxScratch(weightsAt + (cacheWeights ? 4L * n * vocab : 0));
    FloatPointer weights = cacheWeights ? new FloatPointer(IndexUploads.at(scratch, weightsAt / 4)) : null;
    FloatPointer values = logitsAsFloat32(s, scratch, "sample");
    editLogits(values, edits, (long) n * vocab);
    long paramBytes = uniformAt - paramsAt + 8L * n;
    // pinned: a copy from pageable memory would first wait for the step's kernels
    org.bytedeco.javacpp.BytePointer params =
        new org.bytedeco.javacpp.BytePointer(pickStaging.take(paramBytes, stream)).capacity(paramBytes);
    java.nio.ByteBuffer b = params.asByteBuffer().order(java.nio.ByteOrder.nativeOrder());
    for (int r = 0; r < n; r++) {
      boolean picked = temperature[r] == 0f; // the sampler's draw for it is dropped: make it cheap (u 0, no cuts)
      b.putFloat(4 * r, picked ? 1f : temperature[r]);
      b.putInt(4 * (n + r), picked ? 0 : rows.topK()[r]);
      b.putFloat(4 * (2 * n + r), picked ? 1f : rows.topP()[r]);
      b.putFloat(4 * (3 * n + r), picked ? 0f : rows.minP()[r]);
      b.putFloat(4 * (4 * n + r), picked ? 1f : rows.typicalP()[r]);
      b.putDouble((int) (uniformAt - paramsAt) + 8 * r, picked ? 0.0 : rows.uniform()[r]);
    }
    check("sample parameters", cudaMemcpyAsync(IndexUploads.at(scratch, paramsAt / 4), params, paramBytes,
        cudaMemcpyHostToDevice, stream));
    IntPointer tokens = IndexUploads.at(scratch, f32Bytes / 4);
    FloatPointer lp = new FloatPointer(IndexUploads.at(scratch, f32Bytes / 4 + n));
    FloatPointer temps = new FloatPointer(IndexUploads.at(scratch, paramsAt / 4));
    IntPointer ks = IndexUploads.at(scratch, paramsAt / 4 + n);
    FloatPointer ps = new FloatPointer(IndexUploads.at(scratch, paramsAt / 4 + 2L * n));
    FloatPointer mins = new FloatPointer(IndexUploads.at(scratch, paramsAt / 4 + 3L * n));
    FloatPointer typicals = new FloatPointer(IndexUploads.at(scratch, paramsAt / 4 + 4L * n));
    org.bytedeco.javacpp.DoublePointer us = new org.bytedeco.javacpp.DoublePointer(IndexUploads.at(scratch,
        uniformAt / 4));
    if (k == 0 && greedy == 0) {
      op("sample", OptKernels.opt_sample_rows_f32(tokens, lp, values, temps, ks, ps, mins, typicals, us, n, vocab,
          weights, stream));
      return readTokens(tokens, n, logprobs, "sample");
    }
    IntPointer ids = IndexUploads.at(scratch, f32Bytes / 4 + 2L * n);
    FloatPointer topLp = new FloatPointer(IndexUploads.at(scratch, f32Bytes / 4 + 2L * n + (long) n * k));
    op("sample", OptKernels.opt_sample_rows_top_f32(tokens, lp, ids, topLp, k, values, temps, ks, ps, mins, typicals,
        us, n, vocab, weights, stream));
    if (greedy > 0) {
      long at = (f32Bytes + partBytes) / 4; // the argmax's part, right after the sampler's
      IntPointer picks = IndexUploads.at(scratch, at);
      op("argmax", OptKernels.opt_argmax_logprob_f32(picks, new FloatPointer(IndexUploads.at(scratch, at + n)), values,
          n, vocab, stream));
      if (k > 0) {
        op("top log-probs", OptKernels.opt_top_logprobs_f32(IndexUploads.at(scratch, at + 2L * n),
            new FloatPointer(IndexUploads.at(scratch, at + 2L * n + (long) n * k)), values, n, vocab, k, stream));
      }
    }
    Pointer host = readBack(tokens, readBytes, "sample");
    int[] out = tokensAndLogprobs(host, n, logprobs);
    if (k > 0) {
      readTopPairs(host, n, k, topIds, topLogprobs);
    }
    if (greedy > 0) {
      takeGreedyRows(IndexUploads.at(host, partBytes / 4), temperature, n, k, out, logprobs, topIds, topLogprobs);
    }
    return out;
  }

  /**
   * A mixed step's greedy rows (temperature 0): their token, log-prob and k pairs from the argmax's part of the read
   * buffer ({@code part}: n tokens, n log-probs, n·k ids, n·k log-probs) in place of the sampler's.
   */
  private static void takeGreedyRows(Pointer part, float[] temperature, int n, int k, int[] tokens, double[] logprobs,
      int[] topIds, double[] topLogprobs) {
    double[] lp = new double[n];
    int[] picks = tokensAndLogprobs(part, n, lp);
    int[] ids = new int[n * k];
    double[] tops = new double[n * k];
    if (k > 0) {
      readTopPairs(part, n, k, ids, tops);
    }
    for (int r = 0; r < n; r++) {
      if (temperature[r] != 0f) {
        continue;
      }
      tokens[r] = picks[r];
      if (logprobs != null) {
        logprobs[r] = lp[r];
      }
      if (k > 0) {
        System.arraycopy(ids, r * k, topIds, r * k, k);
        System.arraycopy(tops, r * k, topLogprobs, r * k, k);
      }
    }
  }

  private Pointer argmaxScratch(long bytes) {
    requireOpen();
    if (argmaxScratchBytes < bytes) {
      if (argmaxScratch != null) {
        cudaFree(argmaxScratch);
        argmaxScratch = null;
        argmaxScratchBytes = 0;
      }
      argmaxScratch = malloc(bytes, "argmax scratch");
      argmaxScratchBytes = bytes;
    }
    return argmaxScratch;
  }

  /** Turns a non-zero launcher status into an exception naming the op; with opt.cuda.sync, waits and checks. */
  private void op(String name, int status) {
    if (status != 0) {
      throw new CudaException(name + " failed on cuda:" + device + ": " + errorString(status));
    }
    if (CudaSwitches.SYNC) {
      check(name + " (synchronised)", cudaDeviceSynchronize());
    }
  }

  /** The message is built only on failure: these checks run for every op of every step, replays included. */
  private static void require(boolean ok, java.util.function.Supplier<String> what) {
    if (!ok) {
      throw new IllegalArgumentException(what.get());
    }
  }

  private synchronized void requireOpen() {
    if (closed) {
      throw new IllegalStateException(name() + " used after close");
    }
  }

  private void check(String what, int status) {
    if (status != 0) {
      throw new CudaException(what + " failed on cuda:" + device + ": " + errorString(status));
    }
  }

  private static String errorString(int status) {
    return "error " + status + " (" + cudaGetErrorString(status).getString() + ")";
  }

  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    graphAbort(); // a capture left open by a failed step: end it before the stream goes
    if (profile != null) {
      LOG.info("{}: {}", name(), profile.summary());
      profile.close();
    }
    if (stepTimer != null) {
      stepTimer.close();
    }
    for (StepGraph g : graphs.values()) {
      discard(g);
    }
    graphs.clear();
    for (StepGraph.Workspace w : workspaces.values()) {
      w.buffers.forEach(org.bytedeco.cuda.global.cudart::cudaFree);
    }
    workspaces.clear();
    if (argmaxScratch != null) {
      cudaFree(argmaxScratch);
    }
    if (editScratch != null) {
      cudaFree(editScratch);
    }
    editStaging.free();
    pickStaging.free();
    if (attentionWorkspace != null) {
      cudaFree(attentionWorkspace);
    }
    if (int8Scratch != null) {
      int8Scratch.close();
    }
    uploads.close();
    pool.close();
    if (readBuffer != null) {
      cudaFreeHost(readBuffer);
      readBuffer = null;
    }
    if (lt != null) {
      lt.close();
    }
    cublasDestroy_v2(cublas);
    if (cublasWorkspace != null) { // after the handle: cuBLAS may use it until then
      cudaFree(cublasWorkspace);
    }
    cudaStreamDestroy(stream);
  }
}
