package io.github.optjava.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import org.junit.jupiter.api.Test;

/** The bench's token fingerprint: FNV-1a 64 over each id's 4 little-endian bytes, order and count included. */
class TokenFingerprintTest {
  private static String of(int[]... parts) {
    TokenFingerprint f = new TokenFingerprint();
    for (int[] p : parts) {
      f.add(p);
    }
    return f.hex();
  }

  @Test
  void isFnv1aOverLittleEndianBytes() {
    // values from a plain Python FNV-1a 64 over the bytes 61 00 00 00, and over 02 00 00 00 5f c4 00 00
    assertEquals("ac804b820e4fe984:1", of(new int[] {0x61}));
    assertEquals("d2bd1fde0be18b34:2", of(new int[] {2, 50271}));
    assertEquals("cbf29ce484222325:0", of());
  }

  @Test
  void dependsOnEveryTokenAndTheirOrderButNotOnHowTheyAreSplit() {
    assertEquals(of(new int[] {2, 50271}), of(new int[] {2}, new int[] {50271}));
    assertNotEquals(of(new int[] {2, 50271}), of(new int[] {50271, 2}));
    assertNotEquals(of(new int[] {2, 50271}), of(new int[] {2, 50270}));
    assertNotEquals(of(new int[] {7}), of(new int[] {7, 0}));
  }
}
