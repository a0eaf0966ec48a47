package io.github.optjava.api;

import io.github.optjava.backend.Ops;
import io.github.optjava.backend.cuda.CudaProbe;
import io.github.optjava.checkpoint.Checkpoint;
import io.github.optjava.checkpoint.Checkpoints;
import io.github.optjava.checkpoint.LoadProgress;
import io.github.optjava.checkpoint.hub.ModelLocator;
import io.github.optjava.engine.Engine;
import io.github.optjava.engine.KvCache;
import io.github.optjava.model.OptConfig;
import io.github.optjava.model.CausalLm;
import io.github.optjava.model.OptModel;
import io.github.optjava.model.OptWeights;
import io.github.optjava.model.ParallelOptModel;
import io.github.optjava.model.PipelineOptModel;
import io.github.optjava.model.WeightFootprint;
import io.github.optjava.tokenizer.OptTokenizer;
import io.github.optjava.model.JobLayout;
import io.github.optjava.model.MultiProcessOptModel;
import io.github.optjava.model.ProcessPart;
import io.github.optjava.model.StageWorker;
import io.github.optjava.parallel.Mesh;
import io.github.optjava.parallel.Rendezvous;
import io.github.optjava.parallel.Shard;
import io.github.optjava.parallel.MeshStageTransport;
import io.github.optjava.parallel.SocketTpGroup;
import io.github.optjava.parallel.StageTransport;
import io.github.optjava.parallel.TpGroup;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;
import java.util.function.Supplier;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Text generation with an OPT model: the library's entry point.
 * <pre>{@code
 * try (Generator gen = Generator.open("facebook/opt-125m", GeneratorOptions.defaults())) {
 *   Completion c = gen.generate("The capital of France is", SamplingParams.greedy());
 *   System.out.println(c.text());
 * }
 * }</pre>
 * One generator is safe to use from many threads at once: concurrent requests are decoded together in
 * the same batch. Results follow Hugging Face transformers' {@code generate()} semantics (the prompt gets
 * {@code </s>} prepended; greedy, sampling, beam search and the logits processors as HF defines them).
 */
public final class Generator implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(Generator.class);

  private final OptConfig config;
  private final OptTokenizer tokenizer;
  private final Ops ops; // null with tensor parallelism: every rank owns its ops
  private final CausalLm model;
  private final KvCache cache;
  private final Engine engine;
  private final Device device;
  private final java.util.concurrent.atomic.AtomicBoolean freed = new java.util.concurrent.atomic.AtomicBoolean();
  private final java.util.concurrent.atomic.AtomicBoolean closing = new java.util.concurrent.atomic.AtomicBoolean();
  private final java.util.concurrent.CountDownLatch closed = new java.util.concurrent.CountDownLatch(1);

  private Generator(OptConfig config, OptTokenizer tokenizer, Ops ops, CausalLm model, KvCache cache,
      GeneratorOptions options, Device device, int maxLen) {
    this.config = config;
    this.tokenizer = tokenizer;
    this.ops = ops;
    this.model = model;
    this.cache = cache;
    this.device = device;
    this.engine = new Engine(model, tokenizer, cache, options.maxBatchSize(), maxLen, options.maxStepTokens(),
        options.prefixCaching(), options.promptLookup());
  }

  /**
   * Loads a model: a directory shaped like a Hugging Face OPT checkpoint, or a Hub id such as
   * {@code facebook/opt-125m} (downloaded into the Hugging Face cache when missing).
   *
   * @throws io.github.optjava.checkpoint.CheckpointException if the model cannot be found or read
   * @throws IllegalStateException if {@link Device#CUDA} was asked for and cannot be used
   * @throws IllegalArgumentException if the options ask for what the device cannot do (int8 weights or a
   *     KV-cache dtype it does not keep), before anything is downloaded or loaded
   * @throws IllegalStateException if the weights or the KV cache do not fit in the device's memory (on the CPU the
   *     Java heap: the message names the {@code -Xmx} to use; the weights are counted before they load)
   */
  public static Generator open(String modelDirOrId, GeneratorOptions options) {
    if (modelDirOrId == null || options == null) {
      throw new IllegalArgumentException((modelDirOrId == null ? "the model" : "options") + " must not be null"
          + (options == null ? ": GeneratorOptions.defaults()" : ": a model directory or a Hub id"));
    }
    Backends.requireSupported(options, options.device()); // the choices the device asked for by name cannot run
    int tp = options.tensorParallel();
    int pp = options.pipelineParallel();
    // Parallel runs go to CUDA only when asked for by name (one GPU per rank, NCCL); AUTO means the CPU.
    Device device = (tp > 1 || pp > 1) && options.device() != Device.CUDA ? Device.CPU
        : chooseDevice(options.device());
    Backends.requireSupported(options, device); // AUTO resolved, still before the model is looked for
    Path dir = ModelLocator.resolve(modelDirOrId, options.revision());
    OptConfig config = OptConfig.load(dir);
    OptTokenizer tokenizer = OptTokenizer.load(dir);
    Ops ops = null;
    CausalLm model = null;
    KvCache cache = null;
    try {
      List<Ops> devices; // whose memory sizes the KV cache: every GPU's, or the one CPU heap
      int kvLayers = config.numHiddenLayers(); // per device
      int kvWidth = config.hiddenSize();
      int total = options.threads() == 0 ? Runtime.getRuntime().availableProcessors() : options.threads();
      int perPart = (int) Math.max(1, total / ((long) tp * pp)); // long: huge degrees fail their checks below, not here
      try (Checkpoint checkpoint = LoadProgress.wrap(Checkpoints.open(dir), "loading " + dir.getFileName(), tp)) {
        OptWeights weights = new OptWeights(config, checkpoint);
        // The degrees' own checks first: a degree of a million got the heap check's "-Xmx15005g" instead.
        io.github.optjava.parallel.Shard.requireDegree(tp, config.numAttentionHeads(), config.ffnDim());
        io.github.optjava.model.OptModel.Stage.of(0, pp, config);
        if (device != Device.CUDA && (pp > 1 || tp > 1)) { // the parts share one heap: check them all first
          try (Ops probe = new io.github.optjava.backend.cpu.CpuOps(options.quantization() == Quantization.INT8)) {
            WeightFootprint.requireRoomForAllParts(config, weights, probe, options.dtype(), pp, tp);
          }
        }
        if (pp > 1) {
          PipelineOptModel pipeline = device == Device.CUDA
              ? Backends.cudaPipeline(config, weights, options.dtype(), pp, tp)
              : PipelineOptModel.local(config, weights, (s, r) -> Backends.cpu(perPart, options),
                  options.dtype(), pp, tp);
          model = pipeline;
          devices = pipeline.allOps();
          kvLayers = pipeline.maxStageLayers();
        } else if (tp > 1) {
          ParallelOptModel parallel = device == Device.CUDA
              ? Backends.cudaTensorParallel(config, weights, options.dtype(), tp)
              : new ParallelOptModel(config, weights, r -> Backends.cpu(perPart, options),
                  options.dtype(), tp);
          model = parallel;
          devices = parallel.allOps();
        } else {
          ops = device == Device.CUDA ? Backends.cuda(options.dtype(), options.quantization() == Quantization.INT8)
              : Backends.cpu(options.threads(), options);
          model = new OptModel(config, weights, ops, options.dtype());
          devices = List.of(ops);
        }
      }
      if (device == Device.CUDA) {
        kvWidth /= tp; // each GPU keeps its ranks' heads of its stage's layers
      } else {
        devices = devices.subList(0, 1); // one heap holds every part's share: the whole cache
        kvLayers = config.numHiddenLayers();
      }
      int maxLen = options.maxSequenceLength() == 0 ? config.maxPositionEmbeddings()
          : Math.min(options.maxSequenceLength(), config.maxPositionEmbeddings());
      if (device != Device.CUDA && options.kvCacheTokens() == 0) {
        // The heap's free figure counts the load's garbage (a dtype conversion's copies, the checkpoint's buffers)
        // as used until it is collected: collect once, so that the cache is sized from what is really free.
        System.gc();
      }
      // The fullest device bounds it; each part is asked on its own thread (a GPU answers for its current device).
      long free = model instanceof PipelineOptModel p ? p.minFreeMemory()
          : model instanceof ParallelOptModel p ? p.minFreeMemory() : ops.freeMemory();
      KvCacheSize kv = KvCacheSize.choose(options, free, devices.get(0).kvElementBytes(), devices.size() > 1, device,
          kvLayers, kvWidth, maxLen);
      cache = model.newCache(kv.blocks(), kv.blockSize());
      LOG.info("loaded {} ({} layers, hidden {}) on {} ({}{}), {}", dir.getFileName(),
          config.numHiddenLayers(), config.hiddenSize(), device, devices.get(0).name(),
          (pp > 1 ? " × " + pp + " pipeline stages" : "") + (tp > 1 ? " × " + tp + " tensor-parallel ranks" : ""), kv);
      if (options.quantization() == Quantization.INT8) {
        LOG.info("{}", int8Summary(config));
      }
      return new Generator(config, tokenizer, ops, model, cache, options, device, maxLen);
    } catch (RuntimeException | Error e) {
      // Whatever was allocated (device memory above all) is freed before the error reaches the caller.
      if (cache != null) {
        cache.close();
      }
      if (model != null) {
        model.close();
      }
      if (ops != null) {
        ops.close();
      }
      if (e instanceof OutOfMemoryError && device == Device.CPU && e.getMessage() != null
          && (e.getMessage().contains("Java heap space") || e.getMessage().contains("GC overhead"))) {
        // The weights' own count passed (Ops.requireRoomForWeights), so the rest did not fit: the KV cache's
        // minimum, the tokenizer, a conversion's temporary copy. What was loaded is unreachable now.
        throw new IllegalStateException("ran out of Java heap while loading " + dir.getFileName() + " on the CPU ("
            + Runtime.getRuntime().maxMemory() / (1 << 20) + " MiB at most): start Java with a larger heap (-Xmx; "
            + "scripts/opt: OPT_JAVA_OPTS=-Xmx...), or lower maxSequenceLength / kvCacheTokens", e);
      }
      throw e;
    }
  }

  /**
   * Opens a model spread over the processes of a multi-process job, one process per GPU (or per CPU part),
   * on one or several machines: {@code options.pipelineParallel() × options.tensorParallel()} processes,
   * started by torchrun, mpirun or srun ({@code scripts/launch/}) and placed by their variables
   * ({@link Rendezvous.Placement#fromEnvironment}: rank, world size, local rank, {@code MASTER_ADDR} and
   * {@code MASTER_PORT}). Every process calls this with the same arguments and needs the model's files.
   * Process rank 0 gets the Generator (the engine runs there); every other process serves its part of the
   * model until rank 0 closes its Generator, then gets an empty Optional (its caller just exits); when the job
   * fails (rank 0 or another worker), a worker throws instead.
   *
   * <p>With {@link Device#CUDA} each process uses the GPU of its local rank, a stage's ranks all-reduce over NCCL
   * and hidden states pass between stages by NCCL send/recv; otherwise CPU ranks all-reduce and hand on hidden
   * states over TCP. A step's sequences go through the stages in micro-batches.
   *
   * @throws IllegalArgumentException if the world size is not the product of the two degrees, or they do
   *     not fit the model
   * @throws Rendezvous.RendezvousException if the processes do not all meet within {@code timeout}, or another
   *     process failed before it joined (its message: a process that fails its own checks, such as a model missing
   *     on its machine, tells the others through the rendezvous instead of leaving them to time out)
   */
  public static Optional<Generator> openMultiProcess(String modelDirOrId, GeneratorOptions options) {
    return openMultiProcess(modelDirOrId, options, Rendezvous.Placement.fromEnvironment(System.getenv()),
        Duration.ofMinutes(5));
  }

  /** As {@link #openMultiProcess(String, GeneratorOptions)} at an explicit placement and link timeout. */
  public static Optional<Generator> openMultiProcess(String modelDirOrId, GeneratorOptions options,
      Rendezvous.Placement placement, Duration timeout) {
    JobLayout layout;
    Path dir;
    OptConfig config;
    Device device;
    int gpu;
    String job;
    Duration heartbeat;
    try {
      // Every process checks the same things before any of them connects: all fail alike, none waits in vain; one
      // that fails alone (a missing file, no GPU on its machine) tells the others through the rendezvous.
      layout = new JobLayout(options.pipelineParallel(), options.tensorParallel());
      layout.requireWorld(placement.worldSize());
      Backends.requireSupported(options, options.device());
      if (options.device() == Device.CUDA && options.quantization() != Quantization.NONE) {
        throw new IllegalArgumentException("int8 weights (--quantize int8) run on CUDA in one process only so far: "
            + "use --quantize none for a multi-process GPU job, or Device.CPU (--device cpu)");
      }
      dir = ModelLocator.resolve(modelDirOrId, options.revision());
      config = OptConfig.load(dir);
      Shard.requireDegree(layout.tp(), config.numAttentionHeads(), config.ffnDim());
      OptModel.Stage.of(0, layout.stages(), config);
      device = options.device() == Device.CUDA ? chooseDevice(Device.CUDA) : Device.CPU;
      Backends.requireSupported(options, device);
      gpu = device == Device.CUDA ? gpuOf(placement) : -1;
      heartbeat = Mesh.heartbeatSilence();
      job = JobDescription.of(dir, options, layout, device, heartbeat);
    } catch (RuntimeException e) {
      Rendezvous.abandon(placement, e.getMessage() == null ? e.toString() : e.getMessage(), timeout);
      throw e;
    }
    if (options.device() == Device.AUTO && placement.rank() == 0) {
      LOG.info("multi-process job with Device.AUTO: running on the CPU (name Device.CUDA, --device cuda, for GPUs)");
    }
    int rank = placement.rank();
    // Every process must run the same job: one started with another model, dtype or layout is refused at once.
    Mesh mesh = Mesh.connect(placement, timeout, job);
    Supplier<ProcessPart> loader = () -> {
      Ops ops = device == Device.CUDA ? Backends.cuda(gpu, options.dtype())
          : Backends.cpu(options.threads(), options);
      TpGroup group = null;
      try (Checkpoint checkpoint = Checkpoints.open(dir)) {
        // The same order on every process: the stage's group, then the job's transport (both may block on peers).
        group = device == Device.CUDA ? Backends.ncclStageGroup(mesh, layout, gpu)
            : new SocketTpGroup(mesh, layout.stageMembers(layout.stageOf(rank)));
        // -Dopt.multiprocess.transport=tcp keeps GPU jobs off NCCL send/recv (NCCL refuses two ranks on one GPU,
        // which is how a one-GPU host tests this path).
        boolean nccl = device == Device.CUDA
            && !"tcp".equalsIgnoreCase(System.getProperty("opt.multiprocess.transport", "nccl"));
        StageTransport transport = nccl ? Backends.ncclJobTransport(mesh, layout, gpu) : new MeshStageTransport(mesh);
        return ProcessPart.load(layout, rank, config, new OptWeights(config, checkpoint), ops, options.dtype(), group,
            transport);
      } catch (RuntimeException | Error e) {
        if (group != null) {
          group.close(); // closed twice when load() closed it already: harmless
        }
        ops.close();
        throw e;
      }
    };
    if (rank != 0) {
      StageWorker.serve(mesh, layout, loader, heartbeat);
      return Optional.empty();
    }
    MultiProcessOptModel model = MultiProcessOptModel.drive(mesh, layout, loader, heartbeat);
    KvCache cache = null;
    try {
      int maxLen = options.maxSequenceLength() == 0 ? config.maxPositionEmbeddings()
          : Math.min(options.maxSequenceLength(), config.maxPositionEmbeddings());
      // Each process keeps its stage's layers and its ranks' heads; the fullest one bounds the cache.
      KvCacheSize kv = KvCacheSize.choose(options, model.minFreeMemory(), model.ops().kvElementBytes(), true, device,
          model.maxStageLayers(), config.hiddenSize() / layout.tp(), maxLen);
      cache = model.newCache(kv.blocks(), kv.blockSize());
      LOG.info("loaded {} ({} layers, hidden {}) over {} processes ({} pipeline stages × {} tensor-parallel ranks, "
          + "{}), {}", dir.getFileName(), config.numHiddenLayers(), config.hiddenSize(),
          placement.worldSize(), layout.stages(), layout.tp(), model.ops().name(), kv);
      return Optional.of(new Generator(config, OptTokenizer.load(dir), null, model, cache, options, device, maxLen));
    } catch (RuntimeException | Error e) {
      if (cache != null) {
        cache.close();
      }
      model.close();
      throw e;
    }
  }

  /**
   * The GPU of a process: its local rank among the visible GPUs, or GPU 0 when the launcher gives each process
   * a single GPU of its own ({@code srun --gpus-per-task=1}, a per-rank {@code CUDA_VISIBLE_DEVICES}).
   */
  private static int gpuOf(Rendezvous.Placement placement) {
    int visible = CudaProbe.probe().devices().size();
    if (visible == 1) {
      return 0;
    }
    if (placement.localRank() >= visible) {
      throw new IllegalArgumentException("local rank " + placement.localRank() + " but only " + visible + " GPUs "
          + "are visible on this machine: start at most one process per GPU, or give each process its own GPU "
          + "(CUDA_VISIBLE_DEVICES)");
    }
    return placement.localRank();
  }

  /** One log line on int8 weights: what they take, against fp16 (q/k/v, out_proj, fc1, fc2 of every layer). */
  static String int8Summary(OptConfig config) {
    long h = config.hiddenSize();
    long perLayerWeights = 4 * h * h + 2 * h * config.ffnDim();
    long perLayerRows = 4 * h + config.ffnDim() + h; // one float32 scale per output row
    long weights = perLayerWeights * config.numHiddenLayers();
    long int8Bytes = weights + 4 * perLayerRows * config.numHiddenLayers();
    return String.format(java.util.Locale.ROOT, "decoder Linear weights stored as int8 with a scale per row: %.1f MB "
        + "(%.1f MB as fp16); embeddings, LM head, norms and biases as loaded", int8Bytes / 1e6, 2 * weights / 1e6);
  }

  private static Device chooseDevice(Device wanted) {
    if (wanted == Device.CPU) {
      return Device.CPU;
    }
    CudaProbe.Result probe = CudaProbe.probe();
    if (probe.usable()) {
      return Device.CUDA;
    }
    if (wanted == Device.CUDA) {
      throw new IllegalStateException("Device.CUDA was requested but CUDA cannot be used here: " + probe.reason()
          + ". See the README's GPU prerequisites (driver, CUDA 13 libraries, -Dopt.cuda.libpath), "
          + "or use Device.CPU / Device.AUTO (--device cpu|auto on the command line).");
    }
    // A few words: on a machine without a GPU this is expected, and the whole reason (a long linker message) is
    // CudaProbe's DEBUG line, `opt info`'s, and Device.CUDA's error.
    LOG.info("Device.AUTO: CUDA not usable here ({}); using the CPU backend", probe.summary());
    return Device.CPU;
  }

  /** The device the model runs on. */
  public Device device() {
    return device;
  }

  /** The model's configuration. */
  public OptConfig config() {
    return config;
  }

  /**
   * Whether this generator can no longer generate: its multi-process job failed (a process died or a link broke),
   * so every request fails until all the job's processes are restarted. A server or a batch loop should stop then.
   */
  public boolean broken() {
    return model.broken();
  }

  /** The model's tokenizer. */
  public OptTokenizer tokenizer() {
    return tokenizer;
  }

  /**
   * What the generator is doing: sequences running and waiting, KV-cache use, preemptions, and counters since it
   * opened ({@link GeneratorStats}). Safe from any thread and cheap: for a metrics exporter or a health check.
   */
  public GeneratorStats stats() {
    return engine.stats();
  }

  /**
   * Generates the completions of one prompt (blocks until done). Interrupting the calling thread stops the request
   * (see {@link #generate(List, SamplingParams)}).
   */
  public Completion generate(String prompt, SamplingParams params) {
    return await(List.of(generateAsync(prompt, params))).get(0);
  }

  /**
   * Generates the completions of several prompts, batched together; results in prompt order. A prompt that cannot
   * run (too long, say) fails the call before any other runs; when the call reaches a request that failed (it
   * waits for them in prompt order), it ends with that error and cancels the others. Interrupting the calling
   * thread cancels them all (they stop at the next step and free their slots), keeps the thread's interrupt status
   * set, and ends the call with a {@link CancellationException}.
   */
  public List<Completion> generate(List<String> prompts, SamplingParams params) {
    List<CompletableFuture<Completion>> futures = new ArrayList<>();
    try {
      for (String p : prompts) {
        futures.add(generateAsync(p, params));
      }
    } catch (RuntimeException e) {
      futures.forEach(f -> f.cancel(false)); // nobody could get their results: free their slots
      throw e;
    }
    return await(futures);
  }

  /**
   * Queues one prompt and returns at once. Completing the returned future yourself ({@code cancel(true)}, or a
   * timeout through {@code orTimeout}) stops the request: before it starts it never runs, and while it runs it ends
   * at the next step and frees its batch slot and KV cache. The generator's thread completes the future, so
   * dependents added with {@code thenApply} and the like run on it: keep them short, and never call a blocking
   * method of this generator there ({@code generate}, {@code score}, reading a {@link TokenStream}: they throw
   * IllegalStateException, as waiting would hang every request); {@code thenCompose} with {@code generateAsync}
   * chains requests.
   */
  public CompletableFuture<Completion> generateAsync(String prompt, SamplingParams params) {
    return engine.submit(encode(prompt), checked(params), null);
  }

  /**
   * Generates with a callback per produced token (called on the generator's thread: return quickly).
   * Returns the whole completion when done.
   */
  public Completion generate(String prompt, SamplingParams params, Consumer<TokenStream.Chunk> onChunk) {
    if (onChunk == null) {
      throw new IllegalArgumentException("onChunk must not be null: use generate(prompt, params) without a callback");
    }
    Completion c = await(List.of(engine.submit(encode(prompt), checked(params),
        (choice, token, text) -> onChunk.accept(new TokenStream.Chunk(choice, token, text))))).get(0);
    if (params.isBeamSearch()) { // beams are known only at the end: each one's text as one chunk (on this thread)
      c.choices().forEach(choice -> onChunk.accept(new TokenStream.Chunk(choice.index(), -1, choice.text())));
    }
    return c;
  }

  /** Generates as a pull-style stream; closing the stream cancels generation. */
  public TokenStream stream(String prompt, SamplingParams params) {
    TokenStream stream = new TokenStream();
    stream.attach(engine.submit(encode(prompt), checked(params), new Engine.Listener() {
      @Override
      public void onToken(int choice, int tokenId, String text) {
        stream.push(new TokenStream.Chunk(choice, tokenId, text));
      }

      @Override
      public boolean cancelled() {
        return stream.isCancelled();
      }
    }), params.isBeamSearch(), engine::onLoopThread);
    return stream;
  }

  /** The log-probability of every token of {@code text} given the tokens before it (perplexity, ranking). */
  public Score score(String text) {
    Completion c = await(List.of(engine.submit(encode(text),
        SamplingParams.builder().temperature(0).maxTokens(0).echo(true).build(), null))).get(0);
    Choice choice = c.choices().get(0);
    return new Score(choice.tokenIds(), choice.logprobs());
  }

  private static SamplingParams checked(SamplingParams params) {
    if (params == null) {
      throw new IllegalArgumentException("params must not be null: SamplingParams.greedy(), or "
          + "SamplingParams.builder()...build()");
    }
    return params;
  }

  private int[] encode(String prompt) {
    if (prompt == null) {
      throw new IllegalArgumentException("prompt must not be null");
    }
    return tokenizer.encodeWithBos(prompt);
  }

  /**
   * The results in order. An interrupt of the waiting thread, or a request that fails, cancels the ones still
   * running: their results could not be had, so they should not hold batch slots. {@code CompletableFuture.join}
   * would ignore the interrupt, and a pool's {@code shutdownNow} would wait for every queued generation.
   */
  private List<Completion> await(List<CompletableFuture<Completion>> futures) {
    if (engine.onLoopThread()) {
      // The generator's own thread would wait for itself: every request, this one and any other caller's, would hang.
      futures.forEach(f -> f.cancel(false));
      throw new IllegalStateException("a blocking call (generate or score) on the generator's own thread would wait "
          + "for ever: it runs the dependents of the futures it completes and the token callbacks. Compose with "
          + "generateAsync (thenCompose), or run the dependent elsewhere (thenApplyAsync, thenComposeAsync)");
    }
    List<Completion> out = new ArrayList<>(futures.size());
    try {
      for (CompletableFuture<Completion> f : futures) {
        out.add(f.get());
      }
      return out;
    } catch (InterruptedException e) {
      futures.forEach(f -> f.cancel(false));
      Thread.currentThread().interrupt();
      CancellationException c = new CancellationException("interrupted while waiting for generation; the "
          + futures.size() + " request(s) were cancelled");
      c.initCause(e);
      throw c;
    } catch (ExecutionException e) {
      futures.forEach(f -> f.cancel(false));
      if (e.getCause() instanceof RuntimeException r) {
        throw r;
      }
      if (e.getCause() instanceof Error err) {
        throw err;
      }
      throw new CompletionException(e.getCause());
    }
  }

  /**
   * Stops generation (pending requests fail) and frees the model and the KV cache. Waits up to 10 s for a step in
   * progress; one that runs longer (a long prefill on the CPU, a stuck peer) is left to end, and frees them then.
   * Called from a callback on the generator's thread (a chunk callback, a dependent of a completion's future), it
   * returns at once and they are freed as that step ends. Closing again does nothing; a close called while another
   * thread's is under way returns when that one does.
   */
  @Override
  public void close() {
    if (!closing.compareAndSet(false, true)) {
      // Closed already, or closing on another thread: return when that close does (what it promises holds then),
      // without a wait of its own for the step (session 27's review: a second close waited another 10 s).
      if (!engine.onLoopThread()) {
        awaitUninterruptibly(closed);
      }
      return;
    }
    try {
      closeOnce();
    } finally {
      closed.countDown();
    }
  }

  /** Waits for {@code latch} through interrupts, keeping the interrupt flag (also the tests' way to hold a step). */
  static void awaitUninterruptibly(java.util.concurrent.CountDownLatch latch) {
    boolean interrupted = false;
    while (true) {
      try {
        latch.await();
        break;
      } catch (InterruptedException e) {
        interrupted = true;
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
  }

  private void closeOnce() {
    engine.close();
    Runnable free = () -> {
      if (!freed.compareAndSet(false, true)) {
        return; // closed twice (or from two threads): freed once
      }
      cache.close();
      model.close();
      if (ops != null) {
        ops.close();
      }
    };
    if (engine.stopped()) {
      free.run();
      return;
    }
    // A step still runs on the model (a long prefill, a stuck peer): freeing its memory now could crash the JVM, so
    // the engine's thread frees it as it ends (before session 16 it was never freed).
    if (!engine.onLoopThread()) { // closed from a listener or a completion callback: the loop ends as it returns
      LOG.warn("closing a Generator whose current step has not ended after 10 s: its model and KV cache are freed "
          + "when that step ends");
    }
    engine.whenStopped(free);
  }
}
