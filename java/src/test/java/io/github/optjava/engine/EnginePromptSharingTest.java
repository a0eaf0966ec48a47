package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Choice;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.model.OptModel;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The n completions of one prompt prefill it once: the others fork its KV cache (full blocks shared, the
 * partial last block copied) and give exactly what n separate prefills give.
 */
class EnginePromptSharingTest {

  @Test
  void forkSharesFullBlocksCopiesThePartialOneAndFreesOnTheLastRelease() {
    CpuOps ops = new CpuOps();
    KvCache cache = new KvCache(ops.kvStore(1, 6, 4, 8));
    cache.reserve(1, 10); // blocks for 10 tokens: 2 full + 1 partial
    int[] src = cache.table(1);
    int[] copy = cache.fork(1, 2);
    int[] dst = cache.table(2);
    assertEquals(10, cache.length(2));
    assertEquals(src[0], dst[0]);
    assertEquals(src[1], dst[1]);
    assertArrayEquals(new int[] {src[2], dst[2]}, copy, "the partial block is copied into a fresh one");
    assertTrue(src[2] != dst[2]);
    assertEquals(2, cache.freeBlocks());
    cache.release(1);
    assertEquals(3, cache.freeBlocks(), "the shared blocks stay while sequence 2 holds them");
    cache.release(2);
    assertEquals(6, cache.freeBlocks());

    cache.reserve(3, 8); // ends on a block boundary: nothing to copy
    assertEquals(0, cache.fork(3, 4).length);
    assertEquals(4, cache.freeBlocks());
    assertThrows(IllegalStateException.class, () -> cache.fork(3, 4), "4 holds blocks already");
    cache.reserve(5, 14); // takes the last 4 blocks, the last one partial
    assertEquals(0, cache.freeBlocks());
    assertTrue(!cache.canFork(5));
    assertThrows(IllegalStateException.class, () -> cache.fork(5, 6));
  }

  @Test
  void nCompletionsPrefillOnceAndEqualSeparatePrefills() {
    CpuOps ops = new CpuOps();
    OptModel model = TinyOpt.model(ops);
    OptTokenizer tokenizer = TinyOpt.tokenizer();
    int[] prompt = tokenizer.encode("The quick brown fox jumps over"); // not a multiple of the block size
    SamplingParams params = SamplingParams.builder().temperature(0.9).seed(11L).n(3).maxTokens(12).build();
    List<Choice> separate;
    KvCache c1 = new KvCache(ops.kvStore(model.config().numHiddenLayers(), 32, 4, model.config().hiddenSize()));
    try (Engine engine = new Engine(model, tokenizer, c1, 8, 128)) {
      engine.sharePrompts = false;
      separate = engine.submit(prompt, params, null).join().choices();
      assertEquals(0, engine.forkedPrefills());
    }
    KvCache c2 = new KvCache(ops.kvStore(model.config().numHiddenLayers(), 32, 4, model.config().hiddenSize()));
    try (Engine engine = new Engine(model, tokenizer, c2, 8, 128)) {
      List<Choice> shared = engine.submit(prompt, params, null).join().choices();
      assertEquals(2, engine.forkedPrefills());
      for (int i = 0; i < 3; i++) {
        assertEquals(separate.get(i).tokenIds(), shared.get(i).tokenIds(), "choice " + i);
        assertEquals(separate.get(i).text(), shared.get(i).text());
        assertEquals(separate.get(i).score(), shared.get(i).score(), 1e-9);
      }
    }
    assertEquals(c2.store().blocks(), c2.freeBlocks(), "every block back, shared ones included");
  }
}
