package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.github.optjava.backend.cpu.CpuOps;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/**
 * The prefix index of {@link KvCache}: published full blocks are found again by their tokens (and everything
 * before them), stay cached when released, and give way, least recently released first, when the pool needs
 * room. Blocks of 4 tokens.
 */
class KvCachePrefixTest {
  private static final int[] TOKENS = {2, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19};

  private static KvCache cache(int blocks) {
    return new KvCache(new CpuOps().kvStore(1, blocks, 4, 8));
  }

  /** Sequence {@code seq} computes {@code tokens} (reserve, as a step would) and publishes its full blocks. */
  private static int[] compute(KvCache cache, long seq, int[] tokens) {
    int[] table = cache.reserve(seq, tokens.length);
    cache.publish(seq, tokens);
    return table.clone();
  }

  private static int[] with(int at, int token) {
    int[] t = TOKENS.clone();
    t[at] = token;
    return t;
  }

  @Test
  void publishedBlocksAreFoundByTheirTokensAfterTheirSequenceEnds() {
    KvCache cache = cache(8);
    int[] first = compute(cache, 1, TOKENS); // 11 tokens: 2 full blocks and a partial one
    cache.release(1);
    assertEquals(8, cache.freeBlocks(), "cached blocks count as free");
    assertEquals(2, cache.cachedBlocks(), "the two full blocks are kept, the partial one is not");

    assertEquals(8, cache.attachPrefix(2, TOKENS, TOKENS.length - 1));
    assertArrayEquals(Arrays.copyOf(first, 2), cache.table(2));
    assertEquals(8, cache.length(2));
    assertEquals(0, cache.cachedBlocks(), "taken by sequence 2");
    assertEquals(6, cache.freeBlocks());

    assertEquals(4, cache.attachPrefix(3, TOKENS, 7), "whole blocks within the limit only");
    assertEquals(first[0], cache.table(3)[0], "a block two sequences hold");
    assertEquals(0, cache.attachPrefix(4, TOKENS, 3));
    assertEquals(0, cache.table(4).length);
  }

  @Test
  void aBlockMatchesOnlyAfterTheSameTokens() {
    KvCache cache = cache(8);
    compute(cache, 1, TOKENS);
    cache.release(1);
    assertEquals(4, cache.attachPrefix(2, with(6, 99), 11), "the second block differs: only the first matches");
    assertEquals(0, cache.attachPrefix(3, with(1, 99), 11),
        "the first block differs: the second, though equal, follows other tokens (other keys and values)");
    assertEquals(0, cache.attachPrefix(5, Arrays.copyOfRange(TOKENS, 4, 11), 11), "the same tokens at other positions");
  }

  @Test
  void aBlockHeldBySeveralSequencesIsCachedWhenTheLastLetsGo() {
    KvCache cache = cache(4);
    compute(cache, 1, TOKENS);
    assertEquals(8, cache.attachPrefix(2, TOKENS, 11));
    cache.release(1);
    assertEquals(0, cache.cachedBlocks(), "sequence 2 still holds both");
    assertEquals(2, cache.freeBlocks(), "the partial block of sequence 1 is free, beside the never-used one");
    cache.release(2);
    assertEquals(2, cache.cachedBlocks());
    assertEquals(4, cache.freeBlocks());
  }

  @Test
  void thePoolTakesTheLeastRecentlyReleasedBlocksAndTheLaterOnesOfASequenceFirst() {
    KvCache cache = cache(6);
    int[] a = compute(cache, 1, Arrays.copyOf(TOKENS, 8));         // blocks a0 a1
    int[] b = compute(cache, 2, Arrays.copyOf(with(1, 50), 8));    // b0 b1
    cache.release(1); // released first: evicted first, a1 before a0
    cache.release(2);
    assertEquals(4, cache.cachedBlocks());
    int[] fresh = cache.reserve(3, 12); // 3 blocks: the 2 never-used ones, then one cached one
    assertEquals(a[1], fresh[2], "the oldest release's last block goes first");
    assertEquals(3, cache.cachedBlocks());
    assertEquals(4, cache.attachPrefix(4, TOKENS, 11), "a0 is still cached, a1 is gone");
    assertEquals(8, cache.attachPrefix(5, with(1, 50), 11), "b is whole");
    assertArrayEquals(b, cache.table(5));
    cache.release(4);
    cache.release(5);
    cache.release(3);
    assertEquals(6, cache.freeBlocks());
  }

  @Test
  void aReusedBlockIsNeverFoundUnderItsOldTokens() {
    KvCache cache = cache(2);
    compute(cache, 1, Arrays.copyOf(TOKENS, 8));
    cache.release(1);
    int[] other = with(1, 60);
    compute(cache, 2, Arrays.copyOf(other, 8)); // takes both cached blocks, and rewrites them
    assertEquals(0, cache.cachedBlocks());
    cache.release(2);
    assertEquals(0, cache.attachPrefix(3, TOKENS, 11), "the old tokens' blocks were overwritten");
    assertEquals(8, cache.attachPrefix(4, other, 11));
  }

  @Test
  void twoSequencesThatComputedTheSamePrefixLeaveOneCachedCopy() {
    KvCache cache = cache(6);
    int[] first = compute(cache, 1, Arrays.copyOf(TOKENS, 8));
    compute(cache, 2, Arrays.copyOf(TOKENS, 8)); // computed at the same time, before any attach
    int[] next = Arrays.copyOf(TOKENS, 11);
    next[8] = 70;
    int[] twin = cache.reserve(2, 12).clone();
    cache.publish(2, Arrays.copyOf(next, 12)); // its third block chains on the first copy's content
    cache.release(1);
    cache.release(2);
    assertEquals(3, cache.cachedBlocks(), "one copy of the two shared blocks, and the third");
    assertEquals(6, cache.freeBlocks());
    assertEquals(12, cache.attachPrefix(3, Arrays.copyOf(next, 13), 12));
    assertArrayEquals(new int[] {first[0], first[1], twin[2]}, cache.table(3),
        "the indexed copy of the shared blocks, then the block that followed the other copy");
  }

  @Test
  void attachingToASequenceThatHoldsBlocksIsRefused() {
    KvCache cache = cache(4);
    compute(cache, 1, TOKENS);
    cache.reserve(2, 1);
    assertThrows(IllegalStateException.class, () -> cache.attachPrefix(2, TOKENS, 11));
  }
}
