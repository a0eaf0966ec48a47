package io.github.optjava.api;

/**
 * What a {@link Generator}'s engine is doing, for monitoring (a metrics exporter, a health check, a load
 * balancer that wants the least busy replica). The engine publishes a snapshot between its steps, so most
 * figures may lag it by one step ({@code requestsFinished} is current: a caller whose request just completed
 * sees it counted), and {@code waiting} may miss a request for the moment the engine spends moving it from the
 * queue into the batch.
 *
 * <pre>{@code
 * GeneratorStats s = generator.stats();
 * if (s.kvCacheUsage() > 0.9 && s.preempted() > 0) {
 *   // the KV cache is the bottleneck: a larger kvCacheTokens (or a GPU with more memory) would help
 * }
 * }</pre>
 *
 * @param running           sequences in the running batch (a request with {@code n} completions counts n;
 *                          beam search, which runs alone, counts its request as 1)
 * @param waiting           requests submitted and not yet admitted
 * @param preempted         sequences that gave back their KV-cache blocks and wait to be recomputed
 * @param kvCacheBlocksUsed KV-cache blocks held by sequences now
 * @param kvCacheBlocksCached KV-cache blocks held by no sequence that keep a cached prefix for reuse (prefix
 *                          caching); they count as free: the pool takes them, least recently used first, when
 *                          it needs room
 * @param kvCacheBlocks     KV-cache blocks in all
 * @param kvCacheBlockSize  tokens per block
 * @param steps             forward passes since the generator opened (of the running batch, or of a beam
 *                          search, which runs alone)
 * @param tokensProcessed   tokens run through the model in those steps: prompts, recomputed prefixes, and one
 *                          per sequence per decode step
 * @param prefixCachedTokens prompt (or recomputed) tokens not run through the model because cached KV blocks
 *                          held them (prefix caching)
 * @param draftTokens       draft tokens fed to be checked (prompt lookup decoding)
 * @param acceptedDraftTokens draft tokens the model's picks agreed with: each saved a step
 * @param requestsFinished  requests that ended since the generator opened, with a result or an exception
 * @param preemptions       sequences preempted so far (see {@link #preempted})
 * @param forkedPrefills    completions that shared their prompt's prefill with a sibling ({@code n > 1})
 */
public record GeneratorStats(int running, int waiting, int preempted, int kvCacheBlocksUsed,
    int kvCacheBlocksCached, int kvCacheBlocks, int kvCacheBlockSize, long steps, long tokensProcessed,
    long prefixCachedTokens, long draftTokens, long acceptedDraftTokens, long requestsFinished, long preemptions,
    long forkedPrefills) {

  /** The fraction of KV-cache blocks in use, 0 to 1. */
  public double kvCacheUsage() {
    return kvCacheBlocks == 0 ? 0 : (double) kvCacheBlocksUsed / kvCacheBlocks;
  }
}
