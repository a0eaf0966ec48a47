package io.github.optjava.tokenizer;

import com.fasterxml.jackson.core.JsonParseException;
import com.fasterxml.jackson.databind.JsonNode;
import io.github.optjava.checkpoint.CheckpointException;
import io.github.optjava.checkpoint.Untrusted;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * Reads and checks the GPT-2 BPE files: vocab.json (token → id) and merges.txt (the merge list).
 * Every problem becomes a {@link CheckpointException} that names the file, says what is wrong and
 * what to do.
 */
final class BpeFiles {

    private BpeFiles() {}

  /** The tokens of vocab.json indexed by id; ids must be exactly 0..N-1. */
  static String[] readVocab(Path vocabJson) {
    JsonNode root = readJson(vocabJson, "vocab.json");
    if (!root.isObject() || root.isEmpty()) {
      throw corrupt(vocabJson, "expected a non-empty JSON object {\"token\": id, ...}");
    }
    String[] tokens = new String[root.size()];
    for (Map.Entry<String, JsonNode> entry : root.properties()) {
      JsonNode id = entry.getValue();
      if (!id.isIntegralNumber() || !id.canConvertToInt()) {
        throw corrupt(vocabJson, "the id of token " + quote(entry.getKey()) + " is " + Untrusted.json(id)
            + ", not an integer");
      }
      int value = id.intValue();
      if (value < 0 || value >= tokens.length) {
        throw corrupt(vocabJson, "token " + quote(entry.getKey()) + " has id " + value + " but the "
            + tokens.length + " tokens must have the ids 0.." + (tokens.length - 1));
      }
      if (tokens[value] != null) {
        throw corrupt(vocabJson, "id " + value + " is given to both " + quote(tokens[value]) + " and "
            + quote(entry.getKey()));
      }
      tokens[value] = entry.getKey();
    }
    return tokens;
  }

  /** The merge list of merges.txt, with tokens resolved through {@code vocab}. */
  static MergeTable readMerges(Path mergesTxt, Map<String, Integer> vocab) {
    String text = readUtf8(mergesTxt, "merges.txt");
    String[] lines = text.split("\n", -1);
    int[] left = new int[lines.length];
    int[] right = new int[lines.length];
    int[] merged = new int[lines.length];
    int count = 0;
    for (int i = 0; i < lines.length; i++) {
      String line = lines[i].strip();
      // "#version: 0.2" heads the file; blank lines (the final newline, CRLF leftovers) carry nothing.
      if (line.isEmpty() || (i == 0 && line.startsWith("#version"))) {
        continue;
      }
      String[] parts = line.split(" "); // byte-level tokens never contain a space
      if (parts.length != 2) {
        throw corrupt(mergesTxt, "line " + (i + 1) + " is " + quote(line)
            + ", expected two tokens separated by a space");
      }
      left[count] = idOf(vocab, parts[0], mergesTxt, i);
      right[count] = idOf(vocab, parts[1], mergesTxt, i);
      merged[count] = idOf(vocab, parts[0] + parts[1], mergesTxt, i);
      count++;
    }
    if (count == 0) {
      throw corrupt(mergesTxt, "it contains no merges");
    }
    return new MergeTable(java.util.Arrays.copyOf(left, count), java.util.Arrays.copyOf(right, count),
        java.util.Arrays.copyOf(merged, count));
  }

  /** The id of the single-byte token of each byte value; all 256 must be in the vocabulary. */
  static int[] byteTokenIds(Map<String, Integer> vocab, Path vocabJson) {
    int[] ids = new int[256];
    for (int b = 0; b < 256; b++) {
      Integer id = vocab.get(String.valueOf(ByteLevel.charOf(b)));
      if (id == null) {
        throw corrupt(vocabJson, String.format("it has no token for byte 0x%02X (%s), so it is not a"
            + " GPT-2 byte-level BPE vocabulary", b, quote(String.valueOf(ByteLevel.charOf(b)))));
      }
      ids[b] = id;
    }
    return ids;
  }

  static Map<String, Integer> index(String[] tokens) {
    Map<String, Integer> vocab = new HashMap<>(tokens.length * 2);
    for (int id = 0; id < tokens.length; id++) {
      vocab.put(tokens[id], id);
    }
    return vocab;
  }

  /** Parses a JSON file; a missing or unreadable file or invalid JSON is a CheckpointException. */
  static JsonNode readJson(Path file, String what) {
    String text = readUtf8(file, what);
    try {
      JsonNode node = Untrusted.JSON.readTree(text);
      if (node == null || node.isMissingNode()) {
        throw corrupt(file, "it is empty");
      }
      return node;
    } catch (JsonParseException e) {
      throw corrupt(file, "it is not valid JSON (" + Untrusted.parserMessage(e) + ")");
    } catch (IOException e) {
      throw corrupt(file, "it cannot be parsed (" + e.getMessage() + ")");
    }
  }

  private static String readUtf8(Path file, String what) {
    byte[] bytes;
    try {
      // A regular file of a sane size: a FIFO would block for ever, a device or a huge file would exhaust the heap
      if (Files.exists(file) && !Files.isRegularFile(file)) {
        throw new CheckpointException(what + " at " + file + " is not a regular file (a device, a pipe or a "
            + "directory): a model directory holds the tokenizer's files themselves");
      }
      Untrusted.requireSmallFile(file, what); // (OPT's are about 1 MB)
      bytes = Files.readAllBytes(file);
    } catch (NoSuchFileException e) {
      throw new CheckpointException(what + " not found at " + file + ": a Hugging Face OPT model directory"
          + " has vocab.json and merges.txt (GPT-2 byte-level BPE); download the complete model (e.g."
          + " facebook/opt-125m) or copy both files into the directory");
    } catch (IOException e) {
      throw new CheckpointException("cannot read " + what + " at " + file + ": " + e, e);
    }
    try {
      return StandardCharsets.UTF_8.newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT)
          .decode(ByteBuffer.wrap(bytes))
          .toString();
    } catch (CharacterCodingException e) {
      throw corrupt(file, "it is not valid UTF-8");
    }
  }

  private static int idOf(Map<String, Integer> vocab, String token, Path mergesTxt, int lineIndex) {
    Integer id = vocab.get(token);
    if (id == null) {
      throw corrupt(mergesTxt, "line " + (lineIndex + 1) + " uses or makes the token " + quote(token)
          + ", which is not in vocab.json: the two files must come from the same tokenizer");
    }
    return id;
  }

  static CheckpointException corrupt(Path file, String problem) {
    return new CheckpointException(file + " is not a usable tokenizer file: " + problem
        + ". Replace it with the original from the model's Hugging Face repository.");
  }

  /** A token or line as a JSON string, cut to 100 characters: the files may hold megabytes without a newline. */
  static String quote(String token) {
    return Untrusted.jsonString(token);
  }
}
