package io.github.optjava.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * The scanner against Python's {@code regex} module running GPT-2's pattern (the reference split of
 * Hugging Face's GPT2Tokenizer); pretokenizer-cases.jsonl comes from make_fixtures.py next to it.
 */
class PreTokenizerTest {

  /** Every code point that Python's regex module matches with \s (printed by regex 2026.5.9). */
  private static final Set<Integer> PYTHON_REGEX_WHITESPACE = Set.of(0x9, 0xa, 0xb, 0xc, 0xd, 0x20, 0x85,
      0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a,
      0x2028, 0x2029, 0x202f, 0x205f, 0x3000);

  static List<String> split(String text) {
    List<String> pieces = new ArrayList<>();
    for (int i = 0; i < text.length(); ) {
      int end = PreTokenizer.pieceEnd(text, i, text.length());
      pieces.add(text.substring(i, end));
      i = end;
    }
    return pieces;
  }

  @Test
  void matchesPythonRegexOnRandomText() throws IOException {
    List<String> lines = TokenizerFixtures.resourceLines("pretokenizer-cases.jsonl");
    assertEquals(600, lines.size());
    for (String line : lines) {
      JsonNode c = TokenizerFixtures.JSON.readTree(line);
      List<String> expected = new ArrayList<>();
      c.get("pieces").forEach(p -> expected.add(p.textValue()));
      assertEquals(expected, split(c.get("text").textValue()), line);
    }
  }

  @Test
  void whitespaceIsUnicodeWhiteSpaceLikePythonRegex() {
    Set<Integer> ours = IntStream.rangeClosed(0, Character.MAX_CODE_POINT)
        .filter(PreTokenizer::isWhitespace).boxed().collect(Collectors.toSet());
    assertEquals(PYTHON_REGEX_WHITESPACE, ours);
  }

  @Test
  void handPickedSplits() {
    assertEquals(List.of("Hello", ",", " world", "!"), split("Hello, world!"));
    assertEquals(List.of("I", "'m", " here", "'ll", "'d", "'ve"), split("I'm here'll'd've"));
    assertEquals(List.of("I", "'", "M"), split("I'M")); // contractions are case-sensitive
    assertEquals(List.of("'", "x"), split("'x"));
    assertEquals(List.of("!'", "s"), split("!'s")); // a punctuation run swallows the apostrophe
    assertEquals(List.of(" ", " Hello", " ", " world", "  "), split("  Hello  world  "));
    assertEquals(List.of("a", " \n", " b"), split("a \n b"));
    assertEquals(List.of("\n", "x"), split("\nx")); // a single whitespace before a word stands alone
    assertEquals(List.of("x", "\u001c", "y"), split("x\u001cy")); // U+001C is not \s for regex
    assertEquals(List.of("x", "\u00a0", "y"), split("x\u00a0y")); // NBSP is
    assertEquals(List.of(" 123", " abc", " \u20ac"), split(" 123 abc \u20ac"));
    assertEquals(List.of("\uD835\uDC00\uD835\uDC01", " \uD83D\uDE00"), split("\uD835\uDC00\uD835\uDC01 \uD83D\uDE00"));
  }

  /** The piece never runs past the limit, which acts as the end of the text (e.g. before </s>). */
  @Test
  void limitActsAsEndOfText() {
    assertEquals(3, PreTokenizer.pieceEnd("a  </s>", 1, 3)); // "  " ends the text: one piece
    assertEquals(2, PreTokenizer.pieceEnd("a  b", 1, 4)); // "  b": the last space goes with b
    assertEquals(1, PreTokenizer.pieceEnd("\uD835\uDC00", 0, 1)); // never pair across the limit
  }
}
