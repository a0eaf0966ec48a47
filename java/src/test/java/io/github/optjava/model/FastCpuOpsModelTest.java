package io.github.optjava.model;

import static io.github.optjava.model.HfReference.argmax;
import static io.github.optjava.model.HfReference.maxAbsDiff;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.backend.Ops;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.backend.cpu.FastCpuOps;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.engine.KvCache;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The whole model on {@link FastCpuOps} at a real width: a random model of opt-125m's shape against the
 * reference ops. (The fixture models against Hugging Face's numbers run on both backends in
 * {@link OptModelHfTest}.)
 */
class FastCpuOpsModelTest {
  private static FastCpuOps ops;

  @BeforeAll
  static void start() {
    ops = new FastCpuOps(3); // more threads than cores: uneven chunks
  }

  @AfterAll
  static void stop() {
    ops.close();
  }

  /**
   * Real widths (768, 3072, 12 heads of 64, 50272-row lm_head) through all three linear kernels: a ragged
   * prefill of 17 + 5 tokens (transposed kernel), a decode step of two sequences (4-token blocks do not
   * apply: per-token dots) and one of a single sequence. Logits must agree with the reference ops to
   * 1e-4 of their largest magnitude (twelve layers of float32 summation-order differences), and the
   * greedy choices exactly; also with both keeping an fp16 KV cache.
   */
  @org.junit.jupiter.params.ParameterizedTest(name = "fp16 KV cache {0}")
  @org.junit.jupiter.params.provider.ValueSource(booleans = {false, true})
  void randomOpt125mAgreesWithTheReferenceOps(boolean halfKv) {
    OptConfig config = OptShapes.of("125m");
    List<List<OptModel.SeqStep>> steps = threeSteps();
    try (FastCpuOps half = FastCpuOps.create(3, false, true)) {
      // fp16 cache: a float32 difference in a key or value can round it to the neighbouring fp16 (a step of
      // 2^-11 relative) in one implementation and not the other; the ops test compares attention over one store.
      assertAgree(run(new CpuOps(false, halfKv), config, steps), run(halfKv ? half : ops, config, steps),
          halfKv ? 5e-4f : 1e-4f);
    }
  }

  /** A ragged prefill of 17 + 5 tokens, a decode step of both sequences, one of the first alone. */
  static List<List<OptModel.SeqStep>> threeSteps() {
    return List.of(
        List.of(new OptModel.SeqStep(0, tokens(17, 5), false), new OptModel.SeqStep(1, tokens(5, 900), false)),
        List.of(new OptModel.SeqStep(0, new int[] {42}, false), new OptModel.SeqStep(1, new int[] {7}, false)),
        List.of(new OptModel.SeqStep(0, new int[] {1234}, false)));
  }

  /** Every step's logits within {@code rel} of their largest magnitude, and the same argmax. */
  static void assertAgree(List<float[][]> expected, List<float[][]> actual, float rel) {
    for (int s = 0; s < expected.size(); s++) {
      for (int q = 0; q < expected.get(s).length; q++) {
        float[] e = expected.get(s)[q];
        float[] a = actual.get(s)[q];
        float scale = 0;
        for (float v : e) {
          scale = Math.max(scale, Math.abs(v));
        }
        float diff = maxAbsDiff(e, a);
        assertTrue(diff <= rel * scale, "step " + s + " sequence " + q + ": max |logit diff| " + diff
            + " for logits up to " + scale);
        assertEquals(argmax(e, 0, e.length), argmax(a, 0, a.length), "step " + s + " sequence " + q);
      }
    }
  }

  /** The steps on a random model of {@code config}'s shape (fp16 weights, seed 3) over {@code backend}. */
  static List<float[][]> run(Ops backend, OptConfig config, List<List<OptModel.SeqStep>> steps) {
    List<float[][]> out = new ArrayList<>();
    try (RandomCheckpoint ck = new RandomCheckpoint(config, DType.F16, 3);
        OptModel model = new OptModel(config, new OptWeights(config, ck), backend);
        KvCache cache = new KvCache(backend.kvStore(config.numHiddenLayers(), 4, 16, config.hiddenSize()))) {
      for (List<OptModel.SeqStep> step : steps) {
        out.add(model.forward(step, cache));
      }
    }
    return out;
  }

  static int[] tokens(int n, int first) {
    int[] ids = new int[n];
    for (int i = 0; i < n; i++) {
      ids[i] = first + 97 * i;
    }
    return ids;
  }
}
