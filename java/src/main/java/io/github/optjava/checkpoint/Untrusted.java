package io.github.optjava.checkpoint;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.TextNode;

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

  /** A name from a file in single quotes, cut to 100 characters, control characters replaced by '?'. */
  public static String quote(String s) {
    return "'" + cut(s, MAX_SHOWN).replaceAll("\\p{Cntrl}", "?") + "'";
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
