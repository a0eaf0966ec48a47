package io.github.optjava.model;

import static io.github.optjava.model.HfReference.ints;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.backend.cpu.FastCpuOps;
import io.github.optjava.backend.Ops;
import io.github.optjava.backend.RowMath;
import io.github.optjava.engine.KvCache;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/**
 * {@link OptModel#forwardScored} (echo scores computed through {@link Ops#tokenLogprobs}, only the scored sequences'
 * last rows read) gives exactly what {@link CausalLm}'s default does from {@link OptModel#forward}'s rows, in a
 * batch that mixes a scored prompt, an unscored prompt with all its rows, and a last-row-only prompt.
 */
class ForwardScoredTest {

  @Test
  void scoresAndRowsEqualTheHostComputationOnBothCpuBackends() {
    for (Supplier<Ops> backend : List.<Supplier<Ops>>of(CpuOps::new, () -> new FastCpuOps(2))) {
      HfReference ref = new HfReference("tiny-opt");
      List<int[]> prompts = new ArrayList<>();
      for (JsonNode p : ref.json.get("prompts")) {
        prompts.add(ints(p.get("input_ids")));
      }
      int[][] scoreTokens = new int[3][];
      scoreTokens[0] = Arrays.copyOfRange(prompts.get(0), 1, prompts.get(0).length);
      List<OptModel.SeqStep> steps = List.of(new OptModel.SeqStep(0, prompts.get(0), true),
          new OptModel.SeqStep(1, prompts.get(1), true), new OptModel.SeqStep(2, prompts.get(2), false));
      CausalLm.Scored got;
      float[][] rows;
      try (Ops ops = backend.get(); OptModel model = ref.load(ops, null)) {
        int layers = model.config().numHiddenLayers();
        int width = model.config().hiddenSize();
        try (KvCache a = new KvCache(ops.kvStore(layers, 64, 4, width));
            KvCache b = new KvCache(ops.kvStore(layers, 64, 4, width))) {
          got = model.forwardScored(steps, a, scoreTokens);
          rows = model.forward(steps, b);
        }
      }
      int vocab = 50272;
      double[] want = new double[scoreTokens[0].length];
      for (int i = 0; i < want.length; i++) {
        want[i] = rows[0][i * vocab + scoreTokens[0][i]] - RowMath.logSumExp(rows[0], i * vocab, (i + 1) * vocab);
      }
      assertArrayEquals(want, got.scores()[0], 0.0, "scores of the scored prompt");
      assertNull(got.scores()[1]);
      assertNull(got.scores()[2]);
      assertArrayEquals(Arrays.copyOfRange(rows[0], rows[0].length - vocab, rows[0].length), got.logits()[0], 0f,
          "the scored prompt's last row");
      assertArrayEquals(rows[1], got.logits()[1], 0f, "the unscored prompt's rows");
      assertArrayEquals(rows[2], got.logits()[2], 0f, "the last-row prompt");
      assertEquals(prompts.get(1).length * vocab, got.logits()[1].length);
    }
  }
}
