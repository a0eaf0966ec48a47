package io.github.optjava.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.github.optjava.checkpoint.MetaseqTestFiles.Ref;
import io.github.optjava.checkpoint.MetaseqTestFiles.Stored;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Metaseq parts → Hugging Face directory: every tensor exactly as the reference, config, index, errors. */
class MetaseqConverterTest {

  private static final ObjectMapper JSON = new ObjectMapper();

  @TempDir
  Path tmp;

  private static MetaseqConverter.Options heads(int n) {
    return new MetaseqConverter.Options(OptionalInt.of(n), DType.F16,
        MetaseqConverter.Options.DEFAULT_MAX_SHARD_BYTES, false);
  }

  private Path metaseq(String name, Map<String, Ref> ref, int parts, boolean f32Norms) throws IOException {
    Path dir = Files.createDirectories(tmp.resolve(name));
    MetaseqTestFiles.write(dir, ref, parts, f32Norms);
    return dir;
  }

  private static MetaseqConverter.Result convert(Path in, Path out, MetaseqConverter.Options o) {
    return MetaseqConverter.convert(in, out, o, line -> { });
  }

  /** Every output tensor equals its reference bit for bit, and nothing else is there. */
  private static void assertMatchesReference(Path out, Map<String, Ref> ref) {
    try (Checkpoint c = Checkpoints.open(out)) {
      assertEquals(ref.size(), c.tensors().size(), "tensor count: " + c.tensors());
      for (Ref r : ref.values()) {
        Tensor t = c.tensor("model." + r.name());
        assertEquals(r.dtype(), t.dtype(), r.name());
        assertArrayEquals(r.shape(), t.shape(), r.name());
        ByteBuffer b = t.data();
        byte[] got = new byte[b.remaining()];
        b.get(got);
        assertArrayEquals(r.data(), got, r.name());
      }
    }
  }

  @ParameterizedTest(name = "{0} part(s), proj {1}, f32 layer norms {2}")
  @CsvSource({"1,false,false", "2,false,true", "4,false,false", "1,true,false", "2,true,true"})
  void everyTensorEqualsTheReference(int parts, boolean proj, boolean f32Norms) throws IOException {
    MetaseqTestFiles.Sizes sizes = proj ? MetaseqTestFiles.TINY_PROJ : MetaseqTestFiles.TINY;
    Map<String, Ref> ref = MetaseqTestFiles.reference(sizes, 7);
    Path out = tmp.resolve("out");
    MetaseqConverter.Result r = convert(metaseq("in", ref, parts, f32Norms), out, heads(4));
    assertEquals(parts, r.parts());
    assertEquals(ref.size(), r.tensors());
    assertMatchesReference(out, ref);

    JsonNode config = JSON.readTree(out.resolve("config.json").toFile());
    assertEquals(16, config.get("hidden_size").asInt());
    assertEquals(2, config.get("num_hidden_layers").asInt());
    assertEquals(4, config.get("num_attention_heads").asInt());
    assertEquals(32, config.get("ffn_dim").asInt());
    assertEquals(64, config.get("vocab_size").asInt());
    assertEquals(32, config.get("max_position_embeddings").asInt());
    assertEquals(sizes.proj(), config.get("word_embed_proj_dim").asInt());
    assertTrue(config.get("do_layer_norm_before").asBoolean());
    assertEquals("relu", config.get("activation_function").asText());
    assertEquals("opt", config.get("model_type").asText());
    assertEquals("float16", config.get("torch_dtype").asText());
    assertEquals(2, config.get("bos_token_id").asInt());
    assertEquals(2, config.get("eos_token_id").asInt());
    assertEquals(1, config.get("pad_token_id").asInt());
    assertEquals("OPTForCausalLM", config.get("architectures").get(0).asText());
  }

  @Test
  void twoPartsGiveTheSameFilesAsOne() throws IOException {
    Map<String, Ref> ref = MetaseqTestFiles.reference(MetaseqTestFiles.TINY_PROJ, 11);
    Path one = tmp.resolve("one");
    Path two = tmp.resolve("two");
    convert(metaseq("in1", ref, 1, false), one, heads(4));
    convert(metaseq("in2", ref, 2, false), two, heads(4));
    for (String f : List.of("config.json", MetaseqConverter.INDEX, MetaseqConverter.shardName(0, 1))) {
      assertArrayEquals(Files.readAllBytes(one.resolve(f)), Files.readAllBytes(two.resolve(f)), f);
    }
  }

  @Test
  void indexListsEveryTensorAndShardsRespectTheMaximum() throws IOException {
    Map<String, Ref> ref = MetaseqTestFiles.reference(MetaseqTestFiles.TINY, 3);
    Path out = tmp.resolve("out");
    long max = 4096; // the embedding (64 × 16 × 2 = 2048 bytes) and a few layer weights per file
    MetaseqConverter.Result r = convert(metaseq("in", ref, 2, false), out,
        new MetaseqConverter.Options(OptionalInt.of(4), DType.F16, max, false));
    assertTrue(r.shards() > 3, "shards: " + r.shards());
    JsonNode index = JSON.readTree(out.resolve(MetaseqConverter.INDEX).toFile());
    JsonNode map = index.get("weight_map");
    assertEquals(ref.size(), map.size());
    long total = 0;
    for (Ref t : ref.values()) {
      total += t.data().length;
      String file = map.get("model." + t.name()).asText();
      assertTrue(file.matches("model-\\d{5}-of-" + String.format("%05d", r.shards()) + "\\.safetensors"), file);
    }
    assertEquals(total, index.get("metadata").get("total_size").asLong());
    for (int s = 0; s < r.shards(); s++) {
      try (SafetensorsCheckpoint shard = SafetensorsCheckpoint.open(out.resolve(MetaseqConverter.shardName(s,
          r.shards())))) {
        long bytes = shard.tensors().stream().mapToLong(TensorInfo::byteSize).sum();
        assertTrue(bytes <= max || shard.tensors().size() == 1, "shard " + s + " holds " + bytes + " bytes");
      }
    }
    assertMatchesReference(out, ref);
  }

  @Test
  void f32OutputWidensExactly() throws IOException {
    Map<String, Ref> ref = MetaseqTestFiles.reference(MetaseqTestFiles.TINY, 5);
    Path out = tmp.resolve("out");
    convert(metaseq("in", ref, 2, true), out, new MetaseqConverter.Options(OptionalInt.of(4), DType.F32,
        MetaseqConverter.Options.DEFAULT_MAX_SHARD_BYTES, false));
    try (Checkpoint c = Checkpoints.open(out)) {
      for (Ref r : ref.values()) {
        Tensor t = c.tensor("model." + r.name());
        assertEquals(DType.F32, t.dtype());
        Tensor expected = new Tensor(new TensorInfo(r.name(), r.dtype(), r.shape()), ByteBuffer.wrap(r.data()));
        assertArrayEquals(expected.toFloatArray(), t.toFloatArray(), r.name());
      }
    }
    assertEquals("float32", JSON.readTree(out.resolve("config.json").toFile()).get("torch_dtype").asText());
  }

  @Test
  void knownHiddenSizeNeedsNoHeadCount() throws IOException {
    // A 1-layer model 768 wide (opt-125m's width) with a small vocabulary and ffn: 12 heads from the table.
    Map<String, Ref> ref = MetaseqTestFiles.reference(new MetaseqTestFiles.Sizes(768, 1, 8, 8, 2, 768, true), 1);
    Path out = tmp.resolve("out");
    MetaseqConverter.Result r = convert(metaseq("in", ref, 2, false), out, MetaseqConverter.Options.defaults());
    assertEquals(12, ((Number) r.config().get("num_attention_heads")).intValue());
  }

  @Test
  void postLayerNormModelNeedsTheFlag() throws IOException {
    Map<String, Ref> ref = MetaseqTestFiles.reference(new MetaseqTestFiles.Sizes(16, 2, 32, 64, 32, 8, false), 2);
    Path in = metaseq("in", ref, 2, false);
    String msg = refused(in, heads(4));
    assertContains(msg, "no final decoder.layer_norm", "--post-layer-norm");
    Path out = tmp.resolve("out");
    convert(in, out, new MetaseqConverter.Options(OptionalInt.of(4), DType.F16,
        MetaseqConverter.Options.DEFAULT_MAX_SHARD_BYTES, true));
    assertFalse(JSON.readTree(out.resolve("config.json").toFile()).get("do_layer_norm_before").asBoolean());
    assertMatchesReference(out, ref);
  }

  // --- errors ------------------------------------------------------------------------------------------

  private String refused(Path in, MetaseqConverter.Options o) {
    Path out = tmp.resolve("refused-out");
    CheckpointException e = assertThrows(CheckpointException.class, () -> convert(in, out, o));
    assertFalse(Files.exists(out.resolve("config.json")), "nothing written");
    return e.getMessage();
  }

  private static void assertContains(String message, String... parts) {
    for (String p : parts) {
      assertTrue(message.contains(p), "expected '" + p + "' in: " + message);
    }
  }

  /** Two files that both name part 0 are refused, not one kept by listing order (session 26's fuzz). */
  @Test
  void twoFilesForOnePartAreRefused() throws IOException {
    Path in = metaseq("in", MetaseqTestFiles.reference(MetaseqTestFiles.TINY, 7), 1, false);
    Files.write(in.resolve("reshard-model_part-00.pt"), new byte[] {1, 2, 3});
    assertContains(refused(in, heads(4)), "two files for part 0 (", "ambiguous");
  }

  /**
   * A weight with an empty dimension is refused (session 26's fuzz: [2^40, 0] passed the data checks, and the
   * row-parallel merge looped over 2^40 empty rows with an int counter that never reached them), and a merged shape
   * that overflows is refused rather than wrapped.
   */
  @Test
  void emptyOrOverflowingWeightShapesAreRefused() throws IOException {
    Map<String, Ref> ref = MetaseqTestFiles.reference(MetaseqTestFiles.TINY, 7);
    List<MetaseqTestFiles.Stored> part = new java.util.ArrayList<>();
    for (MetaseqTestFiles.Stored s : MetaseqTestFiles.part(ref, 0, 1, false)) {
      part.add(!s.name().equals("decoder.layers.0.self_attn.out_proj.weight") ? s
          : new MetaseqTestFiles.Stored(s.name(), DType.F16, new long[] {1L << 40, 0}, new byte[0]));
    }
    Path in = Files.createDirectories(tmp.resolve("in"));
    MetaseqTestFiles.writePart(in.resolve("reshard-model_part-0.pt"), part, new MetaseqTestFiles.Extra());
    assertTimeoutPreemptively(java.time.Duration.ofSeconds(60),
        () -> assertContains(refused(in, heads(4)), "out_proj.weight", "has an empty dimension"));

    MetaseqLayout.Planned rows = new MetaseqLayout.Planned("model.decoder.embed_tokens.weight",
        "decoder.embed_tokens.weight", MetaseqLayout.Merge.ROWS);
    CheckpointException e = assertThrows(CheckpointException.class, () -> MetaseqConverter.mergedShape(rows,
        new TensorInfo("decoder.embed_tokens.weight", DType.F16, new long[] {1L << 62, 8}), 2));
    assertContains(e.getMessage(), "over 2 parts overflows");
  }

  /** A lone part 9999: the missing ones are counted, not all listed (a 59,088-character message before). */
  @Test
  void manyMissingPartsAreCounted() throws IOException {
    Map<String, Ref> ref = MetaseqTestFiles.reference(MetaseqTestFiles.TINY, 1);
    Path in = Files.createDirectories(tmp.resolve("in"));
    MetaseqTestFiles.writePart(in.resolve("reshard-model_part-9999.pt"), MetaseqTestFiles.part(ref, 0, 4, false),
        new MetaseqTestFiles.Extra());
    String msg = refused(in, heads(4));
    assertContains(msg, "holds model parts [9999] but not [0, 1, 2,", "… 9999 in all]");
    assertTrue(msg.length() < 1_000, msg.length() + " characters");
  }

  @Test
  void missingPartIsNamed() throws IOException {
    Map<String, Ref> ref = MetaseqTestFiles.reference(MetaseqTestFiles.TINY, 1);
    Path in = Files.createDirectories(tmp.resolve("in"));
    for (int k : new int[] {0, 2}) {
      MetaseqTestFiles.writePart(in.resolve("reshard-model_part-" + k + ".pt"), MetaseqTestFiles.part(ref, k, 4,
          false), new MetaseqTestFiles.Extra());
    }
    assertContains(refused(in, heads(4)), "[0, 2]", "not [1]", "download the missing");
  }

  @Test
  void emptyDirectoryAndRawFsdpShardsAreExplained() throws IOException {
    Path in = Files.createDirectories(tmp.resolve("in"));
    assertContains(refused(in, heads(4)), "no reshard-model_part-K.pt or reshard.pt");
    Files.write(in.resolve("checkpoint_last-model_part-0-shard0.pt"), new byte[1]);
    assertContains(refused(in, heads(4)), "raw FSDP shards", "reshard_fsdp", "--unflatten-weights True");
  }

  @Test
  void partsDisagreeingInShapeAreRefused() throws IOException {
    Map<String, Ref> ref = MetaseqTestFiles.reference(MetaseqTestFiles.TINY, 1);
    Map<String, Ref> wider = MetaseqTestFiles.reference(new MetaseqTestFiles.Sizes(16, 2, 64, 64, 32, 16, true), 1);
    Path in = Files.createDirectories(tmp.resolve("in"));
    MetaseqTestFiles.writePart(in.resolve("reshard-model_part-0.pt"), MetaseqTestFiles.part(ref, 0, 2, false),
        new MetaseqTestFiles.Extra());
    MetaseqTestFiles.writePart(in.resolve("reshard-model_part-1.pt"), MetaseqTestFiles.part(wider, 1, 2, false),
        new MetaseqTestFiles.Extra());
    assertContains(refused(in, heads(4)), "reshard-model_part-1.pt", "fc1.bias", "has shape [32]",
        "[16] in part 0", "different checkpoints");
  }

  @Test
  void flattenedFsdpParametersAreRefusedWithTheFix() throws IOException {
    Path in = Files.createDirectories(tmp.resolve("in"));
    List<Stored> flat = List.of(
        new Stored("decoder.layers.0.flat_param_0", DType.F16, new long[] {8}, new byte[16]),
        new Stored("flat_param_0", DType.F16, new long[] {4}, new byte[8]));
    MetaseqTestFiles.writePart(in.resolve("reshard-model_part-0.pt"), flat, new MetaseqTestFiles.Extra());
    assertContains(refused(in, heads(4)), "FSDP-flattened", "metaseq.scripts.reshard_fsdp",
        "--unflatten-weights True");
  }

  @Test
  void unknownWeightsAreListed() throws IOException {
    Map<String, Ref> ref = MetaseqTestFiles.reference(MetaseqTestFiles.TINY, 1);
    Path in = Files.createDirectories(tmp.resolve("in"));
    MetaseqTestFiles.Extra extra = new MetaseqTestFiles.Extra();
    extra.extraWeights.put("decoder.alibi", new long[] {4, 1, 1});
    MetaseqTestFiles.writePart(in.resolve("reshard.pt"), MetaseqTestFiles.part(ref, 0, 1, false), extra);
    assertContains(refused(in, heads(4)), "not part of an OPT decoder", "'decoder.alibi'");
  }

  @Test
  void unknownHeadCountAsksForTheOption() throws IOException {
    Map<String, Ref> ref = MetaseqTestFiles.reference(MetaseqTestFiles.TINY, 1);
    Path in = metaseq("in", ref, 2, false);
    assertContains(refused(in, MetaseqConverter.Options.defaults()), "hidden size 16", "--num-heads");
    assertContains(refused(in, heads(3)), "3 attention heads do not divide the hidden size 16");
    assertContains(refused(in, heads(1)), "cannot be split over 2 model-parallel parts");
  }

  @Test
  void untiedOutputProjectionIsRefused() throws IOException {
    Map<String, Ref> ref = MetaseqTestFiles.reference(MetaseqTestFiles.TINY, 1);
    Path in = Files.createDirectories(tmp.resolve("in"));
    List<Stored> weights = new ArrayList<>(MetaseqTestFiles.part(ref, 0, 1, false));
    Stored embed = weights.stream().filter(w -> w.name().equals("decoder.embed_tokens.weight")).findFirst()
        .orElseThrow();
    weights.add(new Stored("decoder.output_projection.weight", DType.F16, embed.shape(),
        new byte[embed.data().length]));
    MetaseqTestFiles.Extra extra = new MetaseqTestFiles.Extra();
    extra.tiedOutputProjection = false;
    MetaseqTestFiles.writePart(in.resolve("reshard-model_part-0.pt"), weights, extra);
    assertContains(refused(in, heads(4)), "decoder.output_projection.weight differs from decoder.embed_tokens");
  }

  @Test
  void outputProjectionWithoutTokenEmbeddingNamesTheMissingWeight() throws IOException {
    // Found by fuzzing: the tie check fetched the absent embedding and failed with "no tensor named ...".
    Map<String, Ref> ref = MetaseqTestFiles.reference(MetaseqTestFiles.TINY, 1);
    Path in = Files.createDirectories(tmp.resolve("in"));
    List<Stored> weights = new ArrayList<>(MetaseqTestFiles.part(ref, 0, 1, false));
    Stored embed = weights.stream().filter(w -> w.name().equals("decoder.embed_tokens.weight")).findFirst()
        .orElseThrow();
    weights.remove(embed);
    weights.add(new Stored("decoder.output_projection.weight", DType.F16, embed.shape(), embed.data()));
    MetaseqTestFiles.Extra extra = new MetaseqTestFiles.Extra();
    extra.tiedOutputProjection = false;
    MetaseqTestFiles.writePart(in.resolve("reshard-model_part-0.pt"), weights, extra);
    String message = refused(in, heads(4));
    assertContains(message, "the checkpoint has no 2-D decoder.embed_tokens.weight: not an OPT checkpoint");
    assertFalse(message.contains("no tensor named"), message);
  }

  @Test
  void hostileGlobalInTheConfigIsRefusedAndNothingRuns() throws IOException {
    Map<String, Ref> ref = MetaseqTestFiles.reference(MetaseqTestFiles.TINY, 1);
    for (String[] g : new String[][] {{"os", "system"}, {"builtins", "eval"}, {"builtins", "getattr"},
        {"subprocess", "Popen"}, {"torch", "load"}, {"posix", "system"}}) {
      Path in = Files.createDirectories(tmp.resolve("in-" + g[1] + g[0]));
      MetaseqTestFiles.Extra extra = new MetaseqTestFiles.Extra();
      extra.hostileGlobal = g;
      extra.hostileMarker = tmp.resolve("pwned").toString();
      MetaseqTestFiles.writePart(in.resolve("reshard-model_part-0.pt"), MetaseqTestFiles.part(ref, 0, 1, false),
          extra);
      assertContains(refused(in, heads(4)), g[0] + "." + g[1], "not allowed even for a metaseq checkpoint",
          "without running anything");
    }
    assertFalse(Files.exists(tmp.resolve("pwned")), "nothing ran");
  }

  @Test
  void existingModelInTheOutputIsNotOverwritten() throws IOException {
    Map<String, Ref> ref = MetaseqTestFiles.reference(MetaseqTestFiles.TINY, 1);
    Path in = metaseq("in", ref, 1, false);
    Path out = Files.createDirectories(tmp.resolve("out"));
    Files.writeString(out.resolve("vocab.json"), "{}"); // tokenizer files may be there already
    convert(in, out, heads(4));
    CheckpointException e = assertThrows(CheckpointException.class, () -> convert(in, out, heads(4)));
    assertContains(e.getMessage(), "already holds a model");
    assertEquals("{}", Files.readString(out.resolve("vocab.json")));
    try (Stream<Path> files = Files.list(out)) {
      assertEquals(4, files.count()); // vocab.json, config.json, index, one shard
    }
  }
}
