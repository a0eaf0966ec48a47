package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.backend.cpu.CpuOps;
import org.junit.jupiter.api.Test;

/** Block bookkeeping: tables grow a block at a time, memory follows the tokens in flight, blocks come back. */
class KvCacheTest {

  @Test
  void truncateGivesBackTheBlocksPastTheNewLength() {
    KvCache cache = new KvCache(new CpuOps().kvStore(1, 6, 4, 8));
    int[] table = cache.reserve(1, 13).clone(); // 4 blocks, the last holding one token
    cache.truncate(1, 9);
    assertEquals(9, cache.length(1));
    assertArrayEquals(java.util.Arrays.copyOf(table, 3), cache.table(1));
    assertEquals(3, cache.freeBlocks());
    cache.truncate(1, 8);
    assertEquals(2, cache.table(1).length, "8 tokens fill 2 blocks");
    assertThrows(IllegalArgumentException.class, () -> cache.truncate(1, 9), "only shorter");
    // A block another sequence holds is never written again: truncating into it is refused.
    cache.reserve(1, 10);
    cache.fork(1, 2); // shares blocks 0 and 1 and copies the third
    cache.truncate(2, 8);
    assertThrows(IllegalStateException.class, () -> cache.truncate(2, 6));
  }

  @Test
  void blocksFollowTheTokensInFlight() {
    KvCache cache = new KvCache(new CpuOps().kvStore(1, 4, 16, 8));
    assertEquals(4, cache.freeBlocks());
    int[] a = cache.reserve(1, 5);
    assertEquals(1, a.length);
    assertEquals(5, cache.length(1));
    assertArrayEquals(a, cache.reserve(1, 16)); // still one block
    assertEquals(2, cache.reserve(1, 17).length);
    int[] b = cache.reserve(2, 20);
    assertEquals(2, b.length);
    assertEquals(0, cache.freeBlocks());
    assertFalse(cache.canHold(3, 1));
    assertTrue(cache.canHold(1, 32)); // fits the blocks it already has
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> cache.reserve(3, 1));
    assertTrue(e.getMessage().contains("KV cache full"), e.getMessage());
    cache.release(1);
    assertEquals(2, cache.freeBlocks());
    assertEquals(0, cache.length(1));
    assertEquals(0, cache.table(1).length);
    int[] c = cache.reserve(3, 32);
    assertEquals(2, c.length);
    for (int blk : c) {
      for (int other : b) {
        assertTrue(blk != other, "a block is never shared by two sequences");
      }
    }
  }

  @Test
  void thePaddingBlockIsTheLastBlockASequenceGets() {
    KvCache cache = new KvCache(new CpuOps().kvStore(1, 3, 4, 8));
    cache.reserve(1, 4);
    int padding = cache.paddingBlock();
    assertTrue(padding >= 0);
    assertEquals(padding, cache.paddingBlock(), "the same block until a sequence needs it");
    assertEquals(2, cache.freeBlocks(), "the padding block counts as free");
    assertTrue(cache.canHold(2, 8));
    int[] table = cache.reserve(2, 8); // the last free block, then the padding block
    assertEquals(padding, table[1]);
    assertEquals(0, cache.freeBlocks());
    assertEquals(-1, cache.paddingBlock(), "no block left for padding: the step runs unpadded");
    cache.release(2);
    assertEquals(2, cache.freeBlocks());
    assertTrue(cache.paddingBlock() >= 0);
  }
}
