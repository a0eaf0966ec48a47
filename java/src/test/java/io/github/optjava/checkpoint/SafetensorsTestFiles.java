package io.github.optjava.checkpoint;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Test-only safetensors writer and fixture locator, shared by the checkpoint and model tests. Written
 * independently of the reader: it lays files out exactly as docs/fixtures.md describes (8-byte LE header
 * length, space-padded JSON header, contiguous data in the given order).
 */
public final class SafetensorsTestFiles {
  private static final ObjectMapper JSON = new ObjectMapper();

  private SafetensorsTestFiles() {}

  /** One tensor to write: raw little-endian bytes of the given dtype and shape. */
  public record Entry(String name, DType dtype, long[] shape, byte[] data) {

    /** A copy of a checkpoint tensor (same name, dtype, shape, bytes). */
    public static Entry of(Tensor t) {
      ByteBuffer b = t.data();
      byte[] bytes = new byte[b.remaining()];
      b.get(bytes);
      return new Entry(t.name(), t.dtype(), t.shape(), bytes);
    }

    /** A copy of a checkpoint tensor under another name. */
    public Entry renamed(String newName) {
      return new Entry(newName, dtype, shape, data);
    }

    public static Entry f32(String name, long[] shape, float... values) {
      ByteBuffer b = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
      for (float v : values) {
        b.putFloat(v);
      }
      return new Entry(name, DType.F32, shape, b.array());
    }

    /** Values rounded to fp16 (round to nearest even). */
    public static Entry f16(String name, long[] shape, float... values) {
      ByteBuffer b = ByteBuffer.allocate(2 * values.length).order(ByteOrder.LITTLE_ENDIAN);
      for (float v : values) {
        b.putShort(Half.fromFloat(v));
      }
      return new Entry(name, DType.F16, shape, b.array());
    }

    /** Values rounded to bfloat16 (round to nearest even; finite inputs only). */
    public static Entry bf16(String name, long[] shape, float... values) {
      ByteBuffer b = ByteBuffer.allocate(2 * values.length).order(ByteOrder.LITTLE_ENDIAN);
      for (float v : values) {
        int bits = Float.floatToRawIntBits(v);
        b.putShort((short) ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16));
      }
      return new Entry(name, DType.BF16, shape, b.array());
    }
  }

  /** The directory of a fixture model ({@code tiny-opt} or {@code tiny-opt-postln}) on the test classpath. */
  public static Path fixtureModel(String name) {
    URL url = SafetensorsTestFiles.class.getResource("/fixtures/models/" + name + "/config.json");
    if (url == null) {
      throw new IllegalStateException("fixture model " + name + " is not on the test classpath");
    }
    try {
      return Path.of(url.toURI()).getParent();
    } catch (URISyntaxException e) {
      throw new IllegalStateException(e);
    }
  }

  /** Every tensor of a checkpoint, copied, sorted by name. */
  public static List<Entry> entries(Checkpoint c) {
    List<Entry> out = new ArrayList<>();
    for (TensorInfo t : c.tensors()) {
      out.add(Entry.of(c.tensor(t.name())));
    }
    return out;
  }

  /** Writes a well-formed safetensors file with {@code __metadata__ = {"format": "pt"}}. */
  public static void write(Path file, List<Entry> entries) {
    Map<String, Object> header = new LinkedHashMap<>();
    header.put("__metadata__", Map.of("format", "pt"));
    long offset = 0;
    for (Entry e : entries) {
      Map<String, Object> t = new LinkedHashMap<>();
      t.put("dtype", e.dtype().name());
      t.put("shape", e.shape());
      t.put("data_offsets", new long[] {offset, offset + e.data().length});
      header.put(e.name(), t);
      offset += e.data().length;
    }
    ByteBuffer data = ByteBuffer.allocate(Math.toIntExact(offset));
    for (Entry e : entries) {
      data.put(e.data());
    }
    try {
      StringBuilder json = new StringBuilder(JSON.writeValueAsString(header));
      while (json.toString().getBytes(StandardCharsets.UTF_8).length % 8 != 0) {
        json.append(' '); // the reference writer pads to a multiple of 8 so data is aligned
      }
      writeRaw(file, json.toString().getBytes(StandardCharsets.UTF_8), data.array());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Writes a file with the given header text (any content, for malformed-header tests) and data. */
  public static void writeRaw(Path file, String header, byte[] data) {
    writeRaw(file, header.getBytes(StandardCharsets.UTF_8), data);
  }

  /** Writes the 8-byte little-endian length of {@code header}, the header bytes, then {@code data}. */
  public static void writeRaw(Path file, byte[] header, byte[] data) {
    ByteBuffer b = ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(header.length).put(header).put(data);
    try {
      Files.write(file, b.array());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /**
   * Splits a checkpoint into {@code shards} safetensors files ({@code model-00001-of-0000n.safetensors},
   * tensors in name order, about equally many per shard) and writes {@code model.safetensors.index.json}.
   *
   * @return the index file
   */
  public static Path writeSharded(Path dir, Checkpoint source, int shards) {
    List<Entry> all = entries(source);
    Map<String, String> weightMap = new LinkedHashMap<>();
    long total = 0;
    for (int s = 0; s < shards; s++) {
      String shardName = String.format("model-%05d-of-%05d.safetensors", s + 1, shards);
      List<Entry> part = all.subList(s * all.size() / shards, (s + 1) * all.size() / shards);
      write(dir.resolve(shardName), part);
      for (Entry e : part) {
        weightMap.put(e.name(), shardName);
        total += e.data().length;
      }
    }
    return writeIndex(dir, Map.of("total_size", total), weightMap);
  }

  /** Writes {@code model.safetensors.index.json} with the given metadata and weight map. */
  public static Path writeIndex(Path dir, Map<String, ?> metadata, Map<String, String> weightMap) {
    Map<String, Object> index = new LinkedHashMap<>();
    index.put("metadata", metadata);
    index.put("weight_map", weightMap);
    Path file = dir.resolve("model.safetensors.index.json");
    try {
      Files.writeString(file, JSON.writerWithDefaultPrettyPrinter().writeValueAsString(index));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return file;
  }
}
