package io.github.optjava.backend.cuda;

/**
 * The {@code -Dopt.cuda.*} switches of the CUDA backend, read once when the class loads (the methods: when a
 * {@link CudaOps} is made, so that a bad value is a clear exception there): each one's default and the
 * GPU run that decided it, or why it is still off. {@link CudaOps} copies them into each instance, whose
 * {@code useX} methods change them for that instance (tests and {@code opt bench}'s variants run both ways).
 * Flags written without a GPU stay off until their checks have passed on one (docs/handoff.md, "What is verified
 * where").
 */
final class CudaSwitches {
  private CudaSwitches() {
  }

  /** {@code -Dopt.cuda.sync=true}: synchronise after every op, so an asynchronous kernel error names its op. */
  static final boolean SYNC = Boolean.getBoolean("opt.cuda.sync");
  /** {@code -Dopt.cuda.profile=true}: GPU time per op ({@link OpProfile}), logged at close; graphs off. */
  static final boolean PROFILE = Boolean.getBoolean("opt.cuda.profile");
  /** {@code -Dopt.cuda.graphs=false} runs every step eagerly (for comparison and as a way out). */
  static final boolean GRAPHS = !"false".equalsIgnoreCase(System.getProperty("opt.cuda.graphs")) && !SYNC
      && !PROFILE;
  /**
   * Linears go through cuBLASLt ({@link LtGemm}: heuristic algorithm per shape, bias and ReLU in the GEMM's
   * epilogue) unless {@code -Dopt.cuda.gemm=cublas} (cublasGemmEx plus the bias kernel). cuBLASLt became the
   * default after its parity and graph tests passed on an H100 (2026-11-26, c57d4f3) and it was faster at every
   * batch size measured there (opt-1.3b decode 2.69 against 3.03 ms/step at batch 1, 4.20 against 4.48 at 32;
   * docs/perf.md). A shape without a heuristic answer falls back to cublasGemmEx.
   */
  static final boolean LT_GEMM = !"cublas".equalsIgnoreCase(System.getProperty("opt.cuda.gemm"));
  /**
   * {@code -Dopt.cuda.ltTune=true}: a cuBLASLt Linear shape of at most 64 rows (decode batches) takes the fastest of
   * the heuristic's first 8 algorithms, timed once when the shape is first planned ({@code LtGemm}), instead of the
   * heuristic's first choice. Written in session 14 without a GPU, aimed at batch-32 decode (docs/perf.md, "written
   * in session 14": the Linears at 32 rows may be most of its step): off until the variant {@code lttune=on} was
   * faster on one and its test (tag gpu-new-lttune) passed. Timed choices may differ between processes, so a tuned
   * run's numbers are reproducible within a process only.
   */
  static final boolean LT_TUNE = Boolean.getBoolean("opt.cuda.ltTune");
  /**
   * {@code -Dopt.cuda.gemv=N} (0–8; {@code off} = 0, {@code on} = 8): Linears of at most N rows (decode at small
   * batch) run our matrix-vector kernel (native/src/linear_small.cu: the weight streamed once with 16-byte loads,
   * bias and ReLU applied in the same launch) instead of a GEMM. Default 1: on an H100 (2026-11-26, c57d4f3) it
   * beat cuBLAS at one row (opt-6.7b decode 7.20 against 8.28 ms/step) and lost badly at eight (opt-1.3b 5.83
   * against 3.67), and at two rows it was 15 % slower than cuBLASLt (session 7, docs/perf.md).
   */
  static final String GEMV = System.getProperty("opt.cuda.gemv", "1");
  /**
   * {@code -Dopt.cuda.gemvSplit=1|2|4|auto}: warps per group of outputs in the matrix-vector kernel. 1: one warp
   * streams a whole weight row. 2 or 4: that many warps share each row and add their sums in a fixed order, so
   * Linears with few outputs (opt-1.3b's out_proj and fc2: 1024 warps on 132 SMs, 1.1 TB/s under ncu in session 11)
   * keep more loads in flight; auto (the default) picks per shape from the SM count (native/src/linear_small.cu,
   * {@code auto_split}). Written in session 11; auto became the default after check_ops group gemvsplit, its
   * parity and graph tests and the comparison with HF transformers passed on an H100 (2026-11-27, 700d8c7) and it
   * was faster at batch 1: opt-1.3b 2.18 against 2.51 ms/token, opt-6.7b 6.96 against 7.34; equal at 2 to 32 rows
   * (docs/perf.md).
   */
  static final String GEMV_SPLIT = System.getProperty("opt.cuda.gemvSplit", "auto");
  /** The default of {@code opt.cuda.chained} (see {@link #CHAINED}): "false"; if ever on, "auto". */
  static final String CHAINED_DEFAULT = "false";
  /**
   * {@code -Dopt.cuda.chained=true}: the kernels of a decode step (matrix-vector Linears, split-KV attention, the
   * fused residual + layer norm) are launched as programmatic dependent launches on sm_90+, so each starts while
   * the one before it ends (native/src/common.cuh, "programmatic dependent launch"). Process-wide (a switch of
   * the kernel library). Passed check_ops, GpuGraphTest and the comparison with HF transformers on an H100 (sessions 7
   * and 11): at most 1 % faster at opt-1.3b, slower at opt-6.7b (docs/perf.md), so off. {@code auto}: on where the
   * GPU and the kernel build support it (sm_90+), off elsewhere; {@code true} refuses a GPU without it.
   * Session 25 prepared {@code auto} for the default (the device check times the switch again at today's
   * defaults; session 21's probe ran the same kernels 1.13× faster chained on an H200): if the rule in docs/perf.md,
   * "Session 25", says so, {@link #CHAINED_DEFAULT} becomes {@code "auto"}, never {@code "true"}, which would refuse
   * every GPU before sm_90.
   */
  static final String CHAINED = System.getProperty("opt.cuda.chained", CHAINED_DEFAULT); // parsed by chained()

  /** {@code opt.cuda.chained}: off, on where supported, or on (a GPU without it refused). */
  enum Chained { OFF, AUTO, ON }

  /**
   * Parses {@code opt.cuda.chained}: true, false or auto.
   *
   * @throws IllegalArgumentException for anything else, saying what it takes
   */
  static Chained chained(String text) {
    return switch (text.trim().toLowerCase(java.util.Locale.ROOT)) {
      case "true", "on" -> Chained.ON;
      case "false", "off" -> Chained.OFF;
      case "auto" -> Chained.AUTO;
      default -> throw new IllegalArgumentException("opt.cuda.chained='" + text + "': give true (refused below "
          + "compute capability 9.0), false, or auto (on where the GPU supports it)");
    };
  }
  /** The most rows {@code opt_linear_small} takes (its kMaxRows). */
  static final int GEMV_MAX_ROWS = 8;
  /**
   * The attention kernel, {@code -Dopt.cuda.attention=first|split|tiled|tc|fa}. {@code tc}: decode steps
   * run the split-KV kernel (native/src/attention_split.cu), steps with a prompt the tensor-core kernel
   * (native/src/attention_tc.cu) where it applies (fp16/bf16, head_dim a multiple of 16 up to 128), else the
   * query-tiled one (native/src/attention_tiled.cu). {@code tiled}: the tiled kernel for prompts, split for decode;
   * {@code split}: split for everything; {@code first}: the first kernel (one block per query row and head), kept as
   * the plain reference. tc became the default after check_ops, the parity tests and the comparison with HF
   * transformers passed on an H100 (2026-11-26, c57d4f3): opt-1.3b batch-1 decode 3.03 against 5.47 ms/step,
   * 2047-token prefill 31 against 500 ms (docs/perf.md). {@code fa} (the default): as tc with the
   * FlashAttention-2-style prefill kernel (native/src/attention_fa.cu; head_dim 64, 80 or 128, fp16/bf16, else tc's
   * rules). It became the default after check_ops group fa, the parity tests and the comparison with HF transformers
   * passed on an H100 (2026-11-27, 4d4ebc1): opt-1.3b 2047-token prefill 11.2 against tc's 30.2 ms, 128-token
   * prefill 1.2-1.3x at batch 1, 2 and 8, 0.94x at batch 4 (docs/perf.md); decode steps are the same kernels.
   */
  static final String ATTENTION =
      System.getProperty("opt.cuda.attention", "fa").toLowerCase(java.util.Locale.ROOT);
  /** The attention kernels {@link CudaOps#useAttentionKernel} takes. */
  static final java.util.List<String> ATTENTION_KERNELS =
      java.util.List.of("first", "split", "tiled", "tc", "fa");
  /**
   * Greedy steps that want their token's log-prob get it from {@code opt_argmax_logprob_f32} on the device, and
   * sampled steps draw their tokens on the device ({@link CudaOps#sampleRows}, native/src/sample.cu), so that a step
   * copies back 8 bytes per sequence instead of a row of logits. {@code -Dopt.cuda.deviceLogprob=false} and
   * {@code -Dopt.cuda.deviceSampling=false} read the logits back and do it on the host instead. Both became the
   * default after check_ops and their parity tests passed on an H100 (2026-11-26, c57d4f3).
   */
  static final boolean DEVICE_LOGPROB = !"false".equalsIgnoreCase(System.getProperty("opt.cuda.deviceLogprob"));
  static final boolean DEVICE_SAMPLING =
      !"false".equalsIgnoreCase(System.getProperty("opt.cuda.deviceSampling"));
  /**
   * Steps whose requests have logits processors that name their tokens (a repetition penalty, a logit bias, bans,
   * min_tokens, presence and frequency penalties: {@link io.github.optjava.backend.LogitEdits}) edit the float32 copy
   * of the logits on the device ({@code opt_edit_logits_f32}) before the argmax or the sampler, instead of copying the
   * rows to the host. Default since session 19; check_ops group {@code edits} and the tag {@code gpu-new-edits}
   * passed on an H200 (2026-11-28, session 21, 7a4d127), and a greedy request with a repetition penalty cost 0.012 to
   * 0.018 ms/token more than plain greedy there (opt-1.3b, batch 1; docs/perf.md):
   * {@code -Dopt.cuda.deviceEdits=false} reads the rows back and edits them on the host.
   */
  static final boolean DEVICE_EDITS = !"false".equalsIgnoreCase(System.getProperty("opt.cuda.deviceEdits"));
  /**
   * A request's log-prob alternatives ({@code logprobs} above 0) are listed on the device: a greedy request's by
   * {@code opt_top_logprobs_f32} (session 19; check_ops group {@code toplp}, tag {@code gpu-new-toplp}), a sampled
   * request's by the sampler itself, {@code opt_sample_rows_top_f32} (session 20; group {@code sampletop}, tag
   * {@code gpu-new-sampletop}): k pairs per row come back instead of the row. Default; both passed their checks on
   * an H200 (2026-11-28, session 21, 7a4d127):
   * {@code -Dopt.cuda.deviceTopLogprobs=false} reads the rows back (a sampled step's rows are then drawn and listed
   * on the host by the same rules, {@code RowSampling}).
   */
  static final boolean DEVICE_TOP_LOGPROBS =
      !"false".equalsIgnoreCase(System.getProperty("opt.cuda.deviceTopLogprobs"));
  /**
   * Beam search finds each beam's candidates with {@code opt_beam_topk_f32} on the device (its processors as edits on
   * the rows' log-softmax, {@code opt_log_softmax_rows_f32}): 2 × numBeams pairs per beam come back instead of its
   * row. Default since session 20; check_ops group {@code beams} and the tag {@code gpu-new-beams} passed on an H200
   * (2026-11-28, session 21, 7a4d127), the engine rows {@code engine: beam search} have not run yet:
   * {@code -Dopt.cuda.deviceBeams=false} reads the rows back (it looped until session 21: fixed in
   * {@code Ops.beamTopK}).
   */
  static final boolean DEVICE_BEAMS = !"false".equalsIgnoreCase(System.getProperty("opt.cuda.deviceBeams"));
  /**
   * Sampled requests with min-p draw on the device ({@code opt_sample_rows_f32}'s min-p cut after top-p) instead of
   * copying their rows to the host. Default since session 20; check_ops group {@code minp} and the tag
   * {@code gpu-new-minp} passed on an H200 (2026-11-28, session 21, 7a4d127):
   * {@code -Dopt.cuda.deviceMinP=false} reads back the rows of a step where a request has
   * min-p and draws them on the host by the same rules ({@code RowSampling}, not the HF-exact processors).
   */
  static final boolean DEVICE_MIN_P = !"false".equalsIgnoreCase(System.getProperty("opt.cuda.deviceMinP"));
  /**
   * {@code -Dopt.cuda.deviceTypical=true}: sampled requests with typical sampling draw on the device
   * ({@code opt_sample_rows_f32}'s typical cut after min-p, {@code RowSampling}'s rules: HF's set but for rounding)
   * instead of bringing their rows to the host, where the HF-exact processors take ≈ 0.8 ms per row and step (the
   * partition of {@code TypicalProcessor}, on the build machine). Written in session 23 without a GPU: off until
   * check_ops group {@code typical} and the tag {@code gpu-new-typical} pass on one.
   */
  static final boolean DEVICE_TYPICAL = Boolean.getBoolean("opt.cuda.deviceTypical");
  /**
   * A step that draws some sequences and picks others greedily (temperature 0 rows of {@link CudaOps#sampleRows})
   * runs the sampler and the argmax (and the top log-probs, with alternatives) over the step's rows and reads both
   * results back in one copy, instead of copying the rows to the host. Default since session 21 (no new kernel: the
   * sampler, argmax and top log-probs kernels on one step); the tag {@code gpu-new-mixed} passed on an H200
   * (2026-11-28, session 21: {@code CudaOpsParityTest} at 7a4d127, {@code GpuEnginePartialPicksTest} at fffb95e):
   * {@code -Dopt.cuda.deviceMixedPicks=false} reads back the rows of such a step and picks on the host by the same
   * rules ({@code RowSampling}).
   */
  static final boolean DEVICE_MIXED_PICKS =
      !"false".equalsIgnoreCase(System.getProperty("opt.cuda.deviceMixedPicks"));
  /**
   * {@code -Dopt.cuda.samplerWeights=true}: the sampler keeps each row's s = logit / temperature, then its weights,
   * in scratch memory, and its later passes (top-k's, top-p's 15, min-p's, the draw's) read them back instead of
   * recomputing a division and an {@code expf} per token in each (the same bits). On the H200 (session 21) a batch-1
   * top-p draw cost ≈ 0.7 ms, half again an opt-1.3b step, and a min-p one ≈ 0.15 ms. Written in sessions 21 and 22
   * without a GPU: off until check_ops groups {@code sample}, {@code minp} and {@code sampletop} (each runs both ways
   * and compares the bits) and the tag {@code gpu-new-samplerweights} pass and the row {@code engine: sampler weights
   * cache} shows the sampled request faster with it.
   */
  static final boolean SAMPLER_WEIGHTS = Boolean.getBoolean("opt.cuda.samplerWeights");
  /**
   * {@code -Dopt.cuda.tcLinear=N} (0 to 32, default 0 = off): Linears of up to N rows run the tensor-core kernel of
   * native/src/linear_tc.cu: 16-bit weights from 2 rows (one row keeps the matrix-vector kernel), int8 weights with fp16
   * activations from 1 row (instead of the int8 matrix-vector kernel at 1 row and a dequantized copy of the weight for
   * a GEMM past it: int8 decode was 0.54x fp16 at batch 8 on an H100). Written in session 22 without a GPU: off until
   * check_ops group {@code tclinear}, the tag {@code gpu-new-tclinear} and a speed run (the {@code tclinear} variants
   * of {@code opt bench --variants}) pass.
   */
  static final String TC_LINEAR = System.getProperty("opt.cuda.tcLinear", "0"); // parsed by CudaOps: tcLinearRows
  /**
   * {@code -Dopt.cuda.tcSplit=auto|1|2|4|8}: warps per group of 32 outputs in the tensor-core Linear (each takes a
   * share of k; their sums are added in a fixed order). auto (the default) picks per shape from the SM count, as the
   * matrix-vector kernel's split does; the others are for a GPU run's sweep ({@code opt bench --variants}).
   */
  static final String TC_SPLIT = System.getProperty("opt.cuda.tcSplit", "auto"); // parsed by CudaOps: tcSplit
  /**
   * {@code -Dopt.cuda.tcOneRow=true}: with {@code -Dopt.cuda.tcLinear}, 16-bit Linears of one row (batch-1 decode) run
   * the tensor-core kernel too, instead of the matrix-vector kernel (52–66 % of the copy rate on the H200, session 21):
   * for a GPU run to measure (batch-1 roofline targets of #5). Off.
   */
  static final boolean TC_ONE_ROW = Boolean.getBoolean("opt.cuda.tcOneRow");
  /** The most rows the tensor-core Linear takes (native/src/linear_tc.cu, kTcMaxRows). */
  static final int TC_LINEAR_MAX_ROWS = 32;
  /**
   * An echoed prompt's scores ({@link CudaOps#tokenLogprobs}) come from {@code opt_token_logprob_f32} on the device, 4
   * bytes per row back instead of the rows; {@code -Dopt.cuda.deviceScores=false} reads the rows back and scores on
   * the host. The default after check_ops group score and its parity test passed on an H100 (2026-11-27, 4d4ebc1):
   * a 2040-token opt-1.3b prompt scored in 36.8 instead of 242.5 ms, log-probs within 2.1e-8 of the host's.
   */
  static final boolean DEVICE_SCORES =
      !"false".equalsIgnoreCase(System.getProperty("opt.cuda.deviceScores"));
  /**
   * {@code -Dopt.cuda.inlineCombine=true}: the split-KV decode attention merges its splits in the kernel itself (the
   * last block of each row and head to finish does it) instead of in a second kernel, so a decode step launches one
   * attention kernel per layer instead of two; the same bits (native/src/attention_split.cu). Verified on an H100 in
   * session 11 (check_ops group combine, the GPU tests, the HF comparison) but only ≈ 1 % faster at opt-1.3b and
   * equal at opt-6.7b, so off.
   */
  static final boolean INLINE_COMBINE = Boolean.getBoolean("opt.cuda.inlineCombine");
  /**
   * {@code -Dopt.cuda.groupedSplit=true}: the split-KV decode attention reads each key and value row with a group of
   * threads (16-byte loads of both in one round, an online softmax per group; native/src/attention_grouped.cu) instead
   * of one key per thread, for fp16/bf16 and head_dim 64 or 128 (other shapes keep the per-key kernel); its splits
   * always merge in the combine kernel. {@code -Dopt.cuda.groupedSplit=false} runs the per-key kernel. Written in
   * session 12 without a GPU; the default since check_ops group grouped, its GPU tests (tag gpu-new-grouped) and the
   * comparison with HF transformers passed on an H100 (2026-11-27, 700d8c7) and it was the fastest variant at every
   * size: opt-1.3b decode 1.20× at batch 1, 1.36× at 8, 1.41× at 32 (3.42 to 2.43 ms/token); opt-6.7b 1.15× at 1,
   * 1.36× at 32 (docs/perf.md).
   */
  static boolean groupedSplit() {
    return flag("opt.cuda.groupedSplit", true);
  }
  /**
   * {@code -Dopt.cuda.vecNorm=true}: layer norms (and the fused bias + residual add + layer norm) of rows of whole
   * 16-byte chunks run the vector kernel (native/src/layernorm.cu: each thread loads its chunks at once and keeps the
   * row in registers, one round of memory latency instead of about nine; the same residual bits). Process-wide, like
   * chained launches (a switch of the kernel library); {@code -Dopt.cuda.vecNorm=false} keeps the scalar kernel.
   * Written in session 12 without a GPU; the default since check_ops group vecnorm, its GPU tests (tag
   * gpu-new-vecnorm) and the comparison with HF transformers passed on an H100 (2026-11-27, 700d8c7) and the variant
   * {@code lnvec=on} was faster at every size: 1.02–1.07× decode, 1.3b and 6.7b, batch 1 to 32 (docs/perf.md).
   */
  static boolean vectorNorm() {
    return flag("opt.cuda.vecNorm", true);
  }

  /**
   * A true/false property: unset gives {@code byDefault}; anything but true or false (any case) is refused, so that
   * {@code =0} or {@code =off} does not silently keep a default on. Read when a {@link CudaOps} is made (its
   * constructor then fails with this message), not when this class loads.
   */
  static boolean flag(String property, boolean byDefault) {
    String v = System.getProperty(property);
    if (v == null) {
      return byDefault;
    }
    String t = v.trim();
    if (t.equalsIgnoreCase("true") || t.equalsIgnoreCase("false")) {
      return t.equalsIgnoreCase("true");
    }
    throw new IllegalArgumentException("-D" + property + "='" + v + "': give true or false (default " + byDefault
        + ")");
  }
  /**
   * {@code -Dopt.cuda.draftGraphs=false} runs steps of drafts op by op. By default, steps of drafts (prompt lookup:
   * every sequence the same number of new tokens, every row's logits; {@code OptModel} declares them) are captured and
   * replayed as CUDA graphs too, keyed by their tokens per sequence (a capture that fails turns off draft graphs only).
   * Verified on an H100 in session 11 (graph test, prompt lookup's tokens unchanged; 1.5 % faster there) and made the
   * default after session 18's H100 run (2026-11-27, 933a25b) timed it against eager drafts with the same warm-up:
   * prompt lookup at opt-1.3b batch 1, 1.886 to 1.783 ms/token (5.8 %), tokens equal (docs/perf.md).
   */
  static boolean draftGraphs() {
    return flag("opt.cuda.draftGraphs", true);
  }
  /**
   * {@code -Dopt.cuda.batchBuckets=true}: decode steps are padded to a few batch sizes ({@code BatchBuckets}: 1, 2, 4,
   * 8, then multiples of 8), so that under continuous batching, where the batch size changes whenever a request joins
   * or leaves, a few graphs serve every size instead of one graph (and one step run op by op, one captured) per size.
   * A model of a busy server's batch sizes (scripts/dev/batch_buckets_sim.py, session 13) moved the replayed share of
   * decode steps from 95–96 to 98.7 % and the graph keys from 35–39 to 10–11. Written in session 13 without a GPU;
   * the padding itself is tested on the CPU (the same tokens as unpadded): off until the GPU tests (tag
   * gpu-new-buckets) and device-check's row "engine: batch buckets" have passed.
   */
  static final boolean BATCH_BUCKETS = Boolean.getBoolean("opt.cuda.batchBuckets");

  /**
   * The setting of {@code -Dopt.cuda.gemvSplit}: 1, 2, 4 or auto (0).
   *
   * @throws IllegalArgumentException for anything else, saying what it takes
   */
  static int gemvSplit(String text) {
    String t = text.trim().toLowerCase(java.util.Locale.ROOT);
    switch (t) {
      case "1", "2", "4" -> { return Integer.parseInt(t); }
      case "auto", "0" -> { return 0; }
      default -> throw new IllegalArgumentException("opt.cuda.gemvSplit='" + text + "': give the warps per output "
          + "group of the matrix-vector kernel, 1, 2 or 4, or auto");
    }
  }

  /**
   * Parses {@code opt.cuda.tcSplit}: 1, 2, 4, 8, or auto (0).
   *
   * @throws IllegalArgumentException for anything else, saying what it takes
   */
  static int tcSplit(String text) {
    String t = text.trim().toLowerCase(java.util.Locale.ROOT);
    switch (t) {
      case "1", "2", "4", "8" -> { return Integer.parseInt(t); }
      case "auto", "0" -> { return 0; }
      default -> throw new IllegalArgumentException("opt.cuda.tcSplit='" + text + "': give the warps per group of "
          + "outputs of the tensor-core Linear, 1, 2, 4 or 8, or auto");
    }
  }

  /**
   * Parses {@code opt.cuda.tcLinear}: a row count from 0 to {@link #TC_LINEAR_MAX_ROWS}.
   *
   * @throws IllegalArgumentException for anything else, saying what it takes
   */
  static int tcLinearRows(String text) {
    try {
      int n = Integer.parseInt(text.trim());
      if (n >= 0 && n <= TC_LINEAR_MAX_ROWS) {
        return n;
      }
    } catch (NumberFormatException e) {
      // the message below
    }
    throw new IllegalArgumentException("-Dopt.cuda.tcLinear=" + text + ": give the most rows a Linear may have to "
        + "run on the tensor-core kernel, 0 (off) to 32");
  }

  /**
   * The rows setting of {@code -Dopt.cuda.gemv}: a number from 0 to 8, or on (8) / off (0).
   *
   * @throws IllegalArgumentException for anything else, saying what it takes
   */
  static int gemvRows(String text) {
    String t = text.trim().toLowerCase(java.util.Locale.ROOT);
    switch (t) {
      case "on", "true" -> { return GEMV_MAX_ROWS; }
      case "off", "false" -> { return 0; }
      default -> {
        try {
          int n = Integer.parseInt(t);
          if (n >= 0 && n <= GEMV_MAX_ROWS) {
            return n;
          }
        } catch (NumberFormatException e) {
          // the message below
        }
        throw new IllegalArgumentException("opt.cuda.gemv='" + text + "': give the most rows (0 to " + GEMV_MAX_ROWS
            + ") whose Linears run the matrix-vector kernel, or on (" + GEMV_MAX_ROWS + ") / off (0)");
      }
    }
  }
}
