package io.github.optjava.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Behaviour beyond the reference cases: special tokens, ids without text, bad input, clean-up. */
class OptTokenizerBehaviourTest {

  private final OptTokenizer tok = TokenizerFixtures.tokenizer();

  @Test
  void skipSpecialTokensDropsBosEosAndPad() {
    int[] ids = {2, 31414, 2, 1, 232};
    assertEquals("</s>Hello</s><pad> world", tok.decode(ids, false, false));
    assertEquals("Hello world", tok.decode(ids, true, false));
    assertTrue(tok.isSpecial(1));
    assertTrue(tok.isSpecial(2));
    assertFalse(tok.isSpecial(0)); // <s> is an ordinary vocabulary entry for OPT
    assertFalse(tok.isSpecial(31414));
  }

  /** Skipping happens before the bytes are joined, as in Hugging Face, so a split emoji rejoins. */
  @Test
  void skippedSpecialTokenDoesNotBreakACharacter() {
    int[] emojiAroundEos = {18636, 2, 7471}; // "😀" is 18636 + 7471
    assertEquals("\uD83D\uDE00", tok.decode(emojiAroundEos, true, false));
    assertEquals("\uFFFD</s>\uFFFD", tok.decode(emojiAroundEos, false, false));
  }

  @Test
  void embeddingOnlyIdsDecodeToNothing() {
    assertEquals("Hello world", tok.decode(new int[] {31414, 50265, 50268, 50271, 232}));
    assertNull(tok.token(50265));
    assertNull(tok.token(50271));
  }

  @Test
  void outOfRangeIdsAreRejectedWithTheirPosition() {
    IllegalArgumentException tooBig = assertThrows(IllegalArgumentException.class,
        () -> tok.decode(new int[] {31414, 50272}));
    assertTrue(tooBig.getMessage().contains("token id 50272 at index 1"), tooBig.getMessage());
    assertTrue(tooBig.getMessage().contains("0..50271"), tooBig.getMessage());
    IllegalArgumentException negative = assertThrows(IllegalArgumentException.class,
        () -> tok.decode(new int[] {-1}, true, false));
    assertTrue(negative.getMessage().contains("token id -1 at index 0"), negative.getMessage());
    assertThrows(IllegalArgumentException.class, () -> tok.token(-1));
    assertThrows(IllegalArgumentException.class, () -> tok.token(Integer.MAX_VALUE));
  }

  @Test
  void partialCharactersDecodeToReplacementCharacters() {
    assertEquals("\uFFFD", tok.decode(new int[] {18636})); // F0 9F 98: one truncated sequence
    assertEquals("\uFFFD", tok.decode(new int[] {7471})); // a lone continuation byte
    assertEquals("\uFFFDHello", tok.decode(new int[] {18636, 31414}));
    assertEquals("Hello\uFFFD\uFFFD", tok.decode(new int[] {31414, 7471, 7471}));
  }

  @Test
  void emptyInput() {
    assertArrayEquals(new int[0], tok.encode(""));
    assertArrayEquals(new int[] {2}, tok.encodeWithBos(""));
    assertEquals("", tok.decode(new int[0]));
  }

  @Test
  void unpairedSurrogateIsRejected() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> tok.encode("ab\uD800cd"));
    assertTrue(e.getMessage().contains("U+D800 at index 2"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> tok.encode("x \uDC00"));
    assertThrows(IllegalArgumentException.class, () -> tok.encode("\uD83D")); // high surrogate at the end
  }

  @Test
  void specialTokensAreMatchedInsideWords() {
    assertArrayEquals(new int[] {42891, 2, 8331}, tok.encode("hello</s>world"));
    // The text on each side is pre-tokenized on its own: the space before </s> stays a lone "Ġ".
    int[] ids = tok.encode("a </s>b");
    assertArrayEquals(new int[] {102, 1437, 2, 428}, ids);
    assertEquals("a </s>b", tok.decode(ids, false, false));
  }

  /** A line of 20,000 dashes is one pre-tokenizer piece: BPE must not take quadratic time on it. */
  @Test
  void veryLongPieceRoundTrips() {
    String dashes = "-".repeat(20_000);
    int[] ids = tok.encode(dashes);
    assertEquals(dashes, tok.decode(ids, false, false));
    assertTrue(ids.length < 20_000 / 4, "long runs merge into long tokens, got " + ids.length);
  }

  @Test
  void cleanUpTokenizationFollowsTransformersOrder() {
    assertEquals("a. b? c! d, e'fn't'm's've're 'll 'd x's y . z", OptTokenizer.cleanUpTokenization(
        "a . b ? c ! d , e ' f n't 'm 's 've 're 'll 'd x ' s y  . z"));
  }
}
