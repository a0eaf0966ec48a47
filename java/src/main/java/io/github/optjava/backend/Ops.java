package io.github.optjava.backend;

import io.github.optjava.checkpoint.Tensor;

/**
 * The op vocabulary the OPT model is written against. Each op has the meaning (and argument order:
 * outputs first, then inputs, then sizes) of the C launcher of the same name in
 * {@code native/include/opt_kernels.h}; {@code backend.cpu.CpuOps} is the scalar reference every other
 * implementation is tested against. Host-side index arrays ({@code int[]}) are small and copied to the
 * device by GPU implementations.
 *
 * <p>Activations are float32 in every CPU implementation; weights stay in their checkpoint dtype (fp16,
 * bf16, fp32) and are widened on the fly, accumulating in float32.
 */
public interface Ops extends AutoCloseable {

  /** Short name for logs, for example {@code cpu-reference}. */
  String name();

  // ---- memory ----

  /** Copies a checkpoint tensor (1-D becomes 1 × n) into backend memory, keeping its dtype. */
  Mat weight(Tensor tensor);

  /**
   * A Linear layer's (out, in) weight as this backend stores Linear weights, for {@link #linear}: by default as
   * {@link #weight}; a backend made to quantize (the CPU ops' {@code int8Linears}) stores it as {@link Int8Rows},
   * and {@link #linear} then computes {@code scale[o] × Σ_i q[o, i] × x[t, i] (+ bias[o])}.
   */
  default Mat linearWeight(Tensor tensor) {
    return weight(tensor);
  }

  /** A float32 activation matrix; its contents are undefined until written. */
  Mat alloc(int rows, int cols);

  /** Host → backend: {@code dst} gets {@code src} (rows × cols floats, row-major). */
  void write(Mat dst, float[] src);

  /** Backend → host: the matrix as float32, row-major. */
  float[] read(Mat src);

  /** Memory this backend could still allocate, in bytes (device memory on GPUs, Java heap on the CPU). */
  long freeMemory();

  /**
   * Refuses, before a model part loads, weights that cannot fit in this backend's memory: {@code linearElements}
   * elements of Linear weights (stored as {@link #linearWeight} stores them) and {@code otherElements} of
   * everything else, {@code elementBytes} bytes each as loaded. The CPU backends check the Java heap, so that a
   * model too large for it fails at once with the heap it would need, not with an {@link OutOfMemoryError}
   * after a long load. By default nothing is checked: a GPU allocation that does not fit fails on its own, clearly.
   *
   * @param what the part, for the message (for example "opt-1.3b's weights")
   * @throws IllegalStateException if the weights cannot fit, saying what to change
   */
  default void requireRoomForWeights(String what, long linearElements, long otherElements, int elementBytes) {}

  /** Bytes of one KV-cache element (the cache's storage dtype). */
  int kvElementBytes();

  /** KV-cache memory for {@code layers} layers, each {@code blocks × blockSize} slots of {@code width}. */
  KvStore kvStore(int layers, int blocks, int blockSize, int width);

  // ---- ops ----

  /** Embedding lookup: {@code out[t, :] = table[ids[t], :]}; an id outside the table gives a zero row. */
  void embedding(Mat out, Mat table, int[] ids);

  /**
   * Learned positions, OPT's offset 2 included: {@code x[t, :] += table[positions[t] + 2, :]}, where
   * {@code positions[t]} is the token's 0-based position in its sequence.
   */
  void addPositions(Mat x, Mat table, int[] positions);

  /** Layer norm over each row, statistics in float32: {@code out = (x - mean) / sqrt(var + eps) * gamma + beta}. */
  void layerNorm(Mat out, Mat x, Mat gamma, Mat beta, float eps);

  /**
   * {@code out = x · wᵀ (+ bias) (then ReLU if relu)}, with {@code x} (t, in), {@code w} (out, in) as
   * PyTorch stores Linear weights, {@code bias} (1, out) or null, {@code out} (t, out). An int8 {@code w}
   * ({@link #linearWeight}) stands for its integers times its row scales: each sum is taken over the integers and
   * then multiplied by the row's scale, before the bias.
   */
  void linear(Mat out, Mat x, Mat w, Mat bias, boolean relu);

  /** Residual add: {@code x += y}. */
  void addInPlace(Mat x, Mat y);

  /**
   * The bias of the Linear that made {@code y} (left out of its GEMM), the residual add and the next layer
   * norm, in one pass: {@code x += y + bias} (bias (1, cols) or null), then {@code out = layerNorm(x)}.
   * Equal to {@code linear} with the bias, {@link #addInPlace} and {@link #layerNorm}.
   */
  void addBiasLayerNorm(Mat x, Mat y, Mat bias, Mat out, Mat gamma, Mat beta, float eps);

  /** Writes the key and value rows of this step's tokens into their cache slots: {@code kv[layer][slots[t]] = (k[t], v[t])}. */
  void kvAppend(KvStore kv, int layer, Mat k, Mat v, int[] slots);

  /**
   * The epilogue of the fused q/k/v projection: {@code qkv} (t, 3w) is {@code x · [Wq; Wk; Wv]ᵀ} without
   * bias, each part {@code w} = the cache width wide; {@code q = qkv[:, 0:w] + bias[0:w]}, and the keys
   * {@code qkv[:, w:2w] + bias[w:2w]} and values {@code qkv[:, 2w:3w] + bias[2w:3w]} go to their cache slots as
   * {@link #kvAppend} writes them. {@code bias} (1, 3w) or null.
   */
  void qkvAppend(Mat q, KvStore kv, int layer, Mat qkv, Mat bias, int[] slots);

  /**
   * The fused q/k/v projection with its epilogue: {@code linear(qkv, x, w, null, false)} (w the stacked
   * {@code [Wq; Wk; Wv]}, (3w, in)) then {@link #qkvAppend}. A backend may do both in one pass (CUDA for a few
   * rows); {@code qkv} (rows, 3w) is then scratch that may be left unwritten.
   */
  default void qkvProjectAppend(Mat q, KvStore kv, int layer, Mat qkv, Mat x, Mat w, Mat bias, int[] slots) {
    linear(qkv, x, w, null, false);
    qkvAppend(q, kv, layer, qkv, bias, slots);
  }

  /**
   * Causal multi-head attention of this step's queries over the cache (see {@link AttentionBatch}):
   * per head, {@code softmax(q · Kᵀ · scale) · V} in float32, {@code q} and {@code out} (queries, heads × headDim).
   * The keys and values of this step's tokens must already be appended.
   */
  void attention(Mat out, Mat q, KvStore kv, int layer, AttentionBatch batch, int heads, float scale);

  /**
   * Copies whole KV-cache blocks, every layer: block {@code src[i]} → block {@code dst[i]}. Beam search
   * uses it when a beam continues another beam's history.
   */
  void kvCopyBlocks(KvStore kv, int[] src, int[] dst);

  /** {@code out[i, :] = x[rows[i], :]}. */
  void gatherRows(Mat out, Mat x, int[] rows);

  /**
   * The first index of each row's maximum ({@code torch.argmax}: NaN counts as the largest, ties go to the
   * smaller index). Ends a step as {@link #read} does; a GPU backend computes it on the device.
   */
  default int[] argmaxRows(Mat logits) {
    return argmaxRows(logits, null);
  }

  /**
   * As {@link #argmaxRows(Mat)}, and when {@code logprobs} is not null it receives each picked token's
   * {@code log_softmax} ({@link RowMath#logSumExp}; a GPU backend computes it on the device in float32).
   */
  default int[] argmaxRows(Mat logits, double[] logprobs) {
    return argmaxRows(logits, logprobs, LogitEdits.NONE);
  }

  /**
   * As {@link #argmaxRows(Mat, double[])} after {@code edits} (a sequence's logits processors, named token by token)
   * changed the logits, where they are: the pick and its log-prob are the processed row's. The default reads the
   * logits and edits them on the host ({@link LogitEdits#applyTo}).
   */
  default int[] argmaxRows(Mat logits, double[] logprobs, LogitEdits edits) {
    float[] v = read(logits);
    edits.applyTo(v);
    return RowMath.pickRows(v, logits.rows(), logits.cols(), logprobs, 0, null, null);
  }

  /**
   * As {@link #argmaxRows(Mat, double[], LogitEdits)}, and for each row its {@code k} most likely tokens after the
   * edits with their log-probs ({@link RowMath#topK}'s order and rules): row r's in {@code topIds[r * k ..]} and
   * {@code topLogprobs[r * k ..]}, -1 and NaN after the last listed. A greedy request's log-prob alternatives; a GPU
   * copies back {@code k} pairs per row instead of the row. The default reads the logits.
   */
  default int[] argmaxRows(Mat logits, double[] logprobs, LogitEdits edits, int k, int[] topIds,
      double[] topLogprobs) {
    if (k == 0) {
      return argmaxRows(logits, logprobs, edits);
    }
    float[] v = read(logits);
    edits.applyTo(v);
    return RowMath.pickRows(v, logits.rows(), logits.cols(), logprobs, k, topIds, topLogprobs);
  }

  /**
   * Beam search's candidates where the logits are: for each {@code j}, the {@code k} best of float32
   * {@code log_softmax(logits[rows[j], :]) + base[j]} ({@link RowMath#beamTopK}'s order and rules) into
   * {@code ids[j * k ..]} and {@code scores[j * k ..]}, -1 and NaN after the last listed; a row whose log-softmax is
   * NaN or that is all -inf lists nothing. Several {@code j} may read one row (the first step's beams share the
   * prompt's). A GPU copies back {@code k} pairs per beam instead of its row. The default reads the logits.
   *
   * @throws IllegalArgumentException for a row outside the logits or arrays of other lengths
   */
  default void beamTopK(Mat logits, int[] rows, float[] base, int k, int[] ids, float[] scores) {
    RowMath.requireBeamLists(rows, base, k, ids, scores, logits.rows());
    RowMath.beamTopK(read(logits), logits.cols(), rows, base, k, ids, scores);
  }

  /**
   * As {@link #beamTopK(Mat, int[], float[], int, int[], float[])} with a beam's processors applied to the
   * log-probabilities as Hugging Face applies them (after the log-softmax, not renormalised): each row's float32
   * log-softmax ({@link RowMath#logSoftmaxRows}), then {@code edits} on it (row r of the edits is logits row r), then
   * the k best of {@code value + base[j]} ({@link RowMath#beamTopKOfLogProbs}). The default reads the logits.
   */
  default void beamTopK(Mat logits, int[] rows, float[] base, int k, int[] ids, float[] scores, LogitEdits edits) {
    // On the host itself, never through the other overload: a backend that overrides that one to come here, and
    // falls back to this default, would otherwise loop (the H200 run of session 21: a StackOverflowError with
    // -Dopt.cuda.deviceBeams=false)
    RowMath.requireBeamLists(rows, base, k, ids, scores, logits.rows());
    float[] v = read(logits);
    if (edits.isEmpty()) {
      RowMath.beamTopK(v, logits.cols(), rows, base, k, ids, scores);
      return;
    }
    RowMath.logSoftmaxRows(v, logits.rows(), logits.cols());
    edits.applyTo(v);
    RowMath.beamTopKOfLogProbs(v, logits.cols(), rows, base, k, ids, scores);
  }

  /** Whether {@link #tokenLogprobs} computes where the logits are (else a caller that also needs rows reads once). */
  default boolean scoresOnDevice() {
    return false;
  }

  /**
   * One token per row of {@code logits} (rows × vocab) drawn with {@link RowSampling}'s rules: row r by row r of
   * {@code rows} (temperature, top-k, top-p, min-p, typical sampling, its uniform number); {@code logprobs[r]} (when
   * not null) receives the token's log-probability under that distribution. A row with a NaN gives
   * {@link RowSampling#NAN}, a row of -inf {@link RowSampling#NONE}. A row at temperature 0 is greedy: its argmax and
   * log-softmax exactly as {@link #argmaxRows} picks it (its other parameters are ignored), so that one step can draw
   * some sequences and pick others. Default: the logits read back and drawn on the host; a GPU draws where they are.
   */
  default int[] sampleRows(Mat logits, SamplingRows rows, double[] logprobs) {
    return sampleRows(logits, rows, logprobs, LogitEdits.NONE);
  }

  /**
   * As {@link #sampleRows(Mat, SamplingRows, double[])} after {@code edits} changed the logits (before the
   * temperature, as HF's processors come before its warpers). The default edits the row on the host.
   */
  default int[] sampleRows(Mat logits, SamplingRows rows, double[] logprobs, LogitEdits edits) {
    return sampleRows(logits, rows, logprobs, edits, 0, null, null);
  }

  /**
   * As {@link #sampleRows(Mat, SamplingRows, double[], LogitEdits)}, and each row's {@code k} most likely tokens of
   * its filtered distribution (a greedy row's: of the row, as {@link #argmaxRows} lists them) with their log-probs
   * ({@link RowSampling}'s listing) into {@code topIds[r * k ..]} / {@code topLogprobs[r * k ..]}, -1 and NaN after
   * the last: a sampled request's log-prob alternatives; a GPU copies back {@code k} pairs per row instead of the row.
   * The default reads the rows.
   */
  default int[] sampleRows(Mat logits, SamplingRows rows, double[] logprobs, LogitEdits edits, int k, int[] topIds,
      double[] topLogprobs) {
    if (rows.rows() != logits.rows()) {
      throw new IllegalArgumentException("sampleRows: " + rows.rows() + " rows of parameters for " + logits.rows()
          + " rows of logits");
    }
    float[] flat = read(logits);
    edits.applyTo(flat);
    int vocab = logits.cols();
    int[] out = new int[logits.rows()];
    for (int r = 0; r < out.length; r++) {
      out[r] = RowSampling.sample(flat, r * vocab, vocab, rows, r, logprobs, r, k, topIds, topLogprobs, r * k);
    }
    return out;
  }

  /**
   * {@code log_softmax(logits[r, :])[tokens[r]]} for every row ({@code tokens.length == logits.rows()}): an echoed
   * prompt's scores, row i scoring token i + 1; NaN for a token outside {@code [0, vocab)} (-1: a row nobody
   * scores, skipped). The default reads the rows and computes on the host (several rows at a time; the result does
   * not depend on the threads); a backend may compute them where the logits are ({@link #scoresOnDevice}).
   */
  default double[] tokenLogprobs(Mat logits, int[] tokens) {
    int rows = logits.rows();
    int vocab = logits.cols();
    if (tokens.length != rows) {
      throw new IllegalArgumentException("tokenLogprobs: " + tokens.length + " tokens for " + rows + " rows");
    }
    return RowMath.tokenLogprobs(read(logits), vocab, tokens);
  }

  /**
   * As {@link #tokenLogprobs(Mat, int[])}, and for {@code k > 0} each row's {@code k} most likely tokens with their
   * log-probs ({@link RowMath#topK}'s order and rules, as {@link #argmaxRows(Mat, double[], LogitEdits, int, int[],
   * double[])} lists them) into {@code topIds[r * k ..]} / {@code topLogprobs[r * k ..]}, -1 and NaN after the last
   * listed: an echoed prompt's scores with their log-prob alternatives. The default reads the rows once; a backend
   * that {@link #scoresOnDevice} copies back the scores and the k pairs per row instead of the rows.
   */
  default double[] tokenLogprobs(Mat logits, int[] tokens, int k, int[] topIds, double[] topLogprobs) {
    if (k == 0) {
      return tokenLogprobs(logits, tokens);
    }
    int rows = logits.rows();
    int vocab = logits.cols();
    if (tokens.length != rows || topIds.length < (long) rows * k || topLogprobs.length < (long) rows * k) {
      throw new IllegalArgumentException("tokenLogprobs: " + tokens.length + " tokens and room for "
          + Math.min(topIds.length, topLogprobs.length) + " alternatives for " + rows + " rows of " + k);
    }
    float[] v = read(logits);
    for (int r = 0; r < rows; r++) {
      RowMath.pickRow(v, r * vocab, vocab, null, 0, k, topIds, topLogprobs, r * k);
    }
    return RowMath.tokenLogprobs(v, vocab, tokens);
  }

  /** Whether {@link #sampleRows} draws on the device (then the engine lets it; else it samples on the host). */
  default boolean samplesOnDevice() {
    return false;
  }

  /**
   * Whether {@link #sampleRows} draws rows with typical sampling on the device too (then the engine lets it; else
   * their rows come to the host, where the HF-exact processors run). False by default.
   */
  default boolean samplesTypicalOnDevice() {
    return false;
  }

  /**
   * Whether {@link #sampleRows} picks greedy (temperature 0) rows among drawn ones where the rows are, without copying
   * them (else it reads every row back, and a caller that wants some rows anyway should read them all once). True by
   * default: a CPU backend's rows are on the host already.
   */
  default boolean picksMixedRowsOnDevice() {
    return true;
  }

  /**
   * Declares that the ops until the next {@link #read} / {@link #argmaxRows} form a step that the caller
   * repeats op for op, with the same shapes and buffers sizes, whenever it passes the same
   * {@code (kv, batch, tokensPerSequence, variant)}; a backend may capture it once and replay it (CUDA graphs).
   * {@code tokensPerSequence}: 1 for a decode step, more for a step that checks draft tokens. The KV store is part
   * of the key because a step reads and writes its buffers: one model serving two caches repeats its steps per
   * cache. A no-op by default.
   */
  default void graphStep(KvStore kv, int batch, int tokensPerSequence, int variant) {}

  /**
   * The batch size a decode step of {@code n} sequences should run at: {@code n} (the default), or more where the
   * backend replays decode steps as graphs and pads them to a few sizes ({@link BatchBuckets}); the model then adds
   * padding rows that read and write only a block of their own ({@code KvCache.paddingBlock}) and drops their
   * results. Only for decode steps (one new token per sequence, last logits only).
   */
  default int decodeBatchBucket(int n) {
    return n;
  }

  /** Abandons a step begun by {@link #graphStep} that failed before its result was read. A no-op by default. */
  default void graphAbort() {}

  /**
   * Ends a step begun by {@link #graphStep} before its result is read (its capture or replay launched now), so that
   * the ops after it run op by op outside the graph: for a pick that first needs ops of its own (a gather of the rows
   * it reads), which the step's graph must not contain. A no-op by default and outside such a step.
   */
  default void finishStep() {}

  @Override
  void close();
}
