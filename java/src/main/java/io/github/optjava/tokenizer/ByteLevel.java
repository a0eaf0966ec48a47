package io.github.optjava.tokenizer;

/**
 * GPT-2's reversible byte-to-character alphabet ({@code bytes_to_unicode} in OpenAI's encoder.py).
 *
 * <p>BPE tokens in vocab.json and merges.txt are written in this alphabet rather than as raw bytes so
 * that every token is printable and contains no whitespace: the 188 printable Latin-1 bytes stand for
 * themselves and the other 68 (controls, space, DEL, NBSP, soft hyphen, ...) are shifted to
 * U+0100..U+0143 in byte order, which is why a space shows up as {@code Ġ} (U+0120).
 */
final class ByteLevel {

  /** The alphabet character of each byte value. */
  private static final char[] BYTE_TO_CHAR = new char[256];

  /** The byte value of each alphabet character, -1 for characters outside the alphabet. */
  private static final int[] CHAR_TO_BYTE = new int[256 + 68];

  static {
    java.util.Arrays.fill(CHAR_TO_BYTE, -1);
    int shifted = 0;
    for (int b = 0; b < 256; b++) {
      boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      char c = printable ? (char) b : (char) (256 + shifted++);
      BYTE_TO_CHAR[b] = c;
      CHAR_TO_BYTE[c] = b;
    }
  }

  private ByteLevel() {}

  /** The alphabet character standing for byte {@code b} (0..255). */
  static char charOf(int b) {
    return BYTE_TO_CHAR[b];
  }

  /**
   * The bytes a vocabulary token stands for, or {@code null} when it contains a character outside the
   * alphabet (such a token can only be an added token written as plain text).
   */
  static byte[] bytesOf(String token) {
    byte[] bytes = new byte[token.length()];
    for (int i = 0; i < token.length(); i++) {
      char c = token.charAt(i);
      int b = c < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[c] : -1;
      if (b < 0) {
        return null;
      }
      bytes[i] = (byte) b;
    }
    return bytes;
  }
}
