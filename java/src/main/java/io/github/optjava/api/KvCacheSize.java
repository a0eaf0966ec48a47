package io.github.optjava.api;

import java.util.Locale;

/**
 * How many KV-cache blocks a generator gets, and why: the load log says which bound chose the size, since with the
 * defaults it follows {@code maxBatchSize} (room for that many full-length sequences) rather than the memory.
 *
 * @param blocks    blocks in the pool
 * @param blockSize token slots per block
 * @param why       what chose the size, for the load log
 */
record KvCacheSize(int blocks, int blockSize, String why) {

  private static final String OPTION = "kvCacheTokens (--kv-cache-tokens)";

  /**
   * As configured, or sized from the memory left after the weights (see GeneratorOptions): {@code free} bytes on
   * the fullest device, each keeping {@code layers} layers of {@code width} values per token.
   */
  static KvCacheSize choose(GeneratorOptions options, long free, int elementBytes, boolean perDevice, Device device,
      int layers, int width, int maxLen) {
    int blockSize = options.kvBlockSize();
    if (options.kvCacheTokens() > 0) {
      // Rounded up: the pool holds at least the tokens asked for (a request of that many must fit).
      long blocks = ((long) options.kvCacheTokens() + blockSize - 1) / blockSize;
      return new KvCacheSize((int) Math.min(Integer.MAX_VALUE / 2, blocks), blockSize, "as set by " + OPTION);
    }
    long bytesPerToken = 2L * layers * width * elementBytes; // on each device
    // The GPU holds little else once the weights are in; the heap also holds activations and logits.
    double share = device == Device.CUDA ? 0.9 : 0.5;
    long affordable = (long) (free * share / bytesPerToken);
    long minimum = ((long) maxLen + blockSize - 1) / blockSize * blockSize; // one full-length sequence, whole blocks
    long wanted = options.maxBatchSize() * minimum; // a sequence holds whole blocks: never less than the minimum
    long arrayCap = (Integer.MAX_VALUE - 8L) / width;
    long tokens = Math.min(Math.min(affordable, wanted), arrayCap);
    if (affordable < minimum) {
      // The cache may take only a share of what is free (the rest is for activations and logits): say how much
      // more memory that share needs, not the sequence's size, which would leave the user short again.
      double missing = Math.max(1, (minimum * bytesPerToken / share - free) / 1048576.0);
      throw new IllegalStateException(String.format(Locale.ROOT, "not enough memory for the KV cache: one sequence "
          + "of %d tokens needs %.1f MiB%s, and the cache may take %d %% of the %s free after the weights "
          + "(%.1f MiB of %.1f MiB); lower maxSequenceLength, use a 16-bit dtype (on the CPU also for the cache: "
          + "kvCacheDtype F16, --kv-cache-dtype f16), or give %s at least %.0f MiB more", maxLen,
          minimum * bytesPerToken / 1048576.0, perDevice ? " per device" : "", Math.round(share * 100),
          device == Device.CUDA ? "GPU memory" : "Java heap", affordable * bytesPerToken / 1048576.0,
          free / 1048576.0, device == Device.CUDA ? "the GPU" : "the JVM (-Xmx)", Math.ceil(missing)));
    }
    if (arrayCap < minimum) {
      throw new IllegalStateException("one sequence of " + maxLen + " tokens in blocks of " + blockSize + " needs "
          + minimum + " KV-cache slots, more than one Java array holds at width " + width + " (" + arrayCap + "); "
          + "lower maxSequenceLength or kvBlockSize");
    }
    String batch = "max batch " + options.maxBatchSize() + " × " + maxLen + " positions";
    String why;
    if (tokens == wanted) {
      why = "for " + batch;
    } else if (tokens == affordable) {
      why = String.format(Locale.ROOT, "fitted to %d %% of the %s free after the weights (%s would need %d MiB)",
          Math.round(share * 100), device == Device.CUDA ? "GPU memory" : "Java heap", batch,
          wanted * bytesPerToken / 1048576);
    } else {
      why = "capped so that one layer's keys fit one Java array (CpuKvStore)";
    }
    // Rounded down: never past the memory share or one Java array (tokens >= minimum, a whole number of blocks).
    int blocks = (int) Math.min(Integer.MAX_VALUE / 2, tokens / blockSize);
    return new KvCacheSize(blocks, blockSize, why + "; " + OPTION + " sets it");
  }

  /** Token slots in the pool. */
  int tokens() {
    return blocks * blockSize;
  }

  /** For the load log: "KV cache 2048 tokens (128 blocks of 16) for max batch 16 × 128 positions; ...". */
  @Override
  public String toString() {
    return "KV cache " + tokens() + " tokens (" + blocks + " blocks of " + blockSize + ") " + why;
  }
}
