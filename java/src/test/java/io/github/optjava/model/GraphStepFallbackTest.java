package io.github.optjava.model;

import static io.github.optjava.model.HfReference.ints;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.optjava.backend.AttentionBatch;
import io.github.optjava.backend.GraphStepFailedException;
import io.github.optjava.backend.KvStore;
import io.github.optjava.backend.Mat;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.engine.KvCache;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The model's side of graph steps, on the CPU: decode steps and steps of drafts (and only they) are declared with
 * {@code graphStep}, and a step whose graph fails half way is run again op by op with the same result.
 */
class GraphStepFallbackTest {

  /** CpuOps that counts graph steps and fails the first attention of every {@code failEvery}-th one. */
  private static final class FlakyGraphOps extends CpuOps {
    int graphSteps;
    int failures;
    boolean inGraphStep;
    int lastBatch;
    int lastTokensPerSequence;

    @Override
    public void graphStep(io.github.optjava.backend.KvStore kv, int batch, int tokensPerSequence, int variant) {
      graphSteps++;
      inGraphStep = true;
      lastBatch = batch;
      lastTokensPerSequence = tokensPerSequence;
      assertEquals(Integer.bitCount(variant), 1, "the table width is a power of two: " + variant);
    }

    @Override
    public void graphAbort() {
      inGraphStep = false;
    }

    @Override
    public void attention(Mat out, Mat q, KvStore kv, int layer, AttentionBatch batch, int heads, float scale) {
      if (inGraphStep && graphSteps % 2 == 0) {
        inGraphStep = false;
        failures++;
        throw new GraphStepFailedException("simulated", null);
      }
      super.attention(out, q, kv, layer, batch, heads, scale);
    }

    @Override
    public float[] read(Mat src) {
      inGraphStep = false;
      return super.read(src);
    }
  }

  @Test
  void decodeStepsAreGraphStepsAndAFailedOneRunsAgain() {
    HfReference ref = new HfReference("tiny-opt");
    int[] prompt = ints(ref.json.get("prompts").get(0).get("input_ids"));
    FlakyGraphOps flaky = new FlakyGraphOps();
    CpuOps plain = new CpuOps();
    try (OptModel a = ref.load(flaky, null); OptModel b = ref.load(plain, null);
        KvCache ca = HfReference.cache(flaky, a.config()); KvCache cb = HfReference.cache(plain, b.config())) {
      List<OptModel.SeqStep> step = List.of(new OptModel.SeqStep(7, prompt, false));
      for (int t = 0; t < 6; t++) {
        float[] x = a.forward(step, ca)[0];
        float[] y = b.forward(step, cb)[0];
        assertArrayEquals(y, x, "step " + t);
        step = List.of(new OptModel.SeqStep(7, new int[] {HfReference.argmax(y, 0, y.length)}, false));
      }
      assertEquals(5, flaky.graphSteps, "the prefill is not a graph step; the 5 decode steps are");
      assertEquals(2, flaky.failures);
      assertEquals(1, flaky.lastBatch);
      assertEquals(1, flaky.lastTokensPerSequence);
    }
  }

  /**
   * Steps of drafts (prompt lookup: the same number of new tokens per sequence, every row's logits) are graph steps
   * too, keyed by their tokens per sequence; steps whose sequences bring different counts, or a prompt that wants
   * only its last logits, or more tokens than {@code MAX_GRAPH_TOKENS}, are not. Results equal plain ops.
   */
  @Test
  void uniformDraftStepsAreGraphStepsOthersAreNot() {
    HfReference ref = new HfReference("tiny-opt");
    int[] p0 = ints(ref.json.get("prompts").get(0).get("input_ids"));
    int[] p1 = ints(ref.json.get("prompts").get(1).get("input_ids"));
    FlakyGraphOps flaky = new FlakyGraphOps();
    CpuOps plain = new CpuOps();
    try (OptModel a = ref.load(flaky, null); OptModel b = ref.load(plain, null);
        KvCache ca = HfReference.cache(flaky, a.config()); KvCache cb = HfReference.cache(plain, b.config())) {
      // prefills (prompts of different lengths, last logits only): not graph steps
      List<OptModel.SeqStep> prefill = List.of(new OptModel.SeqStep(1, p0, false), new OptModel.SeqStep(2, p1, false));
      assertStepsEqual(a.forward(prefill, ca), b.forward(prefill, cb), "prefill");
      assertEquals(0, flaky.graphSteps);
      // both sequences with 3 drafts + 1 token, every row's logits: a graph step of 4 tokens per sequence
      List<OptModel.SeqStep> drafts = List.of(new OptModel.SeqStep(1, new int[] {5, 6, 7, 8}, true),
          new OptModel.SeqStep(2, new int[] {9, 10, 11, 12}, true));
      assertStepsEqual(a.forward(drafts, ca), b.forward(drafts, cb), "drafts");
      assertEquals(1, flaky.graphSteps);
      assertEquals(2, flaky.lastBatch);
      assertEquals(4, flaky.lastTokensPerSequence);
      // the next one fails half way (FlakyGraphOps: every second graph step) and runs again op by op
      List<OptModel.SeqStep> drafts2 = List.of(new OptModel.SeqStep(1, new int[] {21, 22, 23, 24}, true),
          new OptModel.SeqStep(2, new int[] {25, 26, 27, 28}, true));
      assertStepsEqual(a.forward(drafts2, ca), b.forward(drafts2, cb), "drafts after a failed graph step");
      assertEquals(2, flaky.graphSteps);
      assertEquals(1, flaky.failures);
      // an echo's scored prompt rows, the same count per sequence: not a graph step
      List<OptModel.SeqStep> scored = List.of(new OptModel.SeqStep(1, new int[] {29, 30}, true),
          new OptModel.SeqStep(2, new int[] {31, 32}, true));
      a.forwardScored(scored, ca, new int[][] {{30, 33}, {32, 34}});
      b.forwardScored(scored, cb, new int[][] {{30, 33}, {32, 34}});
      assertEquals(2, flaky.graphSteps);
      // different counts per sequence: not a graph step
      List<OptModel.SeqStep> mixed = List.of(new OptModel.SeqStep(1, new int[] {13, 14}, true),
          new OptModel.SeqStep(2, new int[] {15}, true));
      assertStepsEqual(a.forward(mixed, ca), b.forward(mixed, cb), "mixed");
      assertEquals(2, flaky.graphSteps);
      // the same count but only the last logits (a chunk of prompt): not a graph step
      List<OptModel.SeqStep> chunk = List.of(new OptModel.SeqStep(1, new int[] {16, 17}, false),
          new OptModel.SeqStep(2, new int[] {18, 19}, false));
      assertStepsEqual(a.forward(chunk, ca), b.forward(chunk, cb), "chunk");
      assertEquals(2, flaky.graphSteps);
      // more tokens than a graph step takes
      int[] many = new int[OptModel.MAX_GRAPH_TOKENS + 1];
      java.util.Arrays.fill(many, 20);
      List<OptModel.SeqStep> big = List.of(new OptModel.SeqStep(1, many, true));
      assertStepsEqual(a.forward(big, ca), b.forward(big, cb), "more than MAX_GRAPH_TOKENS");
      assertEquals(2, flaky.graphSteps);
    }
  }

  private static void assertStepsEqual(float[][] expected, float[][] got, String what) {
    assertEquals(expected.length, got.length, what);
    for (int i = 0; i < expected.length; i++) {
      assertArrayEquals(expected[i], got[i], what + " row " + i);
    }
  }
}
