package io.github.optjava.cli;

import io.github.optjava.api.Device;
import io.github.optjava.api.Generator;
import io.github.optjava.api.GeneratorOptions;
import io.github.optjava.api.Quantization;
import io.github.optjava.checkpoint.DType;
import java.util.Locale;
import java.util.Optional;
import picocli.CommandLine;
import picocli.CommandLine.Option;

/** Options shared by the commands that run the model: which device, how many threads, batch and cache sizes. */
final class EngineOptions {

  @Option(names = "--device", defaultValue = "auto", paramLabel = "cpu|cuda|auto", converter = DeviceValue.class,
      description = "Where to run. Default: ${DEFAULT-VALUE} (CUDA when usable, else the CPU).")
  Device device;

  @Option(names = "--threads", defaultValue = "0", description = "CPU threads (0 = all cores). Default: ${DEFAULT-VALUE}.")
  int threads;

  @Option(names = "--max-batch", defaultValue = "16", description = "Most sequences decoded together. Default: "
      + "${DEFAULT-VALUE} (generate: its one request's sequences, --num-beams or 1).")
  int maxBatch;

  @Option(names = "--kv-cache-tokens", defaultValue = "0",
      description = "Token slots in the KV-cache pool (0 = sized from the memory left after the weights). "
          + "Default: ${DEFAULT-VALUE}.")
  int kvCacheTokens;

  @Option(names = "--kv-block-size", defaultValue = "16", paramLabel = "T",
      description = "Token slots per KV-cache block: the unit of allocation, and of reuse with --prefix-caching. "
          + "Default: ${DEFAULT-VALUE}.")
  int kvBlockSize;

  @Option(names = "--max-step-tokens", defaultValue = "0", paramLabel = "T",
      description = "Most tokens one forward pass feeds (0 = no limit). With a limit, long prompts are prefilled in "
          + "chunks beside the running sequences' decode steps, which keep streaming meanwhile (echo prompts, as "
          + "score reads them, are never split). 0 or at least --max-batch. Default: ${DEFAULT-VALUE}.")
  int maxStepTokens;

  @Option(names = "--prefix-caching", negatable = true, defaultValue = "true", fallbackValue = "true",
      description = "Keep the KV cache of earlier prompts and reuse it for later prompts that start with the same "
          + "tokens (a shared system prompt, few-shot examples): those tokens are not computed again. Kept blocks "
          + "give way whenever the cache needs room. On by default; --no-prefix-caching turns it off.")
  boolean prefixCaching;

  @Option(names = "--prompt-lookup", defaultValue = "0", paramLabel = "K",
      description = "Speculative decoding without a draft model: when a sequence's last tokens occurred earlier in "
          + "it, check up to K tokens that followed them there in the same step (as Hugging Face's "
          + "prompt_lookup_num_tokens). The same tokens, more per step where the output repeats the input. "
          + "0 = off. Default: ${DEFAULT-VALUE}.")
  int promptLookup;

  @Option(names = "--tensor-parallel", defaultValue = "1", paramLabel = "N",
      description = "Tensor-parallel degree: slice the model (every pipeline stage) over N ranks, one thread each "
          + "sharing --threads, or with --device cuda one GPU each (NCCL). N must divide the attention heads and "
          + "the FFN width. Default: ${DEFAULT-VALUE}.")
  int tensorParallel;

  @Option(names = "--pipeline-parallel", defaultValue = "1", paramLabel = "M",
      description = "Pipeline-parallel degree: split the layers into M stages (each of --tensor-parallel ranks), "
          + "micro-batches flowing through them; one thread per rank sharing --threads, or with --device cuda one "
          + "GPU per rank (M x N GPUs). Default: ${DEFAULT-VALUE}.")
  int pipelineParallel;

  @Option(names = "--quantize", defaultValue = "none", paramLabel = "none|int8", converter = QuantizationValue.class,
      description = "Store the decoder layers' Linear weights as int8 per output row (int8), or as loaded (none): "
          + "half the memory of fp16 weights and faster decoding with the Vector API kernels, for a small change in "
          + "the logits. On CUDA one GPU only; there batch-1 decode gains, larger batches run slower than fp16. With "
          + "--tensor-parallel each rank scales its own slice, so tokens can differ from one device's int8. "
          + "Default: ${DEFAULT-VALUE}.")
  Quantization quantize;

  @Option(names = "--kv-cache-dtype", defaultValue = "auto", paramLabel = "auto|f32|f16",
      converter = KvCacheDtypeValue.class,
      description = "The KV cache's storage type: auto (float32 on the CPU, the activations' dtype on CUDA), or on "
          + "the CPU f16: half the cache's memory, so twice the tokens fit, for keys and values rounded to fp16 as "
          + "a GPU keeps them. Default: ${DEFAULT-VALUE}.")
  KvCacheDtype kvCacheDtype;

  @Option(names = "--multi-process",
      description = "Run as one process of a multi-process job (torchrun, mpirun or srun: see scripts/launch/): "
          + "--pipeline-parallel x --tensor-parallel processes, placed by the launcher's variables and "
          + "MASTER_ADDR/MASTER_PORT. Rank 0 does the command's work; the other ranks serve their part of the "
          + "model and exit when rank 0 is done.")
  boolean multiProcess;

  @Option(names = "--rendezvous-timeout", defaultValue = "300", paramLabel = "SECONDS",
      description = "With --multi-process: how long a process waits for the others to join and for each link. "
          + "Default: ${DEFAULT-VALUE}.")
  int rendezvousTimeout;

  /** The generator, or empty on a multi-process job's worker ranks once the job is over (nothing left to do). */
  Optional<Generator> open(ModelOption model) {
    if (pipelineParallel < 1) {
      throw new IllegalArgumentException("--pipeline-parallel must be at least 1, got " + pipelineParallel);
    }
    if (tensorParallel < 1) {
      throw new IllegalArgumentException("--tensor-parallel must be at least 1, got " + tensorParallel);
    }
    if (maxStepTokens != 0 && maxStepTokens < maxBatch) {
      throw new IllegalArgumentException("--max-step-tokens must be 0 (no limit) or at least --max-batch (" + maxBatch
          + "), got " + maxStepTokens);
    }
    GeneratorOptions opts = GeneratorOptions.defaults().withDevice(device).withThreads(threads)
        .withMaxBatchSize(maxBatch).withKvCacheTokens(kvCacheTokens).withKvBlockSize(kvBlockSize)
        .withRevision(model.revision)
        .withTensorParallel(tensorParallel)
        .withPipelineParallel(pipelineParallel).withMaxStepTokens(maxStepTokens)
        .withPrefixCaching(prefixCaching).withPromptLookup(promptLookup).withQuantization(quantize)
        .withKvCacheDtype(kvCacheDtype.dtype());
    if (!multiProcess) {
      warnIfLaunchedAsAJob(System.getenv());
      return Optional.of(Generator.open(model.model, opts));
    }
    if (rendezvousTimeout < 1) {
      throw new IllegalArgumentException("--rendezvous-timeout must be at least 1 second, got " + rendezvousTimeout);
    }
    io.github.optjava.parallel.Rendezvous.Placement placement =
        io.github.optjava.parallel.Rendezvous.Placement.fromEnvironment(System.getenv());
    if (placement.source().equals(io.github.optjava.parallel.Rendezvous.Placement.single().source())) {
      org.slf4j.LoggerFactory.getLogger(EngineOptions.class).warn("--multi-process without a launcher's variables "
          + "(torchrun's RANK/WORLD_SIZE, mpirun's OMPI_COMM_WORLD_*, srun's SLURM_*): a job of this one process; "
          + "start it through a launcher (scripts/launch/) to spread the model over several");
    }
    return Generator.openMultiProcess(model.model, opts, placement, java.time.Duration.ofSeconds(rendezvousTimeout));
  }

  /**
   * Under torchrun or mpirun with several processes but without {@code --multi-process}, every process would run
   * the whole job on its own (N copies of the output): say so. (Slurm's variables are also set in a batch script
   * that runs one process, so they are not taken as a sign.)
   */
  static String warnIfLaunchedAsAJob(java.util.Map<String, String> env) {
    for (String var : new String[] {"WORLD_SIZE", "OMPI_COMM_WORLD_SIZE"}) {
      String v = env.get(var);
      if (v != null && v.trim().matches("\\d{1,6}") && Integer.parseInt(v.trim()) > 1) {
        String message = var + "=" + v.trim() + ": a launcher started several processes, and without "
            + "--multi-process each one runs the whole model on its own; add --multi-process to split it over them";
        org.slf4j.LoggerFactory.getLogger(EngineOptions.class).warn(message);
        return message;
      }
    }
    return null;
  }

  /** {@code none} or {@code int8} (any case). */
  static Quantization parseQuantization(String s) {
    return switch (s.toLowerCase(Locale.ROOT)) {
      case "none" -> Quantization.NONE;
      case "int8" -> Quantization.INT8;
      default -> throw new CommandLine.TypeConversionException("--quantize must be none or int8, got '" + s + "'");
    };
  }

  /** The KV-cache dtype asked for on the command line: {@code auto} (the backend's default), f32 or f16. */
  record KvCacheDtype(DType dtype) {
    /** {@code auto}, {@code f32} or {@code f16} (any case). */
    static KvCacheDtype parse(String s) {
      return new KvCacheDtype(switch (s.toLowerCase(Locale.ROOT)) {
        case "auto" -> null;
        case "f32" -> DType.F32;
        case "f16" -> DType.F16;
        default -> throw new CommandLine.TypeConversionException(
            "--kv-cache-dtype must be auto, f32 or f16, got '" + s + "'");
      });
    }

    /** As the bench's JSON names it: {@code f16}, else {@code f32} (the CPU's default). */
    String jsonName() {
      return dtype == DType.F16 ? "f16" : "f32";
    }
  }

  /** {@code cpu}, {@code cuda} or {@code auto} (any case); anything else is a usage error (exit 2), as --quantize's. */
  static final class DeviceValue implements CommandLine.ITypeConverter<Device> {
    @Override
    public Device convert(String s) {
      return switch (s.toLowerCase(Locale.ROOT)) {
        case "cpu" -> Device.CPU;
        case "cuda" -> Device.CUDA;
        case "auto" -> Device.AUTO;
        default -> throw new CommandLine.TypeConversionException("--device must be cpu, cuda or auto, got '" + s + "'");
      };
    }
  }

  /** picocli's converter of --quantize: a bad value is a command-line error (exit 2, usage). */
  static final class QuantizationValue implements CommandLine.ITypeConverter<Quantization> {
    @Override
    public Quantization convert(String value) {
      return parseQuantization(value);
    }
  }

  /** picocli's converter of --kv-cache-dtype. */
  static final class KvCacheDtypeValue implements CommandLine.ITypeConverter<KvCacheDtype> {
    @Override
    public KvCacheDtype convert(String value) {
      return KvCacheDtype.parse(value);
    }
  }
}
