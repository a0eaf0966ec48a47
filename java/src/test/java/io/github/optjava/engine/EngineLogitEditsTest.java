package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Choice;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * Greedy requests with logits processors the model can apply where the logits are ({@link
 * io.github.optjava.backend.LogitEdits}): the engine asks the model for the argmax of the edited rows (on a GPU a
 * token per row comes back, not a vocabulary), and the tokens and scores are exactly those of the host path, which
 * a step takes when it shares the batch with a request that needs the logits.
 */
class EngineLogitEditsTest {

  private static final Map<String, SamplingParams> KINDS = Map.of(
      "repetition penalty", greedy().repetitionPenalty(1.4).build(),
      "no-repeat n-gram", greedy().noRepeatNgramSize(2).build(),
      "min_tokens", greedy().minTokens(24).build(),
      "logit bias", greedy().logitBias(Map.of(11, 3.0, 13, -2.0, 2, 1.5)).build(),
      "bad words", greedy().badWordsIds(List.of(List.of(5), List.of(11, 13))).build(),
      "presence and frequency", greedy().presencePenalty(0.7).frequencyPenalty(0.3).build(),
      "all of them", greedy().repetitionPenalty(1.2).noRepeatNgramSize(3).minTokens(10).presencePenalty(0.2)
          .frequencyPenalty(0.1).logitBias(Map.of(11, 1.0)).badWordsIds(List.of(List.of(7))).build());

  /** A request whose steps need the logits on the host (typical sampling): batched with it, a step takes that path. */
  private static final SamplingParams NEEDS_LOGITS =
      SamplingParams.builder().temperature(0.8).typicalP(0.9).seed(1L).maxTokens(30).build();

  private static SamplingParams.Builder greedy() {
    return SamplingParams.greedy().toBuilder().maxTokens(24);
  }

  @Test
  void greedyWithProcessorsPicksWhereTheLogitsAreWithTheHostPathsTokensAndScores() {
    for (boolean samplesOnDevice : new boolean[] {false, true}) {
      CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), samplesOnDevice);
      OptTokenizer tokenizer = TinyOpt.tokenizer();
      int[] prompt = tokenizer.encode("Once upon a time, a time upon once");
      try (Engine engine = new Engine(model, tokenizer, model.newCache(64, 16), 8, 128)) {
        engine.usePartialPicks(false); // a shared step brings every row: the host path's picks, compared below
        for (Map.Entry<String, SamplingParams> kind : KINDS.entrySet()) {
          int forwards = model.forwards;
          long edits = model.editedLogits;
          Choice alone = engine.submit(prompt, kind.getValue(), null).join().choices().get(0);
          assertEquals(forwards, model.forwards, kind.getKey() + ": no step brought the logits to the host");
          assertTrue(model.editedLogits > edits, kind.getKey() + ": the steps carried edits");

          CompletableFuture<io.github.optjava.api.Completion> needsLogits = engine.submit(tokenizer.encode("Hello"),
              NEEDS_LOGITS, null);
          Choice onHost = engine.submit(prompt, kind.getValue(), null).join().choices().get(0);
          needsLogits.join();
          assertTrue(model.forwards > forwards, kind.getKey() + ": the shared steps took the logits path");
          assertEquals(onHost.tokenIds(), alone.tokenIds(), kind.getKey());
          assertEquals(onHost.score(), alone.score(), kind.getKey() + ": the same bits");
        }
      }
    }
  }

  /**
   * With prompt lookup on, a plain greedy request checks draft tokens (several rows in a step) while a request with
   * processors shares the step: its edits must land on its own row; both get the tokens they get alone.
   */
  @Test
  void editsLandOnTheirRowWhenAnotherSequenceChecksDrafts() {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    OptTokenizer tokenizer = TinyOpt.tokenizer();
    int[] repetitive = tokenizer.encode("one two three one two three one two three one two");
    int[] other = tokenizer.encode("Once upon a time");
    SamplingParams plain = SamplingParams.greedy().toBuilder().maxTokens(30).build();
    SamplingParams processed = greedy().logitBias(Map.of(11, 1.5, 13, -1.0)).noRepeatNgramSize(2).build();
    try (Engine engine = new Engine(model, tokenizer, model.newCache(64, 16), 8, 128, 0, false, 4)) {
      List<Integer> plainAlone = engine.submit(repetitive, plain, null).join().choices().get(0).tokenIds();
      List<Integer> processedAlone = engine.submit(other, processed, null).join().choices().get(0).tokenIds();
      long edits = model.editedLogits;
      CompletableFuture<io.github.optjava.api.Completion> a = engine.submit(repetitive, plain, null);
      CompletableFuture<io.github.optjava.api.Completion> b = engine.submit(other, processed, null);
      assertEquals(plainAlone, a.join().choices().get(0).tokenIds());
      assertEquals(processedAlone, b.join().choices().get(0).tokenIds());
      assertTrue(engine.stats().draftTokens() > 0, "drafts were checked");
      assertTrue(model.editedLogits > edits, "edits went with the shared steps");
    }
  }

  /** Many bans in one step (70 bad words: the builder grows past its first arrays) fail nothing. */
  @Test
  void manyBansInOneStep() {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    OptTokenizer tokenizer = TinyOpt.tokenizer();
    List<List<Integer>> bad = new java.util.ArrayList<>();
    for (int t = 100; t < 170; t++) {
      bad.add(List.of(t));
    }
    int[] prompt = tokenizer.encode("Once upon a time");
    try (Engine engine = new Engine(model, tokenizer, model.newCache(64, 16), 8, 128)) {
      CompletableFuture<io.github.optjava.api.Completion> banned = engine.submit(prompt, greedy().badWordsIds(bad)
          .build(), null);
      CompletableFuture<io.github.optjava.api.Completion> plain = engine.submit(prompt, greedy().build(), null);
      List<Integer> tokens = banned.join().choices().get(0).tokenIds();
      plain.join();
      assertTrue(tokens.stream().noneMatch(t -> t >= 100 && t < 170), tokens.toString());
    }
  }

  /**
   * Log-probs come with the pick where the logits are: the chosen token's ({@code logprobs(0)}) greedy or sampled, and
   * the alternatives too ({@code logprobs(k)}, greedy or sampled), with or without processors: no step brings the row to
   * the host, and each token's log-prob and alternatives are the host path's.
   */
  @Test
  void theChosenTokensLogprobComesWithThePick() {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), true);
    OptTokenizer tokenizer = TinyOpt.tokenizer();
    int[] prompt = tokenizer.encode("Once upon a time, a time upon once");
    SamplingParams[] kinds = {greedy().logprobs(0).build(), greedy().repetitionPenalty(1.3).logprobs(0).build(),
        SamplingParams.builder().temperature(0.8).topP(0.9).seed(3L).maxTokens(24).logprobs(0).build(),
        greedy().logprobs(3).build(), greedy().repetitionPenalty(1.3).noRepeatNgramSize(2).logprobs(5).build(),
        SamplingParams.builder().temperature(0.9).topK(30).repetitionPenalty(1.3).seed(6L).maxTokens(24).logprobs(4)
            .build()};
    try (Engine engine = new Engine(model, tokenizer, model.newCache(64, 16), 8, 128)) {
      engine.usePartialPicks(false); // a shared step brings every row: the host path's picks, compared below
      for (SamplingParams kind : kinds) {
        int forwards = model.forwards;
        Choice alone = engine.submit(prompt, kind, null).join().choices().get(0);
        assertEquals(forwards, model.forwards, kind + ": no step brought the logits to the host");
        assertEquals(alone.tokenIds().size(), alone.logprobs().size());
        int listed = kind.logprobs().getAsInt();
        assertTrue(alone.logprobs().stream().allMatch(t -> t.logprob() <= 0 && t.top().size() <= listed
            && (listed == 0 || !t.top().isEmpty())), alone.logprobs().toString());
        CompletableFuture<io.github.optjava.api.Completion> needsLogits = engine.submit(tokenizer.encode("Hello"),
            NEEDS_LOGITS, null);
        Choice onHost = engine.submit(prompt, kind, null).join().choices().get(0);
        needsLogits.join();
        assertTrue(model.forwards > forwards, "the shared steps took the logits path");
        assertEquals(onHost.tokenIds(), alone.tokenIds());
        for (int i = 0; i < alone.logprobs().size(); i++) {
          assertEquals(onHost.logprobs().get(i).logprob(), alone.logprobs().get(i).logprob(), 1e-9, "token " + i);
          assertEquals(List.copyOf(onHost.logprobs().get(i).top().entrySet()),
              List.copyOf(alone.logprobs().get(i).top().entrySet()), "alternatives of token " + i + ", in order");
        }
      }
    }
  }

  /** A prompt id outside the vocabulary is refused at submit, before any step (it once failed a whole step). */
  @Test
  void aPromptTokenOutsideTheVocabularyIsRefused() {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    try (Engine engine = new Engine(model, TinyOpt.tokenizer(), model.newCache(64, 16), 8, 128)) {
      IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
          () -> engine.submit(new int[] {2, 5, 50275}, greedy().repetitionPenalty(1.3).build(), null));
      assertTrue(e.getMessage().contains("prompt token 2 is 50275, outside the vocabulary of 50272"), e.getMessage());
      assertEquals(0, model.greedies + model.forwards, "no step ran");
    }
  }

  @Test
  void theProcessorsChangeTheTokens() {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    OptTokenizer tokenizer = TinyOpt.tokenizer();
    int[] prompt = tokenizer.encode("Once upon a time, a time upon once");
    try (Engine engine = new Engine(model, tokenizer, model.newCache(64, 16), 8, 128)) {
      List<Integer> plain = engine.submit(prompt, greedy().build(), null).join().choices().get(0).tokenIds();
      List<Integer> penalised = engine.submit(prompt, KINDS.get("all of them"), null).join().choices().get(0)
          .tokenIds();
      assertTrue(!plain.equals(penalised), "the edits were applied: " + plain + " / " + penalised);
      assertTrue(!penalised.contains(7), "a banned token never comes");
    }
  }
}
