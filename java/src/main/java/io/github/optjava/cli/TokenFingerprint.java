package io.github.optjava.cli;

/**
 * A 64-bit FNV-1a hash of token ids in the order added: how {@code opt bench} records which greedy tokens a run
 * generated, so that two kernel variants timed in one process can be compared for their tokens as well as their
 * speed. It is not a digest against tampering, only a cheap equality check. Written by hand because it is a few
 * lines and runs inside the timed decode loop (one multiply per token).
 */
final class TokenFingerprint {
  private static final long OFFSET_BASIS = 0xcbf29ce484222325L;
  private static final long PRIME = 0x100000001b3L;

  private long hash = OFFSET_BASIS;
  private long count;

  /** Adds these token ids, in order (each as its 4 bytes, little-endian). */
  void add(int[] tokens) {
    for (int t : tokens) {
      for (int shift = 0; shift < 32; shift += 8) {
        hash = (hash ^ ((t >>> shift) & 0xff)) * PRIME;
      }
    }
    count += tokens.length;
  }

  /** The hash as 16 hex digits, then ':' and the number of tokens added. */
  String hex() {
    return String.format(java.util.Locale.ROOT, "%016x:%d", hash, count);
  }
}
