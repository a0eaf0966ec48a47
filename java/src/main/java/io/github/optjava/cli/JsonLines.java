package io.github.optjava.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import io.github.optjava.checkpoint.Untrusted;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * Reads JSON Lines input one line at a time as raw bytes, so that a line that is not valid UTF-8
 * becomes an error for that line only (a Reader would either replace the bytes silently or abort the
 * whole stream).
 */
final class JsonLines {
  /**
   * The longest line kept, 64 MiB. Without a limit, input without a newline grows the line until the JVM runs
   * out of memory. A real request is far shorter: a prompt or a text to score holds at most 2048 tokens of
   * context (some 10 KiB of text; the model refuses longer ones anyway), and the longest fields, a logit_bias or
   * bad_words_ids over the whole 50272-token vocabulary, take 1-2 MiB. 64 MiB leaves room for anything real
   * while the buffer (64 MiB, kept for the next lines, and 96 MiB while it grows) stays small beside a model.
   */
  static final int MAX_LINE_BYTES = 64 << 20;

  /**
   * What {@link #next} returns for a line longer than {@link #MAX_LINE_BYTES}, whose bytes it skips: that line
   * alone is an error ({@link #object}), like a line that is not UTF-8, and the lines after it are read as usual.
   */
  private static final byte[] TOO_LONG = new byte[0];

  private final InputStream in;
  private final ByteArrayOutputStream line = new ByteArrayOutputStream();

  JsonLines(InputStream in) {
    this.in = in;
  }

  /**
   * The next line without its terminator ("\n" or "\r\n"), or null at end of input; a line over the limit is
   * skipped, and {@link #object} refuses what is returned for it.
   */
  byte[] next() throws IOException {
    line.reset();
    int b;
    boolean any = false;
    boolean tooLong = false;
    while ((b = in.read()) != -1) {
      any = true;
      if (b == '\n') {
        break;
      }
      if (line.size() < MAX_LINE_BYTES) {
        line.write(b);
      } else {
        tooLong = true; // the rest of the line is read and dropped, so that the next line starts right
      }
    }
    if (!any) {
      return null;
    }
    if (tooLong) {
      first = false;
      return TOO_LONG;
    }
    byte[] bytes = line.toByteArray();
    int from = 0;
    if (first && bytes.length >= 3 && (bytes[0] & 0xff) == 0xef && (bytes[1] & 0xff) == 0xbb
        && (bytes[2] & 0xff) == 0xbf) {
      from = 3; // a UTF-8 byte order mark (Windows editors write one): not part of the first request
    }
    first = false;
    int n = bytes.length;
    if (n > from && bytes[n - 1] == '\r') {
      n--;
    }
    return from == 0 && n == bytes.length ? bytes : java.util.Arrays.copyOfRange(bytes, from, n);
  }

  private boolean first = true;

  /**
   * Parses with the trailing-token check on: {@code {"a": 1} x} is an error, not {@code {"a": 1}}. A key given
   * twice is an error too, as in config.json: with the last one winning, {@code {"max_tokens": 5, ...,
   * "max_tokens": 500}} would silently do what its first field does not say.
   */
  static final ObjectMapper JSON = JsonMapper.builder().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
      .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build();

  /**
   * One input line as a JSON object; anything else (not UTF-8, blank, not JSON, not an object) is an
   * IllegalArgumentException whose message names the problem and shows {@code example}.
   */
  static JsonNode object(byte[] line, String example) {
    if (line == TOO_LONG) {
      throw new IllegalArgumentException("longer than " + (MAX_LINE_BYTES >> 20) + " MiB, the limit for one line"
          + " (skipped): is the input JSON Lines, one request per line?");
    }
    String text;
    try {
      text = decodeUtf8(line);
    } catch (CharacterCodingException e) {
      throw new IllegalArgumentException("not valid UTF-8");
    }
    if (text.isBlank()) {
      throw new IllegalArgumentException("empty line: expected a JSON object " + example);
    }
    JsonNode node;
    try {
      node = JSON.readTree(text);
    } catch (JsonProcessingException e) {
      throw new IllegalArgumentException("not valid JSON: " + Untrusted.parserMessage(e));
    }
    if (node == null || !node.isObject()) {
      throw new IllegalArgumentException("expected a JSON object " + example);
    }
    return node;
  }

  /** The string field "text" of a {@code {"text": "..."}} line (tokenize, score). */
  static String text(byte[] line) {
    JsonNode node = object(line, "{\"text\": \"...\"}");
    node.fieldNames().forEachRemaining(f -> {
      if (!f.equals("text")) { // as batch refuses a field it does not know: a misspelt one must not pass unseen
        throw new IllegalArgumentException("unknown field " + Untrusted.jsonString(f) + "; the only field is \"text\"");
      }
    });
    JsonNode text = node.get("text");
    if (text == null || !text.isTextual()) {
      throw new IllegalArgumentException(text == null ? "missing string field \"text\""
          : "field \"text\" must be a string, not " + kind(text) + " (one text per line)");
    }
    return text.asText();
  }

  /** What a JSON value is, for messages: "an array", "a number", ... */
  static String kind(JsonNode value) {
    return switch (value.getNodeType()) {
      case ARRAY -> "an array";
      case OBJECT, POJO -> "an object";
      case NUMBER -> "a number";
      case BOOLEAN -> "a boolean";
      case NULL, MISSING -> "null";
      default -> "a " + value.getNodeType().name().toLowerCase(java.util.Locale.ROOT);
    };
  }

  /** Strict UTF-8 decoding: malformed input is an error, never silently replaced. */
  static String decodeUtf8(byte[] bytes) throws CharacterCodingException {
    return StandardCharsets.UTF_8.newDecoder()
        .onMalformedInput(CodingErrorAction.REPORT)
        .onUnmappableCharacter(CodingErrorAction.REPORT)
        .decode(ByteBuffer.wrap(bytes))
        .toString();
  }
}
