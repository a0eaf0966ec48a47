package io.github.optjava.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.SequenceInputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Vector;
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

  /** A UTF-8 byte order mark before the first line (Windows editors write one) is not part of the request. */
  @Test
  void aByteOrderMarkBeforeTheFirstLineIsSkipped() throws IOException {
    byte[] bom = {(byte) 0xef, (byte) 0xbb, (byte) 0xbf};
    byte[] text = "{\"prompt\": \"a\"}\r\n\ufeff{\"prompt\": \"b\"}\n".getBytes(StandardCharsets.UTF_8);
    byte[] all = new byte[bom.length + text.length];
    System.arraycopy(bom, 0, all, 0, 3);
    System.arraycopy(text, 0, all, 3, text.length);
    JsonLines lines = new JsonLines(new ByteArrayInputStream(all));
    assertEquals("a", BatchRequest.parse(JsonLines.object(lines.next(), "{}")).prompt());
    // Only the first line's: a later one is the line's own first character, refused as not JSON.
    byte[] second = lines.next();
    assertThrows(IllegalArgumentException.class, () -> JsonLines.object(second, "{}"));
    assertNull(lines.next());
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

  /** {@code n} bytes {@code b} (not a newline), made as they are read. */
  private static InputStream repeated(char b, long n) {
    return new InputStream() {
      long left = n;

      @Override
      public int read() {
        return left-- > 0 ? b : -1;
      }
    };
  }

  // Found by fuzzing: input without a newline grew the line until the JVM ran out of memory.
  @Test
  void aLineOverTheLimitIsAnErrorForThatLineAlone() throws IOException {
    Vector<InputStream> parts = new Vector<>(List.of(
        new ByteArrayInputStream("{\"text\": \"a\"}\n".getBytes(StandardCharsets.UTF_8)),
        repeated('x', JsonLines.MAX_LINE_BYTES + 1000L),
        new ByteArrayInputStream("\n{\"text\": \"b\"}\n".getBytes(StandardCharsets.UTF_8))));
    JsonLines lines = new JsonLines(new SequenceInputStream(parts.elements()));
    assertEquals("a", JsonLines.text(lines.next()));
    byte[] tooLong = lines.next();
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> JsonLines.text(tooLong));
    assertTrue(e.getMessage().contains("longer than 64 MiB"), e.getMessage());
    assertEquals("b", JsonLines.text(lines.next()), "the line after it is read as usual");
    assertNull(lines.next());
  }

  @Test
  void aLineOfExactlyTheLimitIsRead() throws IOException {
    // {"text": "a"   <spaces>   }: MAX_LINE_BYTES bytes in all.
    Vector<InputStream> parts = new Vector<>(List.of(
        new ByteArrayInputStream("{\"text\": \"a\"".getBytes(StandardCharsets.UTF_8)),
        repeated(' ', JsonLines.MAX_LINE_BYTES - 13L),
        new ByteArrayInputStream("}\n".getBytes(StandardCharsets.UTF_8))));
    JsonLines lines = new JsonLines(new SequenceInputStream(parts.elements()));
    assertEquals("a", JsonLines.text(lines.next()));
    assertNull(lines.next());
  }
}
