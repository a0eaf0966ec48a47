package io.github.optjava.model;

import io.github.optjava.backend.LogitEdits;
import io.github.optjava.backend.RowMath;
import io.github.optjava.backend.SamplingRows;
import io.github.optjava.engine.KvCache;
import java.util.List;

/**
 * What the engine needs from a causal language model: {@link OptModel} on one device, or
 * {@link ParallelOptModel}, one {@link OptModel} per tensor-parallel rank behind the same surface.
 * Used from one thread at a time (the engine's step loop), like the {@link KvCache} it fills.
 */
public interface CausalLm extends AutoCloseable {

  OptConfig config();

  /**
   * Whether the model can no longer run: a multi-process job whose peer failed (every later step fails until all
   * processes restart). A single process's model never breaks: a failed step fails only its requests.
   */
  default boolean broken() {
    return false;
  }

  /** See {@link OptModel#forward}: appends every sequence's new tokens to the cache and returns logits. */
  float[][] forward(List<OptModel.SeqStep> seqs, KvCache cache);

  /**
   * Each sequence's greedy next token after its new tokens (no {@code allLogits}): the first index of the
   * maximum logit, as {@code torch.argmax}. A backend may compute it without copying the logits out.
   */
  default int[] greedy(List<OptModel.SeqStep> seqs, KvCache cache) {
    return greedy(seqs, cache, null);
  }

  /**
   * As {@link #greedy(List, KvCache)}; {@code logprobs}, when not null, receives each picked token's
   * {@code log_softmax} (the greedy sequence's score without copying its logits out).
   */
  default int[] greedy(List<OptModel.SeqStep> seqs, KvCache cache, double[] logprobs) {
    return greedyRows(seqs, cache, logprobs); // one row per sequence without allLogits
  }

  /**
   * The greedy token after every output row of the step: one per sequence, and for a sequence with
   * {@code allLogits} one per new token, row-major in the order of {@code seqs}; {@code logprobs} (when not null,
   * as long as the result) receives each one's {@code log_softmax}. What checking draft tokens needs
   * (speculative decoding); a backend may compute it without copying the logits out.
   */
  default int[] greedyRows(List<OptModel.SeqStep> seqs, KvCache cache, double[] logprobs) {
    float[][] logits = forward(seqs, cache);
    int vocab = config().vocabSize();
    int rows = 0;
    for (float[] v : logits) {
      rows += v.length / vocab;
    }
    int[] out = new int[rows];
    int k = 0;
    for (float[] v : logits) {
      for (int from = 0; from < v.length; from += vocab, k++) {
        out[k] = RowMath.argmax(v, from, from + vocab);
        if (logprobs != null) {
          logprobs[k] = v[from + out[k]] - RowMath.logSumExp(v, from, from + vocab);
        }
      }
    }
    return out;
  }

  /**
   * As {@link #greedyRows(List, KvCache, double[])} after {@code edits} changed the step's output rows (the sequences'
   * logits processors, {@link LogitEdits}, row-major over those rows): the tokens and log-probs of the processed
   * rows. A backend may edit where the logits are; the default edits the rows on the host.
   */
  default int[] greedyRows(List<OptModel.SeqStep> seqs, KvCache cache, double[] logprobs, LogitEdits edits) {
    if (edits.isEmpty()) {
      return greedyRows(seqs, cache, logprobs);
    }
    return greedyRows(seqs, cache, logprobs, edits, 0, null, null);
  }

  /**
   * As {@link #greedyRows(List, KvCache, double[], LogitEdits)}, and each output row's {@code k} most likely tokens
   * after the edits with their log-probs into {@code topIds[r * k ..]} / {@code topLogprobs[r * k ..]} (-1 and NaN
   * after the last listed; {@link RowMath#topK}'s order): a greedy request's log-prob alternatives. A backend may
   * compute them where the logits are; the default reads the rows.
   */
  default int[] greedyRows(List<OptModel.SeqStep> seqs, KvCache cache, double[] logprobs, LogitEdits edits, int k,
      int[] topIds, double[] topLogprobs) {
    if (k == 0 && edits.isEmpty()) {
      return greedyRows(seqs, cache, logprobs);
    }
    int vocab = config().vocabSize();
    float[] v = concat(forward(seqs, cache), false, vocab);
    edits.applyTo(v);
    return RowMath.pickRows(v, v.length / vocab, vocab, logprobs, k, topIds, topLogprobs);
  }

  /** The rows of {@link #forward}'s result in order, one array ({@code lastOnly}: each sequence's last row). */
  private static float[] concat(float[][] logits, boolean lastOnly, int vocab) {
    int total = 0;
    for (float[] v : logits) {
      total += lastOnly ? vocab : v.length;
    }
    float[] flat = new float[total];
    int at = 0;
    for (float[] v : logits) {
      int n = lastOnly ? vocab : v.length;
      System.arraycopy(v, v.length - n, flat, at, n);
      at += n;
    }
    return flat;
  }

  /**
   * What {@link #forwardScored} returns: per sequence its logits as {@link #forward} gives them, except that a
   * scored sequence gets only its last row; per scored sequence {@code scores[s][i]} =
   * {@code log_softmax(row i)[scoreTokens[s][i]]} (null for the others); and, when alternatives were asked for
   * ({@code top > 0}), each scored row's {@code top} most likely tokens and their log-probs in {@code topIds[s][i * top
   * ..]} / {@code topLogprobs[s][i * top ..]} ({@link io.github.optjava.backend.Ops#tokenLogprobs(
   * io.github.optjava.backend.Mat, int[], int, int[], double[])}' order, -1 and NaN after the last listed; null
   * without alternatives or for the others).
   */
  record Scored(float[][] logits, double[][] scores, int[][] topIds, double[][] topLogprobs) {
    /** Without alternatives. */
    public Scored(float[][] logits, double[][] scores) {
      this(logits, scores, null, null);
    }
  }

  /** As {@link #forwardScored(List, KvCache, int[][], int)} without alternatives. */
  default Scored forwardScored(List<OptModel.SeqStep> seqs, KvCache cache, int[][] scoreTokens) {
    return forwardScored(seqs, cache, scoreTokens, 0);
  }

  /**
   * As {@link #forward}, for steps where some sequences ({@code scoreTokens[s]} not null, with {@code allLogits})
   * want the log-prob of a given token at each of their rows (an echoed prompt's scores, row i scoring token i + 1)
   * and, for {@code top > 0}, each such row's {@code top} most likely tokens with their log-probs (the prompt's
   * log-prob alternatives). A backend may compute them where the logits are and copy back only those sequences' last
   * rows. The default computes them on the host from {@link #forward}'s rows.
   */
  default Scored forwardScored(List<OptModel.SeqStep> seqs, KvCache cache, int[][] scoreTokens, int top) {
    float[][] logits = forward(seqs, cache);
    int vocab = config().vocabSize();
    double[][] scores = new double[logits.length][];
    int[][] topIds = top > 0 ? new int[logits.length][] : null;
    double[][] topLogprobs = top > 0 ? new double[logits.length][] : null;
    for (int s = 0; s < logits.length; s++) {
      int[] tokens = scoreTokens[s];
      if (tokens == null) {
        continue;
      }
      float[] v = logits[s];
      scores[s] = RowMath.tokenLogprobs(v, vocab, tokens);
      if (top > 0) {
        topIds[s] = new int[tokens.length * top];
        topLogprobs[s] = new double[tokens.length * top];
        for (int r = 0; r < tokens.length; r++) {
          RowMath.pickRow(v, r * vocab, vocab, null, 0, top, topIds[s], topLogprobs[s], r * top);
        }
      }
      logits[s] = java.util.Arrays.copyOfRange(v, v.length - vocab, v.length);
    }
    return new Scored(logits, scores, topIds, topLogprobs);
  }

  /**
   * Each sequence's next token drawn by {@link io.github.optjava.backend.RowSampling}'s rules from its logits
   * after its new tokens; {@code logprobs} (when not null) receives each token's log-probability under the
   * filtered distribution. A backend that {@link #samplesOnDevice} draws without copying the logits out.
   */
  default int[] sample(List<OptModel.SeqStep> seqs, KvCache cache, SamplingRows spec, double[] logprobs) {
    float[][] logits = forward(seqs, cache);
    int[] out = new int[logits.length];
    for (int s = 0; s < logits.length; s++) {
      float[] v = logits[s];
      out[s] = io.github.optjava.backend.RowSampling.sample(v, v.length - config().vocabSize(), config().vocabSize(),
          spec, s, logprobs, s, 0, null, null, 0);
    }
    return out;
  }

  /**
   * As {@link #sample(List, KvCache, SamplingRows, double[])} after {@code edits} changed each sequence's row (row s
   * of the edits is sequence s), before the temperature; the default edits the rows on the host.
   */
  default int[] sample(List<OptModel.SeqStep> seqs, KvCache cache, SamplingRows spec, double[] logprobs,
      LogitEdits edits) {
    return sample(seqs, cache, spec, logprobs, edits, 0, null, null);
  }

  /**
   * A beam search step: {@link #forward} for sequences without {@code allLogits} (one output row each), then the
   * candidates of {@link io.github.optjava.backend.Ops#beamTopK}: for each {@code j} the {@code k} best of float32
   * {@code log_softmax(row rows[j]) + base[j]} into {@code ids[j * k ..]} / {@code scores[j * k ..]}
   * ({@link RowMath#beamTopK}'s order and rules). A backend may compute them where the logits are; the default reads
   * the rows (as the parallel models do). A wrapper of a model must pass this on, or beam search reads every row.
   */
  default void beamTopK(List<OptModel.SeqStep> seqs, KvCache cache, int[] rows, float[] base, int k, int[] ids,
      float[] scores) {
    for (OptModel.SeqStep q : seqs) {
      if (q.allLogits()) {
        throw new IllegalArgumentException("beamTopK(): sequence " + q.seqId() + " asks for the logits of all its "
            + "tokens");
      }
    }
    RowMath.requireBeamLists(rows, base, k, ids, scores, seqs.size());
    int vocab = config().vocabSize();
    RowMath.beamTopK(concat(forward(seqs, cache), true, vocab), vocab, rows, base, k, ids, scores);
  }

  /**
   * As {@link #beamTopK(List, KvCache, int[], float[], int, int[], float[])} with the beams' processors as
   * {@code edits} on each output row's log-probabilities ({@link io.github.optjava.backend.Ops#beamTopK(
   * io.github.optjava.backend.Mat, int[], float[], int, int[], float[], LogitEdits)}). The default reads the rows.
   */
  default void beamTopK(List<OptModel.SeqStep> seqs, KvCache cache, int[] rows, float[] base, int k, int[] ids,
      float[] scores, LogitEdits edits) {
    if (edits.isEmpty()) {
      beamTopK(seqs, cache, rows, base, k, ids, scores);
      return;
    }
    RowMath.requireBeamLists(rows, base, k, ids, scores, seqs.size());
    int vocab = config().vocabSize();
    float[] v = concat(forward(seqs, cache), true, vocab);
    RowMath.logSoftmaxRows(v, seqs.size(), vocab);
    edits.applyTo(v);
    RowMath.beamTopKOfLogProbs(v, vocab, rows, base, k, ids, scores);
  }

  /**
   * As {@link #sample(List, KvCache, SamplingRows, double[], LogitEdits)}, and each sequence's {@code k} most likely
   * tokens of its filtered distribution with their log-probs ({@link io.github.optjava.backend.RowSampling}'s
   * listing) into {@code topIds[s * k ..]} / {@code topLogprobs[s * k ..]}, -1 and NaN after the last: a sampled
   * request's log-prob alternatives. A backend may list them where the logits are; the default reads the rows.
   */
  default int[] sample(List<OptModel.SeqStep> seqs, KvCache cache, SamplingRows spec, double[] logprobs,
      LogitEdits edits, int k, int[] topIds, double[] topLogprobs) {
    if (k == 0 && edits.isEmpty()) {
      return sample(seqs, cache, spec, logprobs);
    }
    int vocab = config().vocabSize();
    float[] v = concat(forward(seqs, cache), true, vocab);
    edits.applyTo(v);
    int[] out = new int[seqs.size()];
    for (int s = 0; s < out.length; s++) {
      out[s] = io.github.optjava.backend.RowSampling.sample(v, s * vocab, vocab, spec, s, logprobs, s, k, topIds,
          topLogprobs, s * k);
    }
    return out;
  }

  /**
   * What a {@link #pickSome} step asks, everything by output row as in {@link #greedyRows} (sequence s's rows follow
   * those of the sequences before it), then the extra picks.
   *
   * @param toHost      sequences whose rows come to the host instead of a pick (a request that needs its rows there:
   *                    typical sampling where {@link #samplesTypicalOnDevice} is false, an echo prefill the model
   *                    does not score); a picked sequence with {@code allLogits} (draft tokens to check) gets a pick
   *                    per row
   * @param scoreTokens null, or per host sequence with {@code allLogits} (an echo prefill) the tokens its rows score,
   *                    as {@link #forwardScored(List, KvCache, int[][], int)} scores them: its scores (and
   *                    {@code scoreTop} alternatives per row) come back instead of its rows, and its last row only
   * @param scoreTop    log-prob alternatives per scored row (0: none)
   * @param extraRows   null, or the output row each extra pick reads (a picked sequence's): pick {@code rows + e}
   *                    reads row {@code extraRows[e]} with its own spec entry, edits and alternatives (the other
   *                    completions of an {@code n > 1} request take their first tokens so)
   * @param spec        an entry per output row, then per extra pick (those of host rows are ignored)
   * @param edits       the edits of the picked rows and extra picks, by their numbers
   * @param k           log-prob alternatives listed per pick (0: none)
   */
  record Picking(boolean[] toHost, int[][] scoreTokens, int scoreTop, int[] extraRows, SamplingRows spec,
      LogitEdits edits, int k) {
    /** No scoring, no extra picks. */
    public Picking(boolean[] toHost, SamplingRows spec, LogitEdits edits, int k) {
      this(toHost, null, 0, null, spec, edits, k);
    }

    /** How many extra picks follow the step's rows. */
    public int extra() {
      return extraRows == null ? 0 : extraRows.length;
    }
  }

  /**
   * What {@link #pickSome} returns. Per output row, then per extra pick: its token (the model's pick; -1 for a row
   * that came to the host or was scored), its log-prob and, at {@code row * k} in {@code topIds} /
   * {@code topLogprobs}, its alternatives (null for k = 0). Per sequence: its rows of logits as {@link #forward} gives
   * them (null for a picked one; a scored sequence's last row only), and a scored sequence's scores and their
   * alternatives as {@link Scored} holds them (null without scoring or alternatives, or for the others).
   */
  record Picks(int[] tokens, double[] logprobs, int[] topIds, double[] topLogprobs, float[][] logits,
      double[][] scores, int[][] scoreTopIds, double[][] scoreTopLogprobs) {}

  /**
   * A step in which the model picks some sequences' tokens where the logits are, as {@link #sample} with {@code k}
   * alternatives does (temperature 0: greedy, as {@link #greedyRows}), and brings the rows of the others to the host
   * ({@link Picking}): a request that needs its rows on the host then costs a step its own rows, not every
   * sequence's, and an echo prefill its scores. The default runs {@link #forward} and picks on the host.
   */
  default Picks pickSome(List<OptModel.SeqStep> seqs, KvCache cache, Picking p) {
    requirePickable(seqs, p);
    int vocab = config().vocabSize();
    int k = p.k();
    float[][] logits = forward(seqs, cache);
    float[] flat = concat(logits, false, vocab); // the edits' row numbering; the host rows stay unedited
    int stepRows = flat.length / vocab;
    int total = stepRows + p.extra();
    if (p.extra() > 0) { // copies of the rows the extra picks read, after every row
      float[] grown = java.util.Arrays.copyOf(flat, total * vocab);
      for (int e = 0; e < p.extra(); e++) {
        System.arraycopy(flat, p.extraRows()[e] * vocab, grown, (stepRows + e) * vocab, vocab);
      }
      flat = grown;
    }
    p.edits().applyTo(flat);
    int[] tokens = new int[total];
    java.util.Arrays.fill(tokens, -1);
    double[] logprobs = new double[total];
    int[] topIds = k > 0 ? new int[total * k] : null;
    double[] topLogprobs = k > 0 ? new double[total * k] : null;
    for (int r = stepRows; r < total; r++) {
      tokens[r] = io.github.optjava.backend.RowSampling.sample(flat, r * vocab, vocab, p.spec(), r, logprobs, r, k,
          topIds, topLogprobs, r * k);
    }
    int[][] scoreTokens = p.scoreTokens();
    int scoreTop = p.scoreTop();
    double[][] scores = scoreTokens != null ? new double[logits.length][] : null;
    int[][] scoreIds = scoreTokens != null && scoreTop > 0 ? new int[logits.length][] : null;
    double[][] scoreLps = scoreIds != null ? new double[logits.length][] : null;
    int row = 0;
    for (int s = 0; s < logits.length; s++) {
      int rows = logits[s].length / vocab;
      if (!p.toHost()[s]) {
        for (int r = row; r < row + rows; r++) {
          tokens[r] = io.github.optjava.backend.RowSampling.sample(flat, r * vocab, vocab, p.spec(), r, logprobs, r, k,
              topIds, topLogprobs, r * k);
        }
        logits[s] = null;
      } else if (scores != null && scoreTokens[s] != null) { // as forwardScored's default: scores, then the last row
        float[] v = logits[s];
        scores[s] = RowMath.tokenLogprobs(v, vocab, scoreTokens[s]);
        if (scoreIds != null) {
          scoreIds[s] = new int[scoreTokens[s].length * scoreTop];
          scoreLps[s] = new double[scoreTokens[s].length * scoreTop];
          for (int r = 0; r < scoreTokens[s].length; r++) {
            RowMath.pickRow(v, r * vocab, vocab, null, 0, scoreTop, scoreIds[s], scoreLps[s], r * scoreTop);
          }
        }
        logits[s] = java.util.Arrays.copyOfRange(v, v.length - vocab, v.length);
      }
      row += rows;
    }
    return new Picks(tokens, logprobs, topIds, topLogprobs, logits, scores, scoreIds, scoreLps);
  }

  /**
   * {@link #pickSome}'s arguments: a scored sequence is brought to the host and has all its logits (checked before
   * the step appends to the cache).
   */
  static void requirePickable(List<OptModel.SeqStep> seqs, Picking p) {
    int[][] scoreTokens = p.scoreTokens();
    for (int s = 0; s < seqs.size(); s++) {
      if (scoreTokens != null && scoreTokens[s] != null && (!p.toHost()[s] || !seqs.get(s).allLogits())) {
        throw new IllegalArgumentException("pickSome(): sequence " + seqs.get(s).seqId() + " is scored: it needs "
            + "allLogits and its rows on the host");
      }
    }
  }

  /**
   * Whether {@link #sample} and {@link #pickSome} draw rows with typical sampling where the logits are, by
   * {@link io.github.optjava.backend.RowSampling}'s rules (else the engine brings such a sequence's rows to the host,
   * where HF's exact processors run). False by default.
   */
  default boolean samplesTypicalOnDevice() {
    return false;
  }

  /** Whether {@link #sample} draws where the logits are (the engine then prefers it for plain sampling). */
  default boolean samplesOnDevice() {
    return false;
  }

  /** Copies KV blocks {@code src[i]} to {@code dst[i]} in every layer (beam forks), on every rank. */
  void copyBlocks(KvCache cache, int[] src, int[] dst);

  /** A KV cache of {@code blocks} blocks of {@code blockSize} tokens that {@link #forward} accepts. */
  KvCache newCache(int blocks, int blockSize);

  @Override
  void close();
}
