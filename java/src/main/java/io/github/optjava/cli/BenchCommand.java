package io.github.optjava.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.optjava.backend.Ops;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.backend.cpu.FastCpuOps;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.checkpoint.Tensor;
import io.github.optjava.engine.KvCache;
import io.github.optjava.model.OptConfig;
import io.github.optjava.model.OptModel;
import io.github.optjava.model.OptShapes;
import io.github.optjava.model.OptWeights;
import io.github.optjava.model.RandomCheckpoint;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParentCommand;

/**
 * {@code opt bench}: prefill and greedy-decode speed of a random-weight model of a real OPT shape (a
 * benchmark, not a test: nothing is downloaded, the text is gibberish, only the timings matter).
 *
 * <p>Per batch size: one prefill step of {@code batch × prompt-len} tokens, then {@code gen-len} decode
 * steps of one token per sequence, each timed; the median of {@code --repeats} runs is reported.
 * {@code decode ms/step} is what each sequence waits per new token; {@code tokens/s} counts the tokens of
 * all sequences. Warm-up runs of every batch size first let the JIT compile the kernels. {@code --gen-len 0} times
 * the prefill alone; {@code --prefill-len N} adds a row of one N-token prompt, prefill only, from the same model
 * (issue #5's 2048-token prefill without a second process and model build).
 *
 * <p>On CUDA the run also measures the device-to-device copy bandwidth once ({@link CopyBandwidth}) and
 * reports each decode step against that memory-bandwidth limit: {@code roofline_fraction} = (bytes a step
 * must read ÷ copy bandwidth) ÷ measured step time, 1 being as fast as memory allows.
 *
 * <p>On every backend, per batch size, it also times the model's largest prefill GEMM at that batch's token
 * count ({@link GemmRate}) and reports the prefill against it: {@code prefill_gemm_fraction} = (prefill FLOPs
 * ÷ prefill time) ÷ that GEMM rate, 1 being a prefill as fast as pure GEMM work.
 */
@Command(name = "bench", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
    description = {
    "Measure prefill and decode speed on a random-weight model of a real OPT shape.",
    "Prints a table; --json appends one JSON line per batch size."})
final class BenchCommand implements Callable<Integer> {

  @ParentCommand
  Main parent;

  @Option(names = "--device", defaultValue = "auto", paramLabel = "cpu|cuda|auto",
      converter = EngineOptions.DeviceValue.class,
      description = "Where to run. Default: ${DEFAULT-VALUE} (CUDA when usable, else the CPU).")
  io.github.optjava.api.Device device;

  @Option(names = "--shape", defaultValue = "125m", paramLabel = "SIZE|CONFIG",
      description = "An OPT size (125m, 350m, 1.3b, 2.7b, 6.7b, 13b, 30b, 66b, 175b) or a config.json file. "
          + "Default: ${DEFAULT-VALUE}.")
  String shape;

  @Option(names = "--dtype", defaultValue = "f16", paramLabel = "f16|bf16|f32", converter = DtypeValue.class,
      description = "Weight dtype. Default: ${DEFAULT-VALUE}.")
  String dtype;

  /** A bad --dtype is a command-line error (exit 2, usage), as a bad --device or --quantize is. */
  static final class DtypeValue implements CommandLine.ITypeConverter<String> {
    @Override
    public String convert(String value) {
      try {
        weightType(value);
        return value;
      } catch (IllegalArgumentException e) {
        throw new CommandLine.TypeConversionException(e.getMessage());
      }
    }
  }

  @Option(names = "--quantize", defaultValue = "none", paramLabel = "none|int8",
      converter = EngineOptions.QuantizationValue.class,
      description = "Store the decoder layers' Linear weights as int8 per output row (the embeddings and LM head "
          + "stay in --dtype). Default: ${DEFAULT-VALUE}.")
  io.github.optjava.api.Quantization quantize;

  @Option(names = "--kv-cache-dtype", defaultValue = "auto", paramLabel = "auto|f32|f16",
      converter = EngineOptions.KvCacheDtypeValue.class,
      description = "CPU only: the KV cache's storage type, f32 (auto) or f16. Default: ${DEFAULT-VALUE}.")
  EngineOptions.KvCacheDtype kvCacheDtype;

  /** {@link FastCpuOps#kernels} of this run, or null (the reference ops, CUDA): a field of the JSON lines. */
  private String cpuKernels;

  @Option(names = "--threads", paramLabel = "N", description = "CPU threads (0 = all processors, as elsewhere). "
      + "Default: all processors.")
  Integer threads;

  @Option(names = "--prompt-len", defaultValue = "128", paramLabel = "N",
      description = "Prompt tokens per sequence. Default: ${DEFAULT-VALUE}.")
  int promptLen;

  @Option(names = "--gen-len", defaultValue = "32", paramLabel = "N",
      description = "Decode steps (new tokens per sequence); 0 times the prefill alone. Default: ${DEFAULT-VALUE}.")
  int genLen;

  @Option(names = "--prefill-len", defaultValue = "0", paramLabel = "N",
      description = "Also time the prefill of one sequence of N prompt tokens (no decode), after the batch sizes. "
          + "0: no such row. Default: ${DEFAULT-VALUE}.")
  int prefillLen;

  @Option(names = "--batch", split = ",", defaultValue = "1", paramLabel = "B[,B...]",
      description = "Batch sizes (sequences per step), each measured in turn. Default: ${DEFAULT-VALUE}.")
  List<Integer> batches;

  @Option(names = "--repeats", defaultValue = "3", paramLabel = "N",
      description = "Timed runs per batch size; the median is reported. Default: ${DEFAULT-VALUE}.")
  int repeats;

  @Option(names = "--warm-up", defaultValue = "2", paramLabel = "SECONDS",
      description = "Untimed runs first, at least one per batch size, for this long per batch size (the JIT "
          + "compiles the host code). Default: ${DEFAULT-VALUE}.")
  double warmUpSeconds;

  @Option(names = "--reference",
      description = "Use the scalar single-threaded reference ops (to show the speed-up of the fast ones).")
  boolean reference;

  @Option(names = "--json", paramLabel = "FILE", description = "Append one JSON line per batch size to FILE.")
  Path json;

  @Option(names = "--variants", paramLabel = "V[;V...]",
      description = {"CUDA only: time these kernel choices one after the other on the same model, each with its "
          + "own warm-up, table and JSON lines (field variant). A variant is 'default' or comma-separated "
          + "settings (" + CudaVariant.SETTINGS + "); unset settings keep the process's defaults (-Dopt.cuda.*).",
          "Example: --variants 'default;attention=first,gemm=cublas,gemv=0;chained=on'"})
  String variants;

  private static final long SEED = 0;
  private static final int BLOCK_SIZE = 16;
  /**
   * {@code -Dopt.cuda.profilerRange=true}: the decode steps of the first timed run of each batch size are the range
   * an attached profiler records (cudaProfilerStart/Stop; {@code ncu --profile-from-start off}). CUDA only.
   */
  private static final boolean PROFILER_RANGE = Boolean.getBoolean("opt.cuda.profilerRange");

  /** What one row times: {@code batch} sequences of {@code prompt} tokens, then {@code gen} decode steps. */
  private record RunShape(int batch, int prompt, int gen) {}

  /**
   * Timings of one row: the medians, and every timed run's prefill (a slow run shows in the JSON line); and the
   * fingerprint of the greedy tokens the timed runs generated ({@link TokenFingerprint}: null when two runs differ).
   */
  private record Result(RunShape shape, double prefillMs, double decodeMs, double[] prefillRuns, String tokens) {}

  /** Names this run's JSON lines apart from another run's in the same file (its start time and process id). */
  private final String runId = Long.toHexString(System.currentTimeMillis()) + "-" + ProcessHandle.current().pid();

  @Override
  public Integer call() throws IOException {
    PrintStream out = parent != null ? parent.out : System.out; // usable without Main (tests, tools)
    boolean int8 = quantize == io.github.optjava.api.Quantization.INT8;
    DType kvType = kvCacheDtype.dtype();
    boolean cuda = useCuda();
    DType weightType = weightType();
    if (cuda && kvType != null && kvType != weightType) {
      throw new IllegalArgumentException("on CUDA the KV cache is kept in the --dtype (" + dtypeName(weightType)
          + "): leave out --kv-cache-dtype or give it the same");
    }
    boolean halfKv = kvType == DType.F16;
    if (threads != null && threads < 0) {
      throw new IllegalArgumentException("--threads must be 0 (all processors) or more, not " + threads);
    }
    int threadCount = threads != null && threads != 0 ? threads : Runtime.getRuntime().availableProcessors();
    requireAtLeast("--prompt-len", promptLen, 1);
    requireAtLeast("--gen-len", genLen, 0);
    requireAtLeast("--repeats", repeats, 1);
    if (batches.isEmpty()) {
      throw new IllegalArgumentException("--batch: give at least one batch size");
    }
    for (int b : batches) {
      requireAtLeast("--batch", b, 1);
    }
    if (!(warmUpSeconds >= 0) || Double.isInfinite(warmUpSeconds)) { // NaN fails >= too
      throw new IllegalArgumentException("--warm-up must be a number of seconds, 0 or more (one untimed run is made "
          + "either way), not " + warmUpSeconds);
    }
    requireAtLeast("--prefill-len", prefillLen, 0);
    OptConfig config = config();
    if ((long) promptLen + genLen > config.maxPositionEmbeddings()) { // long: near 2^31 the int sum wraps negative
      throw new IllegalArgumentException("--prompt-len + --gen-len is " + ((long) promptLen + genLen) + ", more than the "
          + config.maxPositionEmbeddings() + " positions of the model");
    }
    if (prefillLen > config.maxPositionEmbeddings()) {
      throw new IllegalArgumentException("--prefill-len is " + prefillLen + ", more than the "
          + config.maxPositionEmbeddings() + " positions of the model");
    }
    requireWritableJson();
    List<RunShape> shapes = new ArrayList<>();
    for (int b : batches) {
      shapes.add(new RunShape(b, promptLen, genLen));
    }
    if (prefillLen > 0) {
      shapes.add(new RunShape(1, prefillLen, 0));
    }
    long mostBlocks = shapes.stream()
        .mapToLong(r -> r.batch * (((long) r.prompt + r.gen + BLOCK_SIZE - 1) / BLOCK_SIZE)).max().orElseThrow();
    if (mostBlocks > Integer.MAX_VALUE / 2) {
      throw new IllegalArgumentException("--batch " + batches.stream().mapToInt(Integer::intValue).max().orElseThrow()
          + " × (--prompt-len + --gen-len) needs " + mostBlocks + " KV-cache blocks of " + BLOCK_SIZE
          + " tokens, more than one cache can index: lower --batch or the lengths");
    }

    List<CudaVariant> variantList = variants == null ? java.util.Collections.singletonList(null)
        : CudaVariant.parseList(variants);
    if (variants != null && !cuda) {
      throw new IllegalArgumentException("--variants chooses CUDA kernels: use it with --device cuda");
    }

    try (Ops ops = reference ? new CpuOps(int8, halfKv) : cuda ? cudaOps(weightType, int8)
        : FastCpuOps.create(threadCount, int8, halfKv)) {
      int usedThreads = reference || cuda ? 1 : threadCount;
      cpuKernels = ops instanceof FastCpuOps fast ? fast.kernels() : null;
      out.printf(Locale.ROOT, "opt bench: %s, random %s weights%s (%.1fM parameters), %s on %d thread%s%s%n",
          modelName(), dtypeName(weightType), int8 ? " (Linears int8)" : "",
          OptShapes.parameterCount(config) / 1e6, ops.name(), usedThreads,
          usedThreads == 1 ? "" : "s", cpuKernels == null ? "" : ", " + cpuKernels + " kernels");
      // Measured before the model takes its memory, once per run: the limit every batch size is compared with.
      CopyBandwidth.Result bandwidth = cuda ? copyBandwidth() : null;
      if (bandwidth != null) {
        out.printf(Locale.ROOT, "%s: device-to-device copy %.1f GB/s (read + written, %d MiB buffers, median)%n",
            bandwidth.deviceName(), bandwidth.gbps(), CopyBandwidth.BUFFER_BYTES >> 20);
      }
      long t0 = System.nanoTime();
      OptModel model;
      try (RandomCheckpoint ck = new RandomCheckpoint(config, weightType, SEED)) {
        model = new OptModel(config, new OptWeights(config, ck), ops);
      }
      double buildS = seconds(t0);
      int cacheBlocks = (int) mostBlocks;
      try (model; KvCache cache = new KvCache(ops.kvStore(config.numHiddenLayers(), cacheBlocks, BLOCK_SIZE,
          config.hiddenSize()))) {
        VariantSwitch defaults = cuda ? VariantSwitch.of(ops) : null;
        for (CudaVariant variant : variantList) {
          if (variant != null) {
            defaults.apply(ops, variant);
            out.println("variant: " + variant.spec());
          }
          // The GEMM rate of each batch size's prefill shape, timed before the warm-up so that a per-op profile
          // (-Dopt.cuda.profile=true), started afresh after the warm-up, holds the timed runs only.
          java.util.Map<RunShape, Double> gemmRate = new java.util.HashMap<>();
          Tensor fc1 = null;
          if (cpuKernels != null) { // FastCpuOps: its rate depends on the weights' dtype (GemmRate.tflops)
            try (RandomCheckpoint ck = new RandomCheckpoint(config, weightType, SEED)) {
              fc1 = ck.tensor(OptWeights.layer(0, "fc1.weight"));
            }
          }
          for (RunShape r : shapes) {
            gemmRate.put(r, GemmRate.tflops(ops, r.batch * r.prompt, config.hiddenSize(), config.ffnDim(), fc1));
          }
          java.util.Map<String, Long> launchesAtStart =
              cuda ? io.github.optjava.backend.cuda.CudaOps.newKernelLaunches() : null;
          double warmS = warmUp(model, cache, shapes);
          io.github.optjava.backend.cuda.CudaOps cudaOps =
              cuda ? (io.github.optjava.backend.cuda.CudaOps) ops : null;
          if (cudaOps != null) {
            cudaOps.resetProfile();
            cudaOps.timeGraphSteps(true); // GPU time of the replayed decode steps, next to their wall time
          }
          out.printf(Locale.ROOT, "model built in %.1f s, warm-up %.1f s%n", buildS, warmS);
          out.println("batch  prompt  new  prefill ms  prefill tok/s  prefill/GEMM  decode ms/step  decode tok/s"
              + (cudaOps != null ? "  GPU ms/step" : ""));
          for (RunShape shape : shapes) {
            if (cudaOps != null) {
              cudaOps.resetGraphStepTimes();
            }
            Result r = median(model, cache, shape);
            int b = shape.batch;
            // The GPU's share of a replayed decode step (mean over the timed runs); the rest of the wall time is
            // the host's: preparing the step, the launch, the wait for the tokens.
            Double gpuMs = cudaOps != null && shape.gen > 0 && !Double.isNaN(cudaOps.graphStepGpuMillis())
                ? cudaOps.graphStepGpuMillis() : null;
            // the host's part of those steps: the walk of the ops, the launch call, the wait for the tokens
            double[] hostMs = cudaOps != null && shape.gen > 0 ? cudaOps.graphStepHostMillis() : null;
            double prefillTps = b * shape.prompt / (r.prefillMs / 1e3);
            double gemmTflops = gemmRate.get(shape);
            double prefillTflops = GemmRate.prefillFlops(config, b, shape.prompt) / (r.prefillMs / 1e3) / 1e12;
            // null without decode steps (--gen-len 0, the --prefill-len row): there is nothing to divide by
            Double decodeMs = shape.gen > 0 ? r.decodeMs / shape.gen : null;
            Double decodeTps = shape.gen > 0 ? b * shape.gen / (r.decodeMs / 1e3) : null;
            out.printf(Locale.ROOT, "%5d  %6d  %3d  %10.1f  %13.1f  %11.0f%%  %14s  %12s%s%n", b, shape.prompt,
                shape.gen,
                r.prefillMs, prefillTps, 100 * prefillTflops / gemmTflops, format(decodeMs, "%.2f"),
                format(decodeTps, "%.2f"), cudaOps != null ? String.format(Locale.ROOT, "  %11s",
                    format(gpuMs, "%.3f")) : "");
            if (hostMs != null) {
              out.printf(Locale.ROOT, "       host per replayed step: ops walk %.3f ms, graph launch %.3f ms, wait for "
                  + "the tokens %.3f ms%n", hostMs[0], hostMs[1], hostMs[2]);
            }
            if (json != null) {
              Long bytes = bandwidth != null && shape.gen > 0
                  ? bytesPerDecodeStep(config, weightType, int8, b, shape.prompt, shape.gen) : null;
              Double roofline = bytes != null ? rooflineFraction(bytes, bandwidth.gbps(), decodeMs) : null;
              appendJson(ops.name(), dtypeName(weightType), usedThreads, r, prefillTps, decodeMs, decodeTps,
                  bandwidth, bytes, roofline, prefillTflops, gemmTflops, variant == null ? null : variant.spec(), gpuMs,
                  hostMs, launchesAtStart == null ? null : launchesSince(launchesAtStart));
            }
          }
          if (launchesAtStart != null) {
            java.util.Map<String, Long> ran = launchesSince(launchesAtStart);
            ran.values().removeIf(n -> n == 0);
            if (!ran.isEmpty()) {
              out.println("counted kernels that ran (eager steps and graph captures): " + ran);
            }
          }
        }
      }
    }
    return 0;
  }

  /**
   * First one run of each row's full lengths (on CUDA it captures the decode graphs of every block-table width the
   * timed runs meet, so that no timed run pays for a capture), then rounds of every row in turn (the full prompt and
   * a few decode steps) for {@code --warm-up} seconds per row, so that the JIT has compiled the host code the timed
   * runs use (after a single short run, decode was measured 15 % slower). In turn, not one batch size after the
   * other: when batch 1 was warmed alone first and the larger batches after it, the first timed batch-1 prefill of
   * every process measured about three times its later time (H100, 2026-11-27: opt-1.3b 7.5 against 2.4 ms, opt-6.7b
   * 21.6 against 7.2), most likely host code compiled for batch 1, then recompiled for the others (not shown; each
   * run's prefill is in the JSON line's {@code prefill_ms_runs}). Returns the seconds spent.
   */
  private double warmUp(OptModel model, KvCache cache, List<RunShape> shapes) {
    long w0 = System.nanoTime();
    for (RunShape r : shapes) {
      run(model, cache, r.batch, r.prompt, r.gen);
    }
    long w1 = System.nanoTime();
    while (seconds(w1) < warmUpSeconds * shapes.size()) {
      for (RunShape r : shapes) {
        run(model, cache, r.batch, r.prompt, Math.min(r.gen, 8));
      }
    }
    return seconds(w0);
  }

  /**
   * The median prefill and the median decode time of {@code repeats} runs: a run disturbed by another
   * process or a garbage collection does not move it.
   */
  private Result median(OptModel model, KvCache cache, RunShape shape) {
    double[] prefill = new double[repeats];
    double[] decode = new double[repeats];
    java.util.Set<String> tokens = new java.util.HashSet<>();
    for (int i = 0; i < repeats; i++) {
      System.gc(); // garbage of earlier runs should not be collected inside this one's timings
      Result r = run(model, cache, shape.batch, shape.prompt, shape.gen, i == 0 && PROFILER_RANGE);
      prefill[i] = r.prefillMs;
      decode[i] = r.decodeMs;
      tokens.add(r.tokens);
    }
    return new Result(shape, median(prefill), median(decode), prefill, tokens.size() == 1 ? tokens.iterator().next()
        : null);
  }

  /** The median; of an even count, the mean of the middle two (as Python's statistics.median). */
  static double median(double[] values) {
    double[] v = values.clone();
    java.util.Arrays.sort(v);
    int n = v.length;
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  }

  /**
   * Prefills {@code batch} random prompts of {@code prompt} tokens in one step, then decodes {@code steps}
   * greedy tokens per sequence one step at a time; releases the sequences' cache blocks.
   */
  private Result run(OptModel model, KvCache cache, int batch, int prompt, int steps) {
    return run(model, cache, batch, prompt, steps, false);
  }

  /** As above; {@code profilerRange}: the decode steps are the range an attached profiler records. */
  private Result run(OptModel model, KvCache cache, int batch, int prompt, int steps, boolean profilerRange) {
    SplittableRandom random = new SplittableRandom(SEED + batch);
    List<OptModel.SeqStep> step = new ArrayList<>();
    for (int s = 0; s < batch; s++) {
      step.add(new OptModel.SeqStep(s, random.ints(prompt, 3, OptConfig.TOKENIZER_VOCAB_SIZE).toArray(), false));
    }
    try {
      // Greedy on the device (OptModel.greedy): a step copies back one token per sequence, as HF's generate
      // keeps its argmax on the GPU.
      TokenFingerprint generated = new TokenFingerprint();
      long t0 = System.nanoTime();
      int[] tokens = model.greedy(step, cache);
      if (profilerRange && model.ops() instanceof io.github.optjava.backend.cuda.CudaOps c) {
        c.profilerRange(true);
      }
      long t1 = System.nanoTime();
      for (int i = 0; i < steps; i++) {
        List<OptModel.SeqStep> next = new ArrayList<>(batch);
        for (int s = 0; s < batch; s++) {
          next.add(new OptModel.SeqStep(s, new int[] {tokens[s]}, false));
        }
        generated.add(tokens); // between steps: the next one needs these tokens on the host anyway
        tokens = model.greedy(next, cache);
      }
      long t2 = System.nanoTime();
      generated.add(tokens);
      if (profilerRange && model.ops() instanceof io.github.optjava.backend.cuda.CudaOps c) {
        c.profilerRange(false);
      }
      return new Result(new RunShape(batch, prompt, steps), (t1 - t0) / 1e6, (t2 - t1) / 1e6, null,
          generated.hex());
    } finally {
      for (int s = 0; s < batch; s++) {
        cache.release(s);
      }
    }
  }

  /** Whether to run on the GPU: cuda (required), auto (when usable), cpu (never). */
  private boolean useCuda() {
    if (device == io.github.optjava.api.Device.CPU || reference) {
      return false; // (the reference ops are the CPU oracle)
    }
    io.github.optjava.backend.cuda.CudaProbe.Result probe = io.github.optjava.backend.cuda.CudaProbe.probe();
    if (!probe.usable() && device == io.github.optjava.api.Device.CUDA) {
      throw new IllegalArgumentException("--device cuda: CUDA is not usable here (" + probe.reason()
          + "); use --device cpu");
    }
    return probe.usable();
  }

  /**
   * The CUDA ops' kernel choices when the run began (the process's defaults), and how a variant changes them; in a
   * class of its own so that the CPU path never loads CUDA classes.
   */
  private record VariantSwitch(String attention, int gemvRows, boolean ltGemm, boolean chained,
      boolean inlineCombine, int gemvSplit, boolean groupedSplit, boolean vectorNorm, boolean ltTune, int tcRows,
      int tcSplit, boolean tcOneRow) {
    static VariantSwitch of(Ops ops) {
      io.github.optjava.backend.cuda.CudaOps c = (io.github.optjava.backend.cuda.CudaOps) ops;
      return new VariantSwitch(c.attentionKernel(), c.gemvMaxRows(), c.usesLtGemm(),
          io.github.optjava.backend.cuda.CudaOps.chainedLaunches(), c.usesInlineCombine(), c.gemvSplit(),
          c.usesGroupedSplit(), io.github.optjava.backend.cuda.CudaOps.vectorNorm(), c.usesLtTuning(),
          c.tcLinearRows(), c.tcSplit(), c.usesTcOneRow());
    }

    /** Sets every choice: the variant's where it makes one, else the default (graphs of other choices go). */
    void apply(Ops ops, CudaVariant v) {
      io.github.optjava.backend.cuda.CudaOps c = (io.github.optjava.backend.cuda.CudaOps) ops;
      c.useAttentionKernel(v.attention() != null ? v.attention() : attention);
      c.useGemv(v.gemvRows() != null ? v.gemvRows() : gemvRows);
      c.useLtGemm(v.ltGemm() != null ? v.ltGemm() : ltGemm);
      c.useChainedLaunches(v.chained() != null ? v.chained() : chained);
      c.useInlineCombine(v.inlineCombine() != null ? v.inlineCombine() : inlineCombine);
      c.useGemvSplit(v.gemvSplit() != null ? v.gemvSplit() : gemvSplit);
      c.useGroupedSplit(v.groupedSplit() != null ? v.groupedSplit() : groupedSplit);
      c.useVectorNorm(v.vectorNorm() != null ? v.vectorNorm() : vectorNorm);
      c.useLtTuning(v.ltTune() != null ? v.ltTune() : ltTune);
      c.useTcLinear(v.tcRows() != null ? v.tcRows() : tcRows);
      c.useTcSplit(v.tcSplit() != null ? v.tcSplit() : tcSplit);
      c.useTcOneRow(v.tcOneRow() != null ? v.tcOneRow() : tcOneRow);
    }
  }

  /** CUDA ops on GPU 0 in the weights' dtype (in its own method: the CPU path never loads CUDA classes). */
  private static Ops cudaOps(DType dtype, boolean int8) {
    io.github.optjava.backend.cuda.CudaOps ops = new io.github.optjava.backend.cuda.CudaOps(0, dtype);
    ops.useInt8Linears(int8);
    return ops;
  }

  /** The copy bandwidth of GPU 0 (in its own method, like {@link #cudaOps}: only the CUDA path loads it). */
  private static CopyBandwidth.Result copyBandwidth() {
    return CopyBandwidth.measure(0);
  }

  /**
   * The bytes one decode step must read from device memory at least: every weight once plus the KV cache
   * of every sequence (activations and logits are small next to these and left out).
   *
   * <p>Weights: {@link OptShapes#parameterCount} counts the token embedding once (lm_head is tied to it and
   * reads it whole); of the position table a step reads only {@code batch} rows, so it is left out. KV
   * cache: decode step {@code i} (from 0) attends over {@code prompt + i + 1} positions, on average
   * {@code prompt + (gen + 1) / 2} over the run; K and V, each {@code hidden} wide, in every layer. So
   * {@code batch × (prompt + (gen + 1) / 2) × layers × 2 × hidden × bytes}, written without the half as
   * {@code batch × (2 prompt + gen + 1) × layers × hidden × bytes}. Both are stored in {@code dtype} on CUDA.
   * With {@code int8} the decoder layers' Linear weights ({@code layers × (4 hidden² + 2 hidden × ffn)}) are one
   * byte each plus a float32 scale per output row ({@code layers × (5 hidden + ffn)} rows).
   */
  static long bytesPerDecodeStep(OptConfig config, DType dtype, boolean int8, int batch, int promptLen, int genLen) {
    long weights = OptShapes.parameterCount(config)
        - (long) config.positionTableRows() * config.hiddenSize();
    long kv = (long) batch * (2L * promptLen + genLen + 1) * config.numHiddenLayers() * config.hiddenSize();
    if (!int8) {
      return (weights + kv) * dtype.bytes();
    }
    long h = config.hiddenSize();
    long layers = config.numHiddenLayers();
    long linear = layers * (4 * h * h + 2 * h * config.ffnDim());
    long scaleRows = layers * (5 * h + config.ffnDim());
    return (weights - linear + kv) * dtype.bytes() + linear + 4 * scaleRows;
  }

  /** The memory-bandwidth limit's time for {@code bytes} at {@code copyGbps} over the measured step time. */
  static double rooflineFraction(long bytes, double copyGbps, double decodeMsPerStep) {
    double limitMs = bytes / (copyGbps * 1e9) * 1e3;
    return limitMs / decodeMsPerStep;
  }

  private DType weightType() {
    return weightType(dtype);
  }

  private static DType weightType(String dtype) {
    return switch (dtype.toLowerCase(Locale.ROOT)) {
      case "f16", "fp16", "float16" -> DType.F16;
      case "bf16", "bfloat16" -> DType.BF16;
      case "f32", "fp32", "float32" -> DType.F32;
      default -> throw new IllegalArgumentException("--dtype must be f16, bf16 or f32, not '" + dtype + "'"
          + (dtype.equalsIgnoreCase("int8") ? " (for int8 Linear weights: --quantize int8)" : ""));
    };
  }

  private static String dtypeName(DType type) {
    return type.name().toLowerCase(Locale.ROOT);
  }

  private static void requireAtLeast(String option, int value, int least) {
    if (value < least) {
      throw new IllegalArgumentException(option + " must be at least " + least + ", not " + value);
    }
  }

  /** A preset size, or a config.json file (or a model directory holding one) for other shapes. */
  private OptConfig config() {
    Path file = Path.of(shape);
    if (Files.isDirectory(file)) {
      if (Files.isRegularFile(file.resolve("config.json"))) {
        file = file.resolve("config.json");
      } else if (!OptShapes.isKnown(shape)) { // a directory named like a size (1.3b) does not hide the size
        throw new IllegalArgumentException("--shape " + shape + ": a directory without config.json");
      }
    }
    if (Files.isRegularFile(file)) {
      try {
        return OptConfig.fromJson(Files.readString(file));
      } catch (CharacterCodingException e) {
        // Files.readString's MalformedInputException would otherwise read as "cannot read: Input length = 1".
        throw new IllegalArgumentException("--shape " + shape + ": not valid UTF-8 text: not a config.json, or a "
            + "corrupted one", e);
      } catch (IOException e) {
        throw new IllegalArgumentException("--shape " + shape + ": cannot read: " + e.getMessage(), e);
      }
    }
    if (shape.contains("/") && !shape.toLowerCase(Locale.ROOT).startsWith("facebook/") || shape.endsWith(".json")) {
      throw new IllegalArgumentException("--shape " + shape + ": no such file (give an OPT size such as 1.3b, a "
          + "config.json file or a model directory)");
    }
    return OptShapes.of(shape);
  }

  private String modelName() {
    boolean fromFile = Files.isRegularFile(Path.of(shape)) || Files.isRegularFile(Path.of(shape, "config.json"));
    return fromFile ? shape : "opt-" + shape.toLowerCase(Locale.ROOT);
  }

  /** The launches of each counted kernel since {@code start} ({@link io.github.optjava.backend.cuda.CudaOps}). */
  private static java.util.Map<String, Long> launchesSince(java.util.Map<String, Long> start) {
    java.util.Map<String, Long> now = io.github.optjava.backend.cuda.CudaOps.newKernelLaunches();
    now.replaceAll((k, v) -> v - start.getOrDefault(k, 0L));
    return now;
  }

  /**
   * One JSON line; every line has the same fields (readers need not guess), null where a value does not
   * apply: the decode fields with {@code --gen-len 0}, the bandwidth fields off CUDA.
   */
  /** Before the run, which can take minutes: a --json file that cannot be written fails it only at its end. */
  private void requireWritableJson() {
    if (json == null) {
      return;
    }
    Path dir = json.toAbsolutePath().getParent();
    if (dir == null || Files.isDirectory(json)) {
      throw new IllegalArgumentException("--json " + json + ": a folder, not a file to append to");
    }
    if (!Files.isDirectory(dir)) {
      throw new IllegalArgumentException("--json " + json + ": the directory " + dir + " does not exist");
    }
    if (Files.exists(json) ? !Files.isWritable(json) || !Files.isRegularFile(json) : !Files.isWritable(dir)) {
      throw new IllegalArgumentException("--json " + json + ": cannot write there");
    }
  }

  private void appendJson(String engine, String dtypeName, int usedThreads, Result r, double prefillTps,
      Double decodeMs, Double decodeTps, CopyBandwidth.Result bandwidth, Long bytesPerStep, Double roofline,
      double prefillTflops, double gemmTflops, String variant, Double decodeGpuMs, double[] decodeHostMs,
      java.util.Map<String, Long> newKernelLaunches) throws IOException {
    ObjectNode line = new ObjectMapper().createObjectNode();
    line.put("date", Instant.now().truncatedTo(ChronoUnit.SECONDS).toString());
    line.put("commit", gitCommit());
    line.put("device", engine.startsWith("cuda") ? "cuda" : "cpu");
    line.put("model", modelName());
    line.put("dtype", dtypeName);
    line.put("threads", usedThreads);
    line.put("batch", r.shape.batch);
    line.put("prompt_len", r.shape.prompt);
    line.put("gen_len", r.shape.gen);
    line.put("engine", engine);
    line.put("cpu_kernels", cpuKernels);
    line.put("quantization", quantize.name().toLowerCase(Locale.ROOT)); // "int8": the decoder layers' Linears
    line.put("kv_cache_dtype", engine.startsWith("cuda") ? dtypeName : kvCacheDtype.jsonName());
    line.put("prefill_ms", round(r.prefillMs));
    com.fasterxml.jackson.databind.node.ArrayNode runs = line.putArray("prefill_ms_runs"); // in the order run
    for (double ms : r.prefillRuns) {
      runs.add(round(ms));
    }
    line.put("prefill_tokens_per_s", round(prefillTps));
    line.put("decode_ms_per_token", round(decodeMs));
    line.put("tokens_per_s", round(decodeTps));
    line.put("device_name", bandwidth != null ? bandwidth.deviceName() : null);
    line.put("copy_gbps", bandwidth != null ? round(bandwidth.gbps()) : null);
    line.put("bytes_per_step", bytesPerStep);
    // four significant digits, not three decimals: an untuned GPU path can be far below 0.001
    line.put("roofline_fraction", roofline != null ? significant(roofline) : null);
    line.put("prefill_tflops", significant(prefillTflops));
    line.put("gemm_tflops", significant(gemmTflops));
    line.put("prefill_gemm_fraction", significant(prefillTflops / gemmTflops));
    // CUDA: the GPU time of a replayed decode step (graph launch to tokens read), for the host/GPU split
    line.put("decode_gpu_ms_per_step", decodeGpuMs != null ? round(decodeGpuMs) : null);
    // CUDA: the host's ms per replayed step (GraphStepTimer): the ops' walk, the launch call, the wait for the tokens
    if (decodeHostMs != null) {
      ObjectNode host = line.putObject("decode_host_ms_per_step");
      host.put("ops_walk", round(decodeHostMs[0]));
      host.put("graph_launch", round(decodeHostMs[1]));
      host.put("wait", round(decodeHostMs[2]));
    } else {
      line.putNull("decode_host_ms_per_step");
    }
    // CUDA: launches of the counted kernels (CudaOps.newKernelLaunches) since this variant's warm-up began (eager
    // steps and captures; a replay launches none): a variant that asks for one and shows 0 measured the fallback
    if (newKernelLaunches != null) {
      ObjectNode launches = line.putObject("new_kernel_launches");
      newKernelLaunches.forEach(launches::put);
    } else {
      line.putNull("new_kernel_launches");
    }
    if (variant != null) {
      line.put("variant", variant); // --variants only: lines without it are the process's default kernels
    }
    // the greedy tokens of the timed runs (null: the runs disagreed): the variants' table compares them with the
    // default's, so that a faster kernel choice that changes the tokens shows in the same run
    line.put("tokens_fingerprint", r.tokens);
    // this process: the variants' table compares each variant with the default of its own run (two runs of one
    // shape in one results file each have a 'default')
    line.put("run_id", runId);
    Files.writeString(json, line + "\n", StandardCharsets.UTF_8, StandardOpenOption.CREATE,
        StandardOpenOption.APPEND);
  }

  /**
   * {@code OPT_COMMIT} when set (the GPU bundle's commit), else {@code git rev-parse --short HEAD} of the
   * working directory, or "unknown" (no git, not a repository).
   */
  static String gitCommit() {
    String fromEnv = System.getenv("OPT_COMMIT"); // set by scripts/device-check.sh from the bundle
    if (fromEnv != null && fromEnv.matches("[0-9a-f]{4,40}(-dirty)?")) {
      return fromEnv;
    }
    try {
      Process p = new ProcessBuilder("git", "rev-parse", "--short", "HEAD").redirectErrorStream(true).start();
      String text = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
      if (p.waitFor(5, TimeUnit.SECONDS) && p.exitValue() == 0 && text.matches("[0-9a-f]{4,40}")) {
        return text;
      }
      p.destroy();
    } catch (IOException e) {
      // no git on this machine
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    return "unknown";
  }

  /** To four significant digits: rates and fractions span many orders of magnitude (a CPU's TFLOP/s). */
  private static double significant(double v) {
    return new java.math.BigDecimal(v).round(new java.math.MathContext(4)).doubleValue();
  }

  /** To three decimals; null stays null (a field that does not apply). */
  private static Double round(Double v) {
    return v == null ? null : Math.round(v * 1000) / 1000.0;
  }

  /** A table cell: the value, or "-" where it does not apply. */
  private static String format(Double v, String pattern) {
    return v == null ? "-" : String.format(Locale.ROOT, pattern, v);
  }

  private static double seconds(long startNanos) {
    return (System.nanoTime() - startNanos) / 1e9;
  }
}
