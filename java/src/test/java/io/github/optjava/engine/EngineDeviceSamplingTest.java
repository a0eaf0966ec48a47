package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Choice;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.LogitEdits;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.model.CausalLm;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * Plain sampling on a model that draws where the logits are ({@link CausalLm#samplesOnDevice}: a GPU with
 * -Dopt.cuda.deviceSampling=true) takes {@link CausalLm#sample}; here a CPU model claims it and draws with the
 * host twin of the GPU's rules. A seeded request gives the same tokens alone and batched, and sampling with typical-p
 * or log-prob alternatives keeps the logits path.
 */
class EngineDeviceSamplingTest {

  private static SamplingParams sampled(long seed) {
    return SamplingParams.builder().temperature(0.8).topK(40).topP(0.9).seed(seed).maxTokens(12).build();
  }

  @Test
  void seededSamplingDrawsWhereTheLogitsAreAloneAndBatchedAlike() {
    CountingModel drawing = new CountingModel(TinyOpt.model(new CpuOps()), true);
    OptTokenizer tokenizer = TinyOpt.tokenizer();
    String[] prompts = {"The capital of France is", "Once upon a time", "def f(x):", "Hello"};
    List<List<Integer>> solo = new ArrayList<>();
    try (Engine engine = new Engine(drawing, tokenizer, drawing.newCache(64, 16), 8, 128)) {
      for (int i = 0; i < prompts.length; i++) {
        Choice c = engine.submit(tokenizer.encode(prompts[i]), sampled(i), null).join().choices().get(0);
        solo.add(c.tokenIds());
        assertTrue(c.score() < 0 && Double.isFinite(c.score()), "a sum of log-probs: " + c.score());
      }
      assertEquals(0, drawing.forwards, "plain sampling never needs the logits on the host");
      assertTrue(drawing.samples >= 4 * 12, "sampled steps: " + drawing.samples);

      List<CompletableFuture<io.github.optjava.api.Completion>> together = new ArrayList<>();
      for (int i = 0; i < prompts.length; i++) {
        together.add(engine.submit(tokenizer.encode(prompts[i]), sampled(i), null));
      }
      for (int i = 0; i < prompts.length; i++) {
        assertEquals(solo.get(i), together.get(i).join().choices().get(0).tokenIds(), "prompt " + i);
      }
      assertNotEquals(solo.get(0), engine.submit(tokenizer.encode(prompts[0]), sampled(99), null).join().choices()
          .get(0).tokenIds(), "another seed draws other tokens");
    }
  }

  /**
   * On a model that does not draw typical sampling's rows where the logits are (a GPU's default), its rows come, and
   * the model's draw never gets a typical row: not even for the earlier chunks of its prefill, whose draws are dropped
   * (a review found them passed with the request's typical-p, which sent a GPU's whole step to the host).
   */
  @Test
  void typicalSamplingKeepsTheLogitsPath() {
    CountingModel drawing = new CountingModel(TinyOpt.model(new CpuOps()), true);
    OptTokenizer tokenizer = TinyOpt.tokenizer();
    int[] prompt = tokenizer.encode("The capital of France is");
    try (Engine engine = new Engine(drawing, tokenizer, drawing.newCache(64, 16), 8, 128)) {
      engine.submit(prompt, sampled(1).toBuilder().typicalP(0.9).build(), null).join();
      assertEquals(0, drawing.samples, "typical sampling needs the host path");
      assertTrue(drawing.forwards > 0);
    }
    int[] longPrompt = tokenizer.encode("The capital of France is Paris, and the capital of Italy is Rome; the "
        + "capital of Spain is Madrid, of Portugal Lisbon, of Germany Berlin, and of Austria Vienna. So");
    assertTrue(longPrompt.length > 32, "a prompt of several chunks: " + longPrompt.length);
    try (Engine engine = new Engine(drawing, tokenizer, drawing.newCache(64, 16), 2, 128, 16)) {
      CompletableFuture<io.github.optjava.api.Completion> plain = engine.submit(prompt,
          sampled(3).toBuilder().maxTokens(24).build(), null);
      engine.submit(longPrompt, sampled(1).toBuilder().typicalP(0.9).maxTokens(4).build(), null).join();
      plain.join();
      assertTrue(drawing.samples + drawing.partialSteps > 0, "the plain request drew where the logits are");
      assertEquals(0, drawing.typicalRows, "typical rows handed to the model's draw");
    }
  }

  /**
   * Typical sampling (session 23) draws where the logits are on a model that can ({@link
   * CausalLm#samplesTypicalOnDevice}: a GPU with -Dopt.cuda.deviceTypical=true), alone, after min-p and a repetition
   * penalty, with log-prob alternatives, and with a typical-p of 1e-60 after top-p (the most typical token alone): no step brings the logits to the host; the same tokens and scores
   * batched with other sampled requests; and, as the device's rules give HF's typical set but for rounding, the tokens
   * and log-probs (within 1e-5) of the HF-exact host path on a model that does not sample on the device.
   */
  @Test
  void typicalSamplingDrawsWhereTheLogitsAreOnAModelThatCan() {
    CountingModel drawing = new CountingModel(TinyOpt.model(new CpuOps()), true, true);
    CountingModel exact = new CountingModel(TinyOpt.model(new CpuOps()), false);
    OptTokenizer tokenizer = TinyOpt.tokenizer();
    int[] prompt = tokenizer.encode("Once upon a time");
    SamplingParams[] kinds = {sampled(3).toBuilder().typicalP(0.9).maxTokens(16).build(),
        SamplingParams.builder().temperature(1.3).typicalP(0.5).minP(0.02).repetitionPenalty(1.2).seed(7L).logprobs(3)
            .maxTokens(16).build(),
        SamplingParams.builder().temperature(0.9).typicalP(0.2).seed(8L).maxTokens(16).build(),
        // the most typical token alone, after top-p (a typical-p below the smallest float stays on: review fixes)
        SamplingParams.builder().temperature(1.0).topP(0.9).typicalP(1e-60).seed(9L).maxTokens(16).build()};
    try (Engine engine = new Engine(drawing, tokenizer, drawing.newCache(64, 16), 8, 128);
        Engine host = new Engine(exact, tokenizer, exact.newCache(64, 16), 8, 128)) {
      for (SamplingParams kind : kinds) {
        Choice alone = drawnAlone(engine, drawing, prompt, kind);

        CompletableFuture<io.github.optjava.api.Completion> other = engine.submit(tokenizer.encode("Hello"),
            sampled(2).toBuilder().maxTokens(20).build(), null);
        Choice batched = engine.submit(prompt, kind, null).join().choices().get(0);
        other.join();
        assertEquals(alone.tokenIds(), batched.tokenIds(), kind + ": batched");
        assertEquals(alone.score(), batched.score(), 1e-9);

        Choice hf = host.submit(prompt, kind, null).join().choices().get(0);
        assertEquals(hf.tokenIds(), alone.tokenIds(), kind + ": the HF-exact path, the same seed");
        assertEquals(hf.score(), alone.score(), 1e-4, kind + ": the HF-exact path's score");
        for (int i = 0; i < hf.logprobs().size(); i++) {
          assertEquals(hf.logprobs().get(i).logprob(), alone.logprobs().get(i).logprob(), 1e-5, "token " + i);
          assertEquals(List.copyOf(hf.logprobs().get(i).top().keySet()),
              List.copyOf(alone.logprobs().get(i).top().keySet()), "alternatives of " + i);
        }
      }
    }
  }

  /**
   * A sampled request's log-prob alternatives (session 20) come with the draw where the logits are: the filtered
   * distribution's most likely tokens, most likely first, the drawn token's own log-prob among them when listed; the
   * same batched with a host-path request (device rules there too) and, up to rounding, the HF-exact host path's on a
   * model that does not sample on the device (the same seed draws the same tokens there).
   */
  @Test
  void sampledLogprobAlternativesComeWithTheDraw() {
    CountingModel drawing = new CountingModel(TinyOpt.model(new CpuOps()), true);
    CountingModel exact = new CountingModel(TinyOpt.model(new CpuOps()), false);
    OptTokenizer tokenizer = TinyOpt.tokenizer();
    int[] prompt = tokenizer.encode("Once upon a time");
    SamplingParams[] kinds = {sampled(4).toBuilder().logprobs(3).maxTokens(16).build(),
        SamplingParams.builder().temperature(1.1).minP(0.02).repetitionPenalty(1.2).seed(8L).logprobs(5)
            .maxTokens(16).build(),
        // a low temperature: the alternatives' float weights underflow to 0, HF still lists them (a review found it)
        SamplingParams.builder().temperature(0.01).seed(8L).logprobs(5).maxTokens(8).build()};
    try (Engine engine = new Engine(drawing, tokenizer, drawing.newCache(64, 16), 8, 128);
        Engine host = new Engine(exact, tokenizer, exact.newCache(64, 16), 8, 128)) {
      for (SamplingParams kind : kinds) {
        int forwards = drawing.forwards;
        Choice alone = engine.submit(prompt, kind, null).join().choices().get(0);
        assertEquals(forwards, drawing.forwards, kind + ": no step brought the logits to the host");
        int listed = kind.logprobs().getAsInt();
        for (io.github.optjava.api.TokenLogprob t : alone.logprobs()) {
          List<Double> values = new ArrayList<>(t.top().values());
          assertTrue(!values.isEmpty() && values.size() <= listed, t.toString());
          assertTrue(kind.temperature() > 0.5 || values.size() == listed, "every token listed at t 0.01: " + t);
          for (int i = 0; i < values.size(); i++) {
            assertTrue(values.get(i) <= 0 && (i == 0 || values.get(i) <= values.get(i - 1)), t.toString());
          }
          Double own = t.top().get(t.text());
          assertTrue(own == null || Math.abs(own - t.logprob()) < 1e-12, t.toString());
        }
        Choice batched = batchedWithAHostPathRequest(engine, tokenizer, prompt, kind);
        assertTrue(drawing.forwards > forwards, "the mixed steps took the logits path");
        assertEquals(alone.tokenIds(), batched.tokenIds());
        assertEquals(alone.logprobs(), batched.logprobs());

        Choice hf = host.submit(prompt, kind, null).join().choices().get(0);
        assertEquals(hf.tokenIds(), alone.tokenIds(), "the same seed, the same draws");
        for (int i = 0; i < hf.logprobs().size(); i++) {
          io.github.optjava.api.TokenLogprob want = hf.logprobs().get(i);
          io.github.optjava.api.TokenLogprob got = alone.logprobs().get(i);
          assertEquals(List.copyOf(want.top().keySet()), List.copyOf(got.top().keySet()), "alternatives of " + i);
          for (String text : want.top().keySet()) {
            assertEquals(want.top().get(text), got.top().get(text), 1e-5, "log-prob of " + text + " at " + i);
          }
          assertEquals(want.logprob(), got.logprob(), 1e-5, "token " + i);
        }
      }
    }
  }

  /** {@code kind} on {@code prompt} alone: every step drawn where the logits are (16 tokens at least), none read. */
  private static Choice drawnAlone(Engine engine, CountingModel drawing, int[] prompt, SamplingParams kind) {
    int forwards = drawing.forwards;
    int samples = drawing.samples;
    Choice alone = engine.submit(prompt, kind, null).join().choices().get(0);
    assertEquals(forwards, drawing.forwards, kind + ": no step brought the logits to the host");
    assertTrue(drawing.samples >= samples + 16, "sampled steps: " + (drawing.samples - samples));
    return alone;
  }

  /**
   * {@code kind} on {@code prompt}, batched with a typical-sampling request, whose steps then bring every row to the
   * host (partial picks off: the host path is what is compared).
   */
  private static Choice batchedWithAHostPathRequest(Engine engine, OptTokenizer tokenizer, int[] prompt,
      SamplingParams kind) {
    engine.usePartialPicks(false);
    try {
      CompletableFuture<io.github.optjava.api.Completion> typical = engine.submit(tokenizer.encode("Hello"),
          sampled(2).toBuilder().typicalP(0.9).maxTokens(30).build(), null);
      Choice batched = engine.submit(prompt, kind, null).join().choices().get(0);
      typical.join();
      return batched;
    } finally {
      engine.usePartialPicks(true);
    }
  }

  /**
   * Several sampled requests in one step, with different numbers of alternatives (5, 1, 3, none, 0, 2), top-k on and
   * off, of different lengths (so the batch changes as they end): each gets the tokens and alternatives it gets alone
   * (each sequence's list is read at its own offset), and no step brings rows to the host.
   */
  @Test
  void sampledRequestsWithDifferentAlternativesShareAStep() {
    CountingModel drawing = new CountingModel(TinyOpt.model(new CpuOps()), true);
    OptTokenizer tokenizer = TinyOpt.tokenizer();
    String[] texts = {"Once upon a time", "The capital of France is", "Hello there", "A B C D", "one two", "x y z"};
    int[] listed = {5, 1, 3, -1, 0, 2};
    List<SamplingParams> kinds = new ArrayList<>();
    for (int i = 0; i < listed.length; i++) {
      SamplingParams.Builder b = SamplingParams.builder().temperature(0.9).topK(i % 2 == 0 ? 30 : 0).seed(50L + i)
          .maxTokens(6 + 3 * i);
      if (listed[i] >= 0) {
        b.logprobs(listed[i]);
      }
      kinds.add(b.build());
    }
    try (Engine engine = new Engine(drawing, tokenizer, drawing.newCache(256, 4), 8, 128)) {
      List<Choice> alone = new ArrayList<>();
      for (int i = 0; i < texts.length; i++) {
        alone.add(engine.submit(tokenizer.encode(texts[i]), kinds.get(i), null).join().choices().get(0));
      }
      List<CompletableFuture<io.github.optjava.api.Completion>> together = new ArrayList<>();
      for (int i = 0; i < texts.length; i++) {
        together.add(engine.submit(tokenizer.encode(texts[i]), kinds.get(i), null));
      }
      for (int i = 0; i < texts.length; i++) {
        Choice c = together.get(i).join().choices().get(0);
        assertEquals(alone.get(i).tokenIds(), c.tokenIds(), "request " + i);
        assertEquals(alone.get(i).logprobs(), c.logprobs(), "request " + i + "'s log-probs and alternatives");
      }
      assertEquals(0, drawing.forwards, "no step brought rows to the host");
    }
  }

  /**
   * Min-p (session 20) draws where the logits are too, alone and after top-k, top-p and a repetition penalty; batched
   * with a request whose step needs the logits on the host, the engine draws by the same rules there: the same
   * tokens and scores as alone. A min-p of 1 keeps only the most likely token: the greedy tokens.
   */
  @Test
  void minPDrawsWhereTheLogitsAreAndTheSameBatched() {
    CountingModel drawing = new CountingModel(TinyOpt.model(new CpuOps()), true);
    OptTokenizer tokenizer = TinyOpt.tokenizer();
    int[] prompt = tokenizer.encode("Once upon a time");
    SamplingParams[] kinds = {SamplingParams.builder().temperature(1.2).minP(0.1).seed(5L).maxTokens(16).build(),
        sampled(5).toBuilder().minP(0.2).repetitionPenalty(1.3).maxTokens(16).build()};
    try (Engine engine = new Engine(drawing, tokenizer, drawing.newCache(64, 16), 8, 128)) {
      for (SamplingParams kind : kinds) {
        int forwards = drawing.forwards;
        Choice alone = drawnAlone(engine, drawing, prompt, kind);
        Choice batched = batchedWithAHostPathRequest(engine, tokenizer, prompt, kind);
        assertTrue(drawing.forwards > forwards, "the mixed steps took the logits path");
        assertEquals(alone.tokenIds(), batched.tokenIds());
        assertEquals(alone.score(), batched.score(), 1e-9);
      }
      List<Integer> greedy = engine.submit(prompt, SamplingParams.greedy().toBuilder().maxTokens(16).build(), null)
          .join().choices().get(0).tokenIds();
      assertEquals(greedy, engine.submit(prompt, SamplingParams.builder().temperature(1.0).minP(1.0).seed(9L)
          .maxTokens(16).build(), null).join().choices().get(0).tokenIds(), "min-p 1: the top token each step");
    }
  }

  /**
   * Sampling with processors the model applies where the logits are (a repetition penalty, a logit bias, a ban, the
   * presence and frequency penalties, min_tokens, no-repeat n-grams) draws there too ({@link LogitEdits}); batched
   * with a request that needs the logits on the host, the engine applies the same processors there before the
   * device's draw: the tokens and scores are those it gets alone.
   */
  @Test
  void samplingWithProcessorsDrawsWhereTheLogitsAreAndTheSameBatched() {
    CountingModel drawing = new CountingModel(TinyOpt.model(new CpuOps()), true);
    OptTokenizer tokenizer = TinyOpt.tokenizer();
    int[] prompt = tokenizer.encode("Once upon a time");
    SamplingParams processed = sampled(7).toBuilder().maxTokens(20).repetitionPenalty(1.3).presencePenalty(0.4)
        .frequencyPenalty(0.2).logitBias(java.util.Map.of(11, 2.5, 13, -1.0)).badWordsIds(List.of(List.of(5)))
        .minTokens(10).noRepeatNgramSize(2).build();
    try (Engine engine = new Engine(drawing, tokenizer, drawing.newCache(64, 16), 8, 128)) {
      Choice alone = engine.submit(prompt, processed, null).join().choices().get(0);
      assertEquals(0, drawing.forwards, "its processors ran where the logits are");
      assertTrue(drawing.samples >= 20 && drawing.editedLogits > 20, drawing.samples + " steps, "
          + drawing.editedLogits + " edits");
      assertTrue(!alone.tokenIds().contains(5), "the bad word never comes");
      int forwards = drawing.forwards;
      Choice batched = batchedWithAHostPathRequest(engine, tokenizer, prompt, processed);
      assertTrue(drawing.forwards > forwards, "the mixed steps took the logits path");
      assertEquals(alone.tokenIds(), batched.tokenIds());
      assertEquals(alone.score(), batched.score(), 1e-9);
    }
  }

  /**
   * Steps that mix greedy and sampled requests (session 21) pick every token where the logits are: the greedy ones
   * are the sampler's temperature-0 rows. Each request gets, bit for bit, the tokens, log-probs and alternatives it
   * gets alone (where a greedy request takes the argmax path): greedy ones plain, with alternatives, with processors;
   * sampled ones plain, with alternatives, with min-p and a penalty.
   */
  @Test
  void greedyAndSampledRequestsShareAStepWhereTheLogitsAre() {
    CountingModel drawing = new CountingModel(TinyOpt.model(new CpuOps()), true);
    OptTokenizer tokenizer = TinyOpt.tokenizer();
    String[] texts = {"Once upon a time", "Hello world", "The capital of France is", "A B C D", "one two", "x y z"};
    SamplingParams greedy = SamplingParams.greedy().toBuilder().maxTokens(14).build();
    SamplingParams[] kinds = {greedy, sampled(3),
        greedy.toBuilder().logprobs(3).maxTokens(20).build(),
        sampled(4).toBuilder().logprobs(2).maxTokens(9).build(),
        greedy.toBuilder().repetitionPenalty(1.3).logitBias(java.util.Map.of(11, 1.5)).logprobs(1).maxTokens(11)
            .build(),
        SamplingParams.builder().temperature(1.1).minP(0.05).presencePenalty(0.3).seed(6L).maxTokens(17).build()};
    try (Engine engine = new Engine(drawing, tokenizer, drawing.newCache(256, 4), 8, 128)) {
      List<Choice> alone = new ArrayList<>();
      for (int i = 0; i < texts.length; i++) {
        alone.add(engine.submit(tokenizer.encode(texts[i]), kinds[i], null).join().choices().get(0));
      }
      assertEquals(0, drawing.mixedSteps, "alone, no step mixes");
      List<CompletableFuture<io.github.optjava.api.Completion>> together = new ArrayList<>();
      for (int i = 0; i < texts.length; i++) {
        together.add(engine.submit(tokenizer.encode(texts[i]), kinds[i], null));
      }
      for (int i = 0; i < texts.length; i++) {
        Choice c = together.get(i).join().choices().get(0);
        assertEquals(alone.get(i).tokenIds(), c.tokenIds(), "request " + i);
        assertEquals(alone.get(i).logprobs(), c.logprobs(), "request " + i + "'s log-probs and alternatives");
        assertEquals(alone.get(i).score(), c.score(), "request " + i + "'s score, bit for bit");
      }
      assertEquals(0, drawing.forwards, "no step brought rows to the host");
      assertTrue(drawing.mixedSteps >= 8, "steps that drew some rows and picked others: " + drawing.mixedSteps);
    }
  }

  /**
   * A seeded plain-sampling request draws by the device's rules even on a step whose logits come to the host (here
   * batched with a typical-sampling request, so the engine cannot use the model's sampler, and a greedy one, which the
   * host path then picks): its tokens are those it gets alone, when every step used the model's sampler; the greedy
   * request's are those it gets alone on the argmax path.
   */
  @Test
  void aSampledRequestDrawsTheSameOnAHostPathStepWithAGreedyOne() {
    CountingModel drawing = new CountingModel(TinyOpt.model(new CpuOps()), true);
    OptTokenizer tokenizer = TinyOpt.tokenizer();
    int[] prompt = tokenizer.encode("Once upon a time");
    int[] greedyPrompt = tokenizer.encode("Hello world");
    SamplingParams greedy = SamplingParams.greedy().toBuilder().maxTokens(20).logprobs(1).build();
    try (Engine engine = new Engine(drawing, tokenizer, drawing.newCache(64, 16), 8, 128)) {
      engine.usePartialPicks(false); // the shared steps bring every row: the host path is what is compared
      Choice alone = engine.submit(prompt, sampled(5), null).join().choices().get(0);
      Choice greedyAlone = engine.submit(greedyPrompt, greedy, null).join().choices().get(0);
      int forwards = drawing.forwards;
      CompletableFuture<io.github.optjava.api.Completion> typical = engine.submit(tokenizer.encode("Hello"),
          sampled(2).toBuilder().typicalP(0.9).maxTokens(30).build(), null);
      CompletableFuture<io.github.optjava.api.Completion> greedyBatched = engine.submit(greedyPrompt, greedy, null);
      Choice batched = engine.submit(prompt, sampled(5), null).join().choices().get(0);
      Choice greedyChoice = greedyBatched.join().choices().get(0);
      typical.join();
      assertTrue(drawing.forwards > forwards, "the mixed steps took the logits path");
      assertEquals(alone.tokenIds(), batched.tokenIds());
      assertEquals(alone.score(), batched.score(), 1e-9);
      assertEquals(greedyAlone.tokenIds(), greedyChoice.tokenIds());
      assertEquals(greedyAlone.score(), greedyChoice.score(), 1e-9);
    }
  }
}
