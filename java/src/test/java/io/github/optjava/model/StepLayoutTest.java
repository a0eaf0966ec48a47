package io.github.optjava.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.backend.Ops;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.engine.KvCache;
import io.github.optjava.model.OptModel.SeqStep;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/**
 * {@link StepLayout} on its own: rows, positions, slots and logit rows of ragged steps, which steps are graph steps,
 * their block tables padded to a power of two, and the padding rows of a decode step padded to a batch bucket. (The
 * model tests check the same steps end to end: {@code GraphStepFallbackTest}, {@code PaddedDecodeStepsTest}.)
 */
class StepLayoutTest {
  private static final int BLOCK = 16;
  private static final OptConfig CONFIG = new OptConfig(50272, 64, 2, 4, 256, 128, 64, true, false, true, true,
      "relu", 2, 2, 1, Optional.empty());

  private static KvCache cache(Ops ops) {
    return new KvCache(ops.kvStore(CONFIG.numHiddenLayers(), 32, BLOCK, CONFIG.hiddenSize()));
  }

  private static SeqStep step(long seq, int tokens, boolean allLogits) {
    int[] ids = new int[tokens];
    for (int i = 0; i < tokens; i++) {
      ids[i] = (int) (100 * seq + i);
    }
    return new SeqStep(seq, ids, allLogits);
  }

  @Test
  void prefillAndDecodeInOneStepAreLaidOutRaggedAndNotAGraphStep() {
    CpuOps ops = new CpuOps();
    try (KvCache cache = cache(ops)) {
      cache.reserve(2, 17); // sequence 2 holds 17 tokens: its new one is position 17, in its second block
      StepLayout l = StepLayout.plan(List.of(step(1, 3, true), step(2, 1, false)), cache, CONFIG, ops, true,
          false);
      assertFalse(l.graphStep());
      assertEquals(4, l.total());
      assertEquals(4, l.outRows()); // every row of sequence 1, the last of sequence 2
      assertEquals(2, l.rows());
      assertFalse(l.padded());
      assertArrayEquals(new int[] {100, 101, 102, 200}, l.ids());
      assertArrayEquals(new int[] {0, 1, 2, 17}, l.positions());
      int[] t1 = cache.table(1);
      int[] t2 = cache.table(2);
      assertArrayEquals(new int[] {t1[0] * BLOCK, t1[0] * BLOCK + 1, t1[0] * BLOCK + 2, t2[1] * BLOCK + 1}, l.slots());
      assertArrayEquals(new int[] {0, 1, 2, 3}, l.outputRows());
      assertArrayEquals(t1, l.batch().blockTables()[0]); // tables not padded outside graph steps
      assertEquals(18, cache.length(2));
    }
  }

  @Test
  void decodeStepIsAGraphStepWithTablesPaddedToAPowerOfTwo() {
    CpuOps ops = new CpuOps();
    try (KvCache cache = cache(ops)) {
      cache.reserve(1, 20);
      cache.reserve(2, 40);
      cache.reserve(3, 3);
      StepLayout l = StepLayout.plan(List.of(step(1, 1, false), step(2, 1, false), step(3, 1, false)), cache,
          CONFIG, ops, true, false);
      assertTrue(l.graphStep());
      assertEquals(1, l.tokensPerSequence());
      assertEquals(4, l.tableWidth()); // sequence 2 now needs 3 blocks (41 tokens)
      assertEquals(3, l.rows()); // CpuOps does not pad: decodeBatchBucket(n) = n
      for (int[] table : l.batch().blockTables()) {
        assertEquals(4, table.length);
      }
      assertArrayEquals(new int[] {cache.table(3)[0], -1, -1, -1}, l.batch().blockTables()[2]);
      assertArrayEquals(new int[] {20, 40, 3}, l.positions());
      assertArrayEquals(new int[] {0, 1, 2}, l.outputRows());

      StepLayout tp = StepLayout.plan(List.of(step(1, 1, false)), cache, CONFIG, ops, false, false);
      assertFalse(tp.graphStep(), "not graphable (tensor-parallel communication or a pipeline): never a graph step");
      assertEquals(1, tp.tableWidth());
    }
  }

  @Test
  void decodeStepPaddedToItsBucketAddsPadTokenRowsThatWriteOnlyThePaddingBlock() {
    BucketedCpuOps ops = new BucketedCpuOps();
    try (KvCache cache = cache(ops)) {
      cache.reserve(1, 5);
      cache.reserve(2, 30);
      cache.reserve(3, 9);
      StepLayout l = StepLayout.plan(List.of(step(1, 1, false), step(2, 1, false), step(3, 1, false)), cache,
          CONFIG, ops, true, false);
      assertTrue(l.padded());
      assertEquals(3, l.sequences());
      assertEquals(4, l.rows());
      assertEquals(4, l.total());
      assertEquals(4, l.outRows());
      int pad = cache.paddingBlock();
      assertTrue(pad >= 0);
      assertEquals(CONFIG.padTokenId(), l.ids()[3]);
      assertEquals(0, l.positions()[3]);
      assertEquals(pad * BLOCK, l.slots()[3]);
      assertEquals(3, l.outputRows()[3]);
      assertArrayEquals(new int[] {pad, -1}, l.batch().blockTables()[3]);
      assertEquals(1, l.batch().contextLength()[3]);
      for (int s = 0; s < 3; s++) {
        for (int b : cache.table(s + 1)) {
          assertTrue(b != pad, "a sequence's block is not the padding block");
        }
      }
    }
  }

  @Test
  void scoredStepsAndStepsOfDraftsAreNeverPadded() {
    BucketedCpuOps ops = new BucketedCpuOps();
    try (KvCache cache = cache(ops)) {
      cache.reserve(1, 5);
      cache.reserve(2, 6);
      cache.reserve(3, 7);
      StepLayout scored = StepLayout.plan(List.of(step(1, 1, true), step(2, 1, true), step(3, 1, true)), cache,
          CONFIG, ops, true, true);
      assertTrue(scored.graphStep(), "one token, one logit row each: the decode shape");
      assertFalse(scored.padded());

      StepLayout drafts = StepLayout.plan(List.of(step(1, 4, true), step(2, 4, true), step(3, 4, true)), cache,
          CONFIG, ops, true, false);
      assertTrue(drafts.graphStep());
      assertEquals(4, drafts.tokensPerSequence());
      assertFalse(drafts.padded());

      StepLayout lastOnly = StepLayout.plan(List.of(step(1, 4, false), step(2, 4, false)), cache, CONFIG, ops, true,
          false);
      assertFalse(lastOnly.graphStep(), "several tokens, last logits only: a prefill, not a step of drafts");

      StepLayout uneven = StepLayout.plan(List.of(step(1, 2, true), step(2, 3, true)), cache, CONFIG, ops, true,
          false);
      assertFalse(uneven.graphStep());
      assertEquals(-1, uneven.tokensPerSequence());
      assertEquals(0, ops.paddedSteps.get());
    }
  }

  @Test
  void aSequencePastTheModelsPositionsIsRefused() {
    CpuOps ops = new CpuOps();
    try (KvCache cache = cache(ops)) {
      cache.reserve(1, CONFIG.maxPositionEmbeddings());
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> StepLayout.plan(List.of(step(1, 1, false)), cache, CONFIG, ops, true, false));
      assertTrue(e.getMessage().contains("exceeds the model's 128 positions"), e.getMessage());
    }
  }
}
