package io.github.optjava.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.optjava.checkpoint.CheckpointException;
import io.github.optjava.checkpoint.SafetensorsTestFiles;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class OptConfigTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  @TempDir
  Path tmp;

  /** The six required fields of a small model; everything else left to the defaults. */
  private static ObjectNode minimal() {
    ObjectNode n = JSON.createObjectNode();
    n.put("vocab_size", 50272);
    n.put("hidden_size", 64);
    n.put("num_hidden_layers", 2);
    n.put("num_attention_heads", 4);
    n.put("ffn_dim", 256);
    n.put("max_position_embeddings", 128);
    return n;
  }

  private Path writeConfig(ObjectNode json) throws IOException {
    Files.writeString(tmp.resolve("config.json"), json.toString());
    return tmp;
  }

  private CheckpointException rejected(ObjectNode json, String... fragments) throws IOException {
    Path dir = writeConfig(json);
    CheckpointException e = assertThrows(CheckpointException.class, () -> OptConfig.load(dir));
    assertTrue(e.getMessage().contains(dir.resolve("config.json").toString()), e.getMessage());
    for (String f : fragments) {
      assertTrue(e.getMessage().contains(f), "expected '" + f + "' in: " + e.getMessage());
    }
    return e;
  }

  @Test
  void loadsPreLnFixture() {
    OptConfig c = OptConfig.load(SafetensorsTestFiles.fixtureModel("tiny-opt"));
    assertEquals(new OptConfig(50272, 64, 2, 4, 256, 128, 64, true, false, true, true, "relu", 2, 2, 1,
        Optional.of("float16")), c);
    assertEquals(16, c.headDim());
    assertFalse(c.hasProjections());
    assertTrue(c.hasFinalLayerNorm());
    assertEquals(130, c.positionTableRows());
  }

  @Test
  void loadsPostLnFixture() {
    OptConfig c = OptConfig.load(SafetensorsTestFiles.fixtureModel("tiny-opt-postln"));
    assertEquals(32, c.wordEmbedProjDim());
    assertFalse(c.doLayerNormBefore());
    assertTrue(c.hasProjections());
    assertFalse(c.hasFinalLayerNorm());
  }

  @Test
  void absentOptionalFieldsTakeHuggingFaceDefaults() {
    OptConfig c = OptConfig.fromJson(minimal());
    assertEquals(64, c.wordEmbedProjDim());
    assertTrue(c.doLayerNormBefore());
    assertFalse(c.removeFinalLayerNorm());
    assertTrue(c.enableBias());
    assertTrue(c.layerNormElementwiseAffine());
    assertEquals("relu", c.activationFunction());
    assertEquals(2, c.bosTokenId());
    assertEquals(2, c.eosTokenId());
    assertEquals(1, c.padTokenId());
    assertEquals(Optional.empty(), c.torchDtype());
  }

  @Test
  void realModelShapes() {
    ObjectNode n = minimal().put("hidden_size", 2560).put("num_attention_heads", 32); // opt-2.7b
    assertEquals(80, OptConfig.fromJson(n).headDim());
    n = minimal().put("hidden_size", 7168).put("num_attention_heads", 56); // opt-30b
    assertEquals(128, OptConfig.fromJson(n).headDim());
    n = minimal().put("hidden_size", 1024).put("num_attention_heads", 16).put("word_embed_proj_dim", 512)
        .put("do_layer_norm_before", false); // opt-350m
    OptConfig c = OptConfig.fromJson(n);
    assertTrue(c.hasProjections());
    assertFalse(c.hasFinalLayerNorm());
  }

  @Test
  void removeFinalLayerNormDropsTheFinalLayerNormOfAPreLnModel() {
    OptConfig c = OptConfig.fromJson(minimal().put("_remove_final_layer_norm", true));
    assertTrue(c.doLayerNormBefore());
    assertFalse(c.hasFinalLayerNorm());
  }

  @Test
  void readsTheNewerDtypeFieldName() {
    assertEquals(Optional.of("bfloat16"), OptConfig.fromJson(minimal().put("dtype", "bfloat16")).torchDtype());
  }

  @Test
  void parsesText() {
    assertEquals(OptConfig.fromJson(minimal()), OptConfig.fromJson(minimal().toString()));
  }

  @ParameterizedTest
  @ValueSource(strings = {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "ffn_dim",
      "max_position_embeddings"})
  void missingRequiredFieldIsNamed(String field) throws IOException {
    ObjectNode n = minimal();
    n.remove(field);
    rejected(n, "required field '" + field + "' is missing");
  }

  @Test
  void hiddenSizeNotDivisibleByHeadsNamesDivisors() throws IOException {
    rejected(minimal().put("num_attention_heads", 5), "num_attention_heads 5 does not divide hidden_size 64",
        "4 and 8");
    rejected(minimal().put("num_attention_heads", 100), "largest head count that divides it is 64");
  }

  @Test
  void invalidUtf8IsNamedAsSuch() throws IOException {
    // Found by fuzzing: this read as "cannot read: java.nio.charset.MalformedInputException: Input length = 1".
    Files.write(tmp.resolve("config.json"), new byte[] {'{', '"', (byte) 0xc3, '"', ':', '1', '}'});
    CheckpointException e = assertThrows(CheckpointException.class, () -> OptConfig.load(tmp));
    assertTrue(e.getMessage().contains("config.json: not valid UTF-8 text"), e.getMessage());
    assertFalse(e.getMessage().contains("Exception"), e.getMessage());
  }

  @Test
  void hostileHeadCountsAreRejectedQuickly() throws IOException {
    // Found by fuzzing: the divisor hint scanned linearly from heads + 1, which overflowed for the largest int
    // (billions of steps, then "-64" as a suggestion), and took billions of steps for a prime hidden_size too.
    assertTimeoutPreemptively(Duration.ofSeconds(5), () -> {
      rejected(minimal().put("num_attention_heads", Integer.MAX_VALUE),
          "num_attention_heads 2147483647 does not divide hidden_size 64", "largest head count that divides it is 64");
      rejected(minimal().put("hidden_size", Integer.MAX_VALUE).put("num_attention_heads", 2),
          "the nearest head counts that divide it are 1 and 2147483647");
    });
  }

  @Test
  void nonPositiveSizesAreRejected() throws IOException {
    rejected(minimal().put("num_hidden_layers", -1), "num_hidden_layers is -1");
    rejected(minimal().put("ffn_dim", 0), "ffn_dim is 0");
    rejected(minimal().put("word_embed_proj_dim", -3), "word_embed_proj_dim is -3");
  }

  @Test
  void unsupportedFeaturesAreRejected() throws IOException {
    rejected(minimal().put("activation_function", "gelu"), "activation_function 'gelu' is not supported");
    rejected(minimal().put("enable_bias", false), "enable_bias false is not supported yet");
    rejected(minimal().put("layer_norm_elementwise_affine", false), "not supported yet");
    rejected(minimal().put("model_type", "gpt2"), "model_type is 'gpt2'");
  }

  @Test
  void vocabularyMustHoldTokenizerAndSpecialTokens() throws IOException {
    rejected(minimal().put("vocab_size", 50000), "vocab_size 50000", "50265");
    rejected(minimal().put("pad_token_id", 50272), "pad_token_id 50272");
    rejected(minimal().put("eos_token_id", -1), "eos_token_id -1");
  }

  @Test
  void wrongJsonTypesAreRejected() throws IOException {
    rejected(minimal().put("hidden_size", "64"), "field 'hidden_size' must be an integer");
    rejected(minimal().put("hidden_size", 64.5), "field 'hidden_size' must be an integer");
    rejected(minimal().put("do_layer_norm_before", "yes"), "field 'do_layer_norm_before' must be true or false");
    rejected(minimal().putNull("pad_token_id"), "field 'pad_token_id' must be an integer");
  }

  @Test
  void malformedOrMissingFilesAreRejected() throws IOException {
    Files.writeString(tmp.resolve("config.json"), "{\"hidden_size\": 64,");
    CheckpointException e = assertThrows(CheckpointException.class, () -> OptConfig.load(tmp));
    assertTrue(e.getMessage().contains("not valid JSON"), e.getMessage());
    Files.writeString(tmp.resolve("config.json"), "[1]");
    e = assertThrows(CheckpointException.class, () -> OptConfig.load(tmp));
    assertTrue(e.getMessage().contains("expected a JSON object"), e.getMessage());
    Files.delete(tmp.resolve("config.json"));
    e = assertThrows(CheckpointException.class, () -> OptConfig.load(tmp));
    assertTrue(e.getMessage().contains("has no config.json"), e.getMessage());
    e = assertThrows(CheckpointException.class, () -> OptConfig.load(tmp.resolve("missing")));
    assertTrue(e.getMessage().contains("does not exist"), e.getMessage());
  }

  @Test
  void jsonMapShowsTheConfigAsRead() {
    OptConfig c = OptConfig.load(SafetensorsTestFiles.fixtureModel("tiny-opt-postln"));
    var m = c.toJsonMap();
    assertEquals(32, m.get("word_embed_proj_dim"));
    assertEquals(false, m.get("do_layer_norm_before"));
    assertEquals("float16", m.get("torch_dtype"));
    assertEquals("relu", m.get("activation_function"));
    assertEquals(OptConfig.fromJson(JSON.valueToTree(m)), c, "the map reads back as the same config");
  }
}
