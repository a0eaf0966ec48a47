package io.github.optjava.checkpoint;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.TextNode;
import java.io.IOException;
import java.io.Writer;

/**
 * Text from an untrusted file or input line made safe for an exception message: cut short, and with no raw
 * control characters. A checkpoint, tokenizer file or request line may hold names of megabytes, or with a
 * newline that would forge a log line; a message shows enough to find the spot, never the whole text.
 * Shared by the checkpoint, tokenizer and cli readers (not part of the library's API).
 */
public final class Untrusted {

  /** The most characters of a name or value a message shows. */
  static final int MAX_SHOWN = 100;

  /** The most characters of a JSON parser's message shown (its own text is longer than a name). */
  static final int MAX_PARSER_MESSAGE = 300;

  /**
   * The parser for JSON from a file or a server (config.json, vocab.json, tokenizer_config.json, a weights index, the
   * hub's listing): a key given twice is an error, since with the last one winning which value counts is not what
   * the file seems to say.
   */
  public static final ObjectMapper JSON =
      JsonMapper.builder().enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build();

  private Untrusted() {}

  /**
   * The most bytes a small file of a model directory (config.json, a weights index, the tokenizer's files) may have,
   * 64 MiB: OPT's largest, vocab.json, has 0.9 MB. Read whole, a bigger one would only exhaust the heap.
   */
  public static final long MAX_SMALL_FILE_BYTES = 64L << 20;

  /** Control characters, ASCII's and Unicode's (C1, NEL), and line and paragraph separators: each can end a line. */
  private static final java.util.regex.Pattern LINE_BREAKING = java.util.regex.Pattern.compile(
      "[\\p{Cntrl}\\u0080-\\u009f\\u2028\\u2029]");

  /** A name from a file in single quotes, cut to 100 characters, control characters replaced by '?'. */
  public static String quote(String s) {
    return "'" + shown(s) + "'";
  }

  /** As {@link #quote}, without the quotes: for a list of names that reads better bare. */
  public static String shown(String s) {
    return LINE_BREAKING.matcher(cut(s, MAX_SHOWN)).replaceAll("?");
  }

  /**
   * Refuses {@code file} (a small file of a model directory, read whole next) when it is larger than
   * {@link #MAX_SMALL_FILE_BYTES}; a missing file passes (its reader says so in its own words).
   */
  public static void requireSmallFile(java.nio.file.Path file, String what) {
    try {
      long size = java.nio.file.Files.exists(file) ? java.nio.file.Files.size(file) : 0;
      if (size > MAX_SMALL_FILE_BYTES) {
        throw new CheckpointException(what + " at " + file + " has " + size + " bytes, more than the "
            + (MAX_SMALL_FILE_BYTES >> 20) + " MiB such a file can have: it is not one");
      }
    } catch (java.io.IOException e) {
      throw new CheckpointException("cannot read " + what + " at " + file + ": " + e.getMessage(), e);
    }
  }

  /**
   * A string from a JSON file as a JSON string literal ({@code "a\nb"}: escaped, so the spot can be found in the
   * file), cut to 100 characters.
   */
  public static String jsonString(String s) {
    return json(TextNode.valueOf(s));
  }

  /** A JSON value from a file, cut to 100 characters (JSON escaping already keeps control characters out). */
  public static String json(JsonNode node) {
    return cut(String.valueOf(node), MAX_SHOWN);
  }

  /**
   * The JSON value at a parser's current token, cut to 100 characters; the parser is left on the value's last
   * token. The value is walked whole but never held: a value of a 100 MB header costs its reading, not its size.
   */
  public static String json(JsonParser parser) throws IOException {
    StringBuilder shown = new StringBuilder();
    Writer bounded = new Writer() {
      @Override
      public void write(char[] chars, int offset, int length) {
        shown.append(chars, offset, Math.max(0, Math.min(length, MAX_SHOWN + 1 - shown.length())));
      }

      @Override
      public void flush() {}

      @Override
      public void close() {}
    };
    try (JsonGenerator generator = JSON.getFactory().createGenerator(bounded)) {
      generator.copyCurrentStructure(parser);
    }
    return cut(shown.toString(), MAX_SHOWN);
  }

  /**
   * A JSON parser's message, cut and with control characters replaced: Jackson puts a duplicate key into its
   * message whole and unescaped ("Duplicate field '...'").
   */
  public static String parserMessage(JsonProcessingException e) {
    return cut(String.valueOf(e.getOriginalMessage()), MAX_PARSER_MESSAGE).replaceAll("\\p{Cntrl}", "?");
  }

  private static String cut(String s, int max) {
    return s.length() > max ? s.substring(0, max) + "…" : s;
  }
}
