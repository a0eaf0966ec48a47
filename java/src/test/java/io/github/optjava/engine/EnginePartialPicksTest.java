package io.github.optjava.engine;

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
 * A step in which some sequences need their rows on the host (typical sampling, a fork for n > 1, an echo prefill
 * with alternatives, draft tokens) picks for the others where the logits are and brings only those rows
 * ({@link io.github.optjava.model.CausalLm#pickSome}, session 21). Every request gets, bit for bit, what it gets
 * when such steps bring every row (on {@link CpuOps} a row does not depend on the others of its step).
 */
class EnginePartialPicksTest {
  private static final OptTokenizer TOKENIZER = TinyOpt.tokenizer();

  static final String[] PROMPTS = {"Once upon a time", "Hello world", "The capital of France is",
      "the cat sat on the mat. the cat sat on the mat. the cat sat on the", "A B C D", "one two three", "x y z",
      "It was the best of times"};

  /** Host-path requests (typical, n = 2, echo with alternatives) among ones the model picks for. */
  static List<SamplingParams> params() {
    SamplingParams greedy = SamplingParams.greedy().toBuilder().maxTokens(16).build();
    return List.of(
        SamplingParams.builder().temperature(0.8).typicalP(0.9).seed(1L).maxTokens(20).build(),
        greedy,
        greedy.toBuilder().repetitionPenalty(1.3).logprobs(2).maxTokens(12).build(),
        SamplingParams.builder().temperature(0.9).topK(40).seed(2L).maxTokens(18).build(),
        SamplingParams.builder().temperature(0.9).seed(3L).n(2).maxTokens(10).build(),
        greedy.toBuilder().echo(true).logprobs(1).maxTokens(6).build(),
        // right after the echo prefill's rows, in its step (the first 8 sequences, n = 2 counting twice): its edits
        // must land on its own row (a bias of 50 picks token 30000 when they do, from the first token on)
        greedy.toBuilder().logitBias(java.util.Map.of(30000, 50.0)).noRepeatNgramSize(2).maxTokens(22).build(),
        SamplingParams.builder().temperature(1.1).minP(0.05).logprobs(3).seed(4L).maxTokens(14).build());
  }

  /**
   * {@link #params()} with the echo request scored where the logits are (no alternatives: its prompt's log-probs only,
   * session 23): its prefill step picks for the others and scores it in one step, instead of bringing every row.
   */
  static List<SamplingParams> paramsWithScoredEcho() {
    List<SamplingParams> params = new ArrayList<>(params());
    params.set(5, SamplingParams.greedy().toBuilder().echo(true).maxTokens(6).build());
    return params;
  }

  record Run(List<List<Choice>> choices, CountingModel model) {}

  private static Run run(boolean partialPicks, int promptLookup, List<SamplingParams> params) {
    return run(new CountingModel(TinyOpt.model(new CpuOps()), true), partialPicks, promptLookup, params);
  }

  /** {@link #PROMPTS} with {@link #params()}, all submitted before the first step, on {@code model}. */
  static Run run(CountingModel model, boolean partialPicks, int promptLookup) {
    return run(model, partialPicks, promptLookup, params());
  }

  /** {@link #PROMPTS} with {@code params}, all submitted before the first step, on {@code model}. */
  static Run run(CountingModel model, boolean partialPicks, int promptLookup, List<SamplingParams> params) {
    try (model; KvCache cache = model.newCache(256, 4); // the engine owns neither (on a GPU: device memory)
        Engine engine = new Engine(model, TOKENIZER, cache, 8, 128, 0, false, promptLookup)) {
      engine.usePartialPicks(partialPicks);
      // A one-token request's step holds the engine until every request is submitted: the next step admits them all,
      // so every run has the same steps (on a GPU a row's logits depend on the rows it is computed with).
      java.util.concurrent.CountDownLatch entered = new java.util.concurrent.CountDownLatch(1);
      java.util.concurrent.CountDownLatch submitted = new java.util.concurrent.CountDownLatch(1);
      model.beforeStep = () -> {
        if (entered.getCount() > 0) {
          entered.countDown();
          try {
            submitted.await();
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
        }
      };
      CompletableFuture<Completion> gate = engine.submit(TOKENIZER.encode("gate"),
          SamplingParams.greedy().toBuilder().maxTokens(1).build(), null);
      try {
        entered.await();
      } catch (InterruptedException e) {
        throw new IllegalStateException(e);
      }
      List<CompletableFuture<Completion>> futures = new ArrayList<>();
      for (int i = 0; i < PROMPTS.length; i++) {
        futures.add(engine.submit(TOKENIZER.encode(PROMPTS[i]), params.get(i), null));
      }
      submitted.countDown();
      gate.join();
      List<List<Choice>> out = new ArrayList<>();
      for (CompletableFuture<Completion> f : futures) {
        out.add(f.join().choices());
      }
      return new Run(out, model);
    }
  }

  @Test
  void onlyTheRowsTheHostNeedsComeAndEveryRequestGetsWhatItGetsWithAllRows() {
    for (int lookup : new int[] {0, 3}) {
      compare(run(false, lookup, params()), run(true, lookup, params()), lookup);
    }
  }

  /**
   * An echo prefill scored where the logits are (session 23): its step scores it and picks for the others where the
   * logits are (one call of the model, its last row and scores brought back), where it used to bring every
   * sequence's rows; every request gets what it gets with every row brought.
   */
  @Test
  void anEchoPrefillScoredWhereTheLogitsAreSharesItsStepWithPicks() {
    Run all = run(false, 0, paramsWithScoredEcho());
    Run partial = run(true, 0, paramsWithScoredEcho());
    assertTrue(partial.model().scoredPartialSteps >= 1, "steps that scored the echo and picked for the others: "
        + partial.model().scoredPartialSteps);
    assertEquals(0, all.model().scoredPartialSteps);
    compare(all, partial, 0);
    assertTrue(partial.choices().get(5).get(0).logprobs().size() > PROMPTS[5].split(" ").length,
        "the echo's prompt log-probs came: " + partial.choices().get(5).get(0).logprobs());
  }

  /**
   * An echo prefill with log-prob alternatives (session 24): on a model that picks where the logits are, its prompt's
   * scores and alternatives are listed there too ({@code Ops.tokenLogprobs} with k), in the step that picks for the
   * others, where its rows used to come to the host; its prompt's entries are those the host computes from the rows
   * (a model that does not sample on the device), bit for bit on the CPU.
   */
  @Test
  void anEchoPrefillWithAlternativesIsScoredWhereTheLogitsAre() {
    List<SamplingParams> params = new ArrayList<>(params());
    params.set(5, SamplingParams.greedy().toBuilder().echo(true).logprobs(3).maxTokens(6).build());
    Run host = run(new CountingModel(TinyOpt.model(new CpuOps()), false), true, 0, params);
    Run device = run(new CountingModel(TinyOpt.model(new CpuOps()), true), true, 0, params);
    assertEquals(0, host.model().scoredAlternatives);
    assertTrue(device.model().scoredAlternatives >= 1, "steps that listed the echo's alternatives where the logits "
        + "are: " + device.model().scoredAlternatives);
    int promptTokens = TOKENIZER.encode(PROMPTS[5]).length;
    List<io.github.optjava.api.TokenLogprob> want = host.choices().get(5).get(0).logprobs();
    List<io.github.optjava.api.TokenLogprob> got = device.choices().get(5).get(0).logprobs();
    assertTrue(want.size() > promptTokens && want.get(promptTokens - 1).top().size() == 3, want.toString());
    assertEquals(want.subList(0, promptTokens), got.subList(0, promptTokens), "the prompt's entries");
    assertEquals(want, got, "and the greedy tokens after it (their alternatives listed where the logits are)");
  }

  /**
   * Three echo prefills in one step with different log-prob counts (3, 1, none; found missing by session 24's review):
   * the step lists the most any of them asks (3) and each takes its own from that stride, as the host computes them.
   */
  @Test
  void echoPrefillsWithDifferentAlternativeCountsShareAStep() {
    List<SamplingParams> params = new ArrayList<>(params());
    params.set(5, SamplingParams.greedy().toBuilder().echo(true).logprobs(3).maxTokens(6).build());
    params.set(3, SamplingParams.greedy().toBuilder().echo(true).logprobs(1).maxTokens(5).build());
    params.set(2, SamplingParams.greedy().toBuilder().echo(true).maxTokens(4).build());
    Run host = run(new CountingModel(TinyOpt.model(new CpuOps()), false), true, 0, params);
    Run device = run(new CountingModel(TinyOpt.model(new CpuOps()), true), true, 0, params);
    assertEquals(3, device.model().maxScoredInStep, "the three echo prefills scored in one step");
    assertEquals(3, device.model().maxScoreTop);
    for (int i : new int[] {3, 2, 5}) { // prompts of more than 2 tokens: rows past the first show a wrong stride
      List<io.github.optjava.api.TokenLogprob> want = host.choices().get(i).get(0).logprobs();
      List<io.github.optjava.api.TokenLogprob> got = device.choices().get(i).get(0).logprobs();
      int promptTokens = TOKENIZER.encode(PROMPTS[i]).length;
      assertTrue(promptTokens > 2, PROMPTS[i]);
      int k = i == 5 ? 3 : i == 3 ? 1 : 0;
      assertEquals(k, want.get(promptTokens - 1).top().size(), want.toString());
      assertEquals(want, got, "request " + i);
    }
  }

  private static void compare(Run all, Run partial, int lookup) {
    assertEquals(0, all.model().partialSteps);
    assertTrue(partial.model().partialSteps >= 10, "steps that brought some rows only: "
        + partial.model().partialSteps);
    assertTrue(partial.model().forwards < all.model().forwards, partial.model().forwards + " steps brought every "
        + "row, against " + all.model().forwards);
    for (int i = 0; i < PROMPTS.length; i++) {
      List<Choice> want = all.choices().get(i);
      List<Choice> got = partial.choices().get(i);
      assertEquals(want.size(), got.size());
      for (int c = 0; c < want.size(); c++) {
        String what = "lookup " + lookup + ", request " + i + ", choice " + c;
        assertEquals(want.get(c).tokenIds(), got.get(c).tokenIds(), what);
        assertEquals(want.get(c).logprobs(), got.get(c).logprobs(), what + ": log-probs and alternatives");
        assertEquals(Double.doubleToRawLongBits(want.get(c).score()), Double.doubleToRawLongBits(got.get(c).score()),
            what + ": score, bit for bit");
        assertEquals(want.get(c).text(), got.get(c).text(), what);
      }
    }
  }
}
