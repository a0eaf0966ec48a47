package io.github.optjava.engine;

import static io.github.optjava.engine.SameChoices.assertSameChoices;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Choice;
import io.github.optjava.api.Completion;
import io.github.optjava.api.GeneratorStats;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * Prompt lookup decoding: decoding sequences feed draft tokens found earlier in themselves and the step checks
 * them. Every request must get exactly what it gets without drafts (on {@link CpuOps}, whose rows do not depend
 * on the other rows of a step: bit for bit), whatever its sampling, processors, log-probs and stop rules, in fewer
 * steps where drafts are accepted.
 */
class EngineSpeculativeTest {
  private static final OptTokenizer TOKENIZER = TinyOpt.tokenizer();
  private static final String[] PROMPTS = {
      "the cat sat on the mat. the cat sat on the mat. the cat sat on the",
      "1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2,",
      "Once upon a time",
      "def add(a, b): return a + b\ndef sub(a, b): return a - b\ndef mul(a, b):",
      "It was the best of times, it was the worst of times, it was"};

  /** One request per prompt and setting: what the drafts must not change. */
  private static List<SamplingParams> params() {
    return List.of(
        SamplingParams.greedy().toBuilder().maxTokens(40).minTokens(40).build(),
        SamplingParams.builder().temperature(0.8).topK(40).topP(0.9).seed(3L).maxTokens(24).build(),
        SamplingParams.greedy().toBuilder().maxTokens(30).logprobs(2).build(),
        SamplingParams.greedy().toBuilder().maxTokens(30).repetitionPenalty(1.3).noRepeatNgramSize(4).build(),
        SamplingParams.greedy().toBuilder().maxTokens(30).stop(List.of("mat", "3")).build(),
        SamplingParams.greedy().toBuilder().maxTokens(12).echo(true).logprobs(1).build(),
        SamplingParams.builder().temperature(0.9).seed(11L).n(2).maxTokens(20).build());
  }

  record Run(List<List<Choice>> choices, GeneratorStats stats) {}

  private static final java.util.Map<Boolean, Run> PLAIN = new java.util.concurrent.ConcurrentHashMap<>();

  /** Without drafts (what the drafted runs must equal), computed once per sampling path. */
  private static Run plain(boolean samplesOnDevice) {
    return PLAIN.computeIfAbsent(samplesOnDevice, d -> run(d, 512, 0, false, 0));
  }

  private static Run run(boolean samplesOnDevice, int blocks, int maxStepTokens, boolean prefixCaching,
      int promptLookup) {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), samplesOnDevice);
    try (Engine engine = new Engine(model, TOKENIZER, model.newCache(blocks, 4), 6, 128, maxStepTokens,
        prefixCaching, promptLookup)) {
      List<CompletableFuture<Completion>> futures = new ArrayList<>();
      for (String prompt : PROMPTS) {
        for (SamplingParams p : params()) {
          futures.add(engine.submit(TOKENIZER.encode(prompt), p, null));
        }
      }
      List<List<Choice>> out = new ArrayList<>();
      for (CompletableFuture<Completion> f : futures) {
        out.add(f.join().choices());
      }
      engine.close(); // the loop publishes its last step's figures as it ends
      return new Run(out, engine.stats());
    }
  }

  @Test
  void draftsChangeHowManyStepsNeverWhichTokens() {
    for (boolean samplesOnDevice : new boolean[] {false, true}) {
      String what = samplesOnDevice ? "a model that samples where the logits are" : "host sampling";
      Run plain = plain(samplesOnDevice);
      assertEquals(0, plain.stats().draftTokens());
      Run drafted = run(samplesOnDevice, 512, 0, false, 4);
      assertSameChoices(plain.choices(), drafted.choices(), what + ", 4 drafts");
      GeneratorStats s = drafted.stats();
      assertTrue(s.acceptedDraftTokens() > 0 && s.acceptedDraftTokens() <= s.draftTokens(), s.toString());
      assertTrue(s.steps() < plain.stats().steps(), "accepted drafts save steps: " + s.steps() + " vs "
          + plain.stats().steps());
    }
  }

  /** Requests whose draft rows a model that samples where the logits are picks there (session 24). */
  static List<SamplingParams> pickedDraftParams() {
    SamplingParams sampled = SamplingParams.builder().temperature(0.8).topP(0.95).seed(1L).maxTokens(30).build();
    return List.of(sampled,
        sampled.toBuilder().temperature(0.5).repetitionPenalty(1.1).logprobs(2).build(),
        SamplingParams.greedy().toBuilder().maxTokens(30).repetitionPenalty(1.2).noRepeatNgramSize(5).logprobs(1)
            .build());
  }

  /** One request on {@code model} (which the call closes) with {@code lookup} drafts per step. */
  static Run pickedDraftRun(CountingModel model, SamplingParams p, int lookup) {
    return pickedDraftRun(model, p, lookup, true);
  }

  /** As {@link #pickedDraftRun(CountingModel, SamplingParams, int)}, draft rows picked there or not. */
  static Run pickedDraftRun(CountingModel model, SamplingParams p, int lookup, boolean pickedDrafts) {
    try (model; KvCache cache = model.newCache(64, 4);
        Engine engine = new Engine(model, TOKENIZER, cache, 4, 128, 0, false, lookup)) {
      engine.usePickedDrafts(pickedDrafts);
      List<Choice> got = engine.submit(TOKENIZER.encode(PROMPTS[0]), p, null).join().choices();
      engine.close();
      return new Run(List.of(got), engine.stats());
    }
  }

  /**
   * On a model that samples where the logits are, a sampled sequence checks its drafts there too, and so does a
   * greedy one with processors: every row is picked where the logits are (none comes to the host), each with the
   * uniform number and edits of the plain step it stands for, and the tokens are those of the request without drafts.
   */
  @Test
  void draftRowsArePickedWhereTheLogitsAre() {
    for (boolean defaultPicks : new boolean[] {false, true}) {
      for (SamplingParams p : pickedDraftParams()) {
        // defaultPicks: ops that would read every row to pick (a GPU with deviceMixedPicks off): CausalLm's default
        // pickSome, by output row on the host
        Run plain = pickedDraftRun(new CountingModel(TinyOpt.model(new CpuOps()), true), p, 0);
        CountingModel model = new CountingModel(TinyOpt.model(defaultPicks ? new HostPickingCpuOps() : new CpuOps()),
            true);
        Run drafted = pickedDraftRun(model, p, 4);
        String what = p + " with drafts" + (defaultPicks ? ", CausalLm's pickSome" : "");
        assertEquals(0, model.forwards, what + ": every row picked where the logits are");
        assertSameChoices(plain.choices(), drafted.choices(), what);
        GeneratorStats s = drafted.stats();
        assertTrue(s.draftTokens() > 0 && s.acceptedDraftTokens() > 0, "a repeating prompt accepts some drafts: " + s);
        assertTrue(p.isGreedy() || model.pickedDraftRows > s.draftTokens(), "rows " + model.pickedDraftRows);
      }
    }
  }

  /** With {@link Engine#usePickedDrafts} off: as before session 24, the same tokens, no drafts for a sampled one. */
  @Test
  void withPickedDraftsOffASampledSequenceGetsNoDrafts() {
    for (SamplingParams p : pickedDraftParams()) {
      Run plain = pickedDraftRun(new CountingModel(TinyOpt.model(new CpuOps()), true), p, 0);
      CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), true);
      Run off = pickedDraftRun(model, p, 4, false);
      assertSameChoices(plain.choices(), off.choices(), p + ", picked drafts off");
      assertEquals(0, model.pickedDraftRows, p.toString());
      if (p.isGreedy()) { // drafts, their rows on the host
        assertTrue(off.stats().draftTokens() > 0 && model.forwards > 0, off.stats() + ", forwards " + model.forwards);
      } else {
        assertEquals(0, off.stats().draftTokens(), p.toString());
      }
    }
  }

  /** CpuOps whose picks would read every row ({@link CpuOps#picksMixedRowsOnDevice} false): OptModel falls back to
   * CausalLm's pickSome. */
  private static final class HostPickingCpuOps extends CpuOps {
    @Override
    public boolean picksMixedRowsOnDevice() {
      return false;
    }
  }

  @Test
  void draftsWithABudgetPrefixCachingAndPreemption() {
    for (boolean samplesOnDevice : new boolean[] {false, true}) {
      Run plain = plain(samplesOnDevice);
      // a budget leaves drafts what decodes and prefills do not use; 32 blocks of 4 preempt (and drop drafts)
      Run busy = run(samplesOnDevice, 32, 12, true, 3);
      String what = "budget 12, 32 blocks, prefix caching, 3 drafts" + (samplesOnDevice ? ", picked where the logits "
          + "are" : "");
      assertSameChoices(plain.choices(), busy.choices(), what);
      assertTrue(busy.stats().preemptions() > 0, "32 blocks cannot hold the batch");
      assertTrue(busy.stats().acceptedDraftTokens() > 0, busy.stats().toString());
    }
  }
}
