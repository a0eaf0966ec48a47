package io.github.optjava.engine;

import io.github.optjava.api.Choice;
import io.github.optjava.api.FinishReason;
import io.github.optjava.api.TokenLogprob;
import io.github.optjava.model.OptModel;
import io.github.optjava.tokenizer.IncrementalDecoder;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * One completion being generated (greedy or sampled): its tokens, text, log-probs and stop state.
 * Owned by the engine thread.
 */
final class Sequence {
  final Request request;
  final int choice;
  final long id;
  private final OptTokenizer tokenizer;
  private final int eos;
  private final LogitsPipeline pipeline;
  private final Sampler sampler;
  private final StopMatcher stops;
  private final IncrementalDecoder decoder;
  private final TokenLogprobs scorer;
  private final boolean wantLogprobs;
  private final boolean typicalThere; // the model draws typical sampling's rows where the logits are

  private int[] inputIds;   // HF's input_ids: BOS + prompt + generated so far
  private int length;
  private boolean prefilled;
  private boolean recompute; // preempted: the next step prefills everything it had (prompt + generated)
  private int chunked;       // tokens of the prefill in progress already in the KV cache (earlier chunks of it)
  private int[] drafts = NO_DRAFTS; // proposed next tokens the next decode step checks (prompt lookup)
  private int cachedPrefix;  // tokens of the prefill in progress taken from cached blocks, not yet counted
  private static final int[] NO_DRAFTS = new int[0];
  private final StringBuilder text = new StringBuilder();
  private int emitted;      // chars of text already streamed
  private final List<Integer> generated = new ArrayList<>();
  private final List<TokenLogprob> logprobs = new ArrayList<>();
  private double sumLogprob;
  private FinishReason finish;

  Sequence(Request request, int choice, long id, OptTokenizer tokenizer, int eos) {
    this(request, choice, id, tokenizer, eos, false);
  }

  /**
   * @param typicalThere whether the model draws typical sampling's rows where the logits are
   *                     ({@link io.github.optjava.model.CausalLm#samplesTypicalOnDevice}); else such a sequence brings
   *                     its rows to the host, where the HF-exact processors run
   */
  Sequence(Request request, int choice, long id, OptTokenizer tokenizer, int eos, boolean typicalThere) {
    this.typicalThere = typicalThere;
    this.request = request;
    this.choice = choice;
    this.id = id;
    this.tokenizer = tokenizer;
    this.eos = eos;
    this.pipeline = LogitsPipeline.forParams(request.params, eos);
    this.sampler = Sampler.forParams(request.params, choice);
    this.stops = new StopMatcher(request.params.stop());
    this.decoder = tokenizer.incrementalDecoder(true);
    this.scorer = new TokenLogprobs(tokenizer, request.params.logprobs().orElse(0));
    this.wantLogprobs = request.params.logprobs().isPresent() || request.params.echo();
    int[] prompt = request.promptIds;
    this.inputIds = Arrays.copyOf(prompt, prompt.length + request.params.maxTokens());
    this.length = prompt.length;
  }

  /**
   * This sequence's share of the next forward pass: the prompt first, then its last token; after a preemption,
   * every token it had (the logits of the last one give its next token, as a decode step's would). A prefill
   * longer than {@code maxTokens} is fed in chunks of at most that many tokens over several steps (chunked
   * prefill: the other sequences' decode steps need not wait for a long prompt), except an echo prompt, whose
   * every row is scored in one step.
   */
  OptModel.SeqStep nextStep(int maxTokens) {
    if (prefilling()) {
      int rest = prefillLength() - chunked;
      int n = chunkable() ? Math.min(rest, maxTokens) : rest;
      return new OptModel.SeqStep(id, Arrays.copyOfRange(inputIds, chunked, chunked + n),
          !prefilled && request.params.echo());
    }
    int d = Math.min(drafts.length, Math.max(0, maxTokens - 1));
    int[] tokens = new int[1 + d];
    tokens[0] = inputIds[length - 1];
    System.arraycopy(drafts, 0, tokens, 1, d);
    return new OptModel.SeqStep(id, tokens, d > 0); // with drafts, every row's logits: one per draft checked
  }

  /**
   * Proposes up to {@code maxDrafts} tokens to follow its last one ({@link PromptLookup}), for the next decode step
   * to check, never more than its max_tokens leave room for; returns how many. Replaces earlier drafts.
   */
  int proposeDrafts(int maxDrafts) {
    int room = request.params.maxTokens() - generated.size() - 1; // the step gives one token more than it checks
    drafts = prefilling() ? NO_DRAFTS : PromptLookup.propose(inputIds, length, Math.min(maxDrafts, room));
    return drafts.length;
  }

  /** Forgets the drafts: the next decode step feeds only its last token. */
  void dropDrafts() {
    drafts = NO_DRAFTS;
  }

  /** Tokens it holds: BOS + prompt + generated (including an EOS it ended on). */
  int length() {
    return length;
  }

  /**
   * As {@link #acceptDrafts} when the model picked every row of the step where the logits are: the argmax
   * ({@link #greedyWhereLogitsAre}) or, {@code drawn}, a draw ({@link #samplableWhereLogitsAre}) of each row with the
   * uniform number {@link #fillDraftRows} gave it and the edits {@link #edits} named. Takes rows {@code from ..} of
   * {@code tokens} and {@code logprobs} (and their {@code top} alternatives at {@code row * top} in {@code topIds} /
   * {@code topLogprobs}, null when none were listed) while each equals the draft the next row was computed with, and
   * takes from its random stream one number per row taken, as that many plain steps would. Returns the drafts
   * accepted.
   */
  int acceptPickedDrafts(int[] tokens, double[] logprobs, int[] topIds, double[] topLogprobs, int top, int from,
      boolean drawn) {
    int[] checked = drafts;
    drafts = NO_DRAFTS;
    for (int r = 0; ; r++) {
      int row = from + r;
      if (drawn) {
        nextUniform(); // the number the row was drawn with (peeked for the step): taken now the row is
        acceptSampled(tokens[row], logprobs[row], topIds, topLogprobs, row * top);
      } else {
        acceptGreedy(tokens[row], logprobs[row], topIds, topLogprobs, row * top);
      }
      if (finished() || r == checked.length || inputIds[length - 1] != checked[r]) {
        return r;
      }
    }
  }

  /**
   * Row {@code r} of {@code rows}: this completion's first pick, from the row of the completion that prefilled its
   * prompt, drawn with the next number of its stream (peeked: {@link #acceptForkPick} takes it once it forked; a
   * completion that could not fork draws it at its own prefill, as it would have).
   */
  void fillForkRow(io.github.optjava.backend.SamplingRows rows, int r) {
    fillSamplingRow(rows, r, sampler.peekUniform(0));
  }

  /**
   * Its first token as the model picked it ({@link #fillForkRow}; {@code drawn}: a draw, else the argmax), after it
   * forked the first completion's KV cache: with its log-prob and, at {@code from}, its alternatives.
   */
  void acceptForkPick(int token, double logprob, int[] topIds, double[] topLogprobs, int from, boolean drawn) {
    if (drawn) {
      nextUniform(); // the number peeked for the pick
      acceptSampled(token, logprob, topIds, topLogprobs, from);
    } else {
      acceptGreedy(token, logprob, topIds, topLogprobs, from);
    }
  }

  /**
   * Rows {@code firstRow .. firstRow + drafts} of {@code rows}: the rows of a step that checks {@code drafts} of its
   * drafts, row r drawn with the number its stream gives r draws from now (peeked: {@link #acceptPickedDrafts} takes
   * the numbers of the rows it accepts).
   */
  void fillDraftRows(io.github.optjava.backend.SamplingRows rows, int firstRow, int drafts) {
    for (int r = 0; r <= drafts; r++) {
      fillSamplingRow(rows, firstRow + r, sampler.peekUniform(r));
    }
  }

  /**
   * After a decode step that fed its last token and drafts d1..dk ({@link #nextStep}, every row's logits in
   * {@code rows}): picks a token from each row in order, exactly as k + 1 plain decode steps would (the same
   * processors, draws of its random stream, log-probs, stop checks and streaming), as long as each pick equals the
   * draft the next row was computed with. The first pick that differs, or that ends the sequence, is the step's
   * last. Returns how many drafts were accepted; the KV cache then holds rows for the rejected ones, which the
   * caller truncates (to {@link #length()} - 1).
   */
  int acceptDrafts(float[] rows, int vocab, boolean deviceRules) {
    int[] checked = drafts;
    drafts = NO_DRAFTS;
    for (int r = 0; ; r++) {
      commit(choose(Arrays.copyOfRange(rows, r * vocab, (r + 1) * vocab), vocab, deviceRules));
      if (finished() || r == checked.length || inputIds[length - 1] != checked[r]) {
        return r;
      }
    }
  }

  /**
   * Its prefill starts {@code tokens} in: the KV cache already holds them (cached blocks of another sequence with
   * the same leading tokens). Only before the prefill's first step, and leaving at least one token to feed.
   */
  void skipCachedPrefix(int tokens) {
    if (tokens == 0) {
      return;
    }
    if (!prefilling() || !chunkable() || chunked != 0 || tokens >= prefillLength()) {
      throw new IllegalStateException("sequence " + id + " cannot skip " + tokens + " tokens of a prefill of "
          + prefillLength() + " (" + chunked + " done)");
    }
    chunked = tokens;
    cachedPrefix = tokens;
  }

  /** The tokens its prefill took from cached blocks, once (at its first step): for the engine's count. */
  int takeCachedPrefix() {
    int t = cachedPrefix;
    cachedPrefix = 0;
    return t;
  }

  /**
   * The tokens it has fed or will feed, first to last: BOS + prompt + generated (the array itself, longer than
   * that; the engine's own reads only).
   */
  int[] tokens() {
    return inputIds;
  }

  /**
   * Whether this step's rows are an echo prefill that the model may score where the logits are
   * ({@link #promptScoreTokens}): each prompt token's log-prob, and its top alternatives when asked for and
   * {@code alternativesThere} (a model that lists them there; elsewhere such a prefill's rows come to the host).
   */
  boolean scoresPromptWhereLogitsAre(boolean alternativesThere) {
    return !prefilled && request.params.echo() && (scorer.top() == 0 || alternativesThere);
  }

  /**
   * An echo prefill's prompt scores as the model computed them ({@code scores[i - 1]} = log P(prompt[i] |
   * prompt[&lt;i])) with, for {@code top > 0}, each row's {@code top} most likely tokens and their log-probs
   * ({@code topIds[(i - 1) * top ..]}, -1 after the last listed).
   */
  record PromptScores(double[] scores, int[] topIds, double[] topLogprobs, int top) {}

  /** The token each prompt row is scored at: row i scores prompt token i + 1 (the last row scores none). */
  int[] promptScoreTokens() {
    return Arrays.copyOfRange(request.promptIds, 1, request.promptIds.length);
  }

  /** Whether the prefill in progress may be fed in chunks: all but an echo prompt's (scored in one step). */
  boolean chunkable() {
    return prefilled || !request.params.echo();
  }

  /** Whether the next step is (part of) a prefill: of the prompt, or of everything it had after a preemption. */
  boolean prefilling() {
    return !prefilled || recompute;
  }

  private int prefillLength() {
    return prefilled ? length : request.promptIds.length;
  }

  /** The most tokens {@link #nextStep} feeds: the rest of the prefill in progress, else 1. */
  int nextStepTokens() {
    return prefilling() ? prefillLength() - chunked : 1;
  }

  /**
   * After a step that fed {@code tokens} of this sequence: a chunk of a prefill that is not its last is now in
   * the KV cache, and nothing else changes (no token, no random number drawn; the engine knows such a step gives
   * no token because it fed fewer than {@link #nextStepTokens}).
   */
  void advance(int tokens) {
    if (prefilling()) {
      chunked += tokens;
      if (chunked >= prefillLength()) {
        chunked = 0; // the prefill is done: the step gave its token, which its caller accepts next
      }
    }
  }

  /** Finishes as CANCELLED if the caller gave up (while it waited, preempted); whether it did. */
  boolean cancelIfAsked() {
    if (request.cancelled()) {
      finish(FinishReason.CANCELLED);
      return true;
    }
    return false;
  }

  /** Finishes as CANCELLED: its request was found cancelled (another completion of it, or the queue, saw it). */
  void cancel() {
    finish(FinishReason.CANCELLED);
  }

  /**
   * Its request fails with {@code e}, a reason of its own (a pick that cannot be made, such as every token banned):
   * the sequence ends, as cancelled, and the request's future carries {@code e}; the rest of the batch goes on.
   */
  void fail(RuntimeException e) {
    request.fail(e);
    finish = FinishReason.CANCELLED;
    drafts = NO_DRAFTS;
  }

  /** Its KV-cache blocks were taken back: the next step recomputes them. */
  void preempt() {
    chunked = 0; // its blocks, and the chunks in them, are gone
    drafts = NO_DRAFTS;
    cachedPrefix = 0; // preempted before the step that used them: they were never saved
    if (prefilled) {
      recompute = true;
    }
  }

  boolean finished() {
    return finish != null;
  }

  /**
   * Whether this step's token needs nothing but the argmax of the raw logits and its log-prob: greedy, no
   * logits processor, no log-prob alternatives asked for, and not an echo prefill (which scores the prompt). Then the
   * engine takes {@link #acceptGreedy} from the model instead of copying the logits out.
   */
  boolean argmaxIsEnough() {
    return sampler.isGreedy() && pipeline.processors().isEmpty() && alternatives() == 0
        && (prefilled || !request.params.echo());
  }

  /**
   * Whether this step's token is the argmax of its row after processors the model can apply where the logits are
   * ({@link #edits}): greedy, every processor a {@link SparseLogitsProcessor} (bias, penalties, bans), not an echo
   * prefill. Then {@link #acceptGreedy} takes the argmax of the edited row and its log-softmax (and the row's top
   * {@link #alternatives} with theirs), which is what the host path ({@link #choose}) computes from the processed row.
   */
  boolean greedyWhereLogitsAre() {
    return sampler.isGreedy() && pipeline.runsAsEdits() && (prefilled || !request.params.echo());
  }

  /**
   * How many log-prob alternatives its tokens list (0: none, or no log-probs asked for). Alternatives need the row or
   * the model's top tokens ({@link #greedyWhereLogitsAre}); the chosen token's own log-prob ({@code logprobs(0)}) comes
   * with any pick where the logits are.
   */
  int alternatives() {
    return wantLogprobs ? scorer.top() : 0;
  }

  /** Whether its processors change the row before the pick (then the step passes {@link #edits} to the model). */
  boolean hasEdits() {
    return pipeline.hasEdits();
  }

  /**
   * What its processors before the warpers would do to this step's rows {@code firstRow .. firstRow + drafts}, named
   * token by token into {@code out}: the same as {@link #choose}'s {@code pipeline.process} on the host, with the same
   * history. A step that checks {@code drafts} of its drafts has a row per draft: row r with the history that the
   * step's first r drafts, once accepted, make (the row is used only then). The drafts are written after the tokens it
   * holds, where accepting them writes them again; the processors read no further than the length they are given.
   */
  void edits(io.github.optjava.backend.LogitEdits.Builder out, int firstRow, int drafts) {
    for (int r = 0; r <= drafts; r++) {
      if (r > 0) {
        inputIds[length + r - 1] = this.drafts[r - 1];
      }
      pipeline.edits(inputIds, length + r, request.promptIds.length, out.row(firstRow + r));
    }
  }

  /** The step's token when {@link #argmaxIsEnough}: the argmax of the raw logits and its log-softmax (also used
   * by {@link #acceptSampled}). */
  void acceptGreedy(int token, double logprob) {
    acceptGreedy(token, logprob, null, null, 0);
  }

  /**
   * As {@link #acceptGreedy(int, double)}, with the row's most likely tokens and their log-probs at {@code from} in
   * {@code topIds} / {@code topLogprobs} (at least {@link #alternatives} of them, -1 after the last listed): its
   * log-prob alternatives.
   */
  void acceptGreedy(int token, double logprob, int[] topIds, double[] topLogprobs, int from) {
    prefilled = true;
    recompute = false;
    if (request.cancelled()) {
      finish(FinishReason.CANCELLED);
      return;
    }
    if (generated.size() >= request.params.maxTokens()) {
      finish(FinishReason.LENGTH); // max_tokens 0
      return;
    }
    request.tokenProduced();
    commit(token, logprob, null, Double.NaN, topIds, topLogprobs, from);
  }

  /**
   * Whether this step's token can be drawn where the logits are ({@link io.github.optjava.model.CausalLm#sample}):
   * sampling whose processors the model can apply there ({@link #edits}: bias, penalties, bans) and whose warpers are
   * temperature, top-k, top-p, min-p and, where the model draws it there, typical sampling, not an echo prefill; its
   * log-prob alternatives, if asked for, are listed there too. Its rules then are
   * {@link io.github.optjava.backend.RowSampling}'s, not the HF-exact host path's (they differ only for a token at a
   * cut: exactly at a top-p or min-p cut, within ~1e-6 of a typical one).
   */
  boolean samplableWhereLogitsAre() {
    return !sampler.isGreedy() && (prefilled || !request.params.echo()) && pipeline.runsAsEdits(typicalThere);
  }

  /**
   * Row r of {@code rows}: this sequence's warpers (as floats) and the given uniform number. A typical-p in (0, 1)
   * stays in (0, 1) as a float (one below the smallest float is its smallest, one that rounds to 1 the largest below
   * 1), so that rounding never turns typical sampling off.
   */
  void fillSamplingRow(io.github.optjava.backend.SamplingRows rows, int r, double uniform) {
    rows.temperature()[r] = (float) request.params.temperature();
    rows.topK()[r] = request.params.topK();
    rows.topP()[r] = (float) request.params.topP();
    rows.minP()[r] = (float) request.params.minP();
    double typical = request.params.typicalP();
    rows.typicalP()[r] = typical >= 1 ? 1f
        : (float) Math.min(Math.max(typical, Float.MIN_VALUE), Math.nextDown(1f));
    rows.uniform()[r] = uniform;
  }

  /** The uniform number this step's draw uses: the sequence's stream advances as the host sampler's would. */
  double nextUniform() {
    return sampler.nextUniform();
  }

  /**
   * The step's token when {@link #samplableWhereLogitsAre}: drawn by the model, with its log-probability and, at
   * {@code from} in {@code topIds} / {@code topLogprobs}, the filtered distribution's most likely tokens and their
   * log-probs (null when no sequence of the step asked for alternatives).
   */
  void acceptSampled(int token, double logprob, int[] topIds, double[] topLogprobs, int from) {
    requireDrawn(token);
    if (topIds == null) {
      acceptGreedy(token, atMostZero(logprob)); // the same bookkeeping: cancellation, length, commit
      return;
    }
    atMostZero(topLogprobs, from, alternatives());
    acceptGreedy(token, atMostZero(logprob), topIds, topLogprobs, from);
  }

  /**
   * A drawn token's log-prob as the device's rules compute it, {@code (s - m) - log(mass kept)}, where the mass kept
   * is the total less the mass cut (in double): for a token that holds all of it that can round to 1e-13 above 0.
   */
  private static double atMostZero(double logprob) {
    return logprob > 0 ? 0 : logprob;
  }

  /** {@link #atMostZero(double)} on {@code n} log-probs from {@code from}. */
  private static void atMostZero(double[] logprobs, int from, int n) {
    for (int i = from; i < from + n; i++) {
      logprobs[i] = atMostZero(logprobs[i]);
    }
  }

  /** A token {@link io.github.optjava.backend.RowSampling} could not draw, as the host sampler reports it. */
  static void requireDrawn(int token) {
    if (token == io.github.optjava.backend.RowSampling.NAN) {
      throw new IllegalStateException("cannot sample: a logit is NaN (the model produced invalid numbers)");
    }
    if (token == io.github.optjava.backend.RowSampling.NONE) {
      throw new IllegalStateException("cannot sample: every token has probability 0 (all logits are -inf)");
    }
  }

  /** Takes the logits of the step (all prompt rows on an echo prefill, else one row) and picks a token. */
  void accept(float[] logits, int vocab) {
    commit(choose(logits, vocab));
  }

  /**
   * What {@link #choose} decided: the token picked from the processed row {@code last} (whose log-sum-exp is
   * {@code lse}), or, with {@code finish} set, that the sequence ends without a token.
   */
  record Pick(int token, float[] last, double lse, FinishReason finish, double logprob, int[] topIds,
      double[] topLogprobs) {
    Pick(int token, float[] last, double lse, FinishReason finish) {
      this(token, last, lse, finish, Double.NaN, null, null);
    }
  }

  /**
   * The first half of {@link #accept}: the row's echo scores, the logits processors and the sampler, the
   * expensive part of a step on the host. It touches only this sequence's own state, so the engine runs it for
   * all the step's sequences at once on several threads; {@link #commit(Pick)}, which calls the listener, then
   * runs on the engine's thread in order.
   */
  Pick choose(float[] logits, int vocab) {
    return choose(logits, vocab, false);
  }

  /**
   * As {@link #choose(float[], int)}; {@code deviceRules}: the model samples on the device, so a plain sampled
   * sequence draws by {@link io.github.optjava.backend.RowSampling}'s rules here too (the device's), whatever
   * path this step took: its tokens then do not depend on what shares its batch.
   */
  Pick choose(float[] logits, int vocab, boolean deviceRules) {
    return choose(logits, vocab, deviceRules, null);
  }

  /**
   * As {@link #choose(float[], int, boolean)}; {@code promptScores}: an echo prefill's prompt scores (and their
   * alternatives) as the model computed them ({@link #promptScoreTokens}), {@code logits} then being only the last
   * row; null: from the rows.
   */
  Pick choose(float[] logits, int vocab, boolean deviceRules, PromptScores promptScores) {
    float[] last = logits;
    recompute = false;
    if (!prefilled) {
      prefilled = true;
      if (request.params.echo()) {
        if (promptScores != null) {
          logprobs.addAll(scorer.prompt(request.promptIds, promptScores.scores(), promptScores.topIds(),
              promptScores.topLogprobs(), promptScores.top()));
        } else {
          logprobs.addAll(scorer.prompt(request.promptIds, logits, vocab));
          last = Arrays.copyOfRange(logits, logits.length - vocab, logits.length);
        }
      }
    }
    if (request.cancelled()) {
      return new Pick(-1, null, 0, FinishReason.CANCELLED);
    }
    if (generated.size() >= request.params.maxTokens()) {
      return new Pick(-1, null, 0, FinishReason.LENGTH); // max_tokens 0: echo / scoring only
    }
    if (deviceRules && samplableWhereLogitsAre()) {
      // the device's path on the host: its edits (the processors before the warpers), then RowSampling's draw
      pipeline.processBeforeWarpers(inputIds, length, request.promptIds.length, last);
      double[] lp = new double[1];
      int k = alternatives();
      int[] topIds = k > 0 ? new int[k] : null;
      double[] topLogprobs = k > 0 ? new double[k] : null;
      io.github.optjava.backend.SamplingRows row = io.github.optjava.backend.SamplingRows.greedy(1);
      fillSamplingRow(row, 0, nextUniform());
      int token = io.github.optjava.backend.RowSampling.sample(last, last.length - vocab, vocab, row, 0, lp, 0, k,
          topIds, topLogprobs, 0);
      requireDrawn(token);
      if (topLogprobs != null) {
        atMostZero(topLogprobs, 0, k);
      }
      return new Pick(token, null, Double.NaN, null, atMostZero(lp[0]), topIds, topLogprobs);
    }
    int promptLength = request.promptIds.length;
    pipeline.process(inputIds, length, promptLength, last);
    int token = sampler.next(last);
    return new Pick(token, last, LogProbs.logSumExp(last), null);
  }

  /** The second half of {@link #accept}, on the engine's thread: records {@code pick} (streams, finishes). */
  void commit(Pick pick) {
    if (pick.finish() != null) {
      finish(pick.finish());
      return;
    }
    request.tokenProduced();
    if (pick.last() == null) { // drawn by the device's rules: the log-prob (and alternatives) came with it
      commit(pick.token(), pick.logprob(), null, Double.NaN, pick.topIds(), pick.topLogprobs(), 0);
      return;
    }
    commit(pick.token(), LogProbs.logProb(pick.last(), pick.token(), pick.lse()), pick.last(), pick.lse(), null, null,
        0);
  }

  /**
   * Appends the chosen token: score, EOS, log-probs (from {@code last} and {@code lse} when asked for, else from
   * {@code lp} and the model's top tokens at {@code from} in {@code topIds} / {@code topLogprobs}), text, stop strings,
   * length limit, streaming.
   */
  private void commit(int token, double lp, float[] last, double lse, int[] topIds, double[] topLogprobs, int from) {
    sumLogprob += lp; // the score includes the EOS token's log-prob when the sequence ends on it
    inputIds[length++] = token;
    if (token == eos) {
      finish(FinishReason.EOS); // EOS is neither in the text nor in the token ids
      return;
    }
    if (wantLogprobs) { // without the row (picked where the logits are): the pick's own log-prob, no alternatives
      logprobs.add(last != null ? scorer.of(token, last, lse)
          : scorer.chosen(token, lp, topIds, topLogprobs, from));
    }
    generated.add(token);
    int before = text.length();
    text.append(decoder.feed(token));
    if (!stops.isEmpty()) {
      int at = stops.find(text, before);
      if (at >= 0) {
        text.setLength(at);
        finish(FinishReason.STOP);
        return;
      }
    }
    if (generated.size() >= request.params.maxTokens()) {
      finish(FinishReason.LENGTH);
      return;
    }
    int safe = stops.isEmpty() ? text.length() : stops.safeLength(text);
    emit(token, safe);
  }

  /**
   * Ends the sequence: the decoder's held bytes and the text held back for a possible stop string are final now, and
   * are streamed (so the chunks, joined, are the choice's text whatever the reason; a cancelled stream that is read
   * to its end gets them too).
   */
  private void finish(FinishReason reason) {
    if (finish != null) {
      return; // once (a cancelled sequence can be told again by another path)
    }
    // On EOS, and on a cancellation, the last generated token was streamed with its own step: what is left is the
    // final flush (token -1).
    boolean lastTokenStreamed = reason == FinishReason.EOS || reason == FinishReason.CANCELLED;
    if (reason != FinishReason.STOP) {
      int before = text.length();
      text.append(decoder.finish());
      if (!stops.isEmpty()) {
        int at = stops.find(text, before);
        if (at >= 0) {
          text.setLength(at);
          reason = reason == FinishReason.CANCELLED ? reason : FinishReason.STOP; // (never a stop string in the text)
        }
      }
    }
    finish = reason;
    emit(lastTokenStreamed || generated.isEmpty() ? -1 : generated.get(generated.size() - 1), text.length());
  }

  private void emit(int token, int upTo) {
    if (upTo > emitted || token >= 0) {
      String delta = upTo > emitted ? text.substring(emitted, upTo) : "";
      emitted = Math.max(emitted, upTo);
      request.onToken(choice, token, delta);
    }
  }

  Choice toChoice() {
    List<Integer> ids = new ArrayList<>();
    String out = text.toString();
    if (request.params.echo()) {
      for (int id : request.promptIds) {
        ids.add(id);
      }
      out = tokenizer.decode(request.promptIds, true, false) + out;
    }
    ids.addAll(generated);
    // An echo prompt is scored when it is read; one never read (cancelled while queued) still gets an entry per token.
    List<TokenLogprob> lps = !wantLogprobs ? List.of() : request.params.echo() && logprobs.isEmpty()
        ? List.copyOf(scorer.unscored(request.promptIds)) : List.copyOf(logprobs);
    return new Choice(choice, out, List.copyOf(ids), finish, lps, sumLogprob);
  }
}
