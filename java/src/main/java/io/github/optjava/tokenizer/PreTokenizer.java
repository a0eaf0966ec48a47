package io.github.optjava.tokenizer;

/**
 * GPT-2's pre-tokenizer: splits text into the pieces that BPE then encodes one by one.
 *
 * <p>A hand-written scanner equivalent to the pattern of OpenAI's encoder.py and Hugging Face's
 * {@code GPT2Tokenizer}, matched with the Python {@code regex} module:
 *
 * <pre>'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+</pre>
 *
 * <p>java.util.regex is not used because its {@code \s} differs from Python's: the {@code regex}
 * module's {@code \s} is Unicode White_Space (so it includes U+0085, U+00A0, U+2028, U+3000 ... but
 * not U+001C..U+001F, unlike {@code str.isspace()}), and the scanner is several times faster.
 * Letters and numbers are judged by the JVM's Unicode tables (Unicode 13 on Java 17); characters
 * assigned in later Unicode versions count as "other" until the JVM knows them.
 */
final class PreTokenizer {

  private static final byte WHITESPACE = 0;
  private static final byte LETTER = 1;
  private static final byte NUMBER = 2;
  private static final byte OTHER = 3;

  /** Classes of the ASCII characters, the overwhelmingly common case. */
  private static final byte[] ASCII_CLASS = new byte[128];

  static {
    for (int c = 0; c < 128; c++) {
      ASCII_CLASS[c] = classify(c);
    }
  }

  private PreTokenizer() {}

  /**
   * The end (exclusive) of the piece that starts at {@code start} in {@code text[..limit)}. The
   * regex sees only {@code text[..limit)}: {@code limit} acts as the end of the string, as it does
   * for each stretch between two special tokens in Hugging Face's tokenizer.
   */
  static int pieceEnd(String text, int start, int limit) {
    char first = text.charAt(start);
    if (first == '\'') {
      int length = contractionLength(text, start, limit);
      if (length > 0) {
        return start + length;
      }
    }
    // " ?\p{L}+", " ?\p{N}+" and " ?[^\s\p{L}\p{N}]+": only a plain space may lead a run.
    if (first == ' ' && start + 1 < limit) {
      byte next = classOf(codePointAt(text, start + 1, limit));
      if (next != WHITESPACE) {
        return runEnd(text, start + 1, limit, next);
      }
    }
    byte cls = classOf(codePointAt(text, start, limit));
    if (cls != WHITESPACE) {
      return runEnd(text, start, limit, cls);
    }
    // "\s+(?!\S)": the whole run when it ends the text, otherwise the run minus its last character
    // (which then leads the next piece, e.g. " word"); "\s+" catches a single whitespace before
    // non-whitespace. Every whitespace character is in the BMP, so one char is one code point.
    int end = runEnd(text, start, limit, WHITESPACE);
    return end == limit || end - start == 1 ? end : end - 1;
  }

  /** Length of the case-sensitive contraction ('s 't 're 've 'm 'll 'd) at {@code start}, or 0. */
  private static int contractionLength(String text, int start, int limit) {
    if (start + 1 >= limit) {
      return 0;
    }
    char a = text.charAt(start + 1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') {
      return 2;
    }
    if (start + 2 >= limit) {
      return 0;
    }
    char b = text.charAt(start + 2);
    boolean two = (a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l');
    return two ? 3 : 0;
  }

  /** End of the run of characters of class {@code cls} starting at {@code from}. */
  private static int runEnd(String text, int from, int limit, byte cls) {
    int i = from;
    while (i < limit) {
      char c = text.charAt(i);
      if (c < 128) {
        if (ASCII_CLASS[c] != cls) {
          break;
        }
        i++;
      } else {
        int cp = codePointAt(text, i, limit);
        if (classOf(cp) != cls) {
          break;
        }
        i += Character.charCount(cp);
      }
    }
    return i;
  }

  /** The code point at {@code i}, never pairing a high surrogate with a low one past {@code limit}. */
  private static int codePointAt(String text, int i, int limit) {
    char c = text.charAt(i);
    if (Character.isHighSurrogate(c) && i + 1 < limit && Character.isLowSurrogate(text.charAt(i + 1))) {
      return Character.toCodePoint(c, text.charAt(i + 1));
    }
    return c;
  }

  private static byte classOf(int cp) {
    return cp < 128 ? ASCII_CLASS[cp] : classify(cp);
  }

  private static byte classify(int cp) {
    if (isWhitespace(cp)) {
      return WHITESPACE;
    }
    if (Character.isLetter(cp)) { // general categories Lu, Ll, Lt, Lm, Lo = \p{L}
      return LETTER;
    }
    int type = Character.getType(cp);
    if (type == Character.DECIMAL_DIGIT_NUMBER || type == Character.LETTER_NUMBER
        || type == Character.OTHER_NUMBER) { // Nd, Nl, No = \p{N}
      return NUMBER;
    }
    return OTHER; // includes combining marks, symbols, controls, unassigned and lone surrogates
  }

  /** Unicode White_Space, the {@code \s} of Python's {@code regex} module for str patterns. */
  static boolean isWhitespace(int cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680
        || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F
        || cp == 0x205F || cp == 0x3000;
  }
}
