package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.backend.AttentionBatch;
import io.github.optjava.backend.Mat;
import io.github.optjava.backend.Ops;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.engine.BeamSearch.Config;
import io.github.optjava.engine.BeamSearch.Hypothesis;
import io.github.optjava.model.OptModel.SeqStep;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Beam search on a scripted model whose next-token distribution is a table lookup on the generated
 * tokens, small enough to follow HF's algorithm by hand (traces in the comments). The model reads each
 * sequence's history back out of the real paged KV cache (keys one-hot by position, values holding the
 * token, read by attention), so a wrong block copy on a beam fork changes the logits and the result.
 */
class BeamSearchTest {
  private static final int BOS = 0;
  private static final int EOS = 1;
  private static final int A = 2;
  private static final int B = 3;
  private static final int D = 5;
  private static final int VOCAB = 6;
  private static final int C = 4;
  /** Non-zero ids after BOS, so a block that was never copied (zeros) reads back as a different prompt. */
  private static final int[] PROMPT = {BOS, C, B};
  private static final int WIDTH = 16; // KV row width; also the most positions the fake model can read

  private final Ops ops = new CpuOps();
  /** Blocks of 2 tokens, so the prompt spans two blocks and forks copy several. */
  private final KvCache cache = new KvCache(ops.kvStore(1, 64, 2, WIDTH));
  private final ScriptedModel model = new ScriptedModel();
  private final AtomicLong ids = new AtomicLong(7);

  /**
   * Weights of the next token (BOS, EOS, A, B, C, D) after the generated tokens {@code gen}.
   * Log-probs: step 0 EOS -0.916 A -1.050 B -1.609; after A: A -0.511 EOS -1.204; after B: EOS -0.105;
   * after A A: EOS -0.105; anywhere else D about -0.11, with C's weight depending on every generated
   * token and its position, so a history read back wrongly from the cache changes the numbers.
   */
  private static double[] weights(int[] gen) {
    if (gen.length == 0) {
      return new double[] {0, 0.4, 0.35, 0.2, 0.04, 0.01};
    }
    if (Arrays.equals(gen, new int[] {A})) {
      return new double[] {0, 0.3, 0.6, 0.05, 0.03, 0.02};
    }
    if (Arrays.equals(gen, new int[] {B})) {
      return new double[] {0, 0.9, 0.05, 0.03, 0.015, 0.005};
    }
    if (Arrays.equals(gen, new int[] {A, A})) {
      return new double[] {0, 0.9, 0.06, 0.02, 0.015, 0.005};
    }
    int mix = 0;
    for (int i = 0; i < gen.length; i++) {
      mix += (i + 1) * gen[i];
    }
    return new double[] {0, 0.04, 0.03, 0.02, 0.01 * (1 + mix % 5), 0.9};
  }

  /*
   * The trace both stopping rules share (num_beams 2, length_penalty 1):
   * step 0: candidates EOS -0.916 (rank 0: hypothesis [EOS] -0.916), A -1.050, B -1.609 -> beams A, B.
   * step 1: A A -1.561, B EOS -1.715 (rank 1: hypothesis [B EOS] -0.857), A EOS -2.254 (rank 2: skipped),
   *         A B -4.046 -> beams A A, A B. Two hypotheses: early_stopping=True stops here.
   *         early_stopping=False: best candidate -1.561 / 2 = -0.780 beats the worst kept -0.916 -> go on.
   * step 2: A A EOS -1.666 (rank 0: hypothesis [A A EOS] -0.555 replaces [EOS]), A B D -4.180, A A A -4.374.
   *         -1.666 / 3 = -0.555 beats the worst kept -0.857 -> go on.
   * step 3: A B D D -4.315: -4.315 / 4 = -1.079 cannot beat -0.857 -> done.
   */

  @Test
  void earlyStoppingTrueStopsAtNumBeamsFinishedHypotheses() {
    List<Hypothesis> got = run(new Config(2, 5, 1.0, true, 2, EOS, 1));
    assertHypothesis(got.get(0), new int[] {B, EOS}, 1.0, true);
    assertHypothesis(got.get(1), new int[] {EOS}, 1.0, true);
    assertEquals(List.of(1, 2), model.batchSizes, "prefill, then one batched step of both beams");
  }

  @Test
  void earlyStoppingFalseSearchesOnWhileALiveBeamCanStillWin() {
    List<Hypothesis> got = run(new Config(2, 5, 1.0, false, 2, EOS, 1));
    assertHypothesis(got.get(0), new int[] {A, A, EOS}, 1.0, true);
    assertHypothesis(got.get(1), new int[] {B, EOS}, 1.0, true);
    assertEquals(List.of(1, 2, 2, 2), model.batchSizes, "stops after step 3, before maxNewTokens");
  }

  /** Step 0 and 1 as above; at maxNewTokens the live beams join with their own length as denominator. */
  @Test
  void liveBeamsCompeteAtMaxNewTokens() {
    List<Hypothesis> got = run(new Config(2, 2, 1.0, false, 2, EOS, 1));
    assertHypothesis(got.get(0), new int[] {A, A}, 1.0, false); // -1.561 / 2 = -0.780
    assertHypothesis(got.get(1), new int[] {B, EOS}, 1.0, true); // -0.857; [EOS] -0.916 was dropped
  }

  /**
   * Same stop (step 1, early stopping); the exponent alone decides between [EOS] and [B EOS]. With 2.0
   * the rank rule matters too: A EOS (rank 2) would score -2.254 / 4 = -0.563 and displace [EOS].
   */
  @ParameterizedTest
  @CsvSource({"0.0, false", "1.0, true", "2.0, true", "-1.0, false"})
  void lengthPenaltyIsTheExponentOfTheGeneratedLength(double lengthPenalty, boolean longerWins) {
    List<Hypothesis> got = run(new Config(2, 5, lengthPenalty, true, 2, EOS, 1));
    int[] longer = {B, EOS};
    int[] shorter = {EOS};
    assertHypothesis(got.get(0), longerWins ? longer : shorter, lengthPenalty, true);
    assertHypothesis(got.get(1), longerWins ? shorter : longer, lengthPenalty, true);
  }

  /** HF drops the earliest-added of equal worst scores, and returns the latest-added of equals first. */
  @Test
  void hypothesisTiesFollowHf() {
    BeamHypotheses hyps = new BeamHypotheses(2, 1.0, true);
    hyps.add(new int[] {A}, -1f, 1, true);
    hyps.add(new int[] {B}, -1f, 1, true);
    assertArrayEquals(new int[] {B}, hyps.best(1).get(0).tokens());
    hyps.add(new int[] {C}, -0.5f, 1, true); // drops [A], not [B]
    List<Hypothesis> best = hyps.best(2);
    assertArrayEquals(new int[] {C}, best.get(0).tokens());
    assertArrayEquals(new int[] {B}, best.get(1).tokens());
    assertTrue(hyps.isDone(0f, 1), "early stopping: done once numBeams hypotheses exist");
  }

  @Test
  void returnsOnlyNumReturnSequences() {
    List<Hypothesis> got = run(new Config(2, 5, 1.0, false, 1, EOS, 1));
    assertEquals(1, got.size());
    assertArrayEquals(new int[] {A, A, EOS}, got.get(0).tokens());
  }

  /** The processors see each beam's own input ids, and log-probabilities (what HF passes them). */
  @Test
  void processorsGetEachBeamsHistoryAndLogProbs() {
    List<Integer> seenLengths = new ArrayList<>();
    LogitsProcessor check = (inputIds, inputLength, promptLength, scores) -> {
      assertEquals(PROMPT.length, promptLength);
      int[] gen = Arrays.copyOfRange(inputIds, promptLength, inputLength);
      double[] w = weights(gen);
      double total = Arrays.stream(w).sum();
      for (int t = 1; t < VOCAB; t++) {
        assertEquals(Math.log(w[t] / total), scores[t], 1e-6, "log-prob of " + t + " after " + Arrays.toString(gen));
      }
      seenLengths.add(inputLength);
    };
    run(new Config(2, 5, 1.0, false, 2, EOS, 1), check);
    // One call at step 0 (both beams share the prompt's row), then one per beam per step.
    assertEquals(List.of(3, 4, 4, 5, 5, 6, 6), seenLengths);
  }

  /** A processor banning EOS (as min-length does) leaves only unfinished hypotheses of full length. */
  @Test
  void processorsShapeTheSearch() {
    // Banned EOS is not renormalised away (HF neither): the other log-probs stay as they were.
    // step 1: A A -1.561, A B -4.046; step 2: A B D -4.180, A A A -4.374; step 3: A B D D -4.315, A A A D -4.499.
    List<Hypothesis> got = run(new Config(2, 4, 1.0, true, 2, EOS, 1), new MinLengthProcessor(100, EOS));
    assertHypothesis(got.get(0), new int[] {A, B, D, D}, 1.0, false);
    assertHypothesis(got.get(1), new int[] {A, A, A, D}, 1.0, false);
  }

  /**
   * Without processors the candidates come from each beam's best 2 × numBeams (the op a GPU runs where the logits
   * are); a processor that changes nothing sends the rows to the host instead. Both give the same hypotheses, bit
   * for bit: on this table and on one full of ties (equal tokens within a row, equal beams across rows), with BOS at
   * -inf, and with 4 beams, whose 8 candidates per beam are more than the vocabulary of 6.
   */
  @ParameterizedTest
  @CsvSource({"2, 5, true, false, false", "2, 5, false, false, false", "3, 6, false, false, false",
      "4, 6, false, false, false", "2, 6, false, true, false", "3, 6, true, true, false", "4, 6, false, true, false",
      "2, 6, false, false, true", "3, 6, true, false, true", "4, 6, false, true, true", "3, 8, false, true, true"})
  void bothCandidatePathsGiveTheSameBits(int numBeams, int maxNewTokens, boolean earlyStopping, boolean tied,
      boolean processed) {
    if (tied) {
      model.table = BeamSearchTest::tiedWeights;
    }
    // processors that name their tokens go through the op as edits on the log-probabilities (session 20)
    List<LogitsProcessor> sparse = processed ? List.of(new RepetitionPenaltyProcessor(1.4),
        new NoRepeatNgramProcessor(2), new MinNewTokensProcessor(2, EOS)) : List.of();
    Config config = new Config(numBeams, maxNewTokens, 1.0, earlyStopping, numBeams, EOS, 1);
    List<Hypothesis> onDevice = BeamSearch.run(model, cache, ids::getAndIncrement, PROMPT, config, sparse);
    int steps = model.batchSizes.size();
    assertEquals(steps, model.beamTopKCalls, "every step's candidates from the op");
    LogitsProcessor unchanged = (inputIds, inputLength, promptLength, scores) -> { };
    List<LogitsProcessor> withHostOnly = new ArrayList<>(sparse);
    withHostOnly.add(unchanged);
    List<Hypothesis> onHost = BeamSearch.run(model, cache, ids::getAndIncrement, PROMPT, config, withHostOnly);
    assertEquals(steps, model.beamTopKCalls, "with a processor that names no tokens, no op");
    assertEquals(onHost, onDevice);
  }

  /** A model whose logits are NaN fails the search with a message, and every block comes back. */
  @Test
  void nanLogitsFailClearly() {
    int free = cache.freeBlocks();
    model.table = gen -> new double[] {Double.NaN, 1, 1, 1, 1, 1};
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> run(new Config(2, 5, 1.0, true, 2,
        EOS, 1)));
    assertTrue(e.getMessage().contains("NaN"), e.getMessage());
    assertEquals(free, cache.freeBlocks());
  }

  /** Ties everywhere: the weights depend only on the generated length, so equal beams get equal rows. */
  private static double[] tiedWeights(int[] gen) {
    return gen.length % 2 == 0 ? new double[] {0, 0.2, 0.3, 0.3, 0.1, 0.1} : new double[] {0, 0.1, 0.25, 0.25, 0.2, 0.2};
  }

  @Test
  void everyBlockIsReleased() {
    int free = cache.freeBlocks();
    run(new Config(2, 5, 1.0, false, 2, EOS, 1));
    assertEquals(free, cache.freeBlocks());
    run(new Config(3, 6, 1.0, true, 3, EOS, 1));
    assertEquals(free, cache.freeBlocks());
  }

  @Test
  void releasesEverythingWhenTheModelFails() {
    int free = cache.freeBlocks();
    model.failOnCall = 3;
    assertThrows(IllegalStateException.class, () -> run(new Config(2, 5, 1.0, false, 2, EOS, 1)));
    assertEquals(free, cache.freeBlocks());
  }

  @Test
  void rejectsAnIdSupplierThatRepeatsIds() {
    int free = cache.freeBlocks();
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> BeamSearch.run(model, cache,
        () -> 42L, PROMPT, new Config(2, 5, 1.0, true, 2, EOS, 1), List.of()));
    assertTrue(e.getMessage().contains("already in use"), e.getMessage());
    assertEquals(free, cache.freeBlocks());
  }

  @Test
  void refusesUpFrontWhenTheCacheCannotHoldEveryBeam() {
    // 3 prompt + 5 new - 1 fed back = 7 tokens: 4 blocks of 2 per beam, 8 for 2 beams.
    KvCache small = new KvCache(ops.kvStore(1, 7, 2, WIDTH));
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> BeamSearch.run(model, small,
        ids::getAndIncrement, PROMPT, new Config(2, 5, 1.0, true, 2, EOS, 1), List.of()));
    assertTrue(e.getMessage().contains("needs 8 free KV-cache blocks"), e.getMessage());
    assertEquals(7, small.freeBlocks());
    assertEquals(List.of(), model.batchSizes, "nothing ran");
    KvCache enough = new KvCache(ops.kvStore(1, 8, 2, WIDTH));
    assertEquals(2, BeamSearch.run(model, enough, ids::getAndIncrement, PROMPT,
        new Config(2, 5, 1.0, true, 2, EOS, 1), List.of()).size());
  }

  @Test
  void rejectsInputsTheModelCannotTake() {
    Config c = new Config(2, 5, 1.0, true, 2, EOS, 1);
    assertThrows(IllegalArgumentException.class, () -> BeamSearch.run(model, cache, ids::getAndIncrement,
        new int[0], c, List.of()));
    assertThrows(IllegalArgumentException.class, () -> BeamSearch.run(model, cache, ids::getAndIncrement,
        new int[] {VOCAB}, c, List.of()));
    assertThrows(IllegalArgumentException.class, () -> BeamSearch.run(model, cache, ids::getAndIncrement,
        PROMPT, new Config(2, WIDTH, 1.0, true, 2, EOS, 1), List.of()), "3 + 16 - 1 positions > 16");
    assertThrows(IllegalArgumentException.class, () -> BeamSearch.run(model, cache, ids::getAndIncrement,
        PROMPT, new Config(2, 5, 1.0, true, 2, VOCAB, 1), List.of()), "EOS outside the vocabulary");
  }

  @Test
  void configRejectsSettingsHfRejects() {
    assertThrows(IllegalArgumentException.class, () -> new Config(1, 5, 1.0, true, 1, EOS, 1));
    assertThrows(IllegalArgumentException.class, () -> new Config(2, 0, 1.0, true, 1, EOS, 1));
    assertThrows(IllegalArgumentException.class, () -> new Config(2, 5, Double.NaN, true, 1, EOS, 1));
    assertThrows(IllegalArgumentException.class, () -> new Config(2, 5, 1.0, true, 3, EOS, 1));
    assertThrows(IllegalArgumentException.class, () -> new Config(2, 5, 1.0, true, 0, EOS, 1));
    assertThrows(IllegalArgumentException.class, () -> new Config(2, 5, 1.0, true, 1, -1, 1));
  }

  @Test
  void hfSequencesPadShorterRows() {
    List<Hypothesis> hyps = List.of(new Hypothesis(new int[] {A, EOS}, -1, true),
        new Hypothesis(new int[] {A, A, A}, -2, false));
    assertArrayEquals(new int[][] {{BOS, A, EOS, 9}, {BOS, A, A, A}},
        BeamSearch.hfSequences(new int[] {BOS}, hyps, 9));
  }

  private List<Hypothesis> run(Config config, LogitsProcessor... processors) {
    return BeamSearch.run(model, cache, ids::getAndIncrement, PROMPT, config, List.of(processors));
  }

  /** Checks tokens, finished flag and the score HF would give: sum of log-probs / length ** lp. */
  private static void assertHypothesis(Hypothesis h, int[] tokens, double lengthPenalty, boolean finished) {
    assertArrayEquals(tokens, h.tokens(), "tokens of " + h);
    assertEquals(finished, h.finished(), "finished flag of " + h);
    double sum = 0;
    for (int i = 0; i < tokens.length; i++) {
      double[] w = weights(Arrays.copyOf(tokens, i));
      sum += Math.log(w[tokens[i]] / Arrays.stream(w).sum());
    }
    assertEquals(sum / Math.pow(tokens.length, lengthPenalty), h.score(), 1e-5, "score of " + h);
  }

  /**
   * The scripted model: appends each new token to the KV cache (key: one-hot of its position; value:
   * the token id), reads the whole history back through attention (query p selects position p), and
   * answers {@code log(weights(generated tokens))}.
   */
  private final class ScriptedModel implements BeamSearch.StepModel {
    final List<Integer> batchSizes = new ArrayList<>();
    int failOnCall = -1;
    int beamTopKCalls;
    java.util.function.Function<int[], double[]> table = BeamSearchTest::weights;

    @Override
    public void beamTopK(List<SeqStep> steps, KvCache kv, int[] rows, float[] base, int k, int[] ids,
        float[] scores, io.github.optjava.backend.LogitEdits edits) {
      beamTopKCalls++;
      BeamSearch.StepModel.super.beamTopK(steps, kv, rows, base, k, ids, scores, edits);
    }

    @Override
    public float[][] forward(List<SeqStep> steps, KvCache kv) {
      batchSizes.add(steps.size());
      if (batchSizes.size() == failOnCall) {
        throw new IllegalStateException("scripted failure");
      }
      float[][] out = new float[steps.size()][];
      for (int s = 0; s < out.length; s++) {
        int[] history = appendAndReadBack(steps.get(s), kv);
        assertArrayEquals(PROMPT, Arrays.copyOf(history, PROMPT.length), "prompt read back from the KV cache");
        double[] w = table.apply(Arrays.copyOfRange(history, PROMPT.length, history.length));
        out[s] = new float[VOCAB];
        for (int t = 0; t < VOCAB; t++) {
          out[s][t] = (float) Math.log(w[t]);
        }
      }
      return out;
    }

    private int[] appendAndReadBack(SeqStep step, KvCache kv) {
      int past = kv.length(step.seqId());
      int n = step.newTokens().length;
      int len = past + n;
      int[] table = kv.reserve(step.seqId(), len);
      AttentionBatch all = new AttentionBatch(new int[] {0}, new int[] {len}, new int[] {len}, new int[][] {table});
      float[] k = new float[n * WIDTH];
      float[] v = new float[n * WIDTH];
      int[] slots = new int[n];
      for (int i = 0; i < n; i++) {
        k[i * WIDTH + past + i] = 1;
        v[i * WIDTH] = step.newTokens()[i];
        slots[i] = all.slot(0, past + i, kv.blockSize());
      }
      float[] q = new float[len * WIDTH];
      for (int p = 0; p < len; p++) {
        q[p * WIDTH + p] = 100; // softmax weight e^-100 on every other position: exact after rounding
      }
      try (Mat km = ops.alloc(n, WIDTH); Mat vm = ops.alloc(n, WIDTH); Mat qm = ops.alloc(len, WIDTH);
          Mat o = ops.alloc(len, WIDTH)) {
        ops.write(km, k);
        ops.write(vm, v);
        ops.kvAppend(kv.store(), 0, km, vm, slots);
        ops.write(qm, q);
        ops.attention(o, qm, kv.store(), 0, all, 1, 1f);
        float[] read = ops.read(o);
        int[] history = new int[len];
        for (int p = 0; p < len; p++) {
          history[p] = Math.round(read[p * WIDTH]);
        }
        return history;
      }
    }

    @Override
    public void copyBlocks(KvCache kv, int[] src, int[] dst) {
      ops.kvCopyBlocks(kv.store(), src, dst);
    }

    @Override
    public int vocabSize() {
      return VOCAB;
    }

    @Override
    public int maxPositions() {
      return WIDTH;
    }
  }
}
