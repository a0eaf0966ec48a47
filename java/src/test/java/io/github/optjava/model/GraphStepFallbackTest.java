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
 * The model's side of graph steps, on the CPU: decode steps (and only they) are declared with
 * {@code graphStep}, and a step whose graph fails half way is run again op by op with the same result.
 */
class GraphStepFallbackTest {

  /** CpuOps that counts graph steps and fails the first attention of every {@code failEvery}-th one. */
  private static final class FlakyGraphOps extends CpuOps {
    int graphSteps;
    int failures;
    boolean inGraphStep;
    int lastBatch;

    @Override
    public void graphStep(io.github.optjava.backend.KvStore kv, int batch, int variant) {
      graphSteps++;
      inGraphStep = true;
      lastBatch = batch;
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
    }
  }
}
