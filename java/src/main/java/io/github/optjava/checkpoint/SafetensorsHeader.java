package io.github.optjava.checkpoint;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The validated JSON header of one safetensors file. Everything a reader could trip over later is checked
 * here, before any tensor byte is touched: types, shapes, spans inside the data section, span sizes that
 * match shape × dtype, and spans that do not overlap.
 *
 * <p>The header is read as a stream of JSON tokens, never as a tree, and its counts are capped: a tree of a
 * 100 MB header made of tiny tensors, or of one long shape array, took over 1 GB of heap (session 26's fuzz).
 * Now the heap holds the header's bytes and what the tensors' descriptions need, at most {@link #MAX_TENSORS}
 * of them.
 */
final class SafetensorsHeader {

  /** The JSON header may not be larger than this (safetensors' own reader uses the same 100 MB cap). */
  static final long MAX_HEADER_BYTES = 100L * 1000 * 1000;

  /** Tensors one file may describe. OPT-175B has 1,550 in all its files; a sharded file holds fewer. */
  static final int MAX_TENSORS = 100_000;

  /** {@code __metadata__} entries one file may have (the files of transformers write one: format). */
  static final int MAX_METADATA_ENTRIES = 10_000;

  private static final String METADATA_KEY = "__metadata__";

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
    Map<String, String> metadata = new LinkedHashMap<>();
    List<Entry> entries = new ArrayList<>();
    // Through a strict UTF-8 reader: malformed bytes are an error rather than U+FFFD in a name, and UTF-16 or a byte
    // order mark, which Jackson would detect and accept from bytes, is refused as safetensors' own reader refuses it.
    // The reader decodes in small pieces: no copy of the header as text is made.
    CharsetDecoder utf8 = StandardCharsets.UTF_8.newDecoder()
        .onMalformedInput(CodingErrorAction.REPORT)
        .onUnmappableCharacter(CodingErrorAction.REPORT);
    try (JsonParser p = JSON.createParser(new InputStreamReader(new ByteArrayInputStream(json), utf8))) {
      JsonToken first = p.nextToken();
      if (first == null) {
        throw fail(file, "the header is empty: not a safetensors file");
      }
      if (first != JsonToken.START_OBJECT) {
        throw fail(file, "the header's JSON is " + kind(first) + ", not an object of tensors");
      }
      while (p.nextToken() == JsonToken.FIELD_NAME) {
        String name = p.currentName();
        p.nextToken();
        if (name.equals(METADATA_KEY)) {
          readMetadata(file, p, metadata);
        } else if (entries.size() == MAX_TENSORS) {
          throw fail(file, "the header describes more than " + MAX_TENSORS + " tensors (an OPT checkpoint file has"
              + " at most a few thousand): not an OPT checkpoint, or a corrupted one");
        } else {
          entries.add(readEntry(file, name, p, dataSize));
        }
      }
      if (p.nextToken() != null) {
        throw fail(file, "the header is not valid JSON (more follows its object): the file is corrupted");
      }
    } catch (JsonProcessingException e) {
      throw new CheckpointException(file + ": the header is not valid JSON (" + Untrusted.parserMessage(e)
          + "): not a safetensors file, or it is corrupted", e);
    } catch (CharacterCodingException e) {
      throw fail(file, "the header is not valid UTF-8: not a safetensors file, or it is corrupted");
    } catch (IOException e) {
      // The reader reads a byte array: only its decoding and the parser's own errors (above) can be thrown.
      throw new UncheckedIOException(e);
    }
    entries.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
    checkNoOverlap(file, entries);
    return new SafetensorsHeader(metadata, entries);
  }

  private static void readMetadata(String file, JsonParser p, Map<String, String> out) throws IOException {
    if (p.currentToken() != JsonToken.START_OBJECT) {
      throw fail(file, "__metadata__ must be an object of strings, found " + kind(p.currentToken()));
    }
    while (p.nextToken() == JsonToken.FIELD_NAME) {
      String key = p.currentName();
      if (p.nextToken() != JsonToken.VALUE_STRING) {
        throw fail(file, "__metadata__ entry " + Untrusted.quote(key) + " must be a string, found "
            + Untrusted.json(p));
      }
      if (out.size() == MAX_METADATA_ENTRIES) {
        throw fail(file, "__metadata__ has more than " + MAX_METADATA_ENTRIES + " entries: the header is corrupted");
      }
      out.put(key, p.getText());
    }
  }

  private static Entry readEntry(String file, String name, JsonParser p, long dataSize) throws IOException {
    String where = file + ": tensor " + Untrusted.quote(name);
    if (name.isEmpty()) {
      throw new CheckpointException(file + ": a tensor has an empty name");
    }
    if (p.currentToken() != JsonToken.START_OBJECT) {
      throw new CheckpointException(where + ": expected an object with dtype, shape and data_offsets, found "
          + kind(p.currentToken()));
    }
    DType dtype = null;
    long[] shape = null;
    long[] offsets = null;
    while (p.nextToken() == JsonToken.FIELD_NAME) {
      String field = p.currentName();
      p.nextToken();
      switch (field) {
        case "dtype" -> dtype = readDtype(where, p);
        case "shape" -> shape = readLongs(where, "shape", p, -1);
        case "data_offsets" -> offsets = readLongs(where, "data_offsets", p, 2);
        default -> throw new CheckpointException(where + ": unknown field " + Untrusted.quote(field)
            + " (a safetensors tensor has only dtype, shape and data_offsets)");
      }
    }
    for (String missing : new String[] {dtype == null ? "dtype" : null, shape == null ? "shape" : null,
        offsets == null ? "data_offsets" : null}) {
      if (missing != null) {
        throw new CheckpointException(where + ": " + missing + " is missing");
      }
    }
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

  private static DType readDtype(String where, JsonParser p) throws IOException {
    if (p.currentToken() != JsonToken.VALUE_STRING) {
      throw new CheckpointException(where + ": dtype is not a string: " + Untrusted.json(p));
    }
    try {
      return DType.fromSafetensors(p.getText());
    } catch (CheckpointException e) {
      throw new CheckpointException(where + ": " + e.getMessage(), e);
    }
  }

  /**
   * Reads an array of non-negative integers; {@code length} -1 means any length up to
   * {@link PytorchTensorRef#MAX_DIMS}. A longer array is counted to the end, never stored.
   */
  private static long[] readLongs(String where, String field, JsonParser p, int length) throws IOException {
    String wanted = field + " must be an array of " + (length >= 0 ? length + " " : "") + "non-negative integers";
    if (p.currentToken() != JsonToken.START_ARRAY) {
      throw new CheckpointException(where + ": " + wanted + ", found " + Untrusted.json(p));
    }
    long[] values = new long[PytorchTensorRef.MAX_DIMS];
    long count = 0;
    for (JsonToken t = p.nextToken(); t != JsonToken.END_ARRAY; t = p.nextToken(), count++) {
      boolean isLong = t == JsonToken.VALUE_NUMBER_INT && p.getNumberType() != JsonParser.NumberType.BIG_INTEGER;
      if (!isLong || p.getLongValue() < 0) {
        throw new CheckpointException(where + ": " + field + " must hold non-negative integers, found "
            + Untrusted.json(p));
      }
      if (count < values.length) {
        values[(int) count] = p.getLongValue();
      }
    }
    if (length >= 0 && count != length) {
      throw new CheckpointException(where + ": " + wanted + ", found " + count + " of them");
    }
    if (count > PytorchTensorRef.MAX_DIMS) {
      throw new CheckpointException(where + ": " + field + " has " + count + " entries; a tensor has at most "
          + PytorchTensorRef.MAX_DIMS + " dimensions: the header is corrupted");
    }
    return Arrays.copyOf(values, (int) count);
  }

  /** What a JSON value is, in words, from its first token. */
  private static String kind(JsonToken t) {
    return switch (t) {
      case START_OBJECT -> "an object";
      case START_ARRAY -> "an array";
      case VALUE_STRING -> "a string";
      case VALUE_NUMBER_INT, VALUE_NUMBER_FLOAT -> "a number";
      case VALUE_TRUE, VALUE_FALSE -> "a boolean";
      case VALUE_NULL -> "null";
      default -> t.toString();
    };
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
