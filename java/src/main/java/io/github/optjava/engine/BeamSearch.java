package io.github.optjava.engine;

import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.LogitEdits;
import io.github.optjava.backend.RowMath;
import io.github.optjava.model.CausalLm;
import io.github.optjava.model.OptModel;
import io.github.optjava.model.OptModel.SeqStep;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.function.LongSupplier;

/**
 * Deterministic beam search with the semantics of Hugging Face transformers 4.36
 * ({@code generate(num_beams=…, do_sample=False)}, one prompt), so that tokens and scores match HF.
 *
 * <p>Each step, per live beam: {@code log_softmax(logits)}, then the logits processors (HF applies them
 * to the log-probabilities, not to the raw logits), plus the beam's running score, all in float32 as
 * torch computes them. Over the flattened {@code numBeams × vocab} scores the top {@code 2 × numBeams}
 * candidates are walked best first: an EOS among the first {@code numBeams} of them becomes a finished
 * hypothesis, an EOS further down is skipped, any other token extends a beam until {@code numBeams}
 * beams exist.
 * Only beam 0 starts live (the others at -1e9). The search stops when HF's {@code is_done} says so
 * (see {@code BeamHypotheses}) or after {@code maxNewTokens} tokens, when the live beams become
 * hypotheses too.
 *
 * <p>Without processors, or with processors that name their tokens ({@link SparseLogitsProcessor}: a
 * repetition penalty, no-repeat n-grams, bans, ...; applied as edits to the log-probabilities), the candidates
 * are found where the logits are ({@link CausalLm#beamTopK}: each beam's best {@code 2 × numBeams}, which
 * hold the best of all beams; a GPU copies those back instead of every beam's row of the vocabulary). With
 * other processors the rows come to the host. On the CPU both paths give the same bits.
 *
 * <p>KV cache: the prompt is prefilled once; beams are sequences of the shared {@link KvCache}, forked
 * by block copies when a beam has several continuations (see {@code BeamSequences}), and all live beams
 * decode in one batched forward call per step. Every sequence used is released on return or failure.
 *
 * <p>Call it on the thread that owns the cache ({@link KvCache} is not thread-safe); it runs the whole
 * search in one call.
 */
public final class BeamSearch {

  /** HF's initial score of beams 1.. (float32), so that the first step expands beam 0 only. */
  private static final float DEAD_BEAM_SCORE = -1e9f;

  private BeamSearch() {}

  /**
   * Beam search settings (HF names: {@code num_beams}, {@code max_new_tokens}, {@code length_penalty},
   * {@code early_stopping} ({@code True}/{@code False}; HF's {@code "never"} is not supported),
   * {@code num_return_sequences}, {@code eos_token_id}, {@code pad_token_id}).
   *
   * @param padTokenId only fills HF-shaped output rows ({@link #hfSequences}); the search ignores it
   */
  public record Config(int numBeams, int maxNewTokens, double lengthPenalty, boolean earlyStopping,
      int numReturnSequences, int eosTokenId, int padTokenId) {

    public Config {
      require(numBeams >= 2, "numBeams must be >= 2 for beam search (got " + numBeams
          + "); one beam is greedy decoding");
      require(maxNewTokens >= 1, "maxNewTokens must be >= 1 for beam search (got " + maxNewTokens + ")");
      require(Double.isFinite(lengthPenalty), "lengthPenalty must be finite (got " + lengthPenalty + ")");
      require(numReturnSequences >= 1 && numReturnSequences <= numBeams, "numReturnSequences must be in [1, "
          + "numBeams=" + numBeams + "] (got " + numReturnSequences + "): beam search keeps numBeams hypotheses");
      require(eosTokenId >= 0, "eosTokenId must be >= 0 (got " + eosTokenId + ")");
      require(padTokenId >= 0, "padTokenId must be >= 0 (got " + padTokenId + ")");
    }

    /** The settings validated {@link SamplingParams} ask for ({@code n} is the number returned). */
    public static Config of(SamplingParams params, int eosTokenId, int padTokenId) {
      return new Config(params.numBeams(), params.maxTokens(), params.lengthPenalty(), params.earlyStopping(),
          params.n(), eosTokenId, padTokenId);
    }

    private static void require(boolean ok, String message) {
      if (!ok) {
        throw new IllegalArgumentException(message);
      }
    }
  }

  /**
   * One returned hypothesis.
   *
   * @param tokens   the generated tokens only (no prompt); ends with the EOS when {@code finished}
   * @param score    HF's {@code sequences_scores}: {@code sum_logprobs / tokens.length ** lengthPenalty}
   * @param finished whether it ended with EOS (otherwise it ran to {@code maxNewTokens})
   */
  public record Hypothesis(int[] tokens, double score, boolean finished) {
    public Hypothesis {
      tokens = tokens.clone();
    }

    @Override
    public int[] tokens() {
      return tokens.clone();
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Hypothesis h && Arrays.equals(tokens, h.tokens)
          && Double.compare(score, h.score) == 0 && finished == h.finished;
    }

    @Override
    public int hashCode() {
      return 31 * (31 * Arrays.hashCode(tokens) + Double.hashCode(score)) + Boolean.hashCode(finished);
    }

    @Override
    public String toString() {
      return "Hypothesis[tokens=" + Arrays.toString(tokens) + ", score=" + score + ", finished=" + finished + "]";
    }
  }

  /** What the search needs from a model; {@link #of(CausalLm)} adapts the real one, tests script one. */
  interface StepModel {
    /** {@link OptModel#forward}: appends each sequence's tokens to the cache, returns last-token logits. */
    float[][] forward(List<SeqStep> steps, KvCache cache);

    /**
     * {@link CausalLm#beamTopK}: the step, then for each {@code j} the {@code k} best of float32
     * {@code log_softmax(row rows[j])} after {@code edits} (the beams' processors), {@code + base[j]}; the default
     * reads {@link #forward}'s rows.
     */
    default void beamTopK(List<SeqStep> steps, KvCache cache, int[] rows, float[] base, int k, int[] ids,
        float[] scores, LogitEdits edits) {
      float[][] out = forward(steps, cache);
      int vocab = vocabSize();
      float[] v = new float[out.length * vocab];
      for (int r = 0; r < out.length; r++) {
        System.arraycopy(out[r], out[r].length - vocab, v, r * vocab, vocab);
      }
      if (edits.isEmpty()) {
        RowMath.beamTopK(v, vocab, rows, base, k, ids, scores);
        return;
      }
      RowMath.logSoftmaxRows(v, out.length, vocab);
      edits.applyTo(v);
      RowMath.beamTopKOfLogProbs(v, vocab, rows, base, k, ids, scores);
    }

    /** {@link CausalLm#copyBlocks}: {@code Ops.kvCopyBlocks} on the cache's store (every rank's). */
    void copyBlocks(KvCache cache, int[] src, int[] dst);

    int vocabSize();

    int maxPositions();

    static StepModel of(CausalLm model) {
      return new StepModel() {
        @Override
        public float[][] forward(List<SeqStep> steps, KvCache cache) {
          return model.forward(steps, cache);
        }

        @Override
        public void beamTopK(List<SeqStep> steps, KvCache cache, int[] rows, float[] base, int k, int[] ids,
            float[] scores, LogitEdits edits) {
          model.beamTopK(steps, cache, rows, base, k, ids, scores, edits);
        }

        @Override
        public void copyBlocks(KvCache cache, int[] src, int[] dst) {
          model.copyBlocks(cache, src, dst);
        }

        @Override
        public int vocabSize() {
          return model.config().vocabSize();
        }

        @Override
        public int maxPositions() {
          return model.config().maxPositionEmbeddings();
        }
      };
    }
  }

  /**
   * Runs beam search for one prompt.
   *
   * @param model      the model; its backend copies the KV blocks of forked beams
   * @param cache      the shared KV cache; needs {@code numBeams × blocksFor(prompt + maxNewTokens - 1)}
   *                   free blocks, checked before anything runs
   * @param ids        fresh sequence ids (one for the prompt, one per fork), none held in {@code cache}
   * @param promptIds  BOS and the prompt's tokens
   * @param config     the search settings
   * @param processors applied in order to each beam's log-probabilities (may be empty); used by this
   *                   thread only, one beam after the other
   * @return the best {@code numReturnSequences} hypotheses, best first
   * @throws IllegalArgumentException for a prompt or length the model cannot take
   * @throws IllegalStateException    when the KV cache has too few free blocks for all beams
   */
  public static List<Hypothesis> run(CausalLm model, KvCache cache, LongSupplier ids, int[] promptIds,
      Config config, List<LogitsProcessor> processors) {
    return run(StepModel.of(model), cache, ids, promptIds, config, processors);
  }

  static List<Hypothesis> run(StepModel model, KvCache cache, LongSupplier ids, int[] promptIds, Config config,
      List<LogitsProcessor> processors) {
    Objects.requireNonNull(ids, "ids");
    List<LogitsProcessor> procs = List.copyOf(processors);
    checkFits(model, cache, promptIds, config);
    BeamSequences seqs = new BeamSequences(cache, model::copyBlocks, ids, config.numBeams());
    try {
      return search(model, cache, seqs, promptIds, config, procs);
    } finally {
      seqs.releaseAll();
    }
  }

  private static List<Hypothesis> search(StepModel model, KvCache cache, BeamSequences seqs, int[] prompt,
      Config config, List<LogitsProcessor> processors) {
    int numBeams = config.numBeams();
    int promptLen = prompt.length;
    // HF's input_ids per beam: prompt, then generated tokens; the processors read it.
    int[][] history = new int[numBeams][promptLen + config.maxNewTokens()];
    for (int[] h : history) {
      System.arraycopy(prompt, 0, h, 0, promptLen);
    }
    float[] beamScores = new float[numBeams];
    Arrays.fill(beamScores, 1, numBeams, DEAD_BEAM_SCORE);
    // Before the first reorder every beam shares the prompt's sequence and its single logits row.
    int[] rowOf = new int[numBeams];
    List<SeqStep> batch = List.of(new SeqStep(seqs.start(), prompt, false));
    BeamHypotheses hyps = new BeamHypotheses(numBeams, config.lengthPenalty(), config.earlyStopping());
    LogitsPipeline asEdits = asEdits(processors);

    for (int step = 0; ; step++) {
      int inputLength = promptLen + step;
      Candidates top = asEdits != null
          ? Candidates.merge(model, batch, cache, rowOf, beamScores, 2 * numBeams,
              edits(asEdits, history, rowOf, batch.size(), inputLength, promptLen, model.vocabSize()))
          : Candidates.processed(model, batch, cache, rowOf, beamScores, 2 * numBeams, processors, history,
              inputLength, promptLen);

      int[] parent = new int[numBeams];
      int[] token = new int[numBeams];
      float[] nextScores = new float[numBeams];
      int filled = 0;
      for (int rank = 0; rank < top.count && filled < numBeams; rank++) {
        int beam = top.beam(rank);
        int tok = top.token(rank);
        if (tok == config.eosTokenId()) {
          if (rank < numBeams) { // HF: an EOS outside the top numBeams does not finish anything
            int[] tokens = Arrays.copyOfRange(history[beam], promptLen, inputLength + 1);
            tokens[step] = tok;
            hyps.add(tokens, top.scores[rank], step + 1, true);
          }
        } else {
          parent[filled] = beam;
          token[filled] = tok;
          nextScores[filled] = top.scores[rank];
          filled++;
        }
      }
      if (filled < numBeams) { // each beam adds at most one EOS, so only a vocabulary of 1 gets here
        throw new IllegalStateException("beam search found only " + filled + " non-EOS candidates among "
            + top.count + " for " + numBeams + " beams: the vocabulary is too small");
      }
      boolean done = hyps.isDone(top.scores[0], step + 1);

      int[][] nextHistory = new int[numBeams][];
      for (int i = 0; i < numBeams; i++) {
        nextHistory[i] = history[parent[i]].clone();
        nextHistory[i][inputLength] = token[i];
      }
      history = nextHistory;
      beamScores = nextScores;
      if (done) {
        break;
      }
      if (step + 1 == config.maxNewTokens()) { // HF's finalize: live beams compete as they are
        for (int b = 0; b < numBeams; b++) {
          hyps.add(Arrays.copyOfRange(history[b], promptLen, inputLength + 1), beamScores[b], step + 1, false);
        }
        break;
      }

      seqs.reorder(parent);
      List<SeqStep> next = new ArrayList<>(numBeams);
      for (int b = 0; b < numBeams; b++) {
        next.add(new SeqStep(seqs.seq(b), new int[] {token[b]}, false));
        rowOf[b] = b;
      }
      batch = next;
    }
    return hyps.best(config.numReturnSequences());
  }

  /**
   * The processors as one pipeline when the model can apply them where the logits are (none, or only
   * {@link SparseLogitsProcessor}s in {@link LogitEdits}' order: their edits on the log-probabilities are what HF's
   * processors do to them), else null: the rows come to the host.
   */
  private static LogitsPipeline asEdits(List<LogitsProcessor> processors) {
    if (!processors.stream().allMatch(p -> p instanceof SparseLogitsProcessor)) {
      return null;
    }
    LogitsPipeline pipeline = LogitsPipeline.of(processors.toArray(LogitsProcessor[]::new));
    return pipeline.runsAsEdits() ? pipeline : null;
  }

  /** The step's edits: each logits row's, from the history of the first beam reading it. */
  private static LogitEdits edits(LogitsPipeline pipeline, int[][] history, int[] rowOf, int rows, int inputLength,
      int promptLen, int vocab) {
    if (pipeline.isEmpty()) {
      return LogitEdits.NONE;
    }
    LogitEdits.Builder out = new LogitEdits.Builder(vocab);
    for (int r = 0; r < rows; r++) {
      out.row(r);
      pipeline.edits(history[firstBeamOfRow(rowOf, r)], inputLength, promptLen, out);
    }
    return out.build();
  }

  /**
   * The rows HF's {@code generate()} returns as {@code sequences}: prompt plus generated tokens (EOS
   * included for finished hypotheses), shorter rows right-padded with {@code padTokenId}.
   */
  public static int[][] hfSequences(int[] promptIds, List<Hypothesis> hypotheses, int padTokenId) {
    int width = 0;
    for (Hypothesis h : hypotheses) {
      width = Math.max(width, promptIds.length + h.tokens.length);
    }
    int[][] out = new int[hypotheses.size()][width];
    for (int i = 0; i < out.length; i++) {
      int[] tokens = hypotheses.get(i).tokens;
      Arrays.fill(out[i], padTokenId);
      System.arraycopy(promptIds, 0, out[i], 0, promptIds.length);
      System.arraycopy(tokens, 0, out[i], promptIds.length, tokens.length);
    }
    return out;
  }

  /** Rejects, before any work, what would fail halfway: bad ids, too many positions, too little cache. */
  private static void checkFits(StepModel model, KvCache cache, int[] prompt, Config config) {
    int vocab = model.vocabSize();
    if (prompt.length == 0) {
      throw new IllegalArgumentException("beam search needs a non-empty prompt (OPT prompts start with BOS)");
    }
    for (int id : prompt) {
      if (id < 0 || id >= vocab) {
        throw new IllegalArgumentException("prompt token id " + id + " is outside the vocabulary [0, " + vocab + ")");
      }
    }
    if (config.eosTokenId() >= vocab) {
      throw new IllegalArgumentException("eosTokenId " + config.eosTokenId() + " is outside the vocabulary [0, "
          + vocab + ")");
    }
    // The last chosen token is never fed back, so the cache holds at most prompt + maxNewTokens - 1.
    int tokens = prompt.length + config.maxNewTokens() - 1;
    if (tokens > model.maxPositions()) {
      throw new IllegalArgumentException("a prompt of " + prompt.length + " tokens plus " + config.maxNewTokens()
          + " new tokens needs " + tokens + " positions; the model has " + model.maxPositions()
          + ": shorten the prompt or lower maxNewTokens");
    }
    int perBeam = cache.blocksFor(tokens);
    long need = (long) config.numBeams() * perBeam;
    if (need > cache.freeBlocks()) {
      throw new IllegalStateException("beam search needs " + need + " free KV-cache blocks (" + config.numBeams()
          + " beams × " + perBeam + " blocks of " + cache.blockSize() + " tokens for " + tokens + " tokens) but "
          + cache.freeBlocks() + " are free: lower numBeams or maxNewTokens, or raise the KV-cache size");
    }
  }

  private static int firstBeamOfRow(int[] rowOf, int row) {
    for (int b = 0; b < rowOf.length; b++) {
      if (rowOf[b] == row) {
        return b;
      }
    }
    throw new IllegalStateException("no beam reads logits row " + row);
  }

  /**
   * torch's {@code log_softmax} over one row, in place, float32 results ({@code x - max - log(sum)}; the
   * exponentials are {@link io.github.optjava.backend.cpu.RowKernels#exp}'s, the sum is accumulated in double).
   */
  static void logSoftmaxInPlace(float[] x) {
    float max = io.github.optjava.backend.cpu.RowKernels.max(x, 0, x.length);
    if (Float.isNaN(max)) {
      throw new IllegalStateException("the model produced NaN logits");
    }
    if (max == Float.NEGATIVE_INFINITY) {
      throw new IllegalStateException("every logit is -inf: no token can be generated");
    }
    // +inf - +inf is NaN, as in torch; else float exponentials of the float differences (as torch's), vectorised,
    // summed in double (RowMath.beamTopK shares this, so the device path gives the same bits on the CPU)
    float logSum = max == Float.POSITIVE_INFINITY ? Float.NaN : RowMath.logSumShifted(x, 0, x.length, max);
    for (int i = 0; i < x.length; i++) {
      x[i] = (x[i] - max) - logSum;
    }
  }

  /** HF's {@code torch.topk} over the flattened {@code [numBeams × vocab]} candidate scores. */
  private static final class Candidates {
    final int vocab;
    final int[] flat;
    final float[] scores;
    int count;

    private Candidates(int k, int vocab) {
      this.vocab = vocab;
      this.flat = new int[k];
      this.scores = new float[k];
    }

    int beam(int rank) {
      return flat[rank] / vocab;
    }

    int token(int rank) {
      return flat[rank] % vocab;
    }

    /**
     * The step's candidates with the processors (the host path): each row's log-softmax, then the processors of
     * the first beam reading it (HF applies them to log-probabilities, which edits on the logits would not
     * reproduce), then {@link #top}.
     */
    static Candidates processed(StepModel model, List<SeqStep> batch, KvCache cache, int[] rowOf,
        float[] beamScores, int k, List<LogitsProcessor> processors, int[][] history, int inputLength,
        int promptLen) {
      float[][] rows = model.forward(batch, cache);
      for (int r = 0; r < rows.length; r++) {
        logSoftmaxInPlace(rows[r]);
        int beam = firstBeamOfRow(rowOf, r);
        for (LogitsProcessor p : processors) {
          p.process(history[beam], inputLength, promptLen, rows[r]);
        }
      }
      return top(rows, rowOf, beamScores, k);
    }

    /**
     * The step's candidates without processors, where the logits are: each beam's {@code k} best
     * ({@link StepModel#beamTopK}, {@code k} pairs per beam instead of its row of the vocabulary), merged. The
     * best {@code k} of all beams are among them, and the merge keeps {@link #top}'s order, so both paths agree.
     */
    static Candidates merge(StepModel model, List<SeqStep> batch, KvCache cache, int[] rowOf, float[] beamScores,
        int k, LogitEdits edits) {
      int beams = rowOf.length;
      int[] ids = new int[beams * k];
      float[] scores = new float[beams * k];
      model.beamTopK(batch, cache, rowOf, beamScores, k, ids, scores, edits);
      int vocab = model.vocabSize();
      Candidates c = new Candidates(k, vocab);
      for (int b = 0; b < beams; b++) {
        if (ids[b * k] < 0) {
          throw new IllegalStateException("the model's logits for beam " + b + " hold a NaN or +inf, or are all "
              + "-inf: no token can be scored");
        }
        for (int j = b * k; j < (b + 1) * k && ids[j] >= 0; j++) {
          c.offer(b * vocab + ids[j], scores[j]);
        }
      }
      return c;
    }

    /**
     * The best {@code k} of {@code rows[rowOf[b]][t] + beamScores[b]} (float32 sums, as torch adds),
     * best first; equal scores keep flat-index order.
     */
    static Candidates top(float[][] rows, int[] rowOf, float[] beamScores, int k) {
      int vocab = rows[0].length;
      Candidates c = new Candidates(k, vocab);
      for (int b = 0; b < rowOf.length; b++) {
        float[] row = rows[rowOf[b]];
        float base = beamScores[b];
        for (int t = 0; t < vocab; t++) {
          float s = row[t] + base;
          if (Float.isNaN(s)) {
            throw new IllegalStateException("a logits processor produced NaN for token " + t);
          }
          c.offer(b * vocab + t, s);
        }
      }
      return c;
    }

    /** Keeps {@code (index, score)} if it is among the best {@code k}: higher score first, then lower index. */
    private void offer(int index, float score) {
      int k = flat.length;
      if (count == k && !before(index, score, k - 1)) {
        return;
      }
      int p = Math.min(count, k - 1);
      while (p > 0 && before(index, score, p - 1)) {
        flat[p] = flat[p - 1];
        scores[p] = scores[p - 1];
        p--;
      }
      flat[p] = index;
      scores[p] = score;
      count = Math.min(count + 1, k);
    }

    private boolean before(int index, float score, int rank) {
      return score > scores[rank] || (score == scores[rank] && index < flat[rank]);
    }
  }
}
