package io.github.optjava.engine;

import io.github.optjava.api.Completion;
import io.github.optjava.api.FinishReason;
import io.github.optjava.api.GeneratorStats;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.LogitEdits;
import io.github.optjava.model.CausalLm;
import io.github.optjava.model.OptModel;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The generation loop: one thread owns the model and the KV cache and runs steps over every sequence
 * in flight. Requests from any number of threads queue up and join the running batch at step
 * boundaries (their prompts are prefilled in the same forward pass that decodes the others), and leave
 * it when done. Beam-search requests run on their own when admitted.
 *
 * <p>KV-cache memory (vLLM's policy): a request is admitted when the cache has room for its prompts now, not
 * for their full length, so the batch fills the cache. When a step needs more blocks than are free, the
 * sequences admitted last are preempted: their blocks are freed and they wait at the head of the queue,
 * keeping everything they generated (tokens, text, sampler state); when room comes back they are
 * recomputed (one prefill of prompt + generated tokens) and go on as if nothing happened. A request is
 * accepted only if all its sequences fit the empty cache at full length ({@link #submit}), so the
 * sequences admitted first always make progress. Never an out-of-memory failure.
 *
 * <p>With prefix caching on, every full KV-cache block a sequence computes is indexed by its tokens (and all
 * before them) and stays cached after the sequence ends, until the pool needs the room ({@link KvCache}). A
 * sequence whose prompt starts with cached blocks (a shared system prompt, few-shot examples, the previous turn
 * of a chat, its own blocks after a preemption) takes them and prefills only the rest, like the last chunk of a
 * chunked prefill; at least its last token is always computed, for the logits of its next token.
 *
 * <p>With prompt lookup on (speculative decoding without a draft model), a decoding sequence whose last tokens
 * occurred earlier in it feeds, besides its last token, up to {@code promptLookup} tokens that followed them there
 * ({@link PromptLookup}). The step's logits for every fed row are then picked from in order, as that many decode
 * steps would, while each pick equals the draft its next row was computed with; the rows of rejected drafts are
 * dropped from the KV cache. The tokens are the same as without it (up to float rounding: a step of several rows
 * sums in another order, as batching does); what changes is how many come per step. (So where a request with
 * n > 1 completions is cancelled by its listener, its completions may stop at other lengths: cancellation is
 * seen per token, and drafts change which tokens of the different completions come in the same step.)
 */
public final class Engine implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(Engine.class);

  /** Receives streamed text. Called on the engine thread: return quickly. */
  public interface Listener {
    /** {@code text} is the newly final text of choice {@code choice} (may be empty), after token {@code tokenId}. */
    void onToken(int choice, int tokenId, String text);

    /**
     * Whether the caller gave up: the request finishes with {@link FinishReason#CANCELLED}. Unlike
     * {@link #onToken}, it may be called from the engine's worker threads (the parallel pick of a step's tokens):
     * read a volatile flag, nothing else.
     */
    default boolean cancelled() {
      return false;
    }
  }

  private final CausalLm model;
  private final OptTokenizer tokenizer;
  private final KvCache cache;
  private final int maxBatch;
  private final int maxSequenceLength;
  private final int maxStepTokens; // 0: no limit; else prefills are chunked to fit (see the constructor)
  private final boolean prefixCaching;
  private final int promptLookup; // most draft tokens a decoding sequence feeds per step; 0: none
  private final LinkedBlockingQueue<Request> incoming = new LinkedBlockingQueue<>();
  // Concurrent: close() fails what waits here when a step outlasts its wait; otherwise only the loop touches it.
  private final ConcurrentLinkedDeque<Request> waiting = new ConcurrentLinkedDeque<>();
  private final List<Sequence> active = new ArrayList<>();     // in admission order
  /** {@code -Dopt.engine.parallelPicks=false} processes the step's rows one after another (to compare). */
  private static final boolean PARALLEL_PICKS =
      !"false".equalsIgnoreCase(System.getProperty("opt.engine.parallelPicks"));
  private final ArrayDeque<Sequence> preempted = new ArrayDeque<>(); // resumed before any new request
  /** The other completions of an n > 1 request, waiting for the first one's prompt prefill to fork from. */
  private final Map<Sequence, List<Sequence>> forks = new HashMap<>();
  /** The step through the model and its picks (where the logits are, when it can). */
  private final ModelStep modelStep;
  private volatile long forked;
  /** Tests turn prompt sharing off to compare with n separate prefills. */
  boolean sharePrompts = true;
  private final AtomicLong ids = new AtomicLong();
  private final Thread loop;
  /** Completed as the loop's last act: what is freed after it (the model) is no longer in use. */
  private final CompletableFuture<Void> ended = new CompletableFuture<>();
  private volatile boolean closed;
  private volatile long preemptions;
  // Monitoring (stats()): counted on the loop thread, published as one snapshot between steps.
  private long forwardPasses;
  private long tokensProcessed;
  private long prefixCachedTokens; // prefill tokens not computed: taken from cached blocks
  private long draftTokens;        // draft tokens fed (prompt lookup)
  private long acceptedDraftTokens; // of which the model's picks agreed with
  private int beamSearches; // 1 while a beam-search request runs (alone)
  private Request beamRequest; // that request: its steps stop when it is cancelled
  private final AtomicLong requestsFinished = new AtomicLong();
  private volatile GeneratorStats published;

  public Engine(CausalLm model, OptTokenizer tokenizer, KvCache cache, int maxBatch, int maxSequenceLength) {
    this(model, tokenizer, cache, maxBatch, maxSequenceLength, 0, false, 0);
  }

  public Engine(CausalLm model, OptTokenizer tokenizer, KvCache cache, int maxBatch, int maxSequenceLength,
      int maxStepTokens) {
    this(model, tokenizer, cache, maxBatch, maxSequenceLength, maxStepTokens, false, 0);
  }

  /**
   * @param maxStepTokens the most tokens one forward pass feeds (0: no limit). Prompts longer than what is left
   *                      of it after the running sequences' decode tokens are prefilled in chunks over several
   *                      steps, so a long prompt does not hold up the others' next tokens for its whole prefill
   *                      (chunked prefill). At least {@code maxBatch}, so that the decode steps of a full batch
   *                      fit (n > maxBatch completions of one request take turns). Echo prompts are never split.
   * @param prefixCaching whether sequences reuse the cached KV blocks of earlier ones with the same leading tokens
   *                      (see the class comment). Results are the same either way up to float rounding: bit for
   *                      bit where a row does not depend on the other rows of its step ({@code CpuOps}); elsewhere
   *                      a prefill of fewer tokens sums in another order, as chunked prefill does. Echo prompts,
   *                      whose every row is scored, and beam search do not use it.
   * @param promptLookup  the most draft tokens a decoding sequence feeds per step (prompt lookup decoding, see the
   *                      class comment); 0: none. Drafts use what the step token budget leaves after the decode
   *                      tokens and prefills, and are dropped before anything is preempted for them.
   */
  public Engine(CausalLm model, OptTokenizer tokenizer, KvCache cache, int maxBatch, int maxSequenceLength,
      int maxStepTokens, boolean prefixCaching, int promptLookup) {
    if (promptLookup < 0) {
      throw new IllegalArgumentException("promptLookup must be >= 0 (0 = no draft tokens), got " + promptLookup);
    }
    if (maxStepTokens != 0 && maxStepTokens < maxBatch) {
      throw new IllegalArgumentException("maxStepTokens " + maxStepTokens + " is below the batch size " + maxBatch
          + ": use 0 (no limit) or at least " + maxBatch + " so that every running sequence's decode token fits");
    }
    this.maxStepTokens = maxStepTokens;
    this.prefixCaching = prefixCaching;
    this.promptLookup = promptLookup;
    this.model = model;
    this.tokenizer = tokenizer;
    this.cache = cache;
    this.modelStep = new ModelStep(model, cache, forks);
    this.maxBatch = maxBatch;
    this.maxSequenceLength = maxSequenceLength;
    publish();
    this.loop = new Thread(this::run, "opt-engine");
    loop.setDaemon(true);
    loop.start();
  }

  /**
   * Queues a request. Checks that it can ever run (length, cache size) in the caller's thread.
   *
   * @throws IllegalArgumentException if the prompt plus max tokens does not fit the model or the cache
   */
  public CompletableFuture<Completion> submit(int[] promptIds, SamplingParams params, Listener listener) {
    if (closed) {
      throw new IllegalStateException("the generator is closed");
    }
    if (promptIds.length == 0) {
      throw new IllegalArgumentException("the prompt is empty: it needs at least one token (BOS, id 2)");
    }
    long total = (long) promptIds.length + params.maxTokens(); // long: max_tokens near 2^31 must not wrap around
    if (total > maxSequenceLength && params.maxTokens() == 0 && params.echo()) { // score(): nothing generated
      throw new IllegalArgumentException("the text has " + promptIds.length + " tokens (with BOS), more than the "
          + maxSequenceLength + " this model reads at once; score it in parts of at most " + maxSequenceLength
          + " tokens");
    }
    if (total > maxSequenceLength) {
      throw new IllegalArgumentException("the prompt has " + promptIds.length + " tokens and max_tokens is "
          + params.maxTokens() + ": " + total + " tokens exceed the limit of " + maxSequenceLength + " by "
          + (total - maxSequenceLength) + "; shorten the prompt or lower max_tokens");
    }
    int vocab = model.config().vocabSize();
    for (int i = 0; i < promptIds.length; i++) {
      if (promptIds[i] < 0 || promptIds[i] >= vocab) {
        throw new IllegalArgumentException("prompt token " + i + " is " + promptIds[i] + ", outside the vocabulary of "
            + vocab + " tokens (ids 0.." + (vocab - 1) + "): encode the prompt with this model's tokenizer");
      }
    }
    java.util.stream.Stream.concat(params.logitBias().keySet().stream(),
        params.badWordsIds().stream().flatMap(List::stream)).filter(token -> token >= vocab).findFirst()
        .ifPresent(token -> {
          throw new IllegalArgumentException("token " + token + " (in logitBias or badWordsIds) is outside the "
              + "vocabulary of " + vocab + " tokens (ids 0.." + (vocab - 1) + ")");
        });
    int seqs = params.isBeamSearch() ? params.numBeams() : params.n();
    if (params.isBeamSearch() && seqs > maxBatch) { // its beams decode together: n > maxBatch takes turns instead
      throw new IllegalArgumentException("num_beams " + seqs + " is more than maxBatchSize (" + maxBatch + "), the "
          + "most sequences one step decodes, and a beam search steps all its beams at once; raise maxBatchSize or "
          + "lower num_beams");
    }
    long blocks = (long) seqs * cache.blocksFor((int) total); // (total fits an int now; n × blocks may not)
    if (blocks > cache.store().blocks()) {
      throw new IllegalArgumentException("the request needs " + blocks + " KV-cache blocks (" + seqs + " sequences × "
          + total + " tokens) but the cache has " + cache.store().blocks() + "; raise kvCacheTokens or lower "
          + "max_tokens / n / num_beams");
    }
    Request r = new Request(promptIds, params, listener == null ? (c, t, s) -> { } : listener, requestsFinished);
    incoming.add(r);
    if (closed && incoming.remove(r)) {
      throw new IllegalStateException("the generator is closed");
    }
    return r.future;
  }

  private void run() {
    try {
      loop();
    } finally {
      ended.complete(null);
    }
  }

  private void loop() {
    while (!closed) {
      try {
        if (active.isEmpty() && waiting.isEmpty() && preempted.isEmpty()) {
          Request r = incoming.poll(100, TimeUnit.MILLISECONDS);
          if (r != null) {
            waiting.add(r);
          }
        }
        incoming.drainTo(waiting);
        admit();
        publish();
        if (!active.isEmpty()) {
          step();
          publish();
        }
      } catch (InterruptedException e) {
        break;
      } catch (RuntimeException | Error e) {
        // One line: every request in flight gets the exception itself, stack trace and all (the CLI shows one line
        // per failure; a worker's death printed three stack traces). The trace is here at DEBUG.
        LOG.error("generation step failed; failing the requests in flight: {}", e.toString());
        LOG.debug("the failed step's exception", e);
        failActive(e);
        publish();
      }
    }
    RuntimeException closedError = new IllegalStateException("the generator was closed");
    failActive(closedError);
    for (Request r : waiting) {
      r.fail(closedError);
    }
    waiting.clear();
    // Taken out as they are failed: stats() counts what is left in the queue as waiting.
    for (Request r = incoming.poll(); r != null; r = incoming.poll()) {
      r.fail(closedError);
    }
    publish();
  }

  /**
   * A snapshot of the batch, the queue, the KV cache and the counters since the engine started, published by
   * the loop between steps (see {@link GeneratorStats}). Any thread; cheap.
   */
  public GeneratorStats stats() {
    GeneratorStats s = published;
    // Two figures are read now rather than at the last step: requests queued since, and requests finished (a
    // caller whose request just completed sees it counted).
    return new GeneratorStats(s.running(), s.waiting() + incoming.size(), s.preempted(), s.kvCacheBlocksUsed(),
        s.kvCacheBlocksCached(), s.kvCacheBlocks(), s.kvCacheBlockSize(), s.steps(), s.tokensProcessed(),
        s.prefixCachedTokens(), s.draftTokens(), s.acceptedDraftTokens(), requestsFinished.get(), s.preemptions(),
        s.forkedPrefills());
  }

  /** Publishes the loop's state for {@link #stats}: on the loop thread (or before it starts). */
  private void publish() {
    int blocks = cache.store().blocks();
    published = new GeneratorStats(batchSize() + beamSearches, waiting.size(), preempted.size(),
        blocks - cache.freeBlocks(), cache.cachedBlocks(), blocks, cache.blockSize(), forwardPasses, tokensProcessed,
        prefixCachedTokens, draftTokens, acceptedDraftTokens, requestsFinished.get(), preemptions, forked);
  }

  /** Completions that got their prompt's KV cache by a fork instead of a prefill of their own. */
  public long forkedPrefills() {
    return forked;
  }

  /** Sequences preempted so far (recomputed later): a measure of KV-cache pressure. */
  public long preemptions() {
    return preemptions;
  }

  /**
   * Requests whose callers gave up while they waited never run: a cancelled (or timed out) future, or a listener
   * that says cancelled (a closed TokenStream), which ends now with its choices CANCELLED rather than when a batch
   * slot and KV room for its prompt come free (or a beam search running alone ends).
   */
  private void dropGivenUp() {
    waiting.removeIf(r -> {
      if (r.future.isDone()) {
        r.fail(new java.util.concurrent.CancellationException("cancelled before it started"));
        return true;
      }
      if (!r.cancelled()) {
        return false;
      }
      if (r.params.isBeamSearch()) { // as a beam search cancelled while it runs
        r.fail(new java.util.concurrent.CancellationException("the beam-search request was cancelled"));
        return true;
      }
      for (int i = 0; i < r.params.n(); i++) {
        Sequence s = new Sequence(r, i, ids.incrementAndGet(), tokenizer, model.config().eosTokenId(),
            model.samplesTypicalOnDevice());
        s.cancel(); // not cancelIfAsked(): a listener asked again need not say the same
        r.choiceDone(s);
      }
      return true;
    });
  }

  /**
   * Moves preempted sequences back, then waiting requests, into the batch, first come first served, while
   * the batch has room and the cache can hold what their first step writes (the prompt, or for a preempted
   * sequence everything it had) besides what the running sequences' next step needs.
   */
  private void admit() {
    dropGivenUp(); // first: preempted sequences may hold the queue up
    int planned = 0; // blocks this step already needs for the running sequences and those admitted above
    for (Sequence s : active) {
      planned += blocksFor(s, s.nextStepTokens());
    }
    while (!preempted.isEmpty()) {
      Sequence s = preempted.peek();
      if (s.cancelIfAsked()) { // a caller that gave up needs no recomputation
        preempted.poll();
        s.request.choiceDone(s);
        // The first completion of an n > 1 request, preempted before its (chunked) prefill was done: its
        // siblings never forked, and end with it.
        List<Sequence> siblings = forks.remove(s);
        if (siblings != null) {
          for (Sequence sibling : siblings) {
            sibling.cancel(); // the same request: CANCELLED
            s.request.choiceDone(sibling);
          }
        }
        continue;
      }
      // Resume only with a block of slack per running sequence: resumed into a cache that is exactly full,
      // it would be preempted again at the next block boundary and recompute its whole prefix once more.
      int need = blocksFor(s, s.nextStepTokens());
      if (!active.isEmpty()
          && (batchSize() + 1 > maxBatch || planned + need + active.size() > cache.freeBlocks())) {
        return; // new requests wait behind the preempted ones
      }
      preempted.poll();
      active.add(s);
      planned += need - attachCachedPrefix(s); // the cached blocks it took are not allocated
    }
    while (!waiting.isEmpty() && !closed) { // after close() (during a beam search, say) the loop fails the queue
      Request r = waiting.peek();
      if (r.params.isBeamSearch()) {
        if (!active.isEmpty()) {
          return; // beam search runs alone: let the batch drain first
        }
        waiting.poll();
        beamSearches = 1;
        publish();
        try {
          runBeamSearch(r);
        } finally {
          beamSearches = 0;
        }
        continue;
      }
      int n = r.params.n();
      int need = n * cache.blocksFor(r.promptIds.length);
      if (!active.isEmpty() && (batchSize() + n > maxBatch || planned + need > cache.freeBlocks())) {
        return;
      }
      waiting.poll();
      List<Sequence> seqs = new ArrayList<>(n);
      try {
        for (int i = 0; i < n; i++) {
          seqs.add(new Sequence(r, i, ids.incrementAndGet(), tokenizer, model.config().eosTokenId(),
              model.samplesTypicalOnDevice()));
        }
      } catch (RuntimeException | OutOfMemoryError e) {
        // Out of the queue and not yet in the batch: failActive would not reach it, and its caller would wait for ever.
        r.fail(e);
        continue;
      }
      planned += need;
      // n completions of one prompt: the first prefills it, the others fork its KV cache afterwards (an echo
      // request scores the prompt per completion: those prefill each).
      if (n > 1 && !r.params.echo() && sharePrompts) {
        active.add(seqs.get(0));
        planned -= attachCachedPrefix(seqs.get(0));
        forks.put(seqs.get(0), seqs.subList(1, n));
      } else {
        for (Sequence s : seqs) {
          active.add(s);
          planned -= attachCachedPrefix(s);
        }
      }
    }
  }

  /**
   * With prefix caching, when {@code s} starts a prefill (of its prompt, or of all it had after a preemption)
   * holding no blocks: it takes the cached blocks of its leading tokens, all but its last token at most, and
   * prefills only the rest. Returns the blocks it took (which its step then need not allocate).
   */
  private int attachCachedPrefix(Sequence s) {
    if (prefixCaching && s.prefilling() && s.chunkable() && cache.table(s.id).length == 0) {
      int reused = cache.attachPrefix(s.id, s.tokens(), s.nextStepTokens() - 1);
      s.skipCachedPrefix(reused);
      return reused / cache.blockSize();
    }
    return 0;
  }

  /**
   * Ends the running sequences whose callers gave up (listener or future) or whose requests failed, before they feed
   * another step: a chunked prefill, or a sequence sitting a step out, would otherwise go on until its next token.
   * The siblings still waiting to fork from a first completion end with it.
   */
  private void retireCancelled() {
    for (java.util.Iterator<Sequence> it = active.iterator(); it.hasNext(); ) {
      Sequence s = it.next();
      if (!s.cancelIfAsked()) {
        continue;
      }
      it.remove();
      cache.release(s.id);
      s.request.choiceDone(s);
      List<Sequence> siblings = forks.remove(s);
      for (Sequence sibling : siblings == null ? List.<Sequence>of() : siblings) {
        sibling.cancel();
        s.request.choiceDone(sibling);
      }
    }
  }

  /** Sequences in the batch: running ones and the completions waiting to fork from one of them. */
  private int batchSize() {
    int n = active.size();
    for (List<Sequence> siblings : forks.values()) {
      n += siblings.size();
    }
    return n;
  }

  /**
   * Tokens each active sequence feeds in the next step (0: it sits this step out). Decode steps first, one token
   * each: they never wait, unless there are more of them than the budget (n > maxBatch completions of one
   * request); then they take turns, from a start that moves every step. Then the prefills in admission order,
   * each a chunk of what is left of the step's token budget ({@code maxStepTokens}; echo prompts go whole). With
   * no budget, every prefill goes whole. Last, with prompt lookup, the decoding sequences' draft tokens, from what
   * is left.
   */
  private int[] planStep() {
    int[] plan = new int[active.size()];
    long left = maxStepTokens > 0 ? maxStepTokens : Long.MAX_VALUE;
    // At most maxBatch sequences per step, as GeneratorOptions promises: more are running only when one request has
    // more completions than that (admitted alone), and they take turns (session 27's review: 12 rows at a max of 2).
    int rows = 0;
    int start = plan.length == 0 ? 0 : (int) (forwardPasses % plan.length); // turns, when decodes exceed the budget
    for (int j = 0; j < plan.length; j++) {
      int i = (start + j) % plan.length;
      Sequence s = active.get(i);
      s.dropDrafts();
      if (!s.prefilling() && left > 0 && rows < maxBatch) {
        plan[i] = 1;
        left--;
        rows++;
      }
    }
    for (int i = 0; i < plan.length; i++) {
      Sequence s = active.get(i);
      if (s.prefilling() && rows < maxBatch) {
        int rest = s.nextStepTokens();
        plan[i] = s.chunkable() ? (int) Math.min(rest, Math.max(left, 0)) : rest;
        left -= plan[i];
        rows += plan[i] > 0 ? 1 : 0;
      }
    }
    for (int i = 0; i < plan.length && promptLookup > 0 && left > 0; i++) {
      Sequence s = active.get(i);
      // (a sequence the model samples where the logits are draws its draft rows there too: ModelStep.run)
      if (plan[i] == 1 && !s.prefilling()
          && (modelStep.pickedDrafts() || !(model.samplesOnDevice() && s.samplableWhereLogitsAre()))) {
        int d = s.proposeDrafts((int) Math.min(promptLookup, left));
        plan[i] += d;
        left -= d;
      }
    }
    return plan;
  }

  /** KV-cache blocks that feeding {@code tokens} more tokens of {@code s} adds to what it holds. */
  private int blocksFor(Sequence s, int tokens) {
    return Math.max(0, cache.blocksFor(cache.length(s.id) + tokens) - cache.table(s.id).length);
  }

  /**
   * Preempts the sequences admitted last until the blocks of the step planned in {@code plan} fit the free
   * pool: their blocks go back, and they wait at the head of the queue to be recomputed. The first sequence
   * always fits (submit checked that a request fits the empty cache), so at least it runs. Returns the plan of
   * the sequences left.
   */
  private int[] makeRoom(int[] plan) {
    int need = 0;
    for (int i = 0; i < active.size(); i++) {
      need += blocksFor(active.get(i), plan[i]);
    }
    if (need > cache.freeBlocks()) { // draft tokens first: they are never worth a preemption
      need = 0;
      for (int i = 0; i < active.size(); i++) {
        Sequence s = active.get(i);
        if (!s.prefilling() && plan[i] > 1) {
          s.dropDrafts();
          plan[i] = 1;
        }
        need += blocksFor(s, plan[i]);
      }
    }
    while (need > cache.freeBlocks() && active.size() > 1) {
      Sequence victim = active.remove(active.size() - 1);
      need -= blocksFor(victim, plan[active.size()]);
      cache.release(victim.id);
      victim.preempt();
      preempted.addFirst(victim); // the last preempted was admitted first: it resumes first
      preemptions++;
      LOG.debug("KV cache full: preempted sequence {} ({} tokens) for recomputation", victim.id,
          victim.nextStepTokens());
    }
    return java.util.Arrays.copyOf(plan, active.size());
  }

  private void step() {
    retireCancelled();
    if (active.isEmpty()) {
      return;
    }
    StepBatch b = batch(makeRoom(planStep()));
    if (b.size() == 0) {
      return; // the sequences planned in were preempted: plan again with the room they left
    }
    StepOutput out = modelStep.run(b);
    forwardPasses++;
    tokensProcessed += b.tokens();
    for (int j = 0; j < b.size(); j++) {
      b.seqs().get(j).advance(b.steps().get(j).newTokens().length);
    }
    commit(b, out);
  }

  /** The step that {@code plan} (tokens per active sequence, 0: sits it out) describes. */
  private StepBatch batch(int[] plan) {
    List<Sequence> seqs = new ArrayList<>(plan.length);
    List<OptModel.SeqStep> steps = new ArrayList<>(plan.length);
    boolean[] gives = new boolean[plan.length];
    int[] drafted = new int[plan.length];
    int[] firstRow = new int[plan.length];
    int n = 0;
    int rows = 0;
    int tokens = 0;
    for (int i = 0; i < plan.length; i++) {
      if (plan[i] == 0) {
        continue;
      }
      Sequence s = active.get(i);
      seqs.add(s);
      steps.add(s.nextStep(plan[i]));
      gives[n] = !s.prefilling() || plan[i] == s.nextStepTokens();
      drafted[n] = s.prefilling() ? 0 : plan[i] - 1;
      firstRow[n] = rows;
      OptModel.SeqStep step = steps.get(n);
      rows += step.allLogits() ? step.newTokens().length : 1; // an echo prefill's every row, a draft step's 1 + drafts
      tokens += plan[i];
      prefixCachedTokens += s.takeCachedPrefix();
      n++;
    }
    return new StepBatch(seqs, steps, java.util.Arrays.copyOf(gives, n), java.util.Arrays.copyOf(drafted, n),
        java.util.Arrays.copyOf(firstRow, n), rows, tokens);
  }

  /**
   * Whether a step in which some sequences need their rows on the host picks for the others where the logits are
   * (the default) or brings every row (as {@code -Dopt.engine.partialPicks=false}: for tests and the device check,
   * which compare the two).
   */
  public void usePartialPicks(boolean on) {
    modelStep.usePartialPicks(on);
  }

  /**
   * Whether the other completions of an {@code n > 1} request take their first tokens where the logits are (the
   * default since session 24) or from their first completion's row on the host, as before (as
   * {@code -Dopt.engine.pickedForks=false}: a way out, and for tests).
   */
  public void usePickedForks(boolean on) {
    modelStep.usePickedForks(on);
  }

  /**
   * Whether draft rows are picked where the logits are (the default since session 24) or, as before, a sampled
   * sequence on a model that samples there gets no drafts and a greedy one with processors brings its draft rows to
   * the host (as {@code -Dopt.engine.pickedDrafts=false}: a way out, and for tests and the device check).
   */
  public void usePickedDrafts(boolean on) {
    modelStep.usePickedDrafts(on);
  }

  /**
   * Gives every sequence of the step its token(s): forks the siblings of a first completion whose prompt is done,
   * checks draft tokens (truncating the rows of rejected ones), publishes the filled blocks for prefix caching, and
   * retires the sequences that finished.
   */
  private void commit(StepBatch b, StepOutput out) {
    int vocab = model.config().vocabSize();
    List<Sequence> joined = forkSiblings(b, out, vocab);
    RuntimeException[] failures = new RuntimeException[b.size()];
    Sequence.Pick[] picks = out.logits() == null ? null : choose(b.seqs(), j -> b.gives()[j] && b.drafted()[j] == 0
        && out.rowsOf(j) != null, out.logits(), out.scores(), vocab, model.samplesOnDevice(), failures);
    for (int j = 0; j < b.size(); j++) {
      Sequence s = b.seqs().get(j);
      int row = b.firstRow()[j];
      if (failures[j] != null) {
        s.fail(failures[j]);
      } else if (b.drafted()[j] > 0) {
        draftTokens += b.drafted()[j];
        try {
          acceptedDraftTokens += out.rowsOf(j) != null
              ? s.acceptDrafts(out.logits()[j], vocab, model.samplesOnDevice())
              : s.acceptPickedDrafts(out.tokens(), out.logprobs(), out.topIds(), out.topLogprobs(), out.top(), row,
                  !out.argmaxOnly() && !out.greedy()[j]);
        } catch (RuntimeException e) { // a pick of its own that cannot be made: this request fails, not the batch
          s.fail(e);
        }
        cache.truncate(s.id, s.length() - 1); // the rows of rejected drafts; the newest token is fed next step
      } else if (!b.gives()[j]) {
        // an earlier chunk of a prefill: no token
      } else if (out.argmaxOnly() && out.top() > 0) {
        s.acceptGreedy(out.tokens()[row], out.logprobs()[row], out.topIds(), out.topLogprobs(), row * out.top());
      } else if (out.argmaxOnly()) {
        s.acceptGreedy(out.tokens()[row], out.logprobs()[row]);
      } else if (out.rowsOf(j) != null) {
        s.commit(picks[j]); // picked on the host from its rows
      } else if (out.greedy()[j]) { // the model's picks, by output row
        s.acceptGreedy(out.tokens()[row], out.logprobs()[row], out.topIds(), out.topLogprobs(), row * out.top());
      } else {
        try {
          s.acceptSampled(out.tokens()[row], out.logprobs()[row], out.topIds(), out.topLogprobs(), row * out.top());
        } catch (RuntimeException e) { // its processors banned every token: this request fails, not the batch
          s.fail(e);
        }
      }
      if (prefixCaching) {
        cache.publish(s.id, s.tokens()); // the blocks this step filled, for later sequences to reuse
      }
      if (s.finished()) {
        active.remove(s);
        cache.release(s.id);
        s.request.choiceDone(s);
      }
    }
    for (Sequence s : joined) { // forked completions run from the next step on (or are done already)
      if (s.finished()) {
        active.remove(s);
        cache.release(s.id);
        s.request.choiceDone(s);
      } else {
        attachCachedPrefix(s); // one that could not fork prefills the prompt: from the cache, where it can
      }
    }
  }

  /**
   * The processors and sampler of every sequence {@code gives} selects (those the step gives one token) over its
   * row of {@code logits}, several sequences at once (a row is a vocabulary of softmax work: at batch 32 it is the
   * host's longest task of a GPU step). Each sequence touches only its own state and random stream, so the picks
   * do not depend on the threads; the engine's thread then commits them in order. Null for the others. A pick that
   * cannot be made (every token banned by the request's own processors) goes to {@code failures}: it fails that
   * request only.
   */
  private Sequence.Pick[] choose(List<Sequence> stepping, java.util.function.IntPredicate gives, float[][] logits,
      Sequence.PromptScores[] scores, int vocab, boolean deviceRules, RuntimeException[] failures) {
    Sequence.Pick[] picks = new Sequence.Pick[stepping.size()];
    java.util.stream.IntStream rows = java.util.stream.IntStream.range(0, picks.length).filter(gives);
    if (picks.length > 1 && PARALLEL_PICKS) {
      rows = rows.parallel();
    }
    rows.forEach(j -> {
      try {
        picks[j] = stepping.get(j).choose(logits[j], vocab, deviceRules, scores == null ? null : scores[j]);
      } catch (RuntimeException e) {
        failures[j] = e;
      }
    });
    return picks;
  }

  /**
   * After a step in which the first completion of an n > 1 request prefilled its prompt: the others fork its
   * KV cache (full blocks shared, the partial last one copied) and take their first token from the same
   * logits, each with its own sampler (picked where the logits are when the first was, session 24: the step's extra
   * picks; else from its row on the host); before anyone appends. A sibling that cannot fork (no free block for
   * the copy) prefills the prompt itself in the next step. Returns the siblings, which join the batch at once
   * (so that a failure from here on releases their blocks with the others').
   */
  private List<Sequence> forkSiblings(StepBatch b, StepOutput out, int vocab) {
    if (forks.isEmpty()) {
      return List.of();
    }
    List<Sequence> joined = new ArrayList<>();
    for (int i = 0; i < b.size(); i++) {
      // Only once the first completion's prefill is complete (its last chunk was in this step).
      List<Sequence> siblings = b.gives()[i] ? forks.remove(b.seqs().get(i)) : null;
      if (siblings == null) {
        continue;
      }
      Sequence first = b.seqs().get(i);
      for (Sequence s : siblings) {
        active.add(s);
        if (cache.canFork(first.id)) {
          int[] copy = cache.fork(first.id, s.id);
          if (copy.length > 0) {
            model.copyBlocks(cache, new int[] {copy[0]}, new int[] {copy[1]});
          }
          int e = out.forkPicks().indexOf(s);
          try {
            if (e >= 0) { // picked where the logits are, after the step's rows
              int row = b.rows() + e;
              s.acceptForkPick(out.tokens()[row], out.logprobs()[row], out.topIds(), out.topLogprobs(),
                  row * out.top(), !s.greedyWhereLogitsAre());
            } else { // its own copy: processors change the row in place
              s.commit(s.choose(out.logits()[i].clone(), vocab, model.samplesOnDevice()));
            }
          } catch (RuntimeException ex) {
            s.fail(ex); // its own pick failed: its request fails, the batch goes on
          }
          forked++;
        }
        joined.add(s);
      }
    }
    return joined;
  }

  private void runBeamSearch(Request r) {
    beamRequest = r;
    try {
      r.completeWith(BeamRunner.run(new CountedSteps(), cache, ids::incrementAndGet, r.promptIds, r.params,
          tokenizer));
    } catch (RuntimeException e) {
      r.fail(e);
    } catch (Error e) { // the loop logs it and goes on; this request must not wait for ever (a StackOverflowError
      r.fail(e);        // in session 21's H200 run left its caller hanging)
      throw e;
    } finally {
      beamRequest = null;
    }
  }

  /** The model as beam search sees it: its steps are counted and published like the batch's. */
  private final class CountedSteps implements CausalLm {
    @Override
    public io.github.optjava.model.OptConfig config() {
      return model.config();
    }

    @Override
    public float[][] forward(List<OptModel.SeqStep> seqs, KvCache kv) {
      beforeStep();
      float[][] logits = model.forward(seqs, kv);
      afterStep(seqs);
      return logits;
    }

    /** The search's steps: the model finds the candidates where the logits are. */
    @Override
    public void beamTopK(List<OptModel.SeqStep> seqs, KvCache kv, int[] rows, float[] base, int k, int[] ids,
        float[] scores) {
      beamTopK(seqs, kv, rows, base, k, ids, scores, LogitEdits.NONE);
    }

    /** As above, with the beams' processors as edits on the log-probabilities. */
    @Override
    public void beamTopK(List<OptModel.SeqStep> seqs, KvCache kv, int[] rows, float[] base, int k, int[] ids,
        float[] scores, LogitEdits edits) {
      beforeStep();
      model.beamTopK(seqs, kv, rows, base, k, ids, scores, edits);
      afterStep(seqs);
    }

    private void beforeStep() {
      if (beamRequest != null && beamRequest.cancelled()) { // the search releases its sequences as this unwinds
        throw new java.util.concurrent.CancellationException("the beam-search request was cancelled");
      }
      if (closed) { // close() waits for the loop: a search in flight stops at its next step
        throw new IllegalStateException("the generator was closed");
      }
      incoming.drainTo(waiting); // the requests queued behind the search that their callers gave up end now
      dropGivenUp();
    }

    private void afterStep(List<OptModel.SeqStep> seqs) {
      forwardPasses++;
      for (OptModel.SeqStep s : seqs) {
        tokensProcessed += s.newTokens().length;
      }
      publish();
    }

    @Override
    public void copyBlocks(KvCache kv, int[] src, int[] dst) {
      model.copyBlocks(kv, src, dst);
    }

    @Override
    public KvCache newCache(int blocks, int blockSize) {
      return model.newCache(blocks, blockSize);
    }

    @Override
    public void close() {} // the engine's model stays open
  }

  private void failActive(Throwable e) {
    for (Sequence s : active) {
      cache.release(s.id);
      s.request.fail(e);
    }
    active.clear();
    for (Sequence s : preempted) { // they hold no blocks
      s.request.fail(e);
    }
    preempted.clear();
    forks.clear(); // siblings hold no blocks; their request failed with its first completion
  }

  /**
   * Stops the loop; requests still queued or running fail with IllegalStateException. Waits up to 10 s for a step
   * in progress ({@link #stopped} says whether it ended); if it runs longer, the queued requests fail as this
   * returns and the running ones as the step ends; called on the loop's own thread (from a listener or a
   * future's callback) it does not wait: the loop ends as that step returns to it.
   */
  @Override
  public void close() {
    close(10_000_000_000L);
  }

  /** As {@link #close()}, waiting at most {@code waitNanos} for the step in progress. */
  void close(long waitNanos) {
    closed = true;
    if (onLoopThread()) {
      // Called from a listener or a future's callback on the loop itself: the loop ends when this step returns to it
      // (joining itself would only time out, holding the step 10 s).
      return;
    }
    loop.interrupt();
    // Wait even if this thread is interrupted (an interrupted generate() leaves its flag set, and then close()
    // would return at once, before the loop ended, and the model's memory would not be freed until it does).
    long deadline = System.nanoTime() + waitNanos;
    boolean interrupted = false;
    while (loop.isAlive()) {
      long left = deadline - System.nanoTime();
      if (left <= 0) {
        break;
      }
      try {
        loop.join(Math.max(1, left / 1_000_000));
      } catch (InterruptedException e) {
        interrupted = true;
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
    if (loop.isAlive()) {
      // A step outlasted the wait (a long prefill, a stuck peer): what has not started fails now, not when that
      // step ends, since close() has returned and promised so. The loop fails them again as it ends (a no-op).
      RuntimeException closedError = new IllegalStateException("the generator was closed");
      for (Request r = incoming.poll(); r != null; r = incoming.poll()) {
        r.fail(closedError);
      }
      waiting.forEach(r -> r.fail(closedError));
    }
  }

  /** Whether the caller runs on the engine's own thread (a listener, a callback of a future it completes). */
  public boolean onLoopThread() {
    return Thread.currentThread() == loop;
  }

  /** Whether the step loop has ended (after {@link #close}: false only while a step outlasted close's wait). */
  public boolean stopped() {
    return ended.isDone();
  }

  /**
   * Runs {@code r} once the step loop has ended: at once (on this thread) if it has, else on the loop's thread as
   * it ends. A failure of {@code r} is logged. For what may be freed only after the last step, such as the model.
   */
  public void whenStopped(Runnable r) {
    ended.whenComplete((v, e) -> {
      try {
        r.run();
      } catch (RuntimeException | Error x) {
        LOG.error("freeing what the generation loop used failed", x);
      }
    });
  }
}
