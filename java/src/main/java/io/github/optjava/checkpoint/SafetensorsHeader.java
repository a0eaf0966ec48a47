package io.github.optjava.checkpoint;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * The validated JSON header of one safetensors file. Everything a reader could trip over later is checked
 * here, before any tensor byte is touched: types, shapes, spans inside the data section, span sizes that
 * match shape × dtype, and spans that do not overlap.
 */
final class SafetensorsHeader {

  /** The JSON header may not be larger than this (safetensors' own reader uses the same 100 MB cap). */
  static final long MAX_HEADER_BYTES = 100L * 1000 * 1000;

  private static final String METADATA_KEY = "__metadata__";
  private static final Set<String> ENTRY_FIELDS = Set.of("dtype", "shape", "data_offsets");

  /** Duplicate keys are an error (a later duplicate would silently replace the first). */
  static final ObjectMapper JSON = JsonMapper.builder()
      .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
      .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
      .build();

  /** One tensor: what it is and where its bytes are, relative to the start of the data section. */
  record Entry(TensorInfo info, long begin, long end) {
    long length() {
      return end - begin;
    }
  }

  private final Map<String, String> metadata;
  private final List<Entry> entries;

  private SafetensorsHeader(Map<String, String> metadata, List<Entry> entries) {
    this.metadata = Collections.unmodifiableMap(metadata);
    this.entries = List.copyOf(entries);
  }

  /** The {@code __metadata__} map (empty if the file has none). */
  Map<String, String> metadata() {
    return metadata;
  }

  /** The tensors, sorted by where their data starts. */
  List<Entry> entries() {
    return entries;
  }

  /**
   * Parses and validates a header.
   *
   * @param file     the file, for messages
   * @param json     the N header bytes (UTF-8 JSON, possibly padded with spaces)
   * @param dataSize bytes after the header (the data section)
   */
  static SafetensorsHeader parse(String file, byte[] json, long dataSize) {
    JsonNode root = parseJson(file, json);
    if (!root.isObject()) {
      throw fail(file, "the header is JSON " + root.getNodeType().toString().toLowerCase(Locale.ROOT)
          + ", not an object of tensors");
    }
    Map<String, String> metadata = new LinkedHashMap<>();
    List<Entry> entries = new ArrayList<>();
    for (Map.Entry<String, JsonNode> field : root.properties()) {
      if (field.getKey().equals(METADATA_KEY)) {
        readMetadata(file, field.getValue(), metadata);
      } else {
        entries.add(readEntry(file, field.getKey(), field.getValue(), dataSize));
      }
    }
    entries.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
    checkNoOverlap(file, entries);
    return new SafetensorsHeader(metadata, entries);
  }

  private static JsonNode parseJson(String file, byte[] json) {
    String text;
    try {
      // A strict decoder: malformed UTF-8 is an error rather than silently becoming U+FFFD in a name.
      text = StandardCharsets.UTF_8.newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT)
          .decode(ByteBuffer.wrap(json))
          .toString();
    } catch (CharacterCodingException e) {
      throw fail(file, "the header is not valid UTF-8: not a safetensors file, or it is corrupted");
    }
    try {
      JsonNode root = JSON.readTree(text);
      if (root == null || root.isMissingNode()) {
        throw fail(file, "the header is empty: not a safetensors file");
      }
      return root;
    } catch (JsonProcessingException e) {
      throw new CheckpointException(file + ": the header is not valid JSON (" + Untrusted.parserMessage(e)
          + "): not a safetensors file, or it is corrupted", e);
    }
  }

  private static void readMetadata(String file, JsonNode node, Map<String, String> out) {
    if (!node.isObject()) {
      throw fail(file, "__metadata__ must be an object of strings, found " + node.getNodeType());
    }
    for (Map.Entry<String, JsonNode> e : node.properties()) {
      if (!e.getValue().isTextual()) {
        throw fail(file, "__metadata__ entry " + Untrusted.quote(e.getKey()) + " must be a string, found "
            + Untrusted.json(e.getValue()));
      }
      out.put(e.getKey(), e.getValue().textValue());
    }
  }

  private static Entry readEntry(String file, String name, JsonNode node, long dataSize) {
    String where = file + ": tensor " + Untrusted.quote(name);
    if (name.isEmpty()) {
      throw new CheckpointException(file + ": a tensor has an empty name");
    }
    if (!node.isObject()) {
      throw new CheckpointException(where + ": expected an object with dtype, shape and data_offsets, found "
          + node.getNodeType());
    }
    for (Map.Entry<String, JsonNode> field : node.properties()) {
      String f = field.getKey();
      if (!ENTRY_FIELDS.contains(f)) {
        throw new CheckpointException(where + ": unknown field " + Untrusted.quote(f)
            + " (a safetensors tensor has only dtype, shape and data_offsets)");
      }
    }
    DType dtype = readDtype(where, node.get("dtype"));
    long[] shape = readLongs(where, "shape", node.get("shape"), -1);
    long[] offsets = readLongs(where, "data_offsets", node.get("data_offsets"), 2);
    long begin = offsets[0];
    long end = offsets[1];
    if (begin > end) {
      throw new CheckpointException(where + ": data_offsets [" + begin + ", " + end + "] ends before it begins");
    }
    if (end > dataSize) {
      throw new CheckpointException(where + ": data_offsets [" + begin + ", " + end
          + "] reach past the end of the data section (" + dataSize
          + " bytes): the file is truncated or its header is wrong");
    }
    TensorInfo info = new TensorInfo(name, dtype, shape);
    long expected;
    try {
      expected = info.byteSize();
    } catch (ArithmeticException e) {
      throw new CheckpointException(where + ": shape " + Arrays.toString(shape)
          + " has more elements than a file can hold", e);
    }
    if (end - begin != expected) {
      throw new CheckpointException(where + ": data_offsets [" + begin + ", " + end + "] span " + (end - begin)
          + " bytes but " + dtype + Arrays.toString(shape) + " needs " + expected);
    }
    return new Entry(info, begin, end);
  }

  private static DType readDtype(String where, JsonNode node) {
    if (node == null || !node.isTextual()) {
      throw new CheckpointException(where + ": dtype is "
          + (node == null ? "missing" : "not a string: " + Untrusted.json(node)));
    }
    try {
      return DType.fromSafetensors(node.textValue());
    } catch (CheckpointException e) {
      throw new CheckpointException(where + ": " + e.getMessage(), e);
    }
  }

  /** Reads an array of non-negative integers; {@code length} -1 means any length. */
  private static long[] readLongs(String where, String field, JsonNode node, int length) {
    if (node == null) {
      throw new CheckpointException(where + ": " + field + " is missing");
    }
    if (!node.isArray() || (length >= 0 && node.size() != length)) {
      throw new CheckpointException(where + ": " + field + " must be an array of "
          + (length >= 0 ? length + " " : "") + "non-negative integers, found " + Untrusted.json(node));
    }
    if (node.size() > PytorchTensorRef.MAX_DIMS) {
      throw new CheckpointException(where + ": " + field + " has " + node.size() + " entries; a tensor has at most "
          + PytorchTensorRef.MAX_DIMS + " dimensions: the header is corrupted");
    }
    long[] out = new long[node.size()];
    for (int i = 0; i < out.length; i++) {
      JsonNode v = node.get(i);
      if (!v.isIntegralNumber() || !v.canConvertToLong() || v.longValue() < 0) {
        throw new CheckpointException(where + ": " + field + " must hold non-negative integers, found "
            + Untrusted.json(node));
      }
      out[i] = v.longValue();
    }
    return out;
  }

  /** Entries are sorted by begin; empty spans hold no bytes, so they cannot collide with anything. */
  private static void checkNoOverlap(String file, List<Entry> sorted) {
    Entry previous = null;
    for (Entry e : sorted) {
      if (e.length() == 0) {
        continue;
      }
      if (previous != null && e.begin() < previous.end()) {
        throw new CheckpointException(file + ": tensor " + Untrusted.quote(e.info().name()) + " data_offsets ["
            + e.begin() + ", " + e.end() + "] overlap tensor " + Untrusted.quote(previous.info().name()) + " ["
            + previous.begin() + ", " + previous.end() + "]: the header is corrupted");
      }
      previous = e;
    }
  }

  private static CheckpointException fail(String file, String what) {
    return new CheckpointException(file + ": " + what);
  }
}
