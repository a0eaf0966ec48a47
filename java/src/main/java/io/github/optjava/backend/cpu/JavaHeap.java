package io.github.optjava.backend.cpu;

import java.util.Locale;

/**
 * The Java heap as the CPU backend's memory: the weights live in Java arrays, so a model larger than the heap
 * would otherwise load for a long time and then die with a bare {@link OutOfMemoryError}.
 */
final class JavaHeap {
  private static final long GIB = 1L << 30;

  private JavaHeap() {}

  /** Bytes the heap could still give: its maximum less what is in use (garbage counts until collected). */
  static long free() {
    Runtime rt = Runtime.getRuntime();
    return rt.maxMemory() - (rt.totalMemory() - rt.freeMemory());
  }

  /**
   * Returns if {@code bytes} more fit in the heap; otherwise throws an exception that names the heap to start
   * Java with.
   *
   * @param int8 whether the Linear weights are int8 already (else the message offers that too)
   * @throws IllegalStateException if they do not fit, even after a collection
   */
  static void requireRoom(String what, long bytes, boolean int8) {
    if (bytes <= free()) {
      return;
    }
    // Garbage (say, of a model closed a moment ago) counts as used until collected: collect once before refusing.
    System.gc();
    long free = free();
    if (bytes <= free) {
      return;
    }
    Runtime rt = Runtime.getRuntime();
    long used = rt.totalMemory() - rt.freeMemory();
    // The weights, a quarter more for the KV cache and activations (KvCacheSize takes half of what is left), and
    // a GiB of head room, in whole GiB.
    long suggestGib = (used + bytes + bytes / 4 + GIB + GIB - 1) / GIB;
    throw new IllegalStateException(String.format(Locale.ROOT,
        "not enough Java heap for %s: they need about %.2f GiB, and this JVM has %.2f GiB free of at most %.2f GiB. "
            + "Start Java with a larger heap, e.g. -Xmx%dg (scripts/opt: OPT_JAVA_OPTS=-Xmx%dg)%s",
        what, bytes / (double) GIB, free / (double) GIB, rt.maxMemory() / (double) GIB, suggestGib, suggestGib,
        int8 ? "" : ", or store the Linear weights as int8 (--quantize int8, GeneratorOptions.withQuantization)"));
  }
}
