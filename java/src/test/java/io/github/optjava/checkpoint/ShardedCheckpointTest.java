package io.github.optjava.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.checkpoint.SafetensorsTestFiles.Entry;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ShardedCheckpointTest {

  @TempDir
  Path tmp;

  private static Path fixtureFile(String model) {
    return SafetensorsTestFiles.fixtureModel(model).resolve("model.safetensors");
  }

  private ShardedCheckpoint openIndex(Path index) {
    return ShardedCheckpoint.open(index, SafetensorsCheckpoint::open);
  }

  private void assertRejected(Path index, String... fragments) {
    CheckpointException e = assertThrows(CheckpointException.class, () -> openIndex(index));
    for (String f : fragments) {
      assertTrue(e.getMessage().contains(f), "expected '" + f + "' in: " + e.getMessage());
    }
  }

  /** Two small shards: a.safetensors holds x and y, b.safetensors holds z. */
  private void writeSmallShards() {
    SafetensorsTestFiles.write(tmp.resolve("a.safetensors"), List.of(
        Entry.f32("x", new long[] {2}, 1f, 2f), Entry.f32("y", new long[] {1}, 3f)));
    SafetensorsTestFiles.write(tmp.resolve("b.safetensors"), List.of(Entry.f32("z", new long[] {1}, 4f)));
  }

  private Path index(String... nameThenShard) {
    Map<String, String> weightMap = new LinkedHashMap<>();
    for (int i = 0; i < nameThenShard.length; i += 2) {
      weightMap.put(nameThenShard[i], nameThenShard[i + 1]);
    }
    return SafetensorsTestFiles.writeIndex(tmp, Map.of(), weightMap);
  }

  @Test
  void threeShardsGiveTheSameTensorsAsTheSingleFile() {
    try (SafetensorsCheckpoint single = SafetensorsCheckpoint.open(fixtureFile("tiny-opt"))) {
      Path index = SafetensorsTestFiles.writeSharded(tmp, single, 3);
      try (ShardedCheckpoint sharded = openIndex(index)) {
        assertEquals("safetensors", sharded.format());
        assertEquals(3, sharded.shards().size());
        assertEquals(new ArrayList<>(single.tensors()), new ArrayList<>(sharded.tensors()));
        for (TensorInfo t : single.tensors()) {
          assertTrue(sharded.contains(t.name()));
          assertEquals(single.tensor(t.name()).data(), sharded.tensor(t.name()).data(), t.name());
        }
        sharded.validateData();
        assertThrows(CheckpointException.class, () -> sharded.tensor("nope"));
      }
    }
  }

  @Test
  void rejectsShardPathsOutsideTheIndexDirectory() throws IOException {
    Path inner = Files.createDirectory(tmp.resolve("model"));
    SafetensorsTestFiles.write(tmp.resolve("outside.safetensors"), List.of(Entry.f32("x", new long[] {1}, 1f)));
    Map<String, String> traversal = Map.of("x", "../outside.safetensors");
    assertRejected(SafetensorsTestFiles.writeIndex(inner, Map.of(), traversal), "../outside.safetensors",
        "path traversal");
    Map<String, String> hidden = Map.of("x", "sub/../../outside.safetensors");
    assertRejected(SafetensorsTestFiles.writeIndex(inner, Map.of(), hidden), "path traversal");
    Map<String, String> absolute = Map.of("x", tmp.resolve("outside.safetensors").toString());
    assertRejected(SafetensorsTestFiles.writeIndex(inner, Map.of(), absolute), "absolute path");
  }

  @Test
  void rejectsMissingShard() {
    writeSmallShards();
    assertRejected(index("x", "a.safetensors", "y", "a.safetensors", "z", "c.safetensors"),
        "shard 'c.safetensors'", "does not exist");
  }

  @Test
  void rejectsTensorNotInTheShardTheIndexNames() {
    writeSmallShards();
    assertRejected(index("x", "a.safetensors", "y", "b.safetensors", "z", "b.safetensors"),
        "tensor 'y'", "in shard 'b.safetensors'", "it is in shard 'a.safetensors'");
    assertRejected(index("x", "a.safetensors", "y", "a.safetensors", "z", "b.safetensors", "w", "b.safetensors"),
        "tensor 'w'", "no shard holds it");
  }

  @Test
  void rejectsTensorInTwoShards() {
    writeSmallShards();
    SafetensorsTestFiles.write(tmp.resolve("b.safetensors"), List.of(
        Entry.f32("z", new long[] {1}, 4f), Entry.f32("x", new long[] {1}, 5f)));
    assertRejected(index("x", "a.safetensors", "y", "a.safetensors", "z", "b.safetensors"),
        "tensor 'x' is in two shards");
  }

  @Test
  void rejectsTensorTheIndexDoesNotList() {
    writeSmallShards();
    assertRejected(index("x", "a.safetensors", "z", "b.safetensors"), "holds tensor 'y'", "does not list");
  }

  @Test
  void rejectsFilesThatAreNotAnIndex() throws IOException {
    Path file = tmp.resolve("model.safetensors.index.json");
    Files.writeString(file, "{\"metadata\": {}}");
    assertRejected(file, "weight_map");
    Files.writeString(file, "{\"weight_map\": {}}");
    assertRejected(file, "lists no tensors");
    Files.writeString(file, "{\"weight_map\": {\"x\": 3}}");
    assertRejected(file, "tensor 'x'", "must be a shard file name");
    Files.writeString(file, "not json");
    assertRejected(file, "not valid JSON");
    // Found by fuzzing: invalid UTF-8 read as "cannot read: java.nio.charset.MalformedInputException: ...".
    Files.write(file, new byte[] {'{', '"', (byte) 0xff, '"', ':', '1', '}'});
    assertRejected(file, "not valid UTF-8 text", "not a sharded-checkpoint index");
    assertRejected(tmp.resolve("absent.index.json"), "does not exist");
  }

  // Found by fuzzing: tensor and shard names went into messages raw, a newline included, and whole.
  @Test
  void namesFromTheIndexAreQuotedAndCutInMessages() throws IOException {
    Path file = tmp.resolve("model.safetensors.index.json");
    String longName = "x".repeat(40_000); // Jackson allows names of up to 50000 characters
    Files.writeString(file, "{\"weight_map\": {\"w\\n[INFO] forged" + longName + "\": [\"" + longName + "\"]}}");
    String message = assertThrows(CheckpointException.class, () -> openIndex(file)).getMessage();
    assertTrue(message.contains("tensor 'w?[INFO] forgedxxx"), message);
    assertTrue(message.contains("must be a shard file name"), message);
    assertFalse(message.contains("\n"), message);
    assertTrue(message.length() < 1000, "a cut message, not " + message.length() + " characters");

    writeSmallShards();
    String shard = "c\n" + longName + ".safetensors";
    CheckpointException missing = assertThrows(CheckpointException.class,
        () -> openIndex(index("x", "a.safetensors", "y", "a.safetensors", "z", shard)));
    assertTrue(missing.getMessage().contains("shard 'c?xxx"), missing.getMessage());
    assertFalse(missing.getMessage().contains("\n"), missing.getMessage());
    assertTrue(missing.getMessage().length() < 1000, missing.getMessage());
  }

  // The index's JSON mapper rejects duplicate keys; Jackson's message holds the key whole and unescaped.
  @Test
  void aDuplicateKeyIsNamedQuotedAndCut() throws IOException {
    Path file = tmp.resolve("model.safetensors.index.json");
    String key = "w\\n" + "k".repeat(10_000);
    Files.writeString(file, "{\"weight_map\": {\"" + key + "\": \"a.safetensors\", \"" + key
        + "\": \"b.safetensors\"}}");
    String message = assertThrows(CheckpointException.class, () -> openIndex(file)).getMessage();
    assertTrue(message.contains("Duplicate field 'w?kkk"), message);
    assertFalse(message.contains("\n"), message);
    assertTrue(message.length() < 1000, message);
  }

  /** Wraps a real checkpoint and records whether it was closed. */
  private static final class Spy implements Checkpoint {
    final Checkpoint inner;
    boolean closed;

    Spy(Checkpoint inner) {
      this.inner = inner;
    }

    @Override
    public String format() {
      return inner.format();
    }

    @Override
    public Collection<TensorInfo> tensors() {
      return inner.tensors();
    }

    @Override
    public boolean contains(String name) {
      return inner.contains(name);
    }

    @Override
    public Tensor tensor(String name) {
      return inner.tensor(name);
    }

    @Override
    public void close() {
      closed = true;
      inner.close();
    }
  }

  @Test
  void closesOpenedShardsWhenALaterShardFails() throws IOException {
    writeSmallShards();
    Files.write(tmp.resolve("b.safetensors"), new byte[3]); // corrupt
    List<Spy> opened = new ArrayList<>();
    Path index = index("x", "a.safetensors", "y", "a.safetensors", "z", "b.safetensors");
    CheckpointException e = assertThrows(CheckpointException.class, () -> ShardedCheckpoint.open(index, p -> {
      Spy s = new Spy(SafetensorsCheckpoint.open(p));
      opened.add(s);
      return s;
    }));
    assertTrue(e.getMessage().contains("b.safetensors"), e.getMessage());
    assertEquals(1, opened.size());
    assertTrue(opened.get(0).closed, "a.safetensors was closed again");
  }

  @Test
  void closesOpenedShardsWhenTheCrossCheckFails() {
    writeSmallShards();
    List<Spy> opened = new ArrayList<>();
    Path index = index("x", "a.safetensors", "z", "b.safetensors"); // y unlisted
    assertThrows(CheckpointException.class, () -> ShardedCheckpoint.open(index, p -> {
      Spy s = new Spy(SafetensorsCheckpoint.open(p));
      opened.add(s);
      return s;
    }));
    assertEquals(2, opened.size());
    assertTrue(opened.stream().allMatch(s -> s.closed));
  }

  @Test
  void wrapsOpenerFailuresThatAreNotCheckpointExceptions() {
    writeSmallShards();
    Path index = index("x", "a.safetensors", "y", "a.safetensors", "z", "b.safetensors");
    CheckpointException e = assertThrows(CheckpointException.class, () -> ShardedCheckpoint.open(index, p -> {
      throw new UnsupportedOperationException("no reader");
    }));
    assertTrue(e.getMessage().contains("a.safetensors") && e.getMessage().contains("no reader"), e.getMessage());
  }

  @Test
  void closingClosesEveryShard() {
    writeSmallShards();
    List<Spy> opened = new ArrayList<>();
    Path index = index("x", "a.safetensors", "y", "a.safetensors", "z", "b.safetensors");
    ShardedCheckpoint c = ShardedCheckpoint.open(index, p -> {
      Spy s = new Spy(SafetensorsCheckpoint.open(p));
      opened.add(s);
      return s;
    });
    assertEquals(4f, c.tensor("z").toFloatArray()[0]);
    c.close();
    assertEquals(2, opened.size());
    assertTrue(opened.stream().allMatch(s -> s.closed));
    assertThrows(IllegalStateException.class, () -> c.tensor("z"));
  }
}
