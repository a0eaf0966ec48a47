package io.github.optjava.engine;

import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.SamplingRows;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.model.OptModel;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * What the engine spends on the host per decode step for each kind of request, with a stand-in model whose step
 * costs nothing (it only reserves the cache slots and hands back a fixed row of 50,272 Gaussian logits, σ = 3, a
 * broad distribution: thousands of top-p candidates). Requests whose tokens the model picks where the logits are
 * (greedy, sampling, each with processors that name their tokens: "edits") cost the engine's bookkeeping and the
 * edits' building; the others ("host path": typical sampling) bring the row to the host and run
 * Hugging Face's processors there: what a GPU decode step then pays on top of its kernels (plus the copy). Beam
 * search runs both ways (session 20); a greedy and a sampled request share steps (session 21); typical sampling is
 * also drawn where the logits are (session 23). A benchmark, not a test (docs/perf.md, sessions 19 to 23).
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -cp target/classes:target/test-classes:DEPS \
 *     io.github.optjava.engine.HostPathBenchMain [requests per kind, default 20]
 * </pre>
 */
public final class HostPathBenchMain {
  private HostPathBenchMain() {}

  /** The tiny fixture model's config (vocabulary 50,272) with a step that computes nothing. */
  private static final class StandIn extends WrappedModel {
    private final float[] row;

    StandIn(OptModel tiny) {
      super(tiny, true); // it claims to pick where the logits are
      row = new float[tiny.config().vocabSize()];
      Random r = new Random(1);
      for (int i = 0; i < row.length; i++) {
        row[i] = (float) r.nextGaussian() * 3;
      }
    }

    private void reserve(List<OptModel.SeqStep> seqs, KvCache cache) {
      for (OptModel.SeqStep q : seqs) {
        cache.reserve(q.seqId(), cache.length(q.seqId()) + q.newTokens().length);
      }
    }

    @Override
    public float[][] forward(List<OptModel.SeqStep> seqs, KvCache cache) {
      reserve(seqs, cache);
      float[][] out = new float[seqs.size()][];
      for (int i = 0; i < out.length; i++) {
        out[i] = rows(seqs.get(i)); // a GPU's read of the logits allocates fresh rows too
      }
      return out;
    }

    /** The fixed row, once per output row of the sequence (an echo prefill: one per prompt token). */
    private float[] rows(OptModel.SeqStep q) {
      int n = q.allLogits() ? q.newTokens().length : 1;
      float[] out = new float[n * row.length];
      for (int r = 0; r < n; r++) {
        System.arraycopy(row, 0, out, r * row.length, row.length);
      }
      return out;
    }

    @Override
    public int[] greedyRows(List<OptModel.SeqStep> seqs, KvCache cache, double[] logprobs) {
      reserve(seqs, cache);
      int[] tokens = new int[seqs.size()];
      java.util.Arrays.fill(tokens, 100);
      return tokens;
    }

    @Override
    public int[] greedy(List<OptModel.SeqStep> seqs, KvCache cache, double[] logprobs) {
      return greedyRows(seqs, cache, logprobs);
    }

    @Override
    public int[] sample(List<OptModel.SeqStep> seqs, KvCache cache, SamplingRows spec, double[] logprobs) {
      return greedyRows(seqs, cache, logprobs);
    }

    // Steps with logit edits: a GPU applies them where the logits are; here only their host side (building them)
    @Override
    public int[] greedyRows(List<OptModel.SeqStep> seqs, KvCache cache, double[] logprobs,
        io.github.optjava.backend.LogitEdits edits) {
      return greedyRows(seqs, cache, logprobs);
    }

    @Override
    public int[] sample(List<OptModel.SeqStep> seqs, KvCache cache, SamplingRows spec, double[] logprobs,
        io.github.optjava.backend.LogitEdits edits) {
      return greedyRows(seqs, cache, logprobs);
    }

    @Override
    public int[] sample(List<OptModel.SeqStep> seqs, KvCache cache, SamplingRows spec, double[] logprobs,
        io.github.optjava.backend.LogitEdits edits, int k, int[] topIds, double[] topLogprobs) {
      return greedyRows(seqs, cache, logprobs, edits, k, topIds, topLogprobs); // the same k pairs per row back
    }

    @Override
    public int[] greedyRows(List<OptModel.SeqStep> seqs, KvCache cache, double[] logprobs,
        io.github.optjava.backend.LogitEdits edits, int k, int[] topIds, double[] topLogprobs) {
      for (int i = 0; i < k * seqs.size(); i++) { // none for k = 0 (then the arrays may be null) // the top k a GPU would send back (any distinct ids will do)
        topIds[i] = 1000 + i % k;
        topLogprobs[i] = -1 - i % k;
      }
      return greedyRows(seqs, cache, logprobs);
    }

    // A step that brings some sequences' rows: those rows (fresh, as a GPU's read), the others' picks fixed
    @Override
    public Picks pickSome(List<OptModel.SeqStep> seqs, KvCache cache, Picking p) {
      reserve(seqs, cache);
      boolean[] toHost = p.toHost();
      int[][] scoreTokens = p.scoreTokens();
      int scoreTop = p.scoreTop();
      int k = p.k();
      int outRows = 0;
      for (OptModel.SeqStep q : seqs) {
        outRows += q.allLogits() ? q.newTokens().length : 1;
      }
      int extra = p.extra();
      int[] tokens = new int[outRows + extra]; // by output row, then the extra picks
      java.util.Arrays.fill(tokens, outRows, outRows + extra, 100);
      float[][] rows = new float[seqs.size()][];
      double[][] scores = scoreTokens != null ? new double[seqs.size()][] : null;
      int[][] scoreIds = null;
      double[][] scoreLps = null;
      for (int i = 0, r = 0; i < seqs.size(); i++) {
        int count = seqs.get(i).allLogits() ? seqs.get(i).newTokens().length : 1;
        java.util.Arrays.fill(tokens, r, r + count, toHost[i] ? -1 : 100);
        r += count;
        boolean scored = scores != null && scoreTokens[i] != null; // its scores (any values) and last row come
        rows[i] = !toHost[i] ? null : scored ? row.clone() : rows(seqs.get(i));
        if (scored) {
          scores[i] = new double[scoreTokens[i].length];
          java.util.Arrays.fill(scores[i], -3.0);
          if (scoreTop > 0) { // none listed: -1 (the bench's echo requests ask for none)
            scoreIds = scoreIds == null ? new int[seqs.size()][] : scoreIds;
            scoreLps = scoreLps == null ? new double[seqs.size()][] : scoreLps;
            scoreIds[i] = new int[scoreTokens[i].length * scoreTop];
            java.util.Arrays.fill(scoreIds[i], -1);
            scoreLps[i] = new double[scoreIds[i].length];
          }
        }
      }
      int[] topIds = k > 0 ? new int[k * (outRows + extra)] : null;
      double[] topLogprobs = k > 0 ? new double[k * (outRows + extra)] : null;
      for (int i = 0; i < k * (outRows + extra); i++) {
        topIds[i] = 1000 + i % k;
        topLogprobs[i] = -1 - i % k;
      }
      return new Picks(tokens, new double[outRows + extra], topIds, topLogprobs, rows, scores, scoreIds, scoreLps);
    }

    // Beam steps without processors: the 2·beams pairs per beam a GPU would send back (each beam's best tokens of
    // the fixed row, scored with its own beam score)
    private int[] bestIds;
    private float[] bestLogprobs;

    @Override
    public void beamTopK(List<OptModel.SeqStep> seqs, KvCache cache, int[] rows, float[] base, int k, int[] ids,
        float[] scores) {
      reserve(seqs, cache);
      if (bestIds == null || bestIds.length != k) {
        bestIds = new int[k];
        bestLogprobs = new float[k];
        io.github.optjava.backend.RowMath.beamTopK(row, 0, row.length, 0f, k, bestIds, bestLogprobs, 0);
      }
      for (int j = 0; j < rows.length; j++) {
        for (int i = 0; i < k; i++) {
          ids[j * k + i] = bestIds[i];
          scores[j * k + i] = bestLogprobs[i] + base[j];
        }
      }
    }

    boolean typicalThere; // whether it claims typical sampling's draws too (session 23)

    @Override
    public boolean samplesTypicalOnDevice() {
      return typicalThere;
    }
  }

  public static void main(String[] args) {
    int requests = args.length > 0 ? Integer.parseInt(args[0]) : 20;
    int n = 120;
    SamplingParams greedy = SamplingParams.greedy().toBuilder().maxTokens(n).build();
    SamplingParams sampled = SamplingParams.builder().temperature(0.8).topP(0.9).maxTokens(n).build();
    String[] names = {"greedy", "greedy, min_tokens (edits)", "greedy, repetition penalty 1.2 (edits)",
        "greedy, no_repeat_ngram 3 (edits)", "sampled t=0.8 top-p 0.9",
        "sampled t=0.8 top-p 0.9, repetition penalty 1.2 (edits)", "greedy, logprobs 1 (top-k)",
        "greedy, repetition penalty 1.2, logprobs 1 (edits, top-k)", "sampled t=0.8 min-p 0.05",
        "sampled t=0.8 typical 0.9 (host path)", "sampled t=0.8 top-p 0.9, logprobs 1 (top-k)"};
    SamplingParams[] kinds = {greedy, greedy.toBuilder().minTokens(n).build(),
        greedy.toBuilder().repetitionPenalty(1.2).build(), greedy.toBuilder().noRepeatNgramSize(3).build(), sampled,
        sampled.toBuilder().repetitionPenalty(1.2).build(), greedy.toBuilder().logprobs(1).build(),
        greedy.toBuilder().repetitionPenalty(1.2).logprobs(1).build(),
        SamplingParams.builder().temperature(0.8).minP(0.05).maxTokens(n).build(),
        SamplingParams.builder().temperature(0.8).typicalP(0.9).maxTokens(n).build(),
        sampled.toBuilder().logprobs(1).build()};
    try (StandIn model = new StandIn(TinyOpt.model(new CpuOps()))) {
      for (int round = 0; round < 3; round++) { // two rounds warm the JIT; the third is printed
        for (int k = 0; k < kinds.length; k++) {
          try (KvCache cache = model.newCache(64, 4)) {
            Engine engine = new Engine(model, TinyOpt.tokenizer(), cache, 1, 128, 0, false, 0);
            long t0 = System.nanoTime();
            int steps = 0;
            for (int r = 0; r < requests; r++) {
              steps += engine.submit(new int[] {2, 100, 200}, kinds[k], null).join().choices().get(0).tokenIds().size();
            }
            double us = (System.nanoTime() - t0) / 1e3 / steps;
            engine.close();
            if (round == 2) {
              System.out.printf(Locale.ROOT, "%-56s %8.1f µs per step (%d steps)%n", names[k], us, steps);
            }
          }
        }
        beams(model, requests, n, round == 2);
        mixed(model, requests, List.of(greedy, sampled), "greedy + sampled t=0.8 top-p 0.9 (batch 2)", true,
            round == 2);
        List<SamplingParams> withTypical = new java.util.ArrayList<>(java.util.Collections.nCopies(7, sampled));
        withTypical.add(SamplingParams.builder().temperature(0.8).typicalP(0.9).maxTokens(n).build());
        for (boolean partial : new boolean[] {false, true}) {
          mixed(model, requests, withTypical, "7 sampled + typical 0.9 (batch 8, " + (partial ? "typical's row only)"
              : "every row)"), partial, round == 2);
        }
        List<SamplingParams> withEcho = new java.util.ArrayList<>(java.util.Collections.nCopies(7, sampled));
        withEcho.add(greedy.toBuilder().echo(true).maxTokens(4).build());
        for (boolean partial : new boolean[] {false, true}) { // session 23: the echo prefill's step picks the others
          mixed(model, requests, withEcho, "7 sampled + echo, prompt scored (batch 8, " + (partial
              ? "the others picked)" : "every row)"), partial, round == 2);
        }
        model.typicalThere = true; // session 23: the typical request drawn where the logits are
        mixed(model, requests, withTypical.subList(7, 8), "sampled t=0.8 typical 0.9 (drawn where the logits are)",
            true, round == 2);
        mixed(model, requests, withTypical, "7 sampled + typical 0.9 (batch 8, all drawn where the logits are)", true,
            round == 2);
        model.typicalThere = false;
        for (boolean picked : new boolean[] {false, true}) { // session 24: the other completions' first picks
          forks(model, requests, picked, round == 2);
        }
      }
    }
  }

  /**
   * 8 sampled requests of n = 4 (t 0.8, top-p 0.9, 8 tokens each) at once: the 3 other completions of each take
   * their first tokens from the first one's row on the host, or as extra picks where the logits are (session 24).
   * Host time per request (its fork step is the difference: once per request, every other request waiting).
   */
  private static void forks(StandIn model, int requests, boolean picked, boolean print) {
    SamplingParams n4 = SamplingParams.builder().temperature(0.8).topP(0.9).n(4).maxTokens(8).build();
    try (KvCache cache = model.newCache(64 * 32, 4)) {
      Engine engine = new Engine(model, TinyOpt.tokenizer(), cache, 32, 128, 0, false, 0);
      engine.usePickedForks(picked);
      long t0 = System.nanoTime();
      for (int r = 0; r < requests; r++) {
        List<java.util.concurrent.CompletableFuture<io.github.optjava.api.Completion>> all = new java.util.ArrayList<>();
        for (int i = 0; i < 8; i++) {
          all.add(engine.submit(new int[] {2, 100, 200}, n4, null));
        }
        all.forEach(java.util.concurrent.CompletableFuture::join);
      }
      long elapsed = System.nanoTime() - t0;
      engine.close();
      if (print) {
        System.out.printf(Locale.ROOT, "%-56s %8.1f µs per request (%d steps)%n", "8 sampled n=4, 8 tokens ("
            + (picked ? "forks picked where the logits are)" : "forks' first picks on the host)"),
            elapsed / 1e3 / (8.0 * requests), engine.stats().steps());
      }
    }
  }

  /**
   * One request of each kind at once: each step mixes them (session 21: a greedy and a plainly sampled one are both
   * picked where the logits are, where before the step brought both rows to the host; with a typical one, only its
   * row comes, or with {@code partial} off every row). Host time per step.
   */
  private static void mixed(StandIn model, int requests, List<SamplingParams> kinds, String name, boolean partial,
      boolean print) {
    try (KvCache cache = model.newCache(64 * kinds.size(), 4)) {
      Engine engine = new Engine(model, TinyOpt.tokenizer(), cache, kinds.size(), 128, 0, false, 0);
      engine.usePartialPicks(partial);
      long t0 = System.nanoTime();
      for (int r = 0; r < requests; r++) {
        List<java.util.concurrent.CompletableFuture<io.github.optjava.api.Completion>> all = new java.util.ArrayList<>();
        for (SamplingParams kind : kinds) {
          all.add(engine.submit(new int[] {2, 100, 200}, kind, null));
        }
        all.forEach(java.util.concurrent.CompletableFuture::join);
      }
      long elapsed = System.nanoTime() - t0;
      engine.close();
      if (print) {
        long steps = engine.stats().steps();
        System.out.printf(Locale.ROOT, "%-56s %8.1f µs per step (%d steps)%n", name, elapsed / 1e3 / steps, steps);
      }
    }
  }

  /**
   * Beam search with 4 beams, its candidates where the logits are (what a GPU sends back) and from the rows on the
   * host (forced by a processor that changes nothing): host time per step of the search, all beams together.
   */
  private static void beams(StandIn model, int requests, int n, boolean print) {
    LogitsProcessor unchanged = (inputIds, inputLength, promptLength, scores) -> { };
    BeamSearch.Config config = new BeamSearch.Config(4, n, 1.0, false, 1, 2, 1);
    String[] names = {"beam search 4 (candidates where the logits are)", "beam search 4 (rows on the host)"};
    List<List<LogitsProcessor>> processors = List.of(List.of(), List.of(unchanged));
    java.util.concurrent.atomic.AtomicLong ids = new java.util.concurrent.atomic.AtomicLong();
    for (int k = 0; k < names.length; k++) {
      try (KvCache cache = model.newCache(4 * (n / 4 + 2), 4)) { // 4 beams of up to n + 2 tokens
        long t0 = System.nanoTime();
        int steps = 0;
        for (int r = 0; r < requests; r++) {
          steps += BeamSearch.run(model, cache, ids::getAndIncrement, new int[] {2, 100, 200}, config,
              processors.get(k)).get(0).tokens().length;
        }
        double us = (System.nanoTime() - t0) / 1e3 / steps;
        if (print) {
          System.out.printf(Locale.ROOT, "%-56s %8.1f µs per step (%d steps)%n", names[k], us, steps);
        }
      }
    }
  }
}
