package io.github.optjava.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The heap-driven BPE against a direct transcription of Hugging Face's {@code GPT2Tokenizer.bpe}
 * (find the lowest-ranked pair, merge all its occurrences left to right, repeat), on words built to
 * have many equal pairs and overlaps, where a wrong merge order would show.
 */
class BytePairEncoderTest {

  private static final OptTokenizer TOK = TokenizerFixtures.tokenizer();
  private static final Map<String, Integer> RANKS = new HashMap<>();

  @BeforeAll
  static void readMerges() throws IOException {
    List<String> lines = Files.readAllLines(TokenizerFixtures.tokenizerDir().resolve("merges.txt"),
        StandardCharsets.UTF_8);
    for (int i = 1; i < lines.size(); i++) { // line 0 is "#version: 0.2"
      if (!lines.get(i).isEmpty()) {
        RANKS.put(lines.get(i), i - 1);
      }
    }
  }

  /** Hugging Face's algorithm, on token strings. */
  private static List<String> referenceBpe(String word) {
    List<String> symbols = new ArrayList<>();
    for (byte b : word.getBytes(StandardCharsets.UTF_8)) {
      symbols.add(String.valueOf(ByteLevel.charOf(b & 0xFF)));
    }
    while (symbols.size() > 1) {
      String best = null;
      int bestRank = Integer.MAX_VALUE;
      for (int i = 0; i + 1 < symbols.size(); i++) {
        Integer rank = RANKS.get(symbols.get(i) + " " + symbols.get(i + 1));
        if (rank != null && rank < bestRank) {
          bestRank = rank;
          best = symbols.get(i) + " " + symbols.get(i + 1);
        }
      }
      if (best == null) {
        break;
      }
      String first = best.substring(0, best.indexOf(' '));
      String second = best.substring(best.indexOf(' ') + 1);
      List<String> merged = new ArrayList<>();
      for (int i = 0; i < symbols.size(); ) {
        if (i + 1 < symbols.size() && symbols.get(i).equals(first) && symbols.get(i + 1).equals(second)) {
          merged.add(first + second);
          i += 2;
        } else {
          merged.add(symbols.get(i++));
        }
      }
      symbols = merged;
    }
    return symbols;
  }

  private static List<String> ourBpe(String word) {
    List<String> tokens = new ArrayList<>();
    for (int id : TOK.encode(word)) {
      tokens.add(TOK.token(id));
    }
    return tokens;
  }

  @Test
  void randomWordsMatchTheReferenceAlgorithm() {
    // Each alphabet gives single pre-tokenizer pieces: letters only, digits only or punctuation only.
    String[] alphabets = {"ab", "a", "aeiou", "thersn", "ABab", "éèa", "中文日", "01", "0123456789", "-=", "-",
        "!?.", "_*#"};
    Random random = new Random(2024);
    for (int round = 0; round < 3000; round++) {
      String alphabet = alphabets[random.nextInt(alphabets.length)];
      int length = 1 + random.nextInt(random.nextInt(8) == 0 ? 300 : 24);
      StringBuilder word = new StringBuilder();
      for (int i = 0; i < length; i++) {
        word.append(alphabet.charAt(random.nextInt(alphabet.length())));
      }
      String w = word.toString();
      assertEquals(referenceBpe(w), ourBpe(w), w);
    }
  }

  @Test
  void longRunsMatchTheReferenceAlgorithm() {
    for (String unit : new String[] {"a", "-", "ab", "=", "aab", "0"}) {
      String w = unit.repeat(1500 / unit.length());
      assertEquals(referenceBpe(w), ourBpe(w), unit);
    }
  }

  /** Words not in cases.jsonl, to check the cache returns what a fresh computation gives. */
  @Test
  void cachedAndFreshResultsAgree() {
    OptTokenizer fresh = OptTokenizer.load(TokenizerFixtures.tokenizerDir().resolve("vocab.json"),
        TokenizerFixtures.tokenizerDir().resolve("merges.txt"));
    // More distinct pieces than the cache holds, so that it is emptied and refilled on the way.
    StringBuilder text = new StringBuilder();
    for (int i = 0; i < 70_000; i++) {
      text.append(' ').append(letters(i * 7919));
    }
    String s = text.toString();
    int[] first = fresh.encode(s);
    int[] second = fresh.encode(s);
    assertEquals(s, fresh.decode(first, false, false));
    assertArrayEquals(first, second);
  }

  @Test
  void cacheStaysBounded() {
    Path dir = TokenizerFixtures.tokenizerDir();
    Map<String, Integer> vocab = BpeFiles.index(BpeFiles.readVocab(dir.resolve("vocab.json")));
    BytePairEncoder bpe = new BytePairEncoder(BpeFiles.byteTokenIds(vocab, dir.resolve("vocab.json")),
        BpeFiles.readMerges(dir.resolve("merges.txt"), vocab));
    int most = 0;
    for (int i = 0; i < 3 * BytePairEncoder.CACHE_CAPACITY; i++) {
      String word = letters(i);
      IntList ids = new IntList(4);
      bpe.encode(word, 0, word.length(), ids);
      most = Math.max(most, bpe.cachedPieces());
    }
    assertEquals(BytePairEncoder.CACHE_CAPACITY, most);
  }

  /** {@code n} written in base 26 with the digits a..z. */
  private static String letters(int n) {
    StringBuilder word = new StringBuilder();
    do {
      word.append((char) ('a' + n % 26));
      n /= 26;
    } while (n > 0);
    return word.toString();
  }
}
