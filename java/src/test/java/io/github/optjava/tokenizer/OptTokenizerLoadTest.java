package io.github.optjava.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.checkpoint.CheckpointException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Loading model directories: settings of tokenizer_config.json, and files that are missing or bad. */
class OptTokenizerLoadTest {

  @TempDir
  Path dir;

  /** A small but complete byte-level vocabulary: the 256 byte tokens, "Ġa", "ab", "</s>", "<pad>". */
  private void writeTinyTokenizer(String mergesBody) throws IOException {
    Map<String, Integer> vocab = new LinkedHashMap<>();
    vocab.put("<s>", 0);
    vocab.put("<pad>", 1);
    vocab.put("</s>", 2);
    for (int b = 0; b < 256; b++) {
      vocab.put(String.valueOf(ByteLevel.charOf(b)), vocab.size());
    }
    vocab.put("Ġa", vocab.size());
    vocab.put("ab", vocab.size());
    Files.writeString(dir.resolve("vocab.json"), TokenizerFixtures.JSON.writeValueAsString(vocab));
    Files.writeString(dir.resolve("merges.txt"), "#version: 0.2\n" + mergesBody);
  }

  private void copyOptFiles() throws IOException {
    Files.copy(TokenizerFixtures.tokenizerDir().resolve("vocab.json"), dir.resolve("vocab.json"));
    Files.copy(TokenizerFixtures.tokenizerDir().resolve("merges.txt"), dir.resolve("merges.txt"));
  }

  private void writeConfig(String json) throws IOException {
    Files.writeString(dir.resolve("tokenizer_config.json"), json);
  }

  private CheckpointException loadFails() {
    return assertThrows(CheckpointException.class, () -> OptTokenizer.load(dir));
  }

  private static void assertMentions(Exception e, String... parts) {
    for (String part : parts) {
      assertTrue(e.getMessage().contains(part), "'" + part + "' not in: " + e.getMessage());
    }
  }

  /**
   * Tokenizer files that are no regular files, or far too big, are refused before they are read (session 26's fuzz:
   * vocab.json linked to /dev/zero filled the heap, merges.txt as a FIFO hung the load).
   */
  @Test
  void devicesPipesAndHugeFilesAreRefusedUnread() throws Exception {
    copyOptFiles();
    Files.delete(dir.resolve("vocab.json"));
    Files.createSymbolicLink(dir.resolve("vocab.json"), Path.of("/dev/zero"));
    assertMentions(loadFails(), "vocab.json", "is not a regular file");

    Files.delete(dir.resolve("vocab.json"));
    Files.copy(TokenizerFixtures.tokenizerDir().resolve("vocab.json"), dir.resolve("vocab.json"));
    Files.delete(dir.resolve("merges.txt"));
    Process fifo = new ProcessBuilder("mkfifo", dir.resolve("merges.txt").toString()).start();
    assertEquals(0, fifo.waitFor());
    assertMentions(loadFails(), "merges.txt", "is not a regular file");

    Files.delete(dir.resolve("merges.txt"));
    try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(dir.resolve("merges.txt").toFile(), "rw")) {
      f.setLength(io.github.optjava.checkpoint.Untrusted.MAX_SMALL_FILE_BYTES + 1); // sparse: no disk used
    }
    assertMentions(loadFails(), "merges.txt", "more than the 64 MiB");
  }

  @Test
  void tinyTokenizerWorks() throws IOException {
    writeTinyTokenizer("Ġ a\na b\n");
    OptTokenizer tok = OptTokenizer.load(dir);
    assertEquals(261, tok.vocabSize());
    assertEquals(264, tok.idLimit()); // rounded up to a multiple of 8
    // Ids: the three specials, then byte b at 3 + b, then "Ġa" = 259 and "ab" = 260.
    // In " ab" the pair "Ġ a" has the lower rank and merges first, so "ab" never forms.
    assertArrayEquals(new int[] {259, 3 + 'b', 2}, tok.encode(" ab</s>"));
    assertArrayEquals(new int[] {260}, tok.encode("ab"));
    assertEquals(" ab</s>", tok.decode(tok.encode(" ab</s>")));
  }

  /** Where added tokens overlap, the longest match at a position wins, as with Hugging Face's trie. */
  @Test
  void longestAddedTokenWins() throws IOException {
    writeTinyTokenizer("Ġ a\na b\n");
    writeConfig("{\"additional_special_tokens\": [\"a\", \"ab\"]}");
    OptTokenizer tok = OptTokenizer.load(dir);
    assertArrayEquals(new int[] {3 + 'x', 260, 3 + 'y', 3 + 'a', 3 + ' '}, tok.encode("xabya "));
  }

  @Test
  void missingDirectoryOrFilesAreNamed() throws IOException {
    assertMentions(assertThrows(CheckpointException.class, () -> OptTokenizer.load(dir.resolve("nope"))),
        "nope", "does not exist");
    assertMentions(loadFails(), "vocab.json not found", "download");
    writeTinyTokenizer("");
    Files.delete(dir.resolve("merges.txt"));
    assertMentions(loadFails(), "merges.txt not found", dir.resolve("merges.txt").toString());
    assertMentions(assertThrows(CheckpointException.class,
        () -> OptTokenizer.load(dir.resolve("vocab.json"), dir.resolve("merges.txt"))), "merges.txt not found");
  }

  @Test
  void malformedVocabularies() throws IOException {
    writeTinyTokenizer("Ġ a\n");
    Path vocab = dir.resolve("vocab.json");
    Files.writeString(vocab, "{\"a\": 0,");
    assertMentions(loadFails(), "vocab.json", "not valid JSON", "Replace it");
    Files.writeString(vocab, "[\"a\", \"b\"]");
    assertMentions(loadFails(), "expected a non-empty JSON object");
    Files.writeString(vocab, "{\"a\": \"0\"}");
    assertMentions(loadFails(), "\"a\"", "not an integer");
    Files.writeString(vocab, "{\"a\": 0, \"b\": 5}");
    assertMentions(loadFails(), "\"b\" has id 5", "0..1");
    Files.writeString(vocab, "{\"a\": 0, \"b\": 0}");
    assertMentions(loadFails(), "id 0 is given to both");
    Files.writeString(vocab, "{\"a\": 0, \"b\": 1}");
    assertMentions(loadFails(), "no token for byte 0x00", "not a GPT-2 byte-level BPE vocabulary");
    Files.write(vocab, new byte[] {'{', (byte) 0xC3, '}'});
    assertMentions(loadFails(), "not valid UTF-8");
  }

  // Found by fuzzing: a token given twice was accepted, the last id winning, so that vocab.json read as
  // "token ... has id N but the ids must be 0..N-1" instead of naming the duplicate.
  @Test
  void aTokenGivenTwiceIsNamed() throws IOException {
    writeTinyTokenizer("Ġ a\n");
    Files.writeString(dir.resolve("vocab.json"), "{\"a\": 0, \"b\": 1, \"a\": 2}");
    assertMentions(loadFails(), "vocab.json", "Duplicate field 'a'", "Replace it");
  }

  // Found by fuzzing: tokens, merges lines and JSON values went into messages raw, a newline included, and whole.
  @Test
  void textFromTheFilesIsEscapedAndCutInMessages() throws IOException {
    String longText = "x".repeat(1_000_000);
    writeTinyTokenizer("Ġ a\n");
    Files.writeString(dir.resolve("vocab.json"), "{\"a\\n[INFO] forged\": [\"" + longText + "\"]}");
    CheckpointException e = loadFails();
    assertMentions(e, "\"a\\n[INFO] forged\"", "is [\"xxx", "not an integer");
    assertShort(e);
    writeTinyTokenizer("Ġ a\n" + longText + "\n");
    e = loadFails();
    assertMentions(e, "line 3 is \"xxx", "expected two tokens");
    assertShort(e);
    writeTinyTokenizer("Ġ a\n");
    writeConfig("{\"errors\": \"strict\\n" + longText + "\"}");
    e = loadFails();
    assertMentions(e, "\"errors\": \"strict\\nxxx");
    assertShort(e);
    writeConfig("{\"pad_token\": [\"" + longText + "\"]}");
    assertShort(loadFails());
    writeConfig("{\"add_bos_token\": \"" + longText + "\"}");
    assertShort(loadFails());
  }

  /** No raw newline, and no megabyte of the file, in the message. */
  private static void assertShort(Exception e) {
    assertFalse(e.getMessage().contains("\n"), e.getMessage());
    assertTrue(e.getMessage().length() < 600, "a cut message, not " + e.getMessage().length() + " characters");
  }

  @Test
  void malformedMerges() throws IOException {
    writeTinyTokenizer("Ġ a\nx y z\n");
    assertMentions(loadFails(), "merges.txt", "line 3", "expected two tokens");
    writeTinyTokenizer("Ġ a\nb c\n");
    assertMentions(loadFails(), "line 3", "\"bc\"", "not in vocab.json");
    writeTinyTokenizer("");
    assertMentions(loadFails(), "no merges");
  }

  @Test
  void aSettingGivenTwiceIsNamed() throws IOException {
    copyOptFiles();
    writeConfig("{\"add_bos_token\": true, \"add_bos_token\": false}");
    assertMentions(loadFails(), "tokenizer_config.json", "Duplicate field 'add_bos_token'");
  }

  @Test
  void configWithPrefixSpaceAndWithoutBos() throws IOException {
    copyOptFiles();
    writeConfig("{\"add_prefix_space\": true, \"add_bos_token\": false, \"clean_up_tokenization_spaces\": false}");
    OptTokenizer tok = OptTokenizer.load(dir);
    assertArrayEquals(new int[] {20920}, tok.encode("Hello")); // "ĠHello", as GPT-2 would
    assertArrayEquals(new int[] {20920}, tok.encodeWithBos("Hello"));
    assertEquals("Hello , world", tok.decode(new int[] {31414, 2156, 232})); // no clean-up by default
    assertEquals("Hello, world", tok.decode(new int[] {31414, 2156, 232}, false, true));
  }

  @Test
  void configWithMoreSpecialTokens() throws IOException {
    copyOptFiles();
    writeConfig("{\"mask_token\": {\"content\": \"<mask>\", \"lstrip\": false, \"rstrip\": false},"
        + " \"additional_special_tokens\": [\"<unk>\"],"
        + " \"added_tokens_decoder\": {\"50261\": {\"content\": \"madeupword0000\", \"special\": false}}}");
    OptTokenizer tok = OptTokenizer.load(dir);
    int[] ids = tok.encode("a<mask>b<unk>madeupword0000</s>");
    assertArrayEquals(new int[] {102, 50264, 428, 3, 50261, 2}, ids);
    assertEquals("abmadeupword0000", tok.decode(ids, true, false)); // the plain added token stays
  }

  @Test
  void unsupportedOrInconsistentConfigs() throws IOException {
    copyOptFiles();
    writeConfig("{\"pad_token\": {\"content\": \"<pad>\", \"lstrip\": true}}");
    assertMentions(loadFails(), "tokenizer_config.json", "\"lstrip\": true", "does not implement");
    writeConfig("{\"errors\": \"strict\"}");
    assertMentions(loadFails(), "\"errors\": \"strict\"");
    writeConfig("{\"pad_token\": \"<PAD>\"}");
    assertMentions(loadFails(), "\"<PAD>\"", "vocab.json does not contain");
    writeConfig("{\"add_bos_token\": \"yes\"}");
    assertMentions(loadFails(), "\"add_bos_token\"", "expected true or false");
    writeConfig("{\"bos_token\": 5}");
    assertMentions(loadFails(), "bos_token");
    writeConfig("{not json");
    assertMentions(loadFails(), "tokenizer_config.json", "not valid JSON");
  }

  @Test
  void modelConfigSetsTheIdLimit() throws IOException {
    copyOptFiles();
    Files.writeString(dir.resolve("config.json"), "{\"vocab_size\": 50304}");
    OptTokenizer tok = OptTokenizer.load(dir);
    assertEquals(50304, tok.idLimit());
    assertEquals("", tok.decode(new int[] {50303}));
    Files.writeString(dir.resolve("config.json"), "{\"vocab_size\": \"big\"}");
    assertMentions(loadFails(), "config.json", "vocab_size");
  }
}
