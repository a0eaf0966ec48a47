package io.github.optjava.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** UTF-8 against CPython's {@code bytes.decode("utf-8", errors="replace")} (utf8-replace-cases.txt). */
class Utf8Test {

  private static String decode(byte[] bytes) {
    StringBuilder out = new StringBuilder();
    assertEquals(bytes.length, Utf8.decode(bytes, 0, bytes.length, true, out));
    return out.toString();
  }

  private static byte[] hex(String hex) {
    return HexFormat.of().parseHex(hex);
  }

  @Test
  void replacementMatchesPython() throws IOException {
    List<String> lines = TokenizerFixtures.resourceLines("utf8-replace-cases.txt"); // ASCII
    assertEquals(1500, lines.size());
    for (String line : lines) {
      String[] parts = line.split(" ");
      StringBuilder expected = new StringBuilder();
      if (!parts[1].equals("-")) {
        for (int i = 1; i < parts.length; i++) {
          expected.appendCodePoint(Integer.parseInt(parts[i], 16));
        }
      }
      assertEquals(expected.toString(), decode(hex(parts[0])), line);
    }
  }

  /** Cases where the JDK's own decoder disagrees with Python (encoded surrogates). */
  @Test
  void maximalSubpartsLikePython() {
    assertEquals("\uFFFD\uFFFD\uFFFD", decode(hex("eda080"))); // a UTF-8 encoded surrogate
    assertEquals("\uFFFD\uFFFD\uFFFD", decode(hex("90edbf"))); // the JDK gives two
    assertEquals("\uFFFD", decode(hex("e282"))); // truncated at the end: one replacement
    assertEquals("\uFFFDA", decode(hex("f09f9841")));
    assertEquals("\uFFFD\uFFFD", decode(hex("c0af"))); // overlong
    assertEquals("\uFFFD\uFFFD\uFFFD\uFFFD", decode(hex("f4908080"))); // above U+10FFFF
    assertEquals("\uFFFD\u20ac", decode(hex("f09fe282ac")));
  }

  @Test
  void heldBackOnlyWhileStillValid() {
    assertEquals(0, consumedWithoutEnd("f09f98"));
    assertEquals(1, consumedWithoutEnd("41f0"));
    assertEquals(3, consumedWithoutEnd("e282ac"));
    assertEquals(2, consumedWithoutEnd("eda0")); // ED A0 can never become a character
    assertEquals(1, consumedWithoutEnd("f0e2")); // F0 cannot go on with E2; E2 may still start one
  }

  private static int consumedWithoutEnd(String hex) {
    byte[] bytes = hex(hex);
    return Utf8.decode(bytes, 0, bytes.length, false, new StringBuilder());
  }

  @Test
  void encodeEqualsJdkOnValidText() {
    Random random = new Random(1);
    for (int round = 0; round < 2000; round++) {
      StringBuilder text = new StringBuilder();
      for (int i = random.nextInt(12); i > 0; i--) {
        int cp;
        do {
          cp = random.nextInt(4) == 0 ? random.nextInt(0x110000) : random.nextInt(0x3000);
        } while (cp >= 0xD800 && cp <= 0xDFFF);
        text.appendCodePoint(cp);
      }
      String s = text.toString();
      byte[] out = new byte[3 * s.length()];
      int n = Utf8.encode(s, 0, s.length(), out);
      assertArrayEquals(s.getBytes(StandardCharsets.UTF_8), Arrays.copyOf(out, n), s);
      assertEquals(s, decode(Arrays.copyOf(out, n)));
    }
  }

  @Test
  void encodeRejectsUnpairedSurrogates() {
    byte[] out = new byte[32];
    assertThrows(IllegalArgumentException.class, () -> Utf8.encode("a\uDC00", 0, 2, out));
    assertThrows(IllegalArgumentException.class, () -> Utf8.encode("\uD800b", 0, 2, out));
    // A pair cut by the end of the range is unpaired within the range.
    assertThrows(IllegalArgumentException.class, () -> Utf8.encode("\uD83D\uDE00", 0, 1, out));
  }
}
