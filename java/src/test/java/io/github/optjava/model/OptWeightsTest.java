package io.github.optjava.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.optjava.checkpoint.Checkpoint;
import io.github.optjava.checkpoint.CheckpointException;
import io.github.optjava.checkpoint.SafetensorsCheckpoint;
import io.github.optjava.checkpoint.SafetensorsTestFiles;
import io.github.optjava.checkpoint.SafetensorsTestFiles.Entry;
import io.github.optjava.checkpoint.TensorInfo;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class OptWeightsTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  @TempDir
  Path tmp;

  private static Path fixture(String model) {
    return SafetensorsTestFiles.fixtureModel(model);
  }

  private static Checkpoint openFixture(String model) {
    return SafetensorsCheckpoint.open(fixture(model).resolve("model.safetensors"));
  }

  /** A fixture's config.json with one change. */
  private static OptConfig configWith(String model, Consumer<ObjectNode> change) throws IOException {
    ObjectNode json = (ObjectNode) JSON.readTree(Files.readString(fixture(model).resolve("config.json")));
    change.accept(json);
    return OptConfig.fromJson(json);
  }

  /**
   * The tensors a checkpoint of these dimensions holds, written out by hand from docs/fixtures.md
   * (independently of OptWeights.expectedShapes), as stored name to shape.
   */
  private static Map<String, List<Long>> handWrittenLayout(String prefix, long proj, boolean preLn,
      boolean lmHead) {
    Map<String, List<Long>> m = new TreeMap<>();
    m.put(prefix + "decoder.embed_tokens.weight", List.of(50272L, proj));
    m.put(prefix + "decoder.embed_positions.weight", List.of(130L, 64L));
    if (proj != 64) {
      m.put(prefix + "decoder.project_in.weight", List.of(64L, proj));
      m.put(prefix + "decoder.project_out.weight", List.of(proj, 64L));
    }
    if (preLn) {
      m.put(prefix + "decoder.final_layer_norm.weight", List.of(64L));
      m.put(prefix + "decoder.final_layer_norm.bias", List.of(64L));
    }
    for (int l = 0; l < 2; l++) {
      String p = prefix + "decoder.layers." + l + ".";
      for (String proj4 : List.of("q_proj", "k_proj", "v_proj", "out_proj")) {
        m.put(p + "self_attn." + proj4 + ".weight", List.of(64L, 64L));
        m.put(p + "self_attn." + proj4 + ".bias", List.of(64L));
      }
      for (String ln : List.of("self_attn_layer_norm", "final_layer_norm")) {
        m.put(p + ln + ".weight", List.of(64L));
        m.put(p + ln + ".bias", List.of(64L));
      }
      m.put(p + "fc1.weight", List.of(256L, 64L));
      m.put(p + "fc1.bias", List.of(256L));
      m.put(p + "fc2.weight", List.of(64L, 256L));
      m.put(p + "fc2.bias", List.of(64L));
    }
    if (lmHead) {
      m.put("lm_head.weight", List.of(50272L, proj));
    }
    return m;
  }

  private static Map<String, List<Long>> storedLayout(Checkpoint c) {
    Map<String, List<Long>> m = new TreeMap<>();
    for (TensorInfo t : c.tensors()) {
      m.put(t.name(), Arrays.stream(t.shape()).boxed().toList());
    }
    return m;
  }

  @Test
  void preLnFixtureMatchesItsConfig() {
    OptConfig config = OptConfig.load(fixture("tiny-opt"));
    try (Checkpoint c = openFixture("tiny-opt")) {
      assertEquals(handWrittenLayout("model.", 64, true, true), storedLayout(c));
      OptWeights w = new OptWeights(config, c);
      assertEquals("model.", w.keyPrefix());
      assertFalse(w.lmHeadTied());
      assertEquals(List.of(), w.ignoredTensors());
      assertEquals(37, w.names().size());
      assertEquals("model.decoder.layers.1.fc2.weight", w.storedName(OptWeights.layer(1, "fc2.weight")));
      assertEquals("lm_head.weight", w.storedName(OptWeights.LM_HEAD));
      for (String name : w.names()) {
        assertArrayEquals(w.shape(name), w.get(name).shape(), name);
      }
      float[] embed = w.get(OptWeights.EMBED_TOKENS).toFloatArray();
      for (int i = 0; i < 64; i++) {
        assertEquals(0f, embed[64 + i], "pad row is zero");
      }
      // tiny-opt stores lm_head as a copy of the embedding
      assertEquals(w.get(OptWeights.EMBED_TOKENS).data(), w.get(OptWeights.LM_HEAD).data());
    }
  }

  @Test
  void postLnFixtureMatchesItsConfigAndTiesLmHead() {
    OptConfig config = OptConfig.load(fixture("tiny-opt-postln"));
    try (Checkpoint c = openFixture("tiny-opt-postln")) {
      assertEquals(handWrittenLayout("", 32, false, false), storedLayout(c));
      OptWeights w = new OptWeights(config, c);
      assertEquals("", w.keyPrefix());
      assertTrue(w.lmHeadTied());
      assertEquals("decoder.embed_tokens.weight", w.storedName(OptWeights.LM_HEAD));
      assertArrayEquals(new long[] {50272, 32}, w.get(OptWeights.LM_HEAD).shape());
      assertArrayEquals(new long[] {64, 32}, w.get(OptWeights.PROJECT_IN).shape());
      assertArrayEquals(new long[] {32, 64}, w.get(OptWeights.PROJECT_OUT).shape());
      assertFalse(w.names().contains(OptWeights.FINAL_LAYER_NORM_WEIGHT));
      assertThrows(IllegalArgumentException.class, () -> w.get(OptWeights.FINAL_LAYER_NORM_WEIGHT));
      assertThrows(IllegalArgumentException.class, () -> w.get("decoder.layers.2.fc1.weight"));
    }
  }

  @Test
  void shardedCheckpointGivesTheSameWeights() {
    OptConfig config = OptConfig.load(fixture("tiny-opt"));
    try (Checkpoint single = openFixture("tiny-opt")) {
      Path index = SafetensorsTestFiles.writeSharded(tmp, single, 2);
      try (Checkpoint sharded = io.github.optjava.checkpoint.ShardedCheckpoint.open(index,
          SafetensorsCheckpoint::open)) {
        OptWeights a = new OptWeights(config, single);
        OptWeights b = new OptWeights(config, sharded);
        for (String name : a.names()) {
          assertEquals(a.get(name).data(), b.get(name).data(), name);
        }
      }
    }
  }

  /**
   * A layer count far beyond the weights is refused before 16 names per layer are built (session 26's fuzz: 2^31 - 1
   * layers ran out of heap, or took minutes, before any tensor was looked at).
   */
  @Test
  void aLayerCountBeyondTheWeightsIsRefusedAtOnce() throws IOException {
    OptConfig config = configWith("tiny-opt", j -> j.put("num_hidden_layers", Integer.MAX_VALUE));
    try (Checkpoint c = openFixture("tiny-opt")) {
      long t0 = System.nanoTime();
      CheckpointException e = assertThrows(CheckpointException.class, () -> new OptWeights(config, c));
      assertTrue(e.getMessage().contains("num_hidden_layers 2147483647 (34359738352 layer tensors), but the checkpoint "
          + "holds 37 tensors"), e.getMessage());
      assertTrue(System.nanoTime() - t0 < 5_000_000_000L, "refused before building the names");
    }
  }

  @Test
  void shapeThatDisagreesWithTheConfigIsNamed() throws IOException {
    OptConfig config = configWith("tiny-opt", j -> j.put("ffn_dim", 128));
    try (Checkpoint c = openFixture("tiny-opt")) {
      CheckpointException e = assertThrows(CheckpointException.class, () -> new OptWeights(config, c));
      assertTrue(e.getMessage().contains("model.decoder.layers.0.fc1.weight has shape [256, 64]"), e.getMessage());
      assertTrue(e.getMessage().contains("implies [128, 64]"), e.getMessage());
    }
  }

  /** Writes a copy of a fixture's weights with some tensors removed and others added. */
  private Checkpoint edited(String model, List<String> remove, List<Entry> add) {
    List<Entry> entries = new ArrayList<>();
    try (Checkpoint c = openFixture(model)) {
      for (Entry e : SafetensorsTestFiles.entries(c)) {
        if (!remove.contains(e.name())) {
          entries.add(e);
        }
      }
    }
    entries.addAll(add);
    Path file = tmp.resolve("edited.safetensors");
    SafetensorsTestFiles.write(file, entries);
    return SafetensorsCheckpoint.open(file);
  }

  @Test
  void missingTensorIsNamed() {
    OptConfig config = OptConfig.load(fixture("tiny-opt-postln"));
    try (Checkpoint c = edited("tiny-opt-postln", List.of("decoder.layers.1.fc2.bias"), List.of())) {
      CheckpointException e = assertThrows(CheckpointException.class, () -> new OptWeights(config, c));
      assertTrue(e.getMessage().contains("missing 1 tensor(s)"), e.getMessage());
      assertTrue(e.getMessage().contains("decoder.layers.1.fc2.bias"), e.getMessage());
    }
  }

  @Test
  void tensorsBeyondTheConfigAreErrors() throws IOException {
    OptConfig oneLayer = configWith("tiny-opt", j -> j.put("num_hidden_layers", 1));
    OptConfig noFinalLn = configWith("tiny-opt", j -> j.put("_remove_final_layer_norm", true));
    try (Checkpoint c = openFixture("tiny-opt")) {
      CheckpointException e = assertThrows(CheckpointException.class, () -> new OptWeights(oneLayer, c));
      assertTrue(e.getMessage().contains("16 tensor(s) config.json does not describe"), e.getMessage());
      assertTrue(e.getMessage().contains("model.decoder.layers.1."), e.getMessage());
      e = assertThrows(CheckpointException.class, () -> new OptWeights(noFinalLn, c));
      assertTrue(e.getMessage().contains("model.decoder.final_layer_norm.bias"), e.getMessage());
      assertTrue(e.getMessage().contains("_remove_final_layer_norm"), e.getMessage());
    }
  }

  @Test
  void mixedKeyStylesAreErrors() {
    OptConfig config = OptConfig.load(fixture("tiny-opt-postln"));
    Entry stray = Entry.f32("model.decoder.layers.0.fc1.bias", new long[] {1}, 0f);
    try (Checkpoint c = edited("tiny-opt-postln", List.of(), List.of(stray))) {
      CheckpointException e = assertThrows(CheckpointException.class, () -> new OptWeights(config, c));
      assertTrue(e.getMessage().contains("model.decoder.layers.0.fc1.bias"), e.getMessage());
    }
    Entry duplicateEmbed = Entry.f32("model.decoder.embed_tokens.weight", new long[] {1}, 0f);
    try (Checkpoint c = edited("tiny-opt-postln", List.of(), List.of(duplicateEmbed))) {
      CheckpointException e = assertThrows(CheckpointException.class, () -> new OptWeights(config, c));
      assertTrue(e.getMessage().contains("one key style"), e.getMessage());
    }
  }

  @Test
  void fairseqVersionAndForeignTensorsAreIgnoredAndListed() {
    OptConfig config = OptConfig.load(fixture("tiny-opt-postln"));
    List<Entry> extra = List.of(Entry.f32("decoder.version", new long[] {1}, 3f),
        Entry.f32("score.weight", new long[] {2, 32}, new float[64]));
    try (Checkpoint c = edited("tiny-opt-postln", List.of(), extra)) {
      OptWeights w = new OptWeights(config, c);
      assertEquals(List.of("decoder.version", "score.weight"), w.ignoredTensors());
    }
  }

  /** A hostile tensor name shows cut and without its control characters (session 26's fuzz: 40k characters, a \n). */
  @Test
  void hostileTensorNamesAreShownSafely() {
    OptConfig config = OptConfig.load(fixture("tiny-opt-postln"));
    String name = "decoder.layers.9." + "x".repeat(40_000) + "\nFORGED LOG LINE";
    try (Checkpoint c = edited("tiny-opt-postln", List.of(), List.of(Entry.f32(name, new long[] {1}, 0f)))) {
      CheckpointException e = assertThrows(CheckpointException.class, () -> new OptWeights(config, c));
      assertTrue(e.getMessage().contains("decoder.layers.9.xxx"), e.getMessage());
      assertFalse(e.getMessage().contains("\n"), "no raw newline");
      assertTrue(e.getMessage().length() < 2_000, "cut: " + e.getMessage().length() + " characters");
    }
  }

  /** config.json's own text in messages: cut and quoted (the same fuzz: a 5 MB value, a newline in model_type). */
  @Test
  void hostileConfigValuesAreShownSafely() {
    CheckpointException big = assertThrows(CheckpointException.class,
        () -> configWith("tiny-opt", j -> j.put("hidden_size", "9".repeat(5_000_000))));
    assertTrue(big.getMessage().contains("field 'hidden_size' must be"), big.getMessage());
    assertTrue(big.getMessage().length() < 2_000, "cut: " + big.getMessage().length() + " characters");
    CheckpointException type = assertThrows(CheckpointException.class,
        () -> configWith("tiny-opt", j -> j.put("model_type", "gpt2\nFORGED LOG LINE")));
    assertFalse(type.getMessage().contains("\n"), type.getMessage());
    CheckpointException act = assertThrows(CheckpointException.class,
        () -> configWith("tiny-opt", j -> j.put("activation_function", "gelu\nFORGED")));
    assertFalse(act.getMessage().contains("\n"), act.getMessage());
  }

  @Test
  void checkpointWithoutEmbeddingIsNotOpt() {
    OptConfig config = OptConfig.load(fixture("tiny-opt-postln"));
    try (Checkpoint c = edited("tiny-opt-postln", List.of("decoder.embed_tokens.weight"), List.of())) {
      CheckpointException e = assertThrows(CheckpointException.class, () -> new OptWeights(config, c));
      assertTrue(e.getMessage().contains("not an OPT checkpoint"), e.getMessage());
    }
  }
}
