package io.github.optjava.tokenizer;

import java.util.Arrays;

/**
 * Decodes a stream of token ids one id at a time, for printing generated text as it comes.
 *
 * <p>A character can be split over several tokens (most emoji and many CJK characters are), so the
 * bytes of an unfinished character are held back until the token that completes it arrives: the text
 * returned by {@link #feed} never contains a broken character or a lone surrogate, and it contains
 * everything that is already final. Bytes that can no longer form a character become U+FFFD as soon
 * as that is certain, exactly where {@link OptTokenizer#decode} puts one.
 *
 * <p><b>No clean-up.</b> The pieces concatenated equal {@code decode(ids, skipSpecialTokens, false)},
 * the exact inverse of encoding. Hugging Face's {@code clean_up_tokenization} (which removes the space
 * in {@code " ."}, {@code " n't"} ...) is not applied: it would have to hold back every trailing space
 * until the next token shows whether it is removed, and it alters text the model really produced.
 * Callers that want Hugging Face's cleaned text apply {@link OptTokenizer#decode(int[])} to the whole
 * sequence at the end.
 *
 * <p>Not thread-safe: use one decoder per stream. {@link OptTokenizer#incrementalDecoder} makes one.
 */
public final class IncrementalDecoder {

  private final OptTokenizer tokenizer;
  private final boolean skipSpecialTokens;
  /** Bytes of a character not yet complete: a valid UTF-8 prefix of at most 3 bytes. */
  private byte[] pending = new byte[0];
  /** Ids fed since the stream began, for error messages. */
  private int fed;

  IncrementalDecoder(OptTokenizer tokenizer, boolean skipSpecialTokens) {
    this.tokenizer = tokenizer;
    this.skipSpecialTokens = skipSpecialTokens;
  }

  /**
   * Adds the next id and returns the text that is now final (possibly empty).
   *
   * @throws IllegalArgumentException if the id is negative or not below {@link OptTokenizer#idLimit()}
   */
  public String feed(int id) {
    byte[] token = tokenizer.bytesOf(id, fed, skipSpecialTokens);
    fed++;
    if (token.length == 0) {
      return "";
    }
    byte[] bytes = Arrays.copyOf(pending, pending.length + token.length);
    System.arraycopy(token, 0, bytes, pending.length, token.length);
    StringBuilder text = new StringBuilder(bytes.length);
    int consumed = Utf8.decode(bytes, 0, bytes.length, false, text);
    pending = Arrays.copyOfRange(bytes, consumed, bytes.length);
    return text.toString();
  }

  /**
   * Ends the stream: returns U+FFFD if the last tokens left an unfinished character (as the full
   * decode does), else the empty string, and resets the decoder so that it can start a new stream.
   */
  public String finish() {
    StringBuilder text = new StringBuilder(1);
    Utf8.decode(pending, 0, pending.length, true, text);
    pending = new byte[0];
    fed = 0;
    return text.toString();
  }

  /** Whether bytes of an unfinished character are held back. */
  public boolean hasPendingBytes() {
    return pending.length > 0;
  }
}
