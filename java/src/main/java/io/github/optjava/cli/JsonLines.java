package io.github.optjava.cli;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * Reads JSON Lines input one line at a time as raw bytes, so that a line that is not valid UTF-8
 * becomes an error for that line only (a Reader would either replace the bytes silently or abort the
 * whole stream).
 */
final class JsonLines {
  private final InputStream in;
  private final ByteArrayOutputStream line = new ByteArrayOutputStream();

  JsonLines(InputStream in) {
    this.in = in;
  }

  /** The next line without its terminator ("\n" or "\r\n"), or null at end of input. */
  byte[] next() throws IOException {
    line.reset();
    int b;
    boolean any = false;
    while ((b = in.read()) != -1) {
      any = true;
      if (b == '\n') {
        break;
      }
      line.write(b);
    }
    if (!any) {
      return null;
    }
    byte[] bytes = line.toByteArray();
    int n = bytes.length;
    if (n > 0 && bytes[n - 1] == '\r') {
      return java.util.Arrays.copyOf(bytes, n - 1);
    }
    return bytes;
  }

  /** Strict UTF-8 decoding: malformed input is an error, never silently replaced. */
  static String decodeUtf8(byte[] bytes) throws CharacterCodingException {
    return StandardCharsets.UTF_8.newDecoder()
        .onMalformedInput(CodingErrorAction.REPORT)
        .onUnmappableCharacter(CodingErrorAction.REPORT)
        .decode(ByteBuffer.wrap(bytes))
        .toString();
  }
}
