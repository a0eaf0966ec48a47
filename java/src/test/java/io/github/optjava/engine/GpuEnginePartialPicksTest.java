package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Choice;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cuda.CudaOps;
import io.github.optjava.backend.cuda.GpuTest;
import io.github.optjava.checkpoint.DType;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@link EnginePartialPicksTest}'s requests on the GPU (session 21, written without one): steps in which the model
 * picks for some sequences (the sampler with greedy rows at temperature 0, then the host rows gathered and read) give
 * the tokens of the same steps with every row brought to the host (both runs have the same steps: on a GPU a row's
 * logits depend on the rows computed with it, and the first H200 run, before the test fixed its steps, saw a greedy
 * score differ by 1.2e-3 with equal tokens). Greedy tokens must be equal, but for a near tie that the host's
 * processors and the device's edits round apart; a sampled one could differ only where a draw sits within ~1e-7 of a
 * cumulative boundary, which the kernel's and its host twin's rounding place differently (docs in sample.cu): a
 * failure names the request.
 */
@GpuTest
@Tag("gpu-new")
@Tag("gpu-new-mixed")
class GpuEnginePartialPicksTest {

  @ParameterizedTest(name = "{0}, {1} drafts, scored echo {2}")
  @CsvSource({"F16, 0, false", "F32, 3, false", "F16, 0, true"})
  void partialStepsGiveTheTokensOfStepsWithEveryRow(DType dtype, int drafts, boolean scoredEcho) {
    // scoredEcho (session 23): the echo request without alternatives, scored where the logits are in a step that
    // picks for the others (opt_token_logprob_f32, then the sampler, one step)
    List<SamplingParams> params = scoredEcho ? EnginePartialPicksTest.paramsWithScoredEcho()
        : EnginePartialPicksTest.params();
    EnginePartialPicksTest.Run all;
    EnginePartialPicksTest.Run partial;
    try (CudaOps ops = new CudaOps(0, dtype)) {
      all = EnginePartialPicksTest.run(new CountingModel(TinyOpt.model(ops), true), false, drafts, params);
      partial = EnginePartialPicksTest.run(new CountingModel(TinyOpt.model(ops), true), true, drafts, params);
    }
    assertTrue(partial.model().partialSteps > 0, "no step picked for some sequences only");
    assertTrue(partial.model().forkPicks > 0, "the n = 2 request's second completion picked on the GPU (session 24)");
    assertTrue(!scoredEcho || partial.model().scoredPartialSteps > 0, "no step scored the echo among picks");
    for (int i = 0; i < params.size(); i++) {
      List<Choice> want = all.choices().get(i);
      List<Choice> got = partial.choices().get(i);
      assertEquals(want.size(), got.size());
      for (int c = 0; c < want.size(); c++) {
        String what = dtype + ", request " + i + " (" + params.get(i) + "), choice " + c
            + (params.get(i).isGreedy() ? "" : " (sampled: a draw on a rounding boundary?)");
        assertEquals(want.get(c).tokenIds(), got.get(c).tokenIds(), what);
        // the same logits (the same steps): the log-probs differ by the host's and the kernel's rounding only
        assertEquals(want.get(c).score(), got.get(c).score(), 1e-4 * (1 + Math.abs(want.get(c).score())), what);
      }
    }
  }

  /**
   * {@link EngineSpeculativeTest#draftRowsArePickedWhereTheLogitsAre} on the GPU (session 24, written without one):
   * sampled and penalised greedy requests with prompt lookup pick every draft row where the logits are (a draft step,
   * the sampler over its rows) and get the tokens of the same requests without drafts. In F32: a draft step computes
   * a row with other rows than a plain step, so a draw could still differ where it sits within ~1e-6 of a cumulative
   * boundary: a failure names the request.
   */
  @org.junit.jupiter.api.Test
  void draftRowsPickedOnTheGpuGiveTheTokensWithoutDrafts() {
    try (CudaOps ops = new CudaOps(0, DType.F32)) {
      for (SamplingParams p : EngineSpeculativeTest.pickedDraftParams()) {
        CountingModel plainModel = new CountingModel(TinyOpt.model(ops), true);
        List<Choice> plain = EngineSpeculativeTest.pickedDraftRun(plainModel, p, 0).choices().get(0);
        CountingModel model = new CountingModel(TinyOpt.model(ops), true);
        var drafted = EngineSpeculativeTest.pickedDraftRun(model, p, 4);
        assertEquals(0, model.forwards, "every row picked where the logits are");
        assertTrue(drafted.stats().acceptedDraftTokens() > 0, drafted.stats().toString());
        String what = p + (p.isGreedy() ? "" : " (sampled: a draw on a rounding boundary?)");
        assertEquals(plain.get(0).tokenIds(), drafted.choices().get(0).get(0).tokenIds(), what);
      }
    }
  }

  /**
   * {@link EngineForkPicksTest} on the GPU (session 24, written without one): the other completions of n > 1 requests
   * take their first tokens on the GPU (the step's extra picks: its logits rows gathered after the step, which a
   * graph step ends first), and get what they get from the first completion's row on the host. Two rounds, the second
   * from cached prompt blocks (one token fed: decode-shaped steps, replayed as graphs). F32; a sampled draw could
   * still differ where it sits within ~1e-6 of a boundary (the two runs may batch their steps differently).
   */
  @org.junit.jupiter.api.Test
  void forkPicksOnTheGpuGiveWhatTheHostRowGives() {
    try (CudaOps ops = new CudaOps(0, DType.F32)) {
      EngineForkPicksTest.Run host = EngineForkPicksTest.run(new CountingModel(TinyOpt.model(ops), true), false);
      long launches = ops.graphLaunches();
      EngineForkPicksTest.Run picked = EngineForkPicksTest.run(new CountingModel(TinyOpt.model(ops), true), true);
      assertTrue(ops.graphLaunches() > launches, "no step replayed as a graph");
      assertEquals(picked.forked(), picked.model().forkPicks, "every forked completion picked on the GPU");
      assertEquals(0, picked.model().forwards, "no row brought to the host");
      for (int i = 0; i < host.choices().size(); i++) {
        for (int c = 0; c < host.choices().get(i).size(); c++) {
          assertEquals(host.choices().get(i).get(c).tokenIds(), picked.choices().get(i).get(c).tokenIds(),
              "request " + i + " choice " + c + " (sampled: a draw on a rounding boundary?)");
        }
      }
    }
  }

  /**
   * {@link EngineForkPicksPaddedTest} on the GPU with batch buckets on: the fork picks of a decode-shaped step padded
   * to a bucket and replayed as a graph (the step ended by finishStep before the gather). F32; a sampled draw could
   * differ where it sits within ~1e-7 of a boundary (the sampler kernel against its host twin, same logits).
   */
  @org.junit.jupiter.api.Test
  void forkPicksInAPaddedGraphStep() {
    try (CudaOps ops = new CudaOps(0, DType.F32)) {
      ops.useBatchBuckets(true);
      List<List<Choice>> host = EngineForkPicksPaddedTest.run(false, new CountingModel(TinyOpt.model(ops), true));
      CountingModel model = new CountingModel(TinyOpt.model(ops), true);
      List<List<Choice>> picked = EngineForkPicksPaddedTest.run(true, model);
      assertEquals(2, model.forkPicks, "the two other completions picked on the GPU");
      for (int i = 0; i < host.size(); i++) {
        for (int c = 0; c < host.get(i).size(); c++) {
          assertEquals(host.get(i).get(c).tokenIds(), picked.get(i).get(c).tokenIds(),
              "request " + i + " choice " + c + " (sampled: a draw on a rounding boundary?)");
        }
      }
    }
  }
}
