package io.github.optjava.engine;

import static io.github.optjava.engine.SameChoices.assertSameChoices;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Choice;
import io.github.optjava.api.Completion;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * The other completions of an {@code n > 1} request take their first tokens from the row of the completion that
 * prefilled their prompt (session 24): on a model that picks where the logits are, as extra picks of that step
 * ({@code CausalLm.pickSome} with extra rows) instead of that row coming to the host. Every completion gets what it
 * gets from the row on the host, bit for bit on the CPU, with processors, log-prob alternatives, min-p and top-k, a
 * one-token prompt and prefix caching (a prompt read from cached blocks feeds one token). (Greedy requests cannot ask
 * for n > 1.)
 */
class EngineForkPicksTest {
  private static final OptTokenizer TOKENIZER = TinyOpt.tokenizer();
  private static final String[] PROMPTS = {"Once upon a time", "a", "The capital of France is"};

  static List<SamplingParams> params() {
    SamplingParams sampled = SamplingParams.builder().temperature(0.8).topP(0.9).seed(5L).n(3).maxTokens(12).build();
    return List.of(sampled,
        sampled.toBuilder().repetitionPenalty(1.2).logprobs(2).n(2).build(),
        SamplingParams.builder().temperature(1.1).minP(0.05).seed(6L).n(2).maxTokens(10).build(),
        SamplingParams.builder().temperature(0.7).topK(20).seed(7L).n(4).maxTokens(8).noRepeatNgramSize(2)
            .minTokens(3).build());
  }

  record Run(List<List<Choice>> choices, CountingModel model, long forked) {}

  /** Every prompt with every setting, twice (the second time its prompt comes from cached blocks). */
  static Run run(CountingModel model, boolean pickedForks) {
    try (model; KvCache cache = model.newCache(256, 4);
        Engine engine = new Engine(model, TOKENIZER, cache, 8, 128, 0, true, 0)) {
      engine.usePickedForks(pickedForks);
      List<List<Choice>> out = new ArrayList<>();
      for (int round = 0; round < 2; round++) {
        List<CompletableFuture<Completion>> futures = new ArrayList<>();
        for (String prompt : PROMPTS) {
          for (SamplingParams p : params()) {
            futures.add(engine.submit(TOKENIZER.encode(prompt), p, null));
          }
        }
        for (CompletableFuture<Completion> f : futures) {
          out.add(f.join().choices());
        }
      }
      return new Run(out, model, engine.forkedPrefills());
    }
  }

  @Test
  void otherCompletionsPickTheirFirstTokensWhereTheLogitsAre() {
    Run host = run(new CountingModel(TinyOpt.model(new CpuOps()), true), false);
    Run picked = run(new CountingModel(TinyOpt.model(new CpuOps()), true), true);
    assertSameChoices(host.choices(), picked.choices(), "forks picked where the logits are");
    assertEquals(0, host.model().forkPicks);
    assertTrue(host.forked() > 0 && picked.forked() == host.forked(), host.forked() + " / " + picked.forked());
    assertEquals(picked.forked(), picked.model().forkPicks, "every forked completion's first token picked there");
    assertEquals(0, picked.model().forwards, "no step brought a row to the host");
    assertTrue(host.model().forwards > 0, "the host path brought the first completions' rows");
  }

  /** Ops whose picks would read every row (a GPU with deviceMixedPicks off): CausalLm's pickSome with extra rows. */
  @Test
  void theDefaultPickSomeGivesTheSame() {
    Run host = run(new CountingModel(TinyOpt.model(new CpuOps()), true), false);
    CpuOps hostPicking = new CpuOps() {
      @Override
      public boolean picksMixedRowsOnDevice() {
        return false;
      }
    };
    Run picked = run(new CountingModel(TinyOpt.model(hostPicking), true), true);
    assertSameChoices(host.choices(), picked.choices(), "forks picked by CausalLm's default");
    assertEquals(picked.forked(), picked.model().forkPicks);
  }
}
