package io.github.optjava.tokenizer;

/**
 * UTF-8 encoding of text pieces and decoding with replacement exactly as Python's
 * {@code bytes.decode("utf-8", errors="replace")}.
 *
 * <p>Python (like the Unicode standard's recommended practice) replaces each <em>maximal subpart</em>
 * of an ill-formed sequence by one U+FFFD: a lead byte plus the continuation bytes that were still
 * valid for it. The JDK's decoder differs on some inputs (e.g. it treats {@code ED A0} as one bad
 * sequence where Python sees two), hence this decoder.
 */
final class Utf8 {

  static final char REPLACEMENT = '\uFFFD';

  private Utf8() {}

  /**
   * Encodes {@code text[start..end)} into {@code out} (capacity at least {@code 3 * (end - start)})
   * and returns the number of bytes written.
   *
   * @throws IllegalArgumentException on an unpaired surrogate, which is not text and which Hugging
   *     Face's tokenizer cannot encode either
   */
  static int encode(String text, int start, int end, byte[] out) {
    int n = 0;
    for (int i = start; i < end; i++) {
      char c = text.charAt(i);
      if (c < 0x80) {
        out[n++] = (byte) c;
      } else if (c < 0x800) {
        out[n++] = (byte) (0xC0 | (c >> 6));
        out[n++] = (byte) (0x80 | (c & 0x3F));
      } else if (!Character.isSurrogate(c)) {
        out[n++] = (byte) (0xE0 | (c >> 12));
        out[n++] = (byte) (0x80 | ((c >> 6) & 0x3F));
        out[n++] = (byte) (0x80 | (c & 0x3F));
      } else if (Character.isHighSurrogate(c) && i + 1 < end && Character.isLowSurrogate(text.charAt(i + 1))) {
        int cp = Character.toCodePoint(c, text.charAt(++i));
        out[n++] = (byte) (0xF0 | (cp >> 18));
        out[n++] = (byte) (0x80 | ((cp >> 12) & 0x3F));
        out[n++] = (byte) (0x80 | ((cp >> 6) & 0x3F));
        out[n++] = (byte) (0x80 | (cp & 0x3F));
      } else {
        throw new IllegalArgumentException(String.format(
            "text contains an unpaired surrogate U+%04X at index %d: it is not valid Unicode and cannot be"
                + " encoded as UTF-8", (int) c, i));
      }
    }
    return n;
  }

  /**
   * Decodes {@code bytes[from..to)} into {@code out}, replacing each maximal ill-formed subpart by
   * U+FFFD, and returns the index of the first byte not consumed.
   *
   * <p>With {@code endOfInput} every byte is consumed and a truncated sequence at the end becomes one
   * U+FFFD. Without it, a trailing sequence that is still a valid beginning of a character is left
   * unconsumed (its fate depends on the bytes that follow); everything before it is final.
   */
  static int decode(byte[] bytes, int from, int to, boolean endOfInput, StringBuilder out) {
    int i = from;
    while (i < to) {
      int b0 = bytes[i] & 0xFF;
      if (b0 < 0x80) {
        out.append((char) b0);
        i++;
        continue;
      }
      int needed;
      int secondLow = 0x80;
      int secondHigh = 0xBF;
      int cp;
      if (b0 >= 0xC2 && b0 <= 0xDF) {
        needed = 1;
        cp = b0 & 0x1F;
      } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        needed = 2;
        cp = b0 & 0x0F;
        if (b0 == 0xE0) {
          secondLow = 0xA0; // shorter forms are overlong
        } else if (b0 == 0xED) {
          secondHigh = 0x9F; // ED A0..BF would encode a surrogate
        }
      } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        needed = 3;
        cp = b0 & 0x07;
        if (b0 == 0xF0) {
          secondLow = 0x90; // overlong
        } else if (b0 == 0xF4) {
          secondHigh = 0x8F; // above U+10FFFF
        }
      } else {
        out.append(REPLACEMENT); // a continuation byte, C0/C1 (always overlong) or F5..FF
        i++;
        continue;
      }
      int valid = 0; // continuation bytes that fit so far
      while (valid < needed && i + 1 + valid < to) {
        int b = bytes[i + 1 + valid] & 0xFF;
        int low = valid == 0 ? secondLow : 0x80;
        int high = valid == 0 ? secondHigh : 0xBF;
        if (b < low || b > high) {
          break;
        }
        cp = (cp << 6) | (b & 0x3F);
        valid++;
      }
      if (valid == needed) {
        out.appendCodePoint(cp);
      } else if (i + 1 + valid == to && !endOfInput) {
        return i; // incomplete but still valid: wait for more bytes
      } else {
        out.append(REPLACEMENT);
      }
      i += 1 + valid;
    }
    return to;
  }
}
