package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Choice;
import io.github.optjava.api.Completion;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/**
 * A beam-search request through the engine finds its candidates where the logits are ({@code CausalLm.beamTopK}: on a
 * GPU, 2 × numBeams pairs per beam come back instead of every beam's row), its processors (a repetition penalty,
 * no-repeat n-grams, min_tokens) applied there as edits on the log-probabilities; its choices are those of
 * {@link BeamSearch} on the host path. The engine's wrapper of
 * the model (its step counting) must pass the op on: session 20's first version did not, and every search read rows.
 */
class EngineBeamCandidatesTest {
  private static final OptTokenizer TOKENIZER = TinyOpt.tokenizer();

  @Test
  void aSearchWithoutProcessorsFindsItsCandidatesWhereTheLogitsAre() {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    int[] prompt = TOKENIZER.encode("The capital of France is");
    SamplingParams beams = SamplingParams.builder().numBeams(3).n(2).maxTokens(10).build();
    try (Engine engine = new Engine(model, TOKENIZER, model.newCache(64, 16), 4, 128)) {
      List<Choice> got = engine.submit(prompt, beams, null).join().choices();
      assertEquals(0, model.forwards, "no step brought rows to the host");
      assertTrue(model.beamSteps >= 2, "steps through beamTopK: " + model.beamSteps);
      assertEquals(hostPath(model, prompt, beams), tokens(got));

      // processors that name their tokens (every one a beam request can ask for) go as edits (session 20)
      int steps = model.beamSteps;
      SamplingParams penalised = beams.toBuilder().repetitionPenalty(1.3).noRepeatNgramSize(2).minTokens(3).build();
      List<Choice> edited = engine.submit(prompt, penalised, null).join().choices();
      assertTrue(model.beamSteps > steps && model.editedLogits > 0, "steps through beamTopK with edits");
      assertEquals(0, model.forwards, "no step brought rows to the host");
      assertEquals(hostPath(model, prompt, penalised), tokens(edited));
    }
  }

  /**
   * An Error in a search's step (a StackOverflowError in session 21's H200 run) fails the request instead of leaving
   * its caller waiting for ever, and the engine serves the next request.
   */
  @Test
  void anErrorInASearchFailsItsRequestAndTheEngineGoesOn() throws Exception {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    java.util.concurrent.atomic.AtomicBoolean broken = new java.util.concurrent.atomic.AtomicBoolean(true);
    model.beforeStep = () -> {
      if (model.beamSteps > 0 && broken.get()) {
        throw new StackOverflowError("planted");
      }
    };
    int[] prompt = TOKENIZER.encode("Once upon a time");
    try (Engine engine = new Engine(model, TOKENIZER, model.newCache(64, 16), 4, 128)) {
      CompletableFuture<Completion> f = engine.submit(prompt, SamplingParams.builder().numBeams(2).maxTokens(8)
          .build(), null);
      java.util.concurrent.ExecutionException e = org.junit.jupiter.api.Assertions.assertThrows(
          java.util.concurrent.ExecutionException.class, () -> f.get(30, java.util.concurrent.TimeUnit.SECONDS));
      assertTrue(e.getCause() instanceof StackOverflowError, e.toString());
      broken.set(false);
      assertEquals(8, engine.submit(prompt, SamplingParams.greedy().toBuilder().maxTokens(8).minTokens(8).build(),
          null).get(30, java.util.concurrent.TimeUnit.SECONDS).choices().get(0).tokenIds().size());
    }
  }

  /** Cancelling the request stops the search at its next step, on this path too, and every block comes back. */
  @Test
  void aCancelledSearchStopsAtItsNextStep() throws Exception {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    KvCache cache = model.newCache(64, 16);
    int free = cache.freeBlocks();
    CountDownLatch third = new CountDownLatch(1);
    model.beforeStep = () -> {
      if (model.beamSteps == 3) {
        third.countDown();
      }
    };
    java.util.concurrent.atomic.AtomicBoolean cancel = new java.util.concurrent.atomic.AtomicBoolean();
    try (Engine engine = new Engine(model, TOKENIZER, cache, 4, 128)) {
      CompletableFuture<Completion> f = engine.submit(TOKENIZER.encode("Once upon a time"),
          SamplingParams.builder().numBeams(2).maxTokens(60).build(), new Engine.Listener() {
            @Override
            public void onToken(int choice, int tokenId, String text) {}

            @Override
            public boolean cancelled() {
              return cancel.get();
            }
          });
      assertTrue(third.await(10, TimeUnit.SECONDS));
      cancel.set(true);
      assertThrows(java.util.concurrent.CancellationException.class, () -> f.get(10, TimeUnit.SECONDS));
      assertTrue(model.beamSteps < 60, "stopped after " + model.beamSteps + " steps");
      engine.close();
      assertEquals(free, cache.freeBlocks(), "every beam's blocks are back");
    } finally {
      cache.close();
    }
  }

  /** The same search on the host path (its processors and one that changes nothing), as token lists. */
  private static List<List<Integer>> hostPath(CountingModel model, int[] prompt, SamplingParams params) {
    LogitsProcessor unchanged = (inputIds, inputLength, promptLength, scores) -> { };
    List<LogitsProcessor> processors = new java.util.ArrayList<>(
        LogitsPipeline.forParams(params, model.config().eosTokenId()).processors());
    processors.add(unchanged);
    try (KvCache cache = model.model.newCache(64, 16)) {
      List<BeamSearch.Hypothesis> hyps = BeamSearch.run(model.model, cache, new AtomicLong()::getAndIncrement, prompt,
          BeamSearch.Config.of(params, model.config().eosTokenId(), model.config().padTokenId()), processors);
      return hyps.stream().map(h -> {
        int[] t = h.tokens();
        int n = h.finished() ? t.length - 1 : t.length; // the engine drops the EOS
        return java.util.Arrays.stream(t, 0, n).boxed().toList();
      }).toList();
    }
  }

  private static List<List<Integer>> tokens(List<Choice> choices) {
    return choices.stream().map(Choice::tokenIds).toList();
  }
}
