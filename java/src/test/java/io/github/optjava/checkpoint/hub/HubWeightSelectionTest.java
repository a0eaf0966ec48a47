package io.github.optjava.checkpoint.hub;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.checkpoint.CheckpointException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

class HubWeightSelectionTest extends FakeHubTestBase {

  private static final List<String> TOKENIZER_AND_CONFIG =
      List.of("config.json", "vocab.json", "merges.txt");

  @Test
  void pytorchBinIsUsedWhenThereIsNoSafetensors() throws IOException {
    hub.unlist("model.safetensors"); // like facebook/opt-125m's main branch

    Path snapshot = resolve(settings());

    assertTrue(Files.exists(snapshot.resolve("pytorch_model.bin")));
    assertFalse(Files.exists(snapshot.resolve("model.safetensors")));
    assertEquals(List.of(), getsOf("model.safetensors"));
    assertSnapshotHolds(snapshot, "config.json", "generation_config.json", "tokenizer_config.json",
        "special_tokens_map.json", "vocab.json", "merges.txt", "pytorch_model.bin");
  }

  @Test
  void shardedSafetensorsAreFetchedThroughTheirIndex() throws IOException {
    byte[] shard1 = randomBytes(1, 300_000);
    byte[] shard2 = randomBytes(2, 123_457);
    hub.setListing(TOKENIZER_AND_CONFIG);
    hub.serve("model-00001-of-00002.safetensors", shard1);
    hub.serve("model-00002-of-00002.safetensors", shard2);
    hub.serve("model.safetensors.index.json", index(
        "\"a.weight\": \"model-00001-of-00002.safetensors\", "
            + "\"b.weight\": \"model-00002-of-00002.safetensors\", "
            + "\"c.weight\": \"model-00001-of-00002.safetensors\""));
    hub.serve("pytorch_model.bin", new byte[10]); // safetensors shards win over a single .bin

    Path snapshot = resolve(settings());

    assertSnapshotHolds(snapshot, "config.json", "vocab.json", "merges.txt",
        "model.safetensors.index.json", "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors");
    assertEquals(1, getsOf("model-00001-of-00002.safetensors").size());
    assertNoPartialFiles();
  }

  @Test
  void shardedPytorchBinIsTheLastResort() throws IOException {
    hub.setListing(TOKENIZER_AND_CONFIG);
    hub.serve("pytorch_model-00001-of-00001.bin", randomBytes(3, 5000));
    hub.serve("pytorch_model.bin.index.json", index("\"a\": \"pytorch_model-00001-of-00001.bin\""));

    Path snapshot = resolve(settings());

    assertSnapshotHolds(snapshot, "config.json", "vocab.json", "merges.txt",
        "pytorch_model.bin.index.json", "pytorch_model-00001-of-00001.bin");
  }

  @Test
  void anIndexCannotNameAShardOutsideTheSnapshot() throws IOException {
    hub.setListing(TOKENIZER_AND_CONFIG);
    hub.serve("model.safetensors.index.json", index("\"a\": \"../../../../evil.safetensors\""));
    hub.serve("../../../../evil.safetensors", new byte[10]); // listed, so only the name check stops it

    CheckpointException e = assertThrows(CheckpointException.class, () -> resolve(settings()));

    assertTrue(e.getMessage().contains("invalid shard '../../../../evil.safetensors'"), e.getMessage());
    assertFalse(Files.exists(snapshot().resolve("../../../../evil.safetensors").normalize()));
    try (Stream<Path> walk = Files.walk(cache)) {
      assertTrue(walk.noneMatch(p -> p.getFileName().toString().equals("evil.safetensors")));
    }
    assertTrue(hub.requests().stream().noneMatch(r -> r.path().contains("evil")));
  }

  @Test
  void aShardNameWithAControlCharacterIsRefusedQuotedAndCut() {
    hub.setListing(TOKENIZER_AND_CONFIG);
    // The JSON escape \n arrives as a newline, which could forge a log line; the name runs 10,000 characters.
    hub.serve("model.safetensors.index.json",
        index("\"a\": \"model\\nERROR forged" + "y".repeat(10_000) + ".safetensors\""));

    CheckpointException e = assertThrows(CheckpointException.class, () -> resolve(settings()));

    assertTrue(e.getMessage().contains("names an invalid shard 'model?ERROR forgedyyy"), e.getMessage());
    assertTrue(e.getMessage().contains("y…': shards must be file names next to the index."), e.getMessage());
    assertFalse(e.getMessage().contains("\n"), e.getMessage());
    assertTrue(e.getMessage().length() < 1_000, e.getMessage().length() + " characters");
    assertTrue(hub.requests().stream().noneMatch(r -> r.path().contains("forged")));
  }

  @Test
  void aShardNameLongerThanAFileNameIsRefused() {
    hub.setListing(TOKENIZER_AND_CONFIG);
    String shard = "m".repeat(300) + ".safetensors";
    hub.serve("model.safetensors.index.json", index("\"a\": \"" + shard + "\""));
    hub.serve(shard, new byte[10]); // listed, so only the name check stops it

    CheckpointException e = assertThrows(CheckpointException.class, () -> resolve(settings()));

    assertTrue(e.getMessage().contains("names an invalid shard 'mmm"), e.getMessage());
    assertTrue(e.getMessage().length() < 1_000, e.getMessage().length() + " characters");
  }

  @Test
  void anIndexWithAKeyGivenTwiceIsRefusedNamingTheKey() {
    hub.setListing(TOKENIZER_AND_CONFIG);
    hub.serve("model-00001-of-00001.safetensors", new byte[10]);
    // The second weight_map would otherwise win silently.
    hub.serve("model.safetensors.index.json", ("{\"weight_map\": {\"a\": \"model-00001-of-00001.safetensors\"},"
        + " \"weight_map\": {}}").getBytes(StandardCharsets.UTF_8));

    CheckpointException e = assertThrows(CheckpointException.class, () -> resolve(settings()));

    assertTrue(e.getMessage().contains("is not valid JSON (Duplicate field 'weight_map')"), e.getMessage());
    assertTrue(e.getMessage().contains("model.safetensors.index.json"), e.getMessage());
  }

  @Test
  void anIndexNamingAnUnlistedShardIsAnError() {
    hub.setListing(TOKENIZER_AND_CONFIG);
    hub.serve("model.safetensors.index.json", index("\"a\": \"model-00001-of-00002.safetensors\""));

    CheckpointException e = assertThrows(CheckpointException.class, () -> resolve(settings()));

    assertTrue(e.getMessage().contains("model-00001-of-00002.safetensors"), e.getMessage());
  }

  @Test
  void aRepositoryWithoutTokenizerOrWeightsIsNotAnOptCheckpoint() {
    hub.setListing(List.of("config.json", "vocab.json", "README.md"));

    CheckpointException e = assertThrows(CheckpointException.class, () -> resolve(settings()));

    assertTrue(e.getMessage().contains("merges.txt"), e.getMessage());
    assertTrue(e.getMessage().contains("weights"), e.getMessage());
    assertEquals(1, hub.requests().size(), "nothing is fetched from an unusable repository");
  }

  private static byte[] index(String weightMapEntries) {
    return ("{\"metadata\": {\"total_size\": 1}, \"weight_map\": {" + weightMapEntries + "}}")
        .getBytes(StandardCharsets.UTF_8);
  }

  private static byte[] randomBytes(long seed, int size) {
    byte[] bytes = new byte[size];
    new Random(seed).nextBytes(bytes);
    return bytes;
  }
}
