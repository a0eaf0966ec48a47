package io.github.optjava.cli;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Hostile request lines: each is an IllegalArgumentException for that line that says what is wrong. */
class JsonLinesTest {

  private static IllegalArgumentException refused(String line) {
    return assertThrows(IllegalArgumentException.class,
        () -> BatchRequest.parse(JsonLines.object(line.getBytes(StandardCharsets.UTF_8), "{\"prompt\": \"...\"}")));
  }

  /** No raw newline, and no megabyte of the line, in the message. */
  private static void assertShort(Exception e) {
    assertFalse(e.getMessage().contains("\n"), e.getMessage());
    assertTrue(e.getMessage().length() < 600, "a cut message, not " + e.getMessage().length() + " characters");
  }

  // Found by fuzzing: the last of two equal keys won silently.
  @Test
  void aKeyGivenTwiceIsNamed() {
    IllegalArgumentException e = refused("{\"prompt\": \"a\", \"max_tokens\": 5, \"max_tokens\": 500}");
    assertTrue(e.getMessage().contains("Duplicate field 'max_tokens'"), e.getMessage());
    e = refused("{\"prompt\": \"a\", \"logit_bias\": {\"7\": 1, \"7\": -100}}");
    assertTrue(e.getMessage().contains("Duplicate field '7'"), e.getMessage());
  }

  // Found by fuzzing: keys and values of the line went into messages raw, a newline included, and whole.
  @Test
  void keysAndValuesAreEscapedAndCutInMessages() {
    String longText = "x".repeat(1_000_000);
    IllegalArgumentException e = refused("{\"prompt\": \"a\", \"b\\n[INFO] forged" + "y".repeat(40_000) + "\": 1}");
    assertTrue(e.getMessage().contains("unknown field \"b\\n[INFO] forgedyyy"), e.getMessage());
    assertShort(e);
    for (String field : List.of("max_tokens", "temperature", "echo", "logit_bias", "bad_words_ids", "stop")) {
      e = refused("{\"prompt\": \"a\", \"" + field + "\": [[\"" + longText + "\"]]}");
      assertTrue(e.getMessage().contains("\"" + field + "\""), e.getMessage());
      assertShort(e);
    }
    e = refused("{\"prompt\": \"a\", \"logit_bias\": {\"" + "7".repeat(40_000) + "x\": 1}}");
    assertTrue(e.getMessage().contains("keys must be token ids, got \"777"), e.getMessage());
    assertShort(e);
    e = refused("{\"prompt\": \"a\", \"logit_bias\": {\"7\": \"" + longText + "\"}}");
    assertShort(e);
    e = refused("{\"prompt\": \"a\", \"b\": 1, \"b\\n" + "z".repeat(40_000) + "\": 2, \"b\\n" + "z".repeat(40_000)
        + "\": 3}");
    assertShort(e);
  }
}
