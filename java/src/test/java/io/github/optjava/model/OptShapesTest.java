package io.github.optjava.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** The presets against the OPT shape table (metaseq constants, HF config.json files; shared/ANCHORS.md). */
class OptShapesTest {

  @Test
  void everyPresetHasTheTableShapeAndValidates() {
    // size, layers, hidden, heads, head_dim, ffn, word_embed_proj_dim, pre-LN
    Object[][] table = {
        {"125m", 12, 768, 12, 64, 3072, 768, true},
        {"350m", 24, 1024, 16, 64, 4096, 512, false},
        {"1.3b", 24, 2048, 32, 64, 8192, 2048, true},
        {"2.7b", 32, 2560, 32, 80, 10240, 2560, true},
        {"6.7b", 32, 4096, 32, 128, 16384, 4096, true},
        {"13b", 40, 5120, 40, 128, 20480, 5120, true},
        {"30b", 48, 7168, 56, 128, 28672, 7168, true},
        {"66b", 64, 9216, 72, 128, 36864, 9216, true},
        {"175b", 96, 12288, 96, 128, 49152, 12288, true}};
    assertEquals(List.of("125m", "350m", "1.3b", "2.7b", "6.7b", "13b", "30b", "66b", "175b"), OptShapes.names());
    for (Object[] row : table) {
      OptConfig c = OptShapes.of((String) row[0]);
      String size = (String) row[0];
      assertEquals(row[1], c.numHiddenLayers(), size);
      assertEquals(row[2], c.hiddenSize(), size);
      assertEquals(row[3], c.numAttentionHeads(), size);
      assertEquals(row[4], c.headDim(), size);
      assertEquals(row[5], c.ffnDim(), size);
      assertEquals(row[6], c.wordEmbedProjDim(), size);
      assertEquals(row[7], c.doLayerNormBefore(), size);
      assertEquals(!size.equals("350m"), c.hasFinalLayerNorm(), size);
      assertEquals(size.equals("350m"), c.hasProjections(), size);
      assertEquals(50272, c.vocabSize(), size);
      assertEquals(2048, c.maxPositionEmbeddings(), size);
      assertEquals(2, c.bosTokenId());
      assertEquals(2, c.eosTokenId());
      assertEquals(1, c.padTokenId());
      assertEquals(Optional.of("float16"), c.torchDtype());
    }
  }

  @Test
  void parameterCountsAreTheModelCardSizes() {
    long p125m = OptShapes.parameterCount(OptShapes.of("125m"));
    assertEquals(125_239_296L, p125m, "opt-125m as Hugging Face's num_parameters() counts it");
    // The others only to within a few percent of their names (350m is really 331M).
    assertNear(331e6, OptShapes.parameterCount(OptShapes.of("350m")), 0.01);
    assertNear(1.3e9, OptShapes.parameterCount(OptShapes.of("1.3b")), 0.02);
    assertNear(2.7e9, OptShapes.parameterCount(OptShapes.of("2.7b")), 0.02);
    assertNear(6.7e9, OptShapes.parameterCount(OptShapes.of("6.7b")), 0.02);
    assertNear(13e9, OptShapes.parameterCount(OptShapes.of("13b")), 0.02);
    assertNear(30e9, OptShapes.parameterCount(OptShapes.of("30b")), 0.02);
    assertNear(66e9, OptShapes.parameterCount(OptShapes.of("66b")), 0.02);
    assertNear(175e9, OptShapes.parameterCount(OptShapes.of("175b")), 0.02);
  }

  private static void assertNear(double expected, long actual, double rel) {
    assertTrue(Math.abs(actual - expected) <= rel * expected, actual + " parameters, expected about " + expected);
  }

  @Test
  void namesAreCaseInsensitiveAndMayCarryTheHubPrefix() {
    OptConfig c = OptShapes.of("1.3b");
    assertEquals(c, OptShapes.of("opt-1.3B"));
    assertEquals(c, OptShapes.of("facebook/opt-1.3b"));
  }

  @Test
  void anUnknownSizeNamesTheKnownOnes() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> OptShapes.of("7b"));
    assertTrue(e.getMessage().contains("'7b'") && e.getMessage().contains("125m, 350m"), e.getMessage());
  }
}
