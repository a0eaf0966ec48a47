package io.github.optjava.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class PytorchCheckpointTest {

  @TempDir
  Path tmp;

  /** One tensor as the independent safetensors parser below reads it. */
  private record Expected(DType dtype, long[] shape, byte[] data) {}

  @ParameterizedTest
  @ValueSource(strings = {"tiny-opt-postln"}) // (tiny-opt's .bin left the repository in session 21: size)
  void everyTensorEqualsTheSafetensorsCopy(String model) throws IOException {
    Map<String, Expected> expected = readSafetensors(PytorchTestFiles.fixture(model, "model.safetensors"));
    try (Checkpoint c = PytorchCheckpoint.open(PytorchTestFiles.fixture(model, "pytorch_model.bin"))) {
      assertEquals("pytorch", c.format());
      List<String> names = new ArrayList<>();
      for (TensorInfo info : c.tensors()) {
        names.add(info.name());
      }
      assertEquals(new ArrayList<>(expected.keySet()), names, "same names, sorted");
      for (TensorInfo info : c.tensors()) {
        Expected e = expected.get(info.name());
        Tensor t = c.tensor(info.name());
        assertEquals(e.dtype, t.dtype(), info.name());
        assertArrayEquals(e.shape, t.shape(), info.name());
        assertEquals(ByteBuffer.wrap(e.data), t.data(), info.name() + ": bytes differ");
      }
      c.validateData();
    }
  }

  /**
   * Tied weights, as HF saves OPT's {@code lm_head.weight} and {@code embed_tokens.weight}: two tensors on one storage
   * key, mapped once (a built file: tiny-opt's .bin, which held such a pair, left the repository in session 21).
   */
  @Test
  void tiedWeightsAreViewsOfOneMappedStorage() throws IOException {
    PickleBuilder p = new PickleBuilder().proto(2).orderedDict().mark();
    p.str("model.decoder.embed_tokens.weight").tensor("HalfStorage", "0", 12, 0, new long[] {4, 3},
        new long[] {3, 1});
    p.str("model.decoder.final_layer_norm.weight").tensor("HalfStorage", "1", 3, 0, new long[] {3}, new long[] {1});
    p.str("lm_head.weight").tensor("HalfStorage", "0", 12, 0, new long[] {4, 3}, new long[] {3, 1});
    Path file = PytorchTestFiles.torch(tmp.resolve("tied.bin"), p.setitems().stop().bytes(),
        Map.of("0", PytorchTestFiles.bytes(24, 4), "1", PytorchTestFiles.bytes(6, 5)));
    try (PytorchCheckpoint c = (PytorchCheckpoint) PytorchCheckpoint.open(file)) {
      assertSame(c.storageOf("lm_head.weight"), c.storageOf("model.decoder.embed_tokens.weight"));
      Tensor lm = c.tensor("lm_head.weight");
      Tensor embed = c.tensor("model.decoder.embed_tokens.weight");
      assertEquals(lm.data(), embed.data());
      assertEquals(1, c.mappedStorageCount(), "both tensors come from the same mapping");
      for (TensorInfo info : c.tensors()) {
        c.tensor(info.name());
      }
      assertEquals(c.tensors().size() - 1, c.mappedStorageCount(), "one mapping per storage, not per tensor");
    }
  }

  @Test
  void tensorApi() {
    Path bin = PytorchTestFiles.fixture("tiny-opt-postln", "pytorch_model.bin");
    Checkpoint c = PytorchCheckpoint.open(bin);
    assertTrue(c.contains("decoder.project_in.weight"));
    assertFalse(c.contains("lm_head.weight"));
    Tensor t = c.tensor("decoder.project_in.weight");
    assertArrayEquals(new long[] {64, 32}, t.shape());
    assertTrue(t.data().isReadOnly());
    assertEquals(ByteOrder.LITTLE_ENDIAN, t.data().order());
    CheckpointException missing = assertThrows(CheckpointException.class, () -> c.tensor("lm_head.weight"));
    assertTrue(missing.getMessage().contains("lm_head.weight") && missing.getMessage().contains(bin.toString()),
        missing.getMessage());
    assertThrows(UnsupportedOperationException.class, () -> c.tensors().clear());
    c.close();
    c.close(); // idempotent
    CheckpointException closed = assertThrows(CheckpointException.class,
        () -> c.tensor("decoder.project_out.weight"));
    assertTrue(closed.getMessage().contains("closed"), closed.getMessage());
  }

  @Test
  void validateDataCatchesACorruptStorage() throws IOException {
    Path copy = tmp.resolve("pytorch_model.bin");
    byte[] bin = Files.readAllBytes(PytorchTestFiles.fixture("tiny-opt-postln", "pytorch_model.bin"));
    // Flip one byte in the middle of the largest storage (the embeddings); headers stay intact.
    bin[bin.length / 2] ^= 0x5a;
    Files.write(copy, bin);
    try (Checkpoint c = PytorchCheckpoint.open(copy)) {
      CheckpointException e = assertThrows(CheckpointException.class, c::validateData);
      assertTrue(e.getMessage().contains("corrupt") && e.getMessage().contains("data/"), e.getMessage());
    }
  }

  @Test
  void zip64ArchiveWithoutCrcsAsNewerTorchWritesIt() throws IOException {
    // torch.save writes a zip64 end record always, zip64 extra fields for multi-GB shards, 64-byte aligned
    // data and, with compute_crc32=False, CRC 0 (then the data are read, not checked).
    byte[] pickle = PickleBuilder.stateDict(new String[] {"w", "v"}, new long[][] {{2, 2}, {3}});
    byte[] w = PytorchTestFiles.bytes(8, 1);
    byte[] v = PytorchTestFiles.bytes(6, 2);
    byte[] zip = new ZipTestWriter().zip64(true).dataDescriptor(true).computeCrc(false)
        .add("archive/data.pkl", pickle).add("archive/data/0", w).add("archive/data/1", v)
        .add("archive/.data/version", "3\n".getBytes()).toBytes();
    Path file = Files.write(tmp.resolve("z.bin"), zip);
    try (Checkpoint c = PytorchCheckpoint.open(file)) {
      c.validateData();
      assertEquals(ByteBuffer.wrap(w), c.tensor("w").data());
      assertEquals(ByteBuffer.wrap(v), c.tensor("v").data());
    }
  }

  @Test
  void plainDictParameterAndBf16AndSharedStorageOffsets() throws IOException {
    // {'a': Parameter(bf16 [2,3] at offset 0), 'b': bf16 [2] at offset 6 of the same storage}, as a plain dict.
    PickleBuilder p = new PickleBuilder().proto(2).emptyDict().mark();
    p.str("a").global("torch._utils", "_rebuild_parameter")
        .tensor("BFloat16Storage", "7", 8, 0, new long[] {2, 3}, new long[] {3, 1})
        .newTrue().orderedDict().tuple3().reduce();
    p.str("b").tensor("BFloat16Storage", "7", 8, 6, new long[] {2}, new long[] {1});
    byte[] pickle = p.setitems().stop().bytes();
    byte[] storage = PytorchTestFiles.bytes(16, 3);
    Path file = PytorchTestFiles.torch(tmp.resolve("b.bin"), pickle, Map.of("7", storage));
    try (Checkpoint c = PytorchCheckpoint.open(file)) {
      assertEquals(DType.BF16, c.tensor("a").dtype());
      assertEquals(ByteBuffer.wrap(storage, 0, 12), c.tensor("a").data());
      assertArrayEquals(new long[] {2}, c.tensor("b").shape());
      assertEquals(ByteBuffer.wrap(storage, 12, 4), c.tensor("b").data());
    }
  }

  @Test
  void stateDictMetadataIsAcceptedAndIgnored() throws IOException {
    // OrderedDict with a `_metadata` attribute, as state_dict() returns: BUILD after the items.
    PickleBuilder p = new PickleBuilder().proto(2).orderedDict().mark();
    p.str("w").tensor("FloatStorage", "0", 2, 0, new long[] {2}, new long[] {1});
    p.setitems().emptyDict().str("_metadata").orderedDict().str("").emptyDict().str("version").integer(1)
        .setitem().setitem().setitem().build().stop();
    Path file = PytorchTestFiles.torch(tmp.resolve("m.bin"), p.bytes(), Map.of("0", PytorchTestFiles.bytes(8, 2)));
    try (Checkpoint c = PytorchCheckpoint.open(file)) {
      assertEquals(List.of(new TensorInfo("w", DType.F32, new long[] {2})), new ArrayList<>(c.tensors()));
    }
  }

  /**
   * A minimal safetensors parser, independent of the library's: 8-byte little-endian header length, a JSON
   * header, data_offsets relative to the data section.
   */
  static Map<String, Expected> readSafetensors(Path file) throws IOException {
    byte[] all = Files.readAllBytes(file);
    long headerLen = ByteBuffer.wrap(all, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
    JsonNode header = new ObjectMapper().readTree(new String(all, 8, (int) headerLen, "UTF-8"));
    int dataStart = 8 + (int) headerLen;
    Map<String, Expected> out = new TreeMap<>();
    for (Map.Entry<String, JsonNode> e : header.properties()) {
      if (e.getKey().equals("__metadata__")) {
        continue;
      }
      JsonNode t = e.getValue();
      long[] shape = new long[t.get("shape").size()];
      for (int i = 0; i < shape.length; i++) {
        shape[i] = t.get("shape").get(i).asLong();
      }
      int begin = t.get("data_offsets").get(0).asInt();
      int end = t.get("data_offsets").get(1).asInt();
      byte[] data = new byte[end - begin];
      System.arraycopy(all, dataStart + begin, data, 0, data.length);
      out.put(e.getKey(), new Expected(DType.valueOf(t.get("dtype").asText()), shape, data));
    }
    return out;
  }
}
