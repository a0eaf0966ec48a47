package io.github.optjava.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.optjava.checkpoint.CheckpointException;
import io.github.optjava.checkpoint.Untrusted;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The tokenizer of Meta's OPT models: GPT-2 byte-level BPE in the fairseq id order of
 * facebook/opt-*, giving the same ids and text as Hugging Face's {@code GPT2Tokenizer} (the slow
 * Python one, which the fast Rust one agrees with) under OPT's settings.
 *
 * <ul>
 *   <li>No prefix space: {@code "Hello"} and {@code " Hello"} are different tokens.
 *   <li>{@code </s>} (id 2) is BOS, EOS and UNK; {@code <pad>} is id 1. Written in the text, these
 *       special tokens become their ids; look-alikes such as {@code <s>}, {@code <unk>},
 *       {@code <mask>} or {@code <|endoftext|>} are ordinary text for OPT.
 *   <li>The model's embedding has more rows (50,272) than the vocabulary has tokens (50,265): the
 *       extra ids are valid model outputs without any text, and decode to nothing (as Hugging Face's
 *       fast tokenizer does; the slow one fails on them).
 * </ul>
 *
 * <p>Letters, numbers and whitespace are told apart with the JVM's Unicode tables (Unicode 13 on
 * Java 17), so only characters assigned after that version can split differently from Python.
 *
 * <p>Instances are immutable apart from an internal cache and safe to use from many threads.
 */
public final class OptTokenizer {

  private final String[] tokens;
  private final byte[][] tokenBytes;
  private final boolean[] special;
  private final BytePairEncoder bpe;
  private final AddedTokenMatcher addedTokens;
  private final int bosId;
  private final int eosId;
  private final int padId;
  private final int idLimit;
  private final TokenizerConfig config;

  private OptTokenizer(String[] tokens, Map<String, Integer> vocab, MergeTable merges, int[] byteTokenIds,
      TokenizerConfig config, int idLimit, Path vocabJson) {
    this.tokens = tokens;
    this.config = config;
    this.idLimit = idLimit;
    bpe = new BytePairEncoder(byteTokenIds, merges);
    List<String> inText = new ArrayList<>(config.special());
    inText.addAll(config.addedNotSpecial());
    for (String token : inText) {
      if (!vocab.containsKey(token)) {
        throw new CheckpointException(config.source() + " names the token " + BpeFiles.quote(token)
            + ", which " + vocabJson + " does not contain: the tokenizer settings and vocab.json must belong"
            + " to the same OPT model");
      }
    }
    addedTokens = new AddedTokenMatcher(inText, vocab);
    special = new boolean[tokens.length];
    config.special().forEach(token -> special[vocab.get(token)] = true);
    bosId = vocab.get(config.bos());
    eosId = vocab.get(config.eos());
    padId = vocab.get(config.pad());
    tokenBytes = new byte[tokens.length][];
    for (int id = 0; id < tokens.length; id++) {
      byte[] bytes = ByteLevel.bytesOf(tokens[id]);
      // A token outside the byte alphabet can only be an added token written as plain text; Hugging
      // Face's fast decoder falls back to its UTF-8 the same way.
      tokenBytes[id] = bytes != null ? bytes : tokens[id].getBytes(StandardCharsets.UTF_8);
    }
  }

  /**
   * Loads the tokenizer of a Hugging Face OPT model directory: vocab.json and merges.txt (required),
   * tokenizer_config.json (optional; OPT's settings when absent) and the {@code vocab_size} of
   * config.json (optional; the number of ids the model can produce).
   *
   * @throws CheckpointException if a file is missing, unreadable, malformed or inconsistent; the
   *     message names the file and what to do
   */
  public static OptTokenizer load(Path modelDir) {
    Objects.requireNonNull(modelDir, "modelDir");
    if (!Files.isDirectory(modelDir)) {
      throw new CheckpointException("model directory " + modelDir + " does not exist or is not a directory:"
          + " give the directory that holds the model's vocab.json and merges.txt");
    }
    Path vocabJson = modelDir.resolve("vocab.json");
    String[] tokens = BpeFiles.readVocab(vocabJson);
    return create(tokens, vocabJson, modelDir.resolve("merges.txt"),
        TokenizerConfig.read(modelDir.resolve("tokenizer_config.json")),
        modelIdLimit(modelDir.resolve("config.json"), tokens.length));
  }

  /**
   * Loads the tokenizer from the two BPE files alone, with OPT's settings.
   *
   * @throws CheckpointException if a file is missing, unreadable, malformed or inconsistent
   */
  public static OptTokenizer load(Path vocabJson, Path mergesTxt) {
    String[] tokens = BpeFiles.readVocab(Objects.requireNonNull(vocabJson, "vocabJson"));
    return create(tokens, vocabJson, Objects.requireNonNull(mergesTxt, "mergesTxt"), TokenizerConfig.opt(),
        defaultIdLimit(tokens.length));
  }

  private static OptTokenizer create(String[] tokens, Path vocabJson, Path mergesTxt, TokenizerConfig config,
      int idLimit) {
    Map<String, Integer> vocab = BpeFiles.index(tokens);
    int[] byteTokenIds = BpeFiles.byteTokenIds(vocab, vocabJson);
    MergeTable merges = BpeFiles.readMerges(mergesTxt, vocab);
    return new OptTokenizer(tokens, vocab, merges, byteTokenIds, config, idLimit, vocabJson);
  }

  /** The model's {@code vocab_size} from config.json when present, else {@link #defaultIdLimit}. */
  private static int modelIdLimit(Path configJson, int vocabSize) {
    if (!Files.exists(configJson)) {
      return defaultIdLimit(vocabSize);
    }
    JsonNode size = BpeFiles.readJson(configJson, "config.json").path("vocab_size");
    if (size.isMissingNode() || size.isNull()) {
      return defaultIdLimit(vocabSize);
    }
    if (!size.isIntegralNumber() || !size.canConvertToInt() || size.intValue() <= 0) {
      throw BpeFiles.corrupt(configJson, "\"vocab_size\" is " + Untrusted.json(size) + ", expected a positive integer");
    }
    return Math.max(vocabSize, size.intValue());
  }

  /**
   * The vocabulary size rounded up to a multiple of 8, the padding fairseq applied to OPT's embedding
   * (50,265 tokens, 50,272 rows).
   */
  private static int defaultIdLimit(int vocabSize) {
    return (vocabSize + 7) / 8 * 8;
  }

  /**
   * The token ids of {@code text} without special tokens added, like Hugging Face's
   * {@code tokenizer.encode(text, add_special_tokens=False)}. Special tokens written in the text
   * ({@code </s>}, {@code <pad>}) are still recognised.
   *
   * @throws IllegalArgumentException if the text contains an unpaired surrogate (not valid Unicode)
   */
  public int[] encode(String text) {
    Objects.requireNonNull(text, "text");
    if (config.addPrefixSpace()) {
      text = " " + text;
    }
    IntList out = new IntList(text.length() / 3 + 1);
    int segmentStart = 0;
    int i = 0;
    while (i < text.length()) {
      int match = addedTokens.matchAt(text, i);
      if (match < 0) {
        i++;
        continue;
      }
      encodeOrdinary(text, segmentStart, i, out);
      out.add(addedTokens.id(match));
      i += addedTokens.length(match);
      segmentStart = i;
    }
    encodeOrdinary(text, segmentStart, text.length(), out);
    return out.toArray();
  }

  /**
   * The model input for {@code text}, like Hugging Face's {@code tokenizer(text)["input_ids"]}: BOS
   * ({@code </s>}, id 2) followed by {@link #encode}. No EOS is appended. A tokenizer_config.json with
   * {@code "add_bos_token": false} turns the BOS off, as it does in Hugging Face (OPT's sets it true).
   *
   * @throws IllegalArgumentException if the text contains an unpaired surrogate (not valid Unicode)
   */
  public int[] encodeWithBos(String text) {
    int[] ids = encode(text);
    if (!config.addBosToken()) {
      return ids;
    }
    int[] withBos = new int[ids.length + 1];
    withBos[0] = bosId;
    System.arraycopy(ids, 0, withBos, 1, ids.length);
    return withBos;
  }

  /** Pre-tokenizes and BPE-encodes text between two special tokens. */
  private void encodeOrdinary(String text, int from, int to, IntList out) {
    int i = from;
    while (i < to) {
      int end = PreTokenizer.pieceEnd(text, i, to);
      bpe.encode(text, i, end, out);
      i = end;
    }
  }

  /**
   * The text of {@code ids} with Hugging Face's defaults for {@code tokenizer.decode(ids)}: special
   * tokens kept, {@code clean_up_tokenization_spaces} as tokenizer_config.json says (true for OPT,
   * which removes the space before punctuation such as {@code " ."} and {@code " n't"}).
   *
   * @throws IllegalArgumentException if an id is negative or not below {@link #idLimit()}
   */
  public String decode(int[] ids) {
    return decode(ids, false, config.cleanUpSpaces());
  }

  /**
   * The text of {@code ids}. Bytes that do not form valid UTF-8 (a token sequence cut inside a
   * character) become U+FFFD exactly as Python's {@code errors="replace"} does. Ids from
   * {@link #vocabSize()} up to {@link #idLimit()} have no text and are skipped.
   *
   * @param skipSpecialTokens leave out special tokens ({@code </s>}, {@code <pad>})
   * @param cleanUpSpaces apply Hugging Face's {@code clean_up_tokenization}; false gives the exact
   *     inverse of {@link #encode}
   * @throws IllegalArgumentException if an id is negative or not below {@link #idLimit()}
   */
  public String decode(int[] ids, boolean skipSpecialTokens, boolean cleanUpSpaces) {
    Objects.requireNonNull(ids, "ids");
    int length = 0;
    for (int i = 0; i < ids.length; i++) {
      length += bytesOf(ids[i], i, skipSpecialTokens).length;
    }
    byte[] bytes = new byte[length];
    int at = 0;
    for (int i = 0; i < ids.length; i++) {
      byte[] token = bytesOf(ids[i], i, skipSpecialTokens);
      System.arraycopy(token, 0, bytes, at, token.length);
      at += token.length;
    }
    StringBuilder text = new StringBuilder(length);
    Utf8.decode(bytes, 0, length, true, text);
    return cleanUpSpaces ? cleanUpTokenization(text.toString()) : text.toString();
  }

  /**
   * A decoder for streaming output: feed it one id at a time and it returns the text that became
   * final. It does not clean up spaces (see {@link IncrementalDecoder}).
   *
   * @param skipSpecialTokens leave out special tokens ({@code </s>}, {@code <pad>})
   */
  public IncrementalDecoder incrementalDecoder(boolean skipSpecialTokens) {
    return new IncrementalDecoder(this, skipSpecialTokens);
  }

  /**
   * The bytes that id {@code id} contributes to decoded text (empty for a skipped special token and
   * for ids without text).
   */
  byte[] bytesOf(int id, int index, boolean skipSpecialTokens) {
    if (id < 0 || id >= idLimit) {
      throw new IllegalArgumentException("token id " + id + (index >= 0 ? " at index " + index : "")
          + " is out of range: valid ids are 0.." + (idLimit - 1) + " (" + tokens.length
          + " vocabulary tokens; the ids above them are padding rows of the model's embedding)");
    }
    if (id >= tokens.length || (skipSpecialTokens && special[id])) {
      return new byte[0];
    }
    return tokenBytes[id];
  }

  /**
   * Hugging Face's {@code clean_up_tokenization}: removes the space that word-level tokenized text has
   * before punctuation and English contractions. The replacements run one after another in this
   * order, exactly as in transformers, so results such as {@code " ' s"} → {@code "'s"} match.
   */
  static String cleanUpTokenization(String text) {
    return text.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re");
  }

  /** Number of vocabulary tokens (50,265 for OPT), ids {@code 0..vocabSize()-1}. */
  public int vocabSize() {
    return tokens.length;
  }

  /**
   * Number of ids the model can produce (50,272 for OPT): config.json's {@code vocab_size} when the
   * tokenizer was loaded from a model directory that has one, else {@link #vocabSize()} rounded up to
   * a multiple of 8. Ids from {@code vocabSize()} to {@code idLimit() - 1} decode to nothing.
   */
  public int idLimit() {
    return idLimit;
  }

  /** The beginning-of-sequence id (2, {@code </s>}). */
  public int bosId() {
    return bosId;
  }

  /** The end-of-sequence id (2, {@code </s>}): generation stops when the model produces it. */
  public int eosId() {
    return eosId;
  }

  /** The padding id (1, {@code <pad>}). */
  public int padId() {
    return padId;
  }

  /** Whether {@code id} is a special token ({@code </s>}, {@code <pad>}), i.e. skipped when asked to. */
  public boolean isSpecial(int id) {
    return id >= 0 && id < tokens.length && special[id];
  }

  /**
   * The vocabulary string of {@code id} in GPT-2's byte alphabet (e.g. {@code "Ġthe"}, where
   * {@code Ġ} stands for a space), or {@code null} for an id without text
   * ({@code vocabSize() <= id < idLimit()}).
   *
   * @throws IllegalArgumentException if the id is negative or not below {@link #idLimit()}
   */
  public String token(int id) {
    bytesOf(id, -1, false); // range check with the common message
    return id < tokens.length ? tokens[id] : null;
  }
}
