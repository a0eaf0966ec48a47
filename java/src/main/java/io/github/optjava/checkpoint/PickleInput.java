package io.github.optjava.checkpoint;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * A bounds-checked cursor over pickle bytes: the operand encodings of the opcodes {@link PickleReader}
 * supports. Reading past the end, an over-long string or invalid UTF-8 is a {@link CheckpointException};
 * a length is checked before anything is allocated for it.
 */
final class PickleInput {

  private final byte[] data;
  private int pos;

  PickleInput(byte[] data) {
    this.data = data;
  }

  int position() {
    return pos;
  }

  int remaining() {
    return data.length - pos;
  }

  int u8() {
    need(1);
    return data[pos++] & 0xff;
  }

  int u16() {
    need(2);
    int v = (data[pos] & 0xff) | (data[pos + 1] & 0xff) << 8;
    pos += 2;
    return v;
  }

  int i32() {
    need(4);
    int v = (data[pos] & 0xff) | (data[pos + 1] & 0xff) << 8 | (data[pos + 2] & 0xff) << 16 | data[pos + 3] << 24;
    pos += 4;
    return v;
  }

  long i64() {
    long lo = i32() & 0xffffffffL;
    long hi = i32();
    return hi << 32 | lo;
  }

  /** BINFLOAT's operand: a big-endian IEEE double. */
  double float64BigEndian() {
    return Double.longBitsToDouble(Long.reverseBytes(i64()));
  }

  /** LONG1's operand: a length byte, then a little-endian two's complement integer of that many bytes. */
  long long1() {
    int n = u8();
    if (n > 8) {
      throw new CheckpointException("an integer of " + n + " bytes does not fit 64 bits");
    }
    need(n);
    long v = 0;
    for (int i = n - 1; i >= 0; i--) {
      v = v << 8 | (data[pos + i] & 0xff);
    }
    if (n > 0 && n < 8) {
      int shift = 64 - 8 * n; // sign-extend
      v = v << shift >> shift;
    }
    pos += n;
    return v;
  }

  /** {@code len} bytes of UTF-8 ({@code len} as read, unsigned), at most {@code max}. */
  String utf8(long len, int max) {
    if (len < 0 || len > max) {
      throw new CheckpointException("a string of " + Long.toUnsignedString(len) + " bytes is longer than the "
          + max + " accepted");
    }
    need((int) len);
    String s = decode(pos, (int) len);
    pos += (int) len;
    return s;
  }

  /** A newline-terminated UTF-8 line (GLOBAL's operands) of at most {@code max} bytes. */
  String line(int max) {
    int limit = Math.min(data.length, pos + max);
    for (int i = pos; i < limit; i++) {
      if (data[i] == '\n') {
        String s = decode(pos, i - pos);
        pos = i + 1;
        return s;
      }
    }
    throw new CheckpointException("a GLOBAL name is unterminated or longer than " + max + " bytes");
  }

  private String decode(int from, int len) {
    try {
      return StandardCharsets.UTF_8.newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT)
          .decode(ByteBuffer.wrap(data, from, len))
          .toString();
    } catch (CharacterCodingException e) {
      throw new CheckpointException("a string is not valid UTF-8");
    }
  }

  private void need(int n) {
    if (n > data.length - pos) {
      throw new CheckpointException("the pickle ends inside an operand (truncated)");
    }
  }
}
