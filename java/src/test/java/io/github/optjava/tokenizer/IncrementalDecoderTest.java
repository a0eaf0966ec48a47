package io.github.optjava.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.tokenizer.TokenizerFixtures.Case;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

class IncrementalDecoderTest {

  private final OptTokenizer tok = TokenizerFixtures.tokenizer();

  @Test
  void streamsEveryReferenceCaseExactly() {
    for (Case c : TokenizerFixtures.cases()) {
      for (boolean skip : new boolean[] {false, true}) {
        assertStreamsLikeDecode(c.idsWithBos(), skip, c.toString());
      }
    }
  }

  /** Random single-byte tokens: lots of broken, truncated and interleaved UTF-8 sequences. */
  @Test
  void streamsRandomBytesExactly() {
    Map<String, Integer> vocab = new HashMap<>();
    for (int id = 0; id < tok.vocabSize(); id++) {
      vocab.put(tok.token(id), id);
    }
    int[] byteIds = new int[256];
    for (int b = 0; b < 256; b++) {
      byteIds[b] = vocab.get(String.valueOf(ByteLevel.charOf(b)));
    }
    int[] interesting = {0x41, 0x20, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xE2, 0xED,
        0xEF, 0xF0, 0xF4, 0xF5, 0xFF};
    Random random = new Random(42);
    for (int round = 0; round < 2000; round++) {
      int[] ids = new int[1 + random.nextInt(10)];
      for (int i = 0; i < ids.length; i++) {
        int b = random.nextInt(4) == 0 ? random.nextInt(256) : interesting[random.nextInt(interesting.length)];
        ids[i] = random.nextInt(20) == 0 ? 2 : byteIds[b];
      }
      assertStreamsLikeDecode(ids, random.nextBoolean(), Arrays.toString(ids));
    }
  }

  @Test
  void emojiIsEmittedOnlyWhenComplete() {
    IncrementalDecoder decoder = tok.incrementalDecoder(false);
    assertEquals("", decoder.feed(18636)); // F0 9F 98: the first three bytes of 😀
    assertTrue(decoder.hasPendingBytes());
    assertEquals("\uD83D\uDE00", decoder.feed(7471)); // 80
    assertFalse(decoder.hasPendingBytes());
    assertEquals("", decoder.finish());
  }

  @Test
  void multibyteCharactersAreEmittedWhole() {
    String text = "emoji \uD83D\uDE00, 中文 and \uD83D\uDC4D\uD83C\uDFFD!";
    IncrementalDecoder decoder = tok.incrementalDecoder(false);
    List<String> pieces = new ArrayList<>();
    int holds = 0;
    for (int id : tok.encode(text)) {
      String piece = decoder.feed(id);
      assertFalse(piece.contains("\uFFFD"), piece);
      pieces.add(piece);
      holds += decoder.hasPendingBytes() ? 1 : 0;
    }
    assertEquals(text, String.join("", pieces));
    assertTrue(holds >= 4, "the emoji and CJK characters are split over tokens: " + holds);
    assertTrue(pieces.stream().anyMatch(p -> p.contains("\uD83D\uDE00")), pieces.toString());
  }

  @Test
  void cjkIsEmittedOnlyWhenComplete() {
    int[] ids = tok.encode("中文"); // 中 = E4 B8 AD and 文 = E6 96 87, split across tokens
    IncrementalDecoder decoder = tok.incrementalDecoder(false);
    StringBuilder seen = new StringBuilder();
    for (int id : ids) {
      String piece = decoder.feed(id);
      assertTrue(piece.isEmpty() || piece.equals("中") || piece.equals("文") || piece.equals("中文"), piece);
      seen.append(piece);
    }
    assertEquals("中文", seen.toString());
  }

  @Test
  void finishFlushesAnUnfinishedCharacterAndResets() {
    IncrementalDecoder decoder = tok.incrementalDecoder(true);
    assertEquals("Hello", decoder.feed(31414));
    assertEquals("", decoder.feed(18636)); // F0 9F 98
    assertEquals("\uFFFD", decoder.finish());
    assertFalse(decoder.hasPendingBytes());
    assertEquals("", decoder.feed(2)); // skipped
    assertEquals("Hello", decoder.feed(31414));
  }

  @Test
  void idsWithoutTextAndOutOfRangeIds() {
    IncrementalDecoder decoder = tok.incrementalDecoder(false);
    assertEquals("", decoder.feed(50270));
    assertEquals("Hello", decoder.feed(31414));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> decoder.feed(50272));
    assertTrue(e.getMessage().contains("token id 50272 at index 2"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> decoder.feed(-5));
  }

  /**
   * Feeds {@code ids} one by one and checks: the pieces add up to the full decode (no clean-up);
   * no piece has a lone surrogate; and after every id the text emitted so far is the decode of the
   * ids so far, minus only the U+FFFD that the held-back bytes of an unfinished character would give,
   * i.e. final text is never held back and nothing is emitted that a later id could change.
   */
  private void assertStreamsLikeDecode(int[] ids, boolean skip, String what) {
    IncrementalDecoder decoder = tok.incrementalDecoder(skip);
    StringBuilder emitted = new StringBuilder();
    for (int n = 1; n <= ids.length; n++) {
      String piece = decoder.feed(ids[n - 1]);
      assertNoLoneSurrogate(piece, what);
      emitted.append(piece);
      String prefixDecode = tok.decode(Arrays.copyOf(ids, n), skip, false);
      String expected = decoder.hasPendingBytes() ? emitted + "\uFFFD" : emitted.toString();
      assertEquals(prefixDecode, expected, what + " after " + n + " ids");
    }
    emitted.append(decoder.finish());
    assertEquals(tok.decode(ids, skip, false), emitted.toString(), what);
  }

  private static void assertNoLoneSurrogate(String s, String what) {
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (Character.isHighSurrogate(c)) {
        assertTrue(i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1)), what);
        i++;
      } else {
        assertFalse(Character.isLowSurrogate(c), what);
      }
    }
  }
}
