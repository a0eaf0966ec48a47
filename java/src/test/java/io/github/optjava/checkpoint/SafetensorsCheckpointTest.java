package io.github.optjava.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.checkpoint.SafetensorsTestFiles.Entry;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsCheckpointTest {

  @TempDir
  Path tmp;

  private static Path fixtureFile(String model) {
    return SafetensorsTestFiles.fixtureModel(model).resolve("model.safetensors");
  }

  private static short half(Tensor t, long index) {
    return t.data().getShort(Math.toIntExact(2 * index));
  }

  @Test
  void readsFixtureHeaderAndFp16Values() {
    try (SafetensorsCheckpoint c = SafetensorsCheckpoint.open(fixtureFile("tiny-opt"))) {
      assertEquals("safetensors", c.format());
      assertEquals(Map.of("format", "pt"), c.metadata());
      assertEquals(37, c.tensors().size());
      List<String> names = c.tensors().stream().map(TensorInfo::name).toList();
      assertEquals(names.stream().sorted().toList(), names, "tensors() is sorted by name");
      assertTrue(c.tensors().stream().allMatch(t -> t.dtype() == DType.F16));

      Tensor embed = c.tensor("model.decoder.embed_tokens.weight");
      assertArrayEquals(new long[] {50272, 64}, embed.shape());
      float[] values = embed.toFloatArray();
      for (int i = 0; i < 64; i++) {
        assertEquals(0f, values[64 + i], "row 1 (pad) is all zeros");
      }
      // Expected bits read from the file by an independent (numpy) reader.
      assertEquals((short) 0x37f3, half(embed, 128));
      assertEquals((short) 0x3a50, half(embed, 129));
      assertEquals((short) 0xb27a, half(embed, 130));
      assertEquals(Half.toFloat((short) 0x3a50), values[129]);

      Tensor bias = c.tensor("model.decoder.layers.1.fc1.bias");
      assertArrayEquals(new long[] {256}, bias.shape());
      assertEquals((short) 0x9d7f, half(bias, 0));
      assertEquals((short) 0x250f, half(bias, 2));
    }
  }

  @Test
  void readsPostLnFixture() {
    try (SafetensorsCheckpoint c = SafetensorsCheckpoint.open(fixtureFile("tiny-opt-postln"))) {
      assertEquals(36, c.tensors().size());
      assertFalse(c.contains("lm_head.weight"));
      Tensor projIn = c.tensor("decoder.project_in.weight");
      assertArrayEquals(new long[] {64, 32}, projIn.shape());
      assertEquals((short) 0x30c2, half(projIn, 0));
      assertEquals((short) 0x3611, half(projIn, 2));
      assertEquals((short) 0x1f0b, half(c.tensor("decoder.layers.1.fc1.bias"), 0));
    }
  }

  @Test
  void smallMappingWindowsGiveTheSameBytes() {
    Path file = fixtureFile("tiny-opt");
    // 7 MiB fits one 6.4 MB embedding per window, so the file is mapped in several windows.
    try (SafetensorsCheckpoint whole = SafetensorsCheckpoint.open(file);
        SafetensorsCheckpoint windowed = SafetensorsCheckpoint.open(file, 7L << 20)) {
      assertEquals(whole.tensors(), windowed.tensors());
      for (TensorInfo t : whole.tensors()) {
        assertEquals(whole.tensor(t.name()).data(), windowed.tensor(t.name()).data(), t.name());
      }
      whole.validateData();
      windowed.validateData();
    }
  }

  @Test
  void tensorLargerThanTheMappingLimitIsRejected() {
    CheckpointException e = assertThrows(CheckpointException.class,
        () -> SafetensorsCheckpoint.open(fixtureFile("tiny-opt"), 1 << 20));
    // lm_head.weight is the first tensor in the file and, at 6.4 MB, already too large
    assertTrue(e.getMessage().contains("tensor 'lm_head.weight' is 6434816 bytes"), e.getMessage());
    assertTrue(e.getMessage().contains("cannot be mapped as one Java buffer"), e.getMessage());
  }

  @Test
  void readsF32Bf16AndF16Exactly() {
    float[] values = {1.5f, -2.25f, 3.0517578e-5f, 65504f, -0f, 0.1f};
    Path file = tmp.resolve("mixed.safetensors");
    SafetensorsTestFiles.write(file, List.of(
        Entry.f32("a.f32", new long[] {2, 3}, values),
        Entry.bf16("b.bf16", new long[] {3}, 1.5f, -2.25f, 3.0f),
        Entry.f16("c.f16", new long[] {6}, values),
        Entry.f32("d.empty", new long[] {0, 4}),
        Entry.f32("e.scalar", new long[] {}, 7f)));
    try (SafetensorsCheckpoint c = SafetensorsCheckpoint.open(file)) {
      assertArrayEquals(values, c.tensor("a.f32").toFloatArray());
      assertEquals(DType.BF16, c.tensor("b.bf16").dtype());
      assertArrayEquals(new float[] {1.5f, -2.25f, 3.0f}, c.tensor("b.bf16").toFloatArray());
      float[] halves = c.tensor("c.f16").toFloatArray();
      for (int i = 0; i < values.length; i++) {
        assertEquals(Half.toFloat(Half.fromFloat(values[i])), halves[i]);
      }
      assertEquals(65504f, halves[3]);
      assertEquals(0, c.tensor("d.empty").toFloatArray().length);
      assertArrayEquals(new float[] {7f}, c.tensor("e.scalar").toFloatArray());
      c.validateData();
    }
  }

  @Test
  void closedCheckpointRefusesTensors() {
    SafetensorsCheckpoint c = SafetensorsCheckpoint.open(fixtureFile("tiny-opt-postln"));
    c.close();
    assertThrows(IllegalStateException.class, () -> c.tensor("decoder.embed_tokens.weight"));
  }

  @Test
  void unknownTensorNameNamesTheFile() {
    try (SafetensorsCheckpoint c = SafetensorsCheckpoint.open(fixtureFile("tiny-opt-postln"))) {
      CheckpointException e = assertThrows(CheckpointException.class, () -> c.tensor("lm_head.weight"));
      assertTrue(e.getMessage().contains("model.safetensors") && e.getMessage().contains("lm_head.weight"));
    }
  }

  // ---- malformed files: each must fail at open with a CheckpointException naming file and problem ----

  private void assertRejected(Path file, String... fragments) {
    CheckpointException e = assertThrows(CheckpointException.class, () -> SafetensorsCheckpoint.open(file));
    assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
    for (String f : fragments) {
      assertTrue(e.getMessage().contains(f), "expected '" + f + "' in: " + e.getMessage());
    }
  }

  private Path rawFile(String header, int dataBytes) {
    Path file = tmp.resolve("bad.safetensors");
    SafetensorsTestFiles.writeRaw(file, header, new byte[dataBytes]);
    return file;
  }

  @Test
  void rejectsMissingFile() {
    assertRejected(tmp.resolve("absent.safetensors"), "does not exist");
  }

  @Test
  void rejectsHeaderLengthPastEndOfFile() throws IOException {
    Path file = tmp.resolve("bad.safetensors");
    ByteBuffer b = ByteBuffer.allocate(20).order(ByteOrder.LITTLE_ENDIAN).putLong(1000);
    Files.write(file, b.array());
    assertRejected(file, "header length 1000", "past the end");
    b.putLong(0, -1L); // 2^64 - 1 as an unsigned length
    Files.write(file, b.array());
    assertRejected(file, "header length 18446744073709551615");
  }

  @Test
  void rejectsZeroHeaderLengthAndTinyFiles() throws IOException {
    Path file = tmp.resolve("bad.safetensors");
    Files.write(file, new byte[8]);
    assertRejected(file, "header length is 0");
    Files.write(file, new byte[5]);
    assertRejected(file, "5 bytes, too short");
  }

  @Test
  void rejectsHeaderOverTheSizeCap() throws IOException {
    Path file = tmp.resolve("huge.safetensors");
    long n = SafetensorsHeader.MAX_HEADER_BYTES + 1;
    try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
      f.setLength(8 + n + 16); // sparse: takes no disk space
      f.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(n).array());
    }
    assertRejected(file, "exceeds");
  }

  @Test
  void rejectsHeadersThatAreNotJsonObjects() {
    assertRejected(rawFile("this is not json", 0), "not valid JSON");
    assertRejected(rawFile("[1, 2]", 0), "not an object");
    assertRejected(rawFile("{} trailing", 0), "not valid JSON");
    assertRejected(rawFile("{} {}", 0), "not valid JSON", "more follows");
    assertRejected(rawFile("{\"a\": 1}", 0), "tensor 'a'", "expected an object", "found a number");
    assertRejected(rawFile("   ", 0), "the header is empty");
    Path file = tmp.resolve("bad.safetensors");
    SafetensorsTestFiles.writeRaw(file, new byte[] {'{', '"', (byte) 0xc3, '"', '}'}, new byte[0]);
    assertRejected(file, "not valid UTF-8");
    // Not UTF-8 but read as JSON from bytes (Jackson detects UTF-16 and skips a byte-order mark): refused, as
    // safetensors' own reader refuses them (session 27's review of the streamed parse).
    String header = "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}";
    byte[] utf8 = header.getBytes(StandardCharsets.UTF_8);
    byte[] bom = new byte[utf8.length + 3];
    bom[0] = (byte) 0xef;
    bom[1] = (byte) 0xbb;
    bom[2] = (byte) 0xbf;
    System.arraycopy(utf8, 0, bom, 3, utf8.length);
    for (byte[] h : new byte[][] {bom, header.getBytes(StandardCharsets.UTF_16BE),
        header.getBytes(StandardCharsets.UTF_16LE)}) {
      SafetensorsTestFiles.writeRaw(file, h, new byte[4]);
      assertRejected(file, "not valid JSON");
    }
  }

  @Test
  void rejectsSpanOutOfRange() {
    assertRejected(rawFile("{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", 12),
        "tensor 'w'", "past the end of the data section (12 bytes)");
  }

  @Test
  void rejectsSpanThatEndsBeforeItBegins() {
    assertRejected(rawFile("{\"w\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 4]}}", 16),
        "tensor 'w'", "ends before it begins");
  }

  @Test
  void rejectsOverlappingSpans() {
    assertRejected(rawFile("{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]},"
        + " \"b\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [12, 28]}}", 28),
        "tensor 'b'", "overlap tensor 'a'");
  }

  @Test
  void rejectsUnsupportedDtype() {
    assertRejected(rawFile("{\"ids\": {\"dtype\": \"I64\", \"shape\": [2], \"data_offsets\": [0, 16]}}", 16),
        "tensor 'ids'", "unsupported tensor dtype 'I64'");
  }

  @Test
  void rejectsSpanThatDisagreesWithShapeAndDtype() {
    assertRejected(rawFile("{\"w\": {\"dtype\": \"F16\", \"shape\": [2, 3], \"data_offsets\": [0, 16]}}", 16),
        "tensor 'w'", "span 16 bytes", "needs 12");
    assertRejected(rawFile("{\"w\": {\"dtype\": \"F16\", \"shape\": [4611686018427387904, 4],"
        + " \"data_offsets\": [0, 16]}}", 16), "tensor 'w'", "more elements");
  }

  @Test
  void rejectsMalformedEntries() {
    assertRejected(rawFile("{\"w\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 0]}}", 0),
        "tensor 'w'", "shape must hold non-negative integers");
    assertRejected(rawFile("{\"w\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", 4),
        "tensor 'w'", "shape must hold non-negative integers");
    assertRejected(rawFile("{\"w\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4),
        "tensor 'w'", "data_offsets is missing");
    assertRejected(rawFile("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4),
        "tensor 'w'", "array of 2");
    assertRejected(rawFile("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4], \"extra\": 1}}",
        4), "tensor 'w'", "unknown field 'extra'");
    assertRejected(rawFile("{\"w\": [1, 2]}", 0), "tensor 'w'", "expected an object");
    assertRejected(rawFile("{\"__metadata__\": {\"format\": 1}}", 0), "__metadata__", "must be a string");
  }

  @Test
  void hostileNamesAndValuesStayOutOfMessages() {
    // Found by fuzzing: names went into messages raw (a newline could forge a log line), JSON values whole (a
    // 100 MB header could make a 100 MB message), and a shape could have any number of dimensions.
    assertRejected(rawFile("{\"w\\nERROR forged\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 0]}}",
        0), "tensor 'w?ERROR forged'", "shape must hold non-negative integers");
    Path big = rawFile("{\"w\": {\"dtype\": [" + "1,".repeat(100_000) + "1], \"shape\": [1], \"data_offsets\": [0, 4]}}",
        4);
    CheckpointException e = assertThrows(CheckpointException.class, () -> SafetensorsCheckpoint.open(big));
    assertTrue(e.getMessage().contains("dtype is not a string: [1,1,") && e.getMessage().length() < 300 + big.toString()
        .length(), e.getMessage().length() + " characters: " + e.getMessage().substring(0, Math.min(300, e.getMessage().length())));
    assertRejected(rawFile("{\"w\": {\"dtype\": \"F32\", \"shape\": [" + "1, ".repeat(64) + "1], \"data_offsets\": [0, 4]}}",
        4), "tensor 'w'", "shape has 65 entries", "at most 64 dimensions");
  }

  @Test
  void countsAreCappedSoAHeaderCannotFillTheHeap() {
    StringBuilder many = new StringBuilder("{");
    for (int i = 0; i <= SafetensorsHeader.MAX_TENSORS; i++) {
      many.append(i == 0 ? "" : ",").append("\"t").append(i).append("\":{\"dtype\":\"F32\",\"shape\":[0],"
          + "\"data_offsets\":[0,0]}");
    }
    assertRejected(rawFile(many.append("}").toString(), 0), "more than 100000 tensors");
    StringBuilder meta = new StringBuilder("{\"__metadata__\":{");
    for (int i = 0; i <= SafetensorsHeader.MAX_METADATA_ENTRIES; i++) {
      meta.append(i == 0 ? "" : ",").append("\"k").append(i).append("\":\"v\"");
    }
    assertRejected(rawFile(meta.append("}}").toString(), 0), "__metadata__ has more than 10000 entries");
  }

  @Test
  void aLongArrayInTheHeaderIsCountedNotHeld() {
    // Session 26's fuzz: the header was parsed as a tree, so 100 MB of JSON could take over 1 GB of heap. A
    // streamed parse allocates a small fraction of the header's size however long an array is.
    StringBuilder shape = new StringBuilder("{\"w\": {\"dtype\": \"F32\", \"shape\": [");
    for (int i = 0; i < 2_000_000; i++) {
      shape.append(i == 0 ? "" : ",").append(1000 + i % 1000);
    }
    byte[] json = shape.append("], \"data_offsets\": [0, 4]}}").toString().getBytes(StandardCharsets.UTF_8);
    com.sun.management.ThreadMXBean threads =
        (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
    long before = threads.getCurrentThreadAllocatedBytes();
    CheckpointException e = assertThrows(CheckpointException.class, () -> SafetensorsHeader.parse("f", json, 4));
    long allocated = threads.getCurrentThreadAllocatedBytes() - before;
    assertTrue(e.getMessage().contains("shape has 2000000 entries"), e.getMessage());
    assertTrue(allocated < json.length / 8, allocated + " bytes allocated to parse a " + json.length + "-byte header");
  }

  @Test
  void aHostileDtypeNameIsQuotedAndCut() {
    Path file = rawFile("{\"w\": {\"dtype\": \"X\\nERROR forged" + "y".repeat(100_000)
        + "\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
    CheckpointException e = assertThrows(CheckpointException.class, () -> SafetensorsCheckpoint.open(file));
    assertTrue(e.getMessage().contains("unsupported tensor dtype 'X?ERROR forgedyyy"), e.getMessage());
    assertFalse(e.getMessage().contains("\n"), e.getMessage());
    assertTrue(e.getMessage().length() < 500 + file.toString().length(), e.getMessage().length() + " characters");
  }

  @Test
  void rejectsDuplicateTensorNames() {
    assertRejected(rawFile("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
        + " \"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8), "Duplicate", "'w'");
  }

  @Test
  void truncatedSmallFileFailsCleanlyAtEveryLength() throws IOException {
    Path whole = tmp.resolve("whole.safetensors");
    SafetensorsTestFiles.write(whole, List.of(
        Entry.f32("a", new long[] {3}, 1f, 2f, 3f),
        Entry.f16("b", new long[] {2, 2}, 1f, 2f, 3f, 4f)));
    byte[] bytes = Files.readAllBytes(whole);
    SafetensorsCheckpoint.open(whole).close(); // the untruncated file is valid
    Path cut = tmp.resolve("cut.safetensors");
    for (int length = 0; length < bytes.length; length++) {
      Files.write(cut, Arrays.copyOf(bytes, length));
      assertRejected(cut);
    }
  }

  @Test
  void truncatedFixtureFailsCleanly() throws IOException {
    byte[] bytes = Files.readAllBytes(fixtureFile("tiny-opt"));
    long headerEnd = 8 + ByteBuffer.wrap(bytes, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
    List<Integer> lengths = new ArrayList<>(List.of(0, 4, 8, 9, 100));
    lengths.addAll(List.of((int) headerEnd - 1, (int) headerEnd, (int) headerEnd + 1));
    lengths.addAll(List.of(bytes.length / 2, bytes.length - 2, bytes.length - 1));
    Path cut = tmp.resolve("cut.safetensors");
    for (int length : lengths) {
      Files.write(cut, Arrays.copyOf(bytes, length));
      assertRejected(cut);
    }
  }
}
