package io.github.optjava.engine;

import io.github.optjava.backend.LogitEdits;
import io.github.optjava.backend.SamplingRows;
import io.github.optjava.model.CausalLm;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * One planned step through the model, and each sequence's pick of it: where the logits are whenever the model can
 * pick for a sequence, its own rows on the host when it cannot ({@link #run}). The engine's scheduling (who is in
 * the step, with how many tokens) and its commit (what each sequence does with its pick) are {@link Engine}'s.
 */
final class ModelStep {
  private final CausalLm model;
  private final KvCache cache;
  /** The engine's: the other completions of an n > 1 request, by the first one (read here, never changed). */
  private final Map<Sequence, List<Sequence>> forks;
  private LogitEdits.Builder editsBuilder; // the steps' logit edits (edits(StepBatch)), made at the first
  // Whether a step picks where the logits are for the sequences it can while the others bring their rows
  // (CausalLm.pickSome); off (-Dopt.engine.partialPicks=false, a way out): such a step brings every row (tests
  // compare both)
  private volatile boolean partialPicks = !"false".equalsIgnoreCase(System.getProperty("opt.engine.partialPicks"));
  // Whether draft rows are picked where the logits are (session 24, not yet run on a GPU); off
  // (-Dopt.engine.pickedDrafts=false, a way out): as before, a sampled sequence on a model that samples there gets no
  // drafts and a greedy one with processors brings its draft rows to the host
  private volatile boolean pickedDrafts = !"false".equalsIgnoreCase(System.getProperty("opt.engine.pickedDrafts"));
  // Whether the other completions of an n > 1 request take their first tokens where the logits are, from the row of
  // the completion that prefilled their prompt (session 24, not yet run on a GPU); off (-Dopt.engine.pickedForks=false,
  // a way out): that row comes to the host and they draw there, as before
  private volatile boolean pickedForks = !"false".equalsIgnoreCase(System.getProperty("opt.engine.pickedForks"));

  ModelStep(CausalLm model, KvCache cache, Map<Sequence, List<Sequence>> forks) {
    this.model = model;
    this.cache = cache;
    this.forks = forks;
  }

  /** {@link Engine#usePartialPicks}. */
  void usePartialPicks(boolean on) {
    partialPicks = on;
  }

  /** {@link Engine#usePickedForks}. */
  void usePickedForks(boolean on) {
    pickedForks = on;
  }

  /** {@link Engine#usePickedDrafts}. */
  void usePickedDrafts(boolean on) {
    pickedDrafts = on;
  }

  /** Whether draft rows are picked where the logits are (the engine's planning asks: drafts for whom). */
  boolean pickedDrafts() {
    return pickedDrafts;
  }

  /**
   * Runs the model over the step. When every sequence only needs the argmax (greedy, no processors, no log-probs),
   * the model picks the tokens where the logits are: a GPU copies back a token and a log-prob per output row, not
   * the vocabulary (that log-prob is float32 on a GPU, so a choice's score can differ in its last bits from the
   * logits path). Likewise sampling (temperature, top-k, top-p, min-p, typical; log-prob alternatives listed there
   * too) on a model that draws where the logits are; greedy sequences in such a step are the sampler's temperature-0
   * rows (their argmax and log-prob as the greedy path's, bit for bit). A sequence with drafts gets a pick per row
   * there, each row with the edits and uniform number of the plain step it stands for (session 24; before, its rows
   * came to the host, and a sampled one got no drafts). The other completions of an {@code n > 1} request whose
   * first completion's prefill ends in the step take their first tokens as extra picks from its row (session 24;
   * before, that row came to the host). A sequence whose pick needs its rows on the host (typical sampling unless the
   * model draws it too ({@link CausalLm#samplesTypicalOnDevice}), an echo prefill the model does not score) brings
   * only its own rows there ({@link CausalLm#pickSome}) while the model picks for the others; an echo prefill the
   * model scores where the logits are brings its scores (and alternatives) and its last row only, in the same step.
   */
  StepOutput run(StepBatch b) {
    int n = b.size();
    java.util.function.IntPredicate forksNow = j -> b.gives()[j] && forks.containsKey(b.seqs().get(j));
    boolean argmaxOnly = java.util.stream.IntStream.range(0, n).allMatch(j -> !forksNow.test(j)
        && (b.seqs().get(j).argmaxIsEnough()
            || (b.seqs().get(j).greedyWhereLogitsAre() && (pickedDrafts || b.drafted()[j] == 0))));
    if (argmaxOnly) {
      double[] logprobs = new double[b.rows()];
      LogitEdits edits = edits(b);
      int top = alternatives(b);
      if (top > 0) {
        int[] topIds = new int[b.rows() * top];
        double[] topLogprobs = new double[b.rows() * top];
        int[] tokens = model.greedyRows(b.steps(), cache, logprobs, edits, top, topIds, topLogprobs);
        return new StepOutput(true, tokens, logprobs, null, null, top, topIds, topLogprobs, null, List.of());
      }
      int[] tokens = !edits.isEmpty() || b.rows() > n ? model.greedyRows(b.steps(), cache, logprobs, edits)
          : model.greedy(b.steps(), cache, logprobs);
      return new StepOutput(true, tokens, logprobs, null, null);
    }
    // Sampling where the logits are; a greedy sequence in such a step is a temperature-0 row of the sampler (its
    // argmax, as the greedy path's), so that a step mixing both does not bring the rows to the host. A sequence with
    // drafts gets a pick per row, each row drawn with the uniform number and edits of the plain step it stands for;
    // the other completions of a first one whose prefill ends here get extra picks from its row. A sequence the model
    // cannot pick for (typical sampling where the model does not draw it, an echo prefill) brings its own rows only.
    boolean[] toHost = new boolean[n];
    int hostCount = 0;
    boolean anyDraftsPicked = false;
    for (int j = 0; j < n; j++) {
      Sequence s = b.seqs().get(j);
      // (an earlier chunk of a prefill gives no token: its pick, dropped, costs less than its row; it is never
      // allLogits, which only an echo prefill, never chunked, and a draft step are)
      toHost[j] = b.gives()[j] && ((forksNow.test(j) && !pickedForks)
          || !(s.samplableWhereLogitsAre() || s.greedyWhereLogitsAre()) || (!pickedDrafts && b.drafted()[j] > 0));
      hostCount += toHost[j] ? 1 : 0;
      anyDraftsPicked |= !toHost[j] && b.drafted()[j] > 0;
    }
    int[][] scoreTokens = null;
    int scoreTop = 0;
    if (hostCount > 0) {
      // An echo prefill wants one log-prob per prompt row (and its alternatives), not the rows: let the model score
      // them where the logits are (a GPU then copies back 8 bytes a row, 8 per alternative, and the last row).
      for (int j = 0; j < n; j++) {
        Sequence s = b.seqs().get(j);
        if (b.gives()[j] && s.scoresPromptWhereLogitsAre(model.samplesOnDevice())) {
          scoreTokens = scoreTokens == null ? new int[n][] : scoreTokens;
          scoreTokens[j] = s.promptScoreTokens();
          scoreTop = Math.max(scoreTop, s.alternatives());
        }
      }
    }
    if (!model.samplesOnDevice() || hostCount == n || (hostCount > 0 && !partialPicks)) {
      if (scoreTokens != null) {
        CausalLm.Scored scored = model.forwardScored(b.steps(), cache, scoreTokens, scoreTop);
        return new StepOutput(false, null, null, scored.logits(),
            promptScores(scored.scores(), scored.topIds(), scored.topLogprobs(), scoreTop));
      }
      return new StepOutput(false, null, null, model.forward(b.steps(), cache), null);
    }
    // The other completions of a first one picked here: extra picks after the step's rows, from the first's row
    List<Sequence> forkPicks = new ArrayList<>();
    List<Integer> forkFrom = new ArrayList<>();
    for (int j = 0; j < n; j++) {
      if (forksNow.test(j) && !toHost[j]) {
        for (Sequence sibling : forks.get(b.seqs().get(j))) {
          forkPicks.add(sibling);
          forkFrom.add(b.firstRow()[j]);
        }
      }
    }
    int rows = b.rows() + forkPicks.size();
    SamplingRows spec = SamplingRows.greedy(rows); // by output row (one per sequence unless drafts or an echo)
    for (int e = 0; e < forkPicks.size(); e++) {
      Sequence sibling = forkPicks.get(e);
      if (!sibling.greedyWhereLogitsAre()) { // (a greedy one: the default greedy row)
        sibling.fillForkRow(spec, b.rows() + e); // its number peeked: taken only if it forks
      }
    }
    boolean[] greedy = new boolean[n];
    for (int j = 0; j < n; j++) {
      Sequence s = b.seqs().get(j);
      if (toHost[j]) {
        continue; // picked on the host, from its own stream
      }
      if (s.greedyWhereLogitsAre()) { // temperature 0: the sampler's greedy rows; no uniform number drawn
        greedy[j] = true;
        continue;
      }
      if (b.drafted()[j] > 0) {
        s.fillDraftRows(spec, b.firstRow()[j], b.drafted()[j]); // the stream advances at commit, by the rows taken
      } else if (b.gives()[j]) {
        s.fillSamplingRow(spec, b.firstRow()[j], s.nextUniform());
      } else {
        spec.setPadding(b.firstRow()[j]); // an earlier chunk: its draw is dropped, takes nothing from its stream
      }
    }
    java.util.function.IntPredicate picked = j -> !toHost[j];
    int top = alternatives(b, picked); // (the other completions ask what the first asks)
    int[] tokens;
    double[] logprobs;
    int[] topIds;
    double[] topLogprobs;
    float[][] logits = null;
    Sequence.PromptScores[] scores = null;
    if (hostCount == 0 && !anyDraftsPicked && forkPicks.isEmpty()) { // one row per sequence, numbered alike
      logprobs = new double[rows];
      topIds = top > 0 ? new int[rows * top] : null;
      topLogprobs = top > 0 ? new double[rows * top] : null;
      tokens = model.sample(b.steps(), cache, spec, logprobs, edits(b, picked, forkPicks), top, topIds, topLogprobs);
    } else {
      int[] extraRows = forkFrom.stream().mapToInt(Integer::intValue).toArray();
      CausalLm.Picks picks = model.pickSome(b.steps(), cache, new CausalLm.Picking(toHost, scoreTokens, scoreTop,
          extraRows, spec, edits(b, picked, forkPicks), top));
      tokens = picks.tokens();
      logprobs = picks.logprobs();
      topIds = picks.topIds();
      topLogprobs = picks.topLogprobs();
      logits = picks.logits();
      scores = promptScores(picks.scores(), picks.scoreTopIds(), picks.scoreTopLogprobs(), scoreTop);
    }
    // A row the sampler could not draw from (a NaN logit, or every token banned by the request's processors) fails
    // its own request at commit (Sequence.acceptSampled), as a row picked on the host does: only rows a sequence
    // takes are checked, so a NaN in a row plain decoding never computes (after a rejected draft, or after a draft
    // that ends the sequence) fails nothing.
    return new StepOutput(false, tokens, logprobs, logits, scores, top, topIds, topLogprobs, greedy, forkPicks);
  }

  /** The model's prompt scores of a step as each sequence takes them (null without scoring, entries for the others). */
  private static Sequence.PromptScores[] promptScores(double[][] scores, int[][] topIds, double[][] topLogprobs,
      int top) {
    if (scores == null) {
      return null;
    }
    Sequence.PromptScores[] out = new Sequence.PromptScores[scores.length];
    for (int j = 0; j < scores.length; j++) {
      if (scores[j] != null) {
        out[j] = new Sequence.PromptScores(scores[j], topIds == null ? null : topIds[j],
            topLogprobs == null ? null : topLogprobs[j], topIds == null ? 0 : top);
      }
    }
    return out;
  }

  /** The most log-prob alternatives a sequence of the step that gives a token lists (0: none). */
  private static int alternatives(StepBatch b) {
    return alternatives(b, j -> true);
  }

  /** As {@link #alternatives(StepBatch)}, over the sequences {@code which} selects. */
  private static int alternatives(StepBatch b, java.util.function.IntPredicate which) {
    int top = 0;
    for (int j = 0; j < b.size(); j++) {
      top = Math.max(top, b.gives()[j] && which.test(j) ? b.seqs().get(j).alternatives() : 0);
    }
    return top;
  }

  /**
   * The step's logit edits: each sequence that gives a token and whose processors change its rows names them on its
   * output rows ({@link Sequence#edits}: a row per draft checked, each with the history it stands for); none when no
   * sequence has such processors.
   */
  private LogitEdits edits(StepBatch b) {
    return edits(b, j -> true, List.of());
  }

  /** As {@link #edits(StepBatch)}, of the sequences {@code which} selects (those the model picks for). */
  private LogitEdits edits(StepBatch b, java.util.function.IntPredicate which, List<Sequence> forkPicks) {
    LogitEdits.Builder out = null;
    if (editsBuilder != null) {
      editsBuilder.clear(); // a step whose edits failed half-way must not leave them to the next
    }
    for (int j = 0; j < b.size(); j++) {
      Sequence s = b.seqs().get(j);
      if (b.gives()[j] && which.test(j) && s.hasEdits()) {
        if (editsBuilder == null) {
          editsBuilder = new LogitEdits.Builder(model.config().vocabSize());
        }
        out = editsBuilder;
        s.edits(out, b.firstRow()[j], b.drafted()[j]);
      }
    }
    for (int e = 0; e < forkPicks.size(); e++) { // the other completions' picks after the step's rows
      Sequence s = forkPicks.get(e);
      if (s.hasEdits()) {
        if (editsBuilder == null) {
          editsBuilder = new LogitEdits.Builder(model.config().vocabSize());
        }
        out = editsBuilder;
        s.edits(out, b.rows() + e, 0);
      }
    }
    return out == null ? LogitEdits.NONE : out.build();
  }
}
