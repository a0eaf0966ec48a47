package io.github.optjava.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.checkpoint.CheckpointException;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.checkpoint.Tensor;
import io.github.optjava.checkpoint.TensorInfo;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

/** Random checkpoints: accepted by OptWeights for every real shape, reproducible, drawn as the fixtures are. */
class RandomCheckpointTest {

  @ParameterizedTest
  @ValueSource(strings = {"125m", "350m", "1.3b", "2.7b", "6.7b", "13b", "30b", "66b", "175b"})
  void everyPresetGivesACheckpointOptWeightsAccepts(String size) {
    OptConfig config = OptShapes.of(size);
    try (RandomCheckpoint ck = new RandomCheckpoint(config, DType.F16, 1)) { // tensors are drawn lazily: cheap
      OptWeights w = new OptWeights(config, ck);
      assertTrue(w.lmHeadTied(), "lm_head is tied, as in checkpoints without lm_head.weight");
      assertEquals("", w.keyPrefix());
      List<String> names = new ArrayList<>();
      for (TensorInfo t : ck.tensors()) {
        names.add(t.name());
        assertEquals(DType.F16, t.dtype());
      }
      assertEquals(names.stream().sorted().toList(), names, "tensors() is sorted by name");
    }
  }

  @Test
  void valuesFollowTheDocumentedScheme() {
    OptConfig config = OptShapes.of("125m");
    try (RandomCheckpoint ck = new RandomCheckpoint(config, DType.F32, 5)) {
      float[] embed = ck.tensor(OptWeights.EMBED_TOKENS).toFloatArray();
      int cols = config.wordEmbedProjDim();
      for (int j = 0; j < cols; j++) {
        assertEquals(0f, embed[config.padTokenId() * cols + j], "pad row");
      }
      assertMoments(embed, 0, 0.8);
      assertMoments(ck.tensor(OptWeights.EMBED_POSITIONS).toFloatArray(), 0, 0.5);
      // Linear weights N(0, 1/sqrt(fan_in)): fc1 (3072, 768), fc2 (768, 3072)
      assertMoments(ck.tensor(OptWeights.layer(3, "fc1.weight")).toFloatArray(), 0, 1 / Math.sqrt(768));
      assertMoments(ck.tensor(OptWeights.layer(3, "fc2.weight")).toFloatArray(), 0, 1 / Math.sqrt(3072));
      assertMoments(ck.tensor(OptWeights.layer(0, "self_attn.q_proj.weight")).toFloatArray(), 0, 1 / Math.sqrt(768));
      assertMoments(ck.tensor(OptWeights.layer(11, "fc2.bias")).toFloatArray(), 0, 0.02);
      assertMoments(ck.tensor(OptWeights.layer(5, "final_layer_norm.bias")).toFloatArray(), 0, 0.02);
      float[] gamma = ck.tensor(OptWeights.layer(2, "self_attn_layer_norm.weight")).toFloatArray();
      for (float g : gamma) {
        assertTrue(g >= 0.9f && g <= 1.1f, "LayerNorm weight " + g + " outside U(0.9, 1.1)");
      }
      assertMoments(gamma, 1.0, 0.2 / Math.sqrt(12)); // the standard deviation of U(0.9, 1.1)
    }
  }

  /** Mean within 4 standard errors, standard deviation within 2% (n ≥ 768 draws). */
  private static void assertMoments(float[] v, double mean, double std) {
    double sum = 0;
    double sq = 0;
    int n = 0;
    for (float f : v) {
      if (f != 0f || mean != 0) { // the zero pad row is not a draw
        sum += f;
        sq += (double) f * f;
        n++;
      }
    }
    double m = sum / n;
    double s = Math.sqrt(sq / n - m * m);
    assertEquals(mean, m, 4 * std / Math.sqrt(n), "mean of " + n + " values");
    assertEquals(std, s, 0.02 * std, "standard deviation of " + n + " values");
  }

  @Test
  void theSameSeedGivesTheSameWeightsAndAnotherSeedOthers() {
    OptConfig config = OptShapes.of("125m");
    String name = OptWeights.layer(1, "fc1.weight"); // 36 chunks: drawn in parallel
    try (RandomCheckpoint a = new RandomCheckpoint(config, DType.F16, 9);
        RandomCheckpoint b = new RandomCheckpoint(config, DType.F16, 9);
        RandomCheckpoint c = new RandomCheckpoint(config, DType.F16, 10)) {
      float[] first = a.tensor(name).toFloatArray();
      assertArrayEquals(first, a.tensor(name).toFloatArray(), "same checkpoint, second call");
      assertArrayEquals(first, b.tensor(name).toFloatArray(), "same seed");
      assertFalse(java.util.Arrays.equals(first, c.tensor(name).toFloatArray()), "other seed");
      assertFalse(java.util.Arrays.equals(first, a.tensor(OptWeights.layer(2, "fc1.weight")).toFloatArray()),
          "other tensor of the same shape");
      // Chunks are seeded independently: no chunk may repeat another (a classic mistake with SplittableRandom).
      int chunk = 1 << 16;
      for (int k = 1; k < first.length / chunk; k++) {
        assertFalse(java.util.Arrays.equals(first, 0, 1000, first, k * chunk, k * chunk + 1000), "chunk " + k);
        assertFalse(java.util.Arrays.equals(first, 1, 1001, first, k * chunk, k * chunk + 1000), "chunk " + k);
      }
    }
  }

  @ParameterizedTest
  @EnumSource(DType.class)
  void storageDtypeIsTheRequestedOneAndRoundsTheFloat32Draws(DType dtype) {
    OptConfig config = OptShapes.of("125m");
    String name = OptWeights.layer(0, "self_attn.k_proj.weight");
    try (RandomCheckpoint wide = new RandomCheckpoint(config, DType.F32, 4);
        RandomCheckpoint narrow = new RandomCheckpoint(config, dtype, 4)) {
      Tensor t = narrow.tensor(name);
      assertEquals(dtype, t.dtype());
      float[] exact = wide.tensor(name).toFloatArray();
      float[] stored = t.toFloatArray();
      double relStep = switch (dtype) {
        case F32 -> 0;
        case F16 -> 0x1p-11;
        case BF16 -> 0x1p-8;
      };
      for (int i = 0; i < exact.length; i++) {
        assertTrue(Math.abs(stored[i] - exact[i]) <= relStep * Math.abs(exact[i]) + 1e-7, dtype + " element " + i);
      }
    }
  }

  @Test
  void unknownTensorsAndUseAfterCloseFail() {
    RandomCheckpoint ck = new RandomCheckpoint(OptShapes.of("125m"), DType.F16, 0);
    assertFalse(ck.contains(OptWeights.LM_HEAD));
    assertThrows(CheckpointException.class, () -> ck.tensor("model.decoder.embed_tokens.weight"));
    ck.close();
    assertThrows(IllegalStateException.class, () -> ck.tensor(OptWeights.EMBED_TOKENS));
  }

  @Test
  void tensorsTooLargeForOneBufferAreAClearError() {
    try (RandomCheckpoint ck = new RandomCheckpoint(OptShapes.of("175b"), DType.F32, 0)) {
      String fc1 = OptWeights.layer(0, "fc1.weight"); // 49152 × 12288 floats: 2.4 GB
      CheckpointException e = assertThrows(CheckpointException.class, () -> ck.tensor(fc1));
      assertTrue(e.getMessage().contains("16-bit"), e.getMessage());
    }
  }
}
