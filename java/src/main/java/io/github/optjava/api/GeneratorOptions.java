package io.github.optjava.api;

import io.github.optjava.checkpoint.DType;

/**
 * How a {@link Generator} is set up. Immutable; start from {@link #defaults()} and change what you need:
 * <pre>{@code
 * GeneratorOptions opts = GeneratorOptions.defaults().withDevice(Device.CPU).withThreads(4);
 * }</pre>
 *
 * @param device            where to run. Default AUTO: CUDA when usable, else the CPU.
 * @param dtype             storage type of the weights (and, on CUDA, activations): F16, BF16 or F32; null
 *                          keeps the checkpoint's on the CPU and means F16 on CUDA. Accumulation is
 *                          float32 either way. Default null.
 * @param maxBatchSize      most sequences decoded together in one step (requests beyond wait; the completions of
 *                          a request with a larger n take turns). A beam search steps all its beams at once, so
 *                          num_beams above it is refused. Default 16.
 * @param maxSequenceLength most tokens (prompt + completion) of one sequence; 0 = the model's
 *                          max_position_embeddings. Default 0.
 * @param kvCacheTokens     token slots in the KV-cache pool, shared by all sequences in flight (2 × layers ×
 *                          hidden elements per slot, in kvCacheDtype: fp32 by default on the CPU, the dtype on
 *                          CUDA); 0 = sized from the memory left after loading the weights (90% of free GPU
 *                          memory; half of the free Java heap), capped at maxBatchSize × maxSequenceLength.
 *                          Rounded up to whole blocks. Default 0.
 * @param kvBlockSize       token slots per KV-cache block: the unit of allocation, and of reuse with prefix caching
 *                          (only whole blocks of a shared prefix are reused). Default 16.
 * @param threads           CPU worker threads; 0 = all available processors; at most 4,096. Default 0. The CPU kernels are
 *                          about twice as fast when the JVM runs with {@code --add-modules jdk.incubator.vector}
 *                          (the JDK's Vector API); without it scalar kernels run (one log line says which).
 * @param revision          Hugging Face Hub revision when the model is named by id. Default "main".
 * @param tensorParallel    tensor-parallel degree: the model is sliced over this many ranks (Megatron style),
 *                          each on its own thread with threads / degree CPU threads and its own share of
 *                          the KV cache. Must divide the model's attention heads and FFN width (the error
 *                          lists the degrees that do). With Device.AUTO or CPU: CPU ranks on threads. With
 *                          Device.CUDA named: one GPU per rank (GPUs 0 .. degree-1) over NCCL; that path has
 *                          run only at world size 1 (a one-GPU host); more GPUs are untested. Default 1.
 * @param pipelineParallel  pipeline-parallel degree: the layers are split into this many stages, each on its
 *                          own thread with threads / (degree × tensorParallel) CPU threads and its own share
 *                          of the KV cache, the batch cut into micro-batches that flow through the stages. At
 *                          most the number of layers. Combined with tensorParallel, every stage is sliced
 *                          over that many ranks. With Device.CUDA named: stage s's rank r on GPU
 *                          s × tensorParallel + r, hidden states passed through the host; that path has not
 *                          run on a GPU yet. Default 1.
 * @param maxStepTokens     the most tokens one forward pass feeds; 0 = no limit. With a limit, a prompt longer
 *                          than what the running sequences' decode tokens leave of it is prefilled in chunks over
 *                          several steps (chunked prefill), so the others keep getting tokens while it is read:
 *                          steadier streaming under load, for a little more time to the long prompt's first
 *                          token. The tokens are the same either way up to float rounding (bit for bit on the
 *                          scalar reference backend; elsewhere a step's token count changes the order of sums, as
 *                          batching does). Echo prompts are never split. 0 or at least maxBatchSize. Default 0.
 * @param prefixCaching     whether KV-cache blocks computed for one request are kept, indexed by their tokens, and
 *                          reused by later requests whose prompts start with the same tokens (a shared system
 *                          prompt or few-shot examples, the previous turns of a chat): those tokens are not
 *                          computed again, which cuts prefill time and time to first token. Kept blocks are given
 *                          up, least recently used first, whenever the cache needs room, so they never cost a
 *                          request its place. Tokens are the same as without it up to float rounding (bit for bit
 *                          on the scalar reference backend). Echo prompts and beam search do not use it.
 *                          Default true (as vLLM): the index costs little when nothing is shared; measured on an
 *                          H100, 8 requests sharing a 512-token prefix ran 1.2× (one after another) to 1.4× (at
 *                          once) faster with it (docs/perf.md).
 * @param promptLookup      the most draft tokens a decoding sequence feeds per step (prompt lookup decoding, as
 *                          Hugging Face's {@code prompt_lookup_num_tokens}): when its last tokens occurred earlier in
 *                          the prompt or the output, the tokens that followed them there are checked by the model in
 *                          the same step, and every one it agrees with is a token gained without a step of its own.
 *                          Pays off where the output repeats the input (summaries, extraction, code edits) and in
 *                          greedy loops; costs little where it does not, most on a GPU, where a decode step's time
 *                          is reading the weights. The tokens are the same as without it up to float rounding.
 *                          Sequences sampled on the GPU (device sampling) get no drafts. 0 = off. Default 0.
 * @param quantization      how the decoder layers' Linear weights are stored ({@link Quantization}): NONE as loaded,
 *                          or INT8 per output row: those weights take half the memory of fp16 (a quarter of fp32),
 *                          for a small change in the logits. With the Vector API kernels batch-1 decode reads them
 *                          once per token and runs faster (opt-1.3b on 2 cores: 1.7×; docs/perf.md); the scalar
 *                          kernels gain memory only. On CUDA (one GPU; several are refused) batch-1 decode reads
 *                          the int8 weights directly (opt-1.3b on an H100: 1.27× the fp16 kernels of that run),
 *                          while steps of more rows dequantize each weight first and run slower than fp16 (0.54× at
 *                          batch 8). Default NONE.
 * @param kvCacheDtype      the KV cache's storage type; null (the default) = float32 on the CPU, the activations'
 *                          dtype on CUDA. On the CPU, F16 halves the cache's memory per token (where memory sets
 *                          the cache's size, twice the tokens fit) and the bytes decode attention reads, for keys
 *                          and values rounded to fp16 as a GPU keeps them; F32 and F16 only. On CUDA it must be
 *                          unset or the activations' dtype.
 */
public record GeneratorOptions(Device device, DType dtype, int maxBatchSize, int maxSequenceLength, int kvCacheTokens,
    int kvBlockSize, int threads, String revision, int tensorParallel, int pipelineParallel, int maxStepTokens,
    boolean prefixCaching, int promptLookup, Quantization quantization, DType kvCacheDtype) {

  public GeneratorOptions {
    if (quantization == null) {
      throw new IllegalArgumentException("quantization must not be null: use Quantization.NONE or INT8");
    }
    if (device == null) {
      throw new IllegalArgumentException("device must not be null: use Device.AUTO, CPU or CUDA");
    }
    if (maxBatchSize < 1) {
      throw new IllegalArgumentException("maxBatchSize must be at least 1, got " + maxBatchSize);
    }
    if (maxSequenceLength < 0) {
      throw new IllegalArgumentException("maxSequenceLength must be >= 0 (0 = the model's limit), got "
          + maxSequenceLength);
    }
    if (kvBlockSize < 1 || kvCacheTokens < 0 || (kvCacheTokens > 0 && kvCacheTokens < kvBlockSize)) {
      throw new IllegalArgumentException("kvCacheTokens (" + kvCacheTokens + ") must be 0 (auto) or hold at least "
          + "one block of " + kvBlockSize + " tokens, and kvBlockSize must be at least 1");
    }
    if (threads < 0 || threads > MAX_THREADS) {
      throw new IllegalArgumentException("threads must be 0 (all processors) to " + MAX_THREADS + ", got " + threads);
    }
    if (revision == null || revision.isBlank()) {
      throw new IllegalArgumentException("revision must not be empty: use \"main\" for the default branch");
    }
    if (tensorParallel < 1) {
      throw new IllegalArgumentException("tensorParallel must be at least 1 (1 = no tensor parallelism), got "
          + tensorParallel);
    }
    if (pipelineParallel < 1) {
      throw new IllegalArgumentException("pipelineParallel must be at least 1 (1 = no pipeline), got "
          + pipelineParallel);
    }
    if (promptLookup < 0) {
      throw new IllegalArgumentException("promptLookup must be >= 0 (0 = off), got " + promptLookup);
    }
    if (maxStepTokens != 0 && maxStepTokens < maxBatchSize) {
      throw new IllegalArgumentException("maxStepTokens must be 0 (no limit) or at least maxBatchSize ("
          + maxBatchSize + ") so that every running sequence's next token fits a step, got " + maxStepTokens);
    }
  }

  /** The most CPU worker threads: more only costs memory and switching (each is a thread of its own). */
  static final int MAX_THREADS = 4096;

  /** The defaults listed above. */
  public static GeneratorOptions defaults() {
    return new GeneratorOptions(Device.AUTO, null, 16, 0, 0, 16, 0, "main", 1, 1, 0, true, 0, Quantization.NONE, null);
  }

  public GeneratorOptions withDevice(Device d) {
    return new GeneratorOptions(d, dtype, maxBatchSize, maxSequenceLength, kvCacheTokens, kvBlockSize, threads,
        revision, tensorParallel, pipelineParallel, maxStepTokens, prefixCaching, promptLookup, quantization,
        kvCacheDtype);
  }

  public GeneratorOptions withDtype(DType t) {
    return new GeneratorOptions(device, t, maxBatchSize, maxSequenceLength, kvCacheTokens, kvBlockSize, threads,
        revision, tensorParallel, pipelineParallel, maxStepTokens, prefixCaching, promptLookup, quantization,
        kvCacheDtype);
  }

  public GeneratorOptions withMaxBatchSize(int n) {
    return new GeneratorOptions(device, dtype, n, maxSequenceLength, kvCacheTokens, kvBlockSize, threads, revision,
        tensorParallel, pipelineParallel, maxStepTokens, prefixCaching, promptLookup, quantization, kvCacheDtype);
  }

  public GeneratorOptions withMaxSequenceLength(int n) {
    return new GeneratorOptions(device, dtype, maxBatchSize, n, kvCacheTokens, kvBlockSize, threads, revision,
        tensorParallel, pipelineParallel, maxStepTokens, prefixCaching, promptLookup, quantization, kvCacheDtype);
  }

  public GeneratorOptions withKvCacheTokens(int n) {
    return new GeneratorOptions(device, dtype, maxBatchSize, maxSequenceLength, n, kvBlockSize, threads, revision,
        tensorParallel, pipelineParallel, maxStepTokens, prefixCaching, promptLookup, quantization, kvCacheDtype);
  }

  public GeneratorOptions withKvBlockSize(int tokens) {
    return new GeneratorOptions(device, dtype, maxBatchSize, maxSequenceLength, kvCacheTokens, tokens, threads,
        revision, tensorParallel, pipelineParallel, maxStepTokens, prefixCaching, promptLookup, quantization,
        kvCacheDtype);
  }

  public GeneratorOptions withThreads(int n) {
    return new GeneratorOptions(device, dtype, maxBatchSize, maxSequenceLength, kvCacheTokens, kvBlockSize, n, revision,
        tensorParallel, pipelineParallel, maxStepTokens, prefixCaching, promptLookup, quantization, kvCacheDtype);
  }

  public GeneratorOptions withRevision(String r) {
    return new GeneratorOptions(device, dtype, maxBatchSize, maxSequenceLength, kvCacheTokens, kvBlockSize, threads, r,
        tensorParallel, pipelineParallel, maxStepTokens, prefixCaching, promptLookup, quantization, kvCacheDtype);
  }

  public GeneratorOptions withTensorParallel(int n) {
    return new GeneratorOptions(device, dtype, maxBatchSize, maxSequenceLength, kvCacheTokens, kvBlockSize, threads,
        revision, n, pipelineParallel, maxStepTokens, prefixCaching, promptLookup, quantization, kvCacheDtype);
  }

  public GeneratorOptions withMaxStepTokens(int n) {
    return new GeneratorOptions(device, dtype, maxBatchSize, maxSequenceLength, kvCacheTokens, kvBlockSize, threads,
        revision, tensorParallel, pipelineParallel, n, prefixCaching, promptLookup, quantization, kvCacheDtype);
  }

  public GeneratorOptions withPrefixCaching(boolean on) {
    return new GeneratorOptions(device, dtype, maxBatchSize, maxSequenceLength, kvCacheTokens, kvBlockSize, threads,
        revision, tensorParallel, pipelineParallel, maxStepTokens, on, promptLookup, quantization, kvCacheDtype);
  }

  public GeneratorOptions withPromptLookup(int tokens) {
    return new GeneratorOptions(device, dtype, maxBatchSize, maxSequenceLength, kvCacheTokens, kvBlockSize, threads,
        revision, tensorParallel, pipelineParallel, maxStepTokens, prefixCaching, tokens, quantization, kvCacheDtype);
  }

  public GeneratorOptions withPipelineParallel(int n) {
    return new GeneratorOptions(device, dtype, maxBatchSize, maxSequenceLength, kvCacheTokens, kvBlockSize, threads,
        revision, tensorParallel, n, maxStepTokens, prefixCaching, promptLookup, quantization, kvCacheDtype);
  }

  public GeneratorOptions withQuantization(Quantization q) {
    return new GeneratorOptions(device, dtype, maxBatchSize, maxSequenceLength, kvCacheTokens, kvBlockSize, threads,
        revision, tensorParallel, pipelineParallel, maxStepTokens, prefixCaching, promptLookup, q, kvCacheDtype);
  }

  public GeneratorOptions withKvCacheDtype(DType t) {
    return new GeneratorOptions(device, dtype, maxBatchSize, maxSequenceLength, kvCacheTokens, kvBlockSize, threads,
        revision, tensorParallel, pipelineParallel, maxStepTokens, prefixCaching, promptLookup, quantization, t);
  }
}
