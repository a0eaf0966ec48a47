package io.github.optjava.model;

import static io.github.optjava.model.HfReference.ints;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.backend.BatchBuckets;
import io.github.optjava.backend.SamplingRows;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.engine.KvCache;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Decode steps padded to a bucket size ({@code Ops.decodeBatchBucket}, what {@code -Dopt.cuda.batchBuckets} turns on
 * for CUDA graphs), on the CPU: the real sequences' logits, greedy tokens, log-probs and sampled tokens are those of
 * the unpadded steps, bit for bit ({@link CpuOps} computes every row on its own), while the graph steps are declared
 * at the bucket sizes and the padding rows write only the cache's padding block.
 */
class PaddedDecodeStepsTest {

  @Test
  void paddedDecodeStepsGiveTheUnpaddedResults() {
    HfReference ref = new HfReference("tiny-opt");
    BucketedCpuOps bucketed = new BucketedCpuOps();
    CpuOps plain = new CpuOps();
    try (OptModel a = ref.load(bucketed, null); OptModel b = ref.load(plain, null);
        KvCache ca = HfReference.cache(bucketed, a.config()); KvCache cb = HfReference.cache(plain, b.config())) {
      int vocab = a.config().vocabSize();
      // three prompts (one prefill step: not padded), then decode steps at 3, then 2 sequences, then 3 again
      int[] last = prefillThree(ref, a, ca, b, cb);
      int freeAfterPrefill = ca.freeBlocks();
      java.util.Random r = new java.util.Random(3);
      for (int t = 0; t < 12; t++) {
        List<OptModel.SeqStep> step = new ArrayList<>();
        for (int s = 0; s < 3; s++) {
          if (t < 4 || t >= 8 || s != 1) { // sequence 1 sits out steps 4..7: batches 3, 2, 3 (buckets 4, 2, 4)
            step.add(new OptModel.SeqStep(s, new int[] {last[s]}, false));
          }
        }
        int n = step.size();
        switch (t % 3) {
          case 0 -> { // logits
            float[][] x = a.forward(step, ca);
            float[][] y = b.forward(step, cb);
            assertEquals(n, x.length);
            for (int i = 0; i < n; i++) {
              assertArrayEquals(y[i], x[i], "step " + t + " sequence " + i);
            }
            for (int i = 0; i < n; i++) {
              last[(int) step.get(i).seqId()] = HfReference.argmax(y[i], 0, vocab);
            }
          }
          case 1 -> { // greedy with log-probs, picked by the ops
            double[] la = new double[n];
            double[] lb = new double[n];
            int[] x = a.greedyRows(step, ca, la);
            int[] y = b.greedyRows(step, cb, lb);
            assertArrayEquals(y, x, "step " + t + ": greedy tokens");
            assertArrayEquals(lb, la, "step " + t + ": log-probs");
            for (int i = 0; i < n; i++) {
              last[(int) step.get(i).seqId()] = y[i];
            }
          }
          default -> { // sampled, with log-probs
            float[] temperature = new float[n];
            int[] topK = new int[n];
            float[] topP = new float[n];
            float[] minP = new float[n];
            float[] typicalP = new float[n];
            double[] uniform = new double[n];
            for (int i = 0; i < n; i++) {
              temperature[i] = 0.7f + 0.2f * i;
              topK[i] = i == 0 ? 0 : 50;
              topP[i] = i == 1 ? 0.9f : 1f;
              minP[i] = i == 2 ? 0.05f : 0f;
              typicalP[i] = i == 0 ? 0.9f : 1f;
              uniform[i] = r.nextDouble();
            }
            SamplingRows spec = new SamplingRows(temperature, topK, topP, minP, typicalP, uniform);
            double[] la = new double[n];
            double[] lb = new double[n];
            int[] x = a.sample(step, ca, spec, la);
            int[] y = b.sample(step, cb, spec, lb);
            assertArrayEquals(y, x, "step " + t + ": sampled tokens");
            assertArrayEquals(lb, la, "step " + t + ": log-probs");
            for (int i = 0; i < n; i++) {
              last[(int) step.get(i).seqId()] = y[i];
            }
          }
        }
      }
      // graph steps at the bucket sizes: 4 for 3 sequences, 2 for 2
      assertEquals(List.of(4, 4, 4, 4, 2, 2, 2, 2, 4, 4, 4, 4), bucketed.graphBatches);
      // the padding rows took one block, once, and wrote nothing into the real sequences' blocks (checked above)
      int padding = ca.paddingBlock();
      assertTrue(padding >= 0);
      for (int s = 0; s < 3; s++) {
        for (int block : ca.table(s)) {
          assertTrue(block != padding, "sequence " + s + " holds the padding block");
        }
      }
      // the padding block holds nothing between steps: it counts as free (a sequence gets it when none other is)
      assertEquals(cb.freeBlocks(), ca.freeBlocks(), "the padding block counts as free");
      assertTrue(freeAfterPrefill >= ca.freeBlocks());
    }
  }

  @Test
  void aCacheWithNoFreeBlockRunsTheStepUnpadded() {
    HfReference ref = new HfReference("tiny-opt");
    BucketedCpuOps bucketed = new BucketedCpuOps();
    int[] prompt = ints(ref.json.get("prompts").get(0).get("input_ids"));
    try (OptModel a = ref.load(bucketed, null);
        KvCache cache = a.newCache(3 * ((prompt.length + 1 + 3) / 4), 4)) { // exactly three sequences' blocks
      List<OptModel.SeqStep> prefill = new ArrayList<>();
      for (int s = 0; s < 3; s++) {
        prefill.add(new OptModel.SeqStep(s, prompt, false));
      }
      a.forward(prefill, cache);
      List<OptModel.SeqStep> step = new ArrayList<>();
      for (int s = 0; s < 3; s++) {
        step.add(new OptModel.SeqStep(s, new int[] {5}, false));
      }
      assertEquals(3, a.greedyRows(step, cache, null).length);
      assertEquals(-1, cache.paddingBlock(), "no free block for padding");
      assertEquals(List.of(3), bucketed.graphBatches, "the step ran at its own size");
    }
  }

  /**
   * Steps of drafts (several tokens per sequence, every row's logits) and scored steps are declared as graph steps
   * at their own size, never padded: a padded step of drafts would change its row count with the real sequences
   * within one graph key (the replay would not match the capture), and the scored path reads only the real rows.
   */
  @Test
  void stepsOfDraftsAndScoredStepsAreNotPadded() {
    HfReference ref = new HfReference("tiny-opt");
    BucketedCpuOps bucketed = new BucketedCpuOps();
    CpuOps plain = new CpuOps();
    try (OptModel a = ref.load(bucketed, null); OptModel b = ref.load(plain, null);
        KvCache ca = HfReference.cache(bucketed, a.config()); KvCache cb = HfReference.cache(plain, b.config())) {
      List<OptModel.SeqStep> prefill = new ArrayList<>();
      for (int s = 0; s < 3; s++) {
        prefill.add(new OptModel.SeqStep(s, ints(ref.json.get("prompts").get(s).get("input_ids")), false));
      }
      a.forward(prefill, ca);
      b.forward(prefill, cb);
      List<OptModel.SeqStep> drafts = new ArrayList<>();
      List<OptModel.SeqStep> scored = new ArrayList<>();
      int[][] scoreTokens = new int[3][];
      for (int s = 0; s < 3; s++) {
        drafts.add(new OptModel.SeqStep(s, new int[] {5 + s, 9}, true));
        scored.add(new OptModel.SeqStep(s, new int[] {7 + s}, true));
        scoreTokens[s] = new int[] {11};
      }
      float[][] x = a.forward(drafts, ca);
      float[][] y = b.forward(drafts, cb);
      for (int s = 0; s < 3; s++) {
        assertArrayEquals(y[s], x[s], "drafts of sequence " + s);
      }
      CausalLm.Scored sx = a.forwardScored(scored, ca, scoreTokens);
      CausalLm.Scored sy = b.forwardScored(scored, cb, scoreTokens);
      for (int s = 0; s < 3; s++) {
        assertArrayEquals(sy.logits()[s], sx.logits()[s], "scored sequence " + s);
        assertArrayEquals(sy.scores()[s], sx.scores()[s], "scores of sequence " + s);
      }
      assertEquals(List.of(3, 3), bucketed.graphBatches, "a step of drafts, a scored step: 3 rows each");
    }
  }

  /**
   * The fast CPU backend (several threads: the padding rows' keys and values land in one slot from several threads)
   * padding decode steps as CudaOps does: the same tokens and log-probs as unpadded, bit for bit (it rounds each row
   * on its own, whatever the batch). FastCpuOps is final: a proxy adds the buckets.
   */
  @Test
  void fastCpuOpsPaddedGiveTheUnpaddedTokens() {
    HfReference ref = new HfReference("tiny-opt");
    io.github.optjava.backend.cpu.FastCpuOps fast = new io.github.optjava.backend.cpu.FastCpuOps(3);
    List<Integer> graphBatches = new ArrayList<>();
    io.github.optjava.backend.Ops bucketed = (io.github.optjava.backend.Ops) java.lang.reflect.Proxy.newProxyInstance(
        io.github.optjava.backend.Ops.class.getClassLoader(), new Class<?>[] {io.github.optjava.backend.Ops.class},
        (proxy, method, args) -> {
          if (method.getName().equals("decodeBatchBucket")) {
            return BatchBuckets.of((Integer) args[0]);
          }
          if (method.getName().equals("graphStep")) {
            graphBatches.add((Integer) args[1]);
          }
          try {
            return method.invoke(fast, args);
          } catch (java.lang.reflect.InvocationTargetException e) {
            throw e.getCause();
          }
        });
    io.github.optjava.backend.cpu.FastCpuOps plain = new io.github.optjava.backend.cpu.FastCpuOps(3);
    try (OptModel a = ref.load(bucketed, null); OptModel b = ref.load(plain, null);
        KvCache ca = HfReference.cache(bucketed, a.config()); KvCache cb = HfReference.cache(plain, b.config())) {
      int vocab = a.config().vocabSize();
      int[] last = prefillThree(ref, a, ca, b, cb);
      List<OptModel.SeqStep> step;
      for (int t = 0; t < 8; t++) { // 3 sequences (padded to 4), then 2 (unpadded) from step 4 on
        int n = t < 4 ? 3 : 2;
        step = new ArrayList<>();
        for (int s = 0; s < n; s++) {
          step.add(new OptModel.SeqStep(s, new int[] {last[s]}, false));
        }
        double[] la = new double[n];
        double[] lb = new double[n];
        int[] x = a.greedyRows(step, ca, la);
        int[] y = b.greedyRows(step, cb, lb);
        assertArrayEquals(y, x, "step " + t + ": greedy tokens");
        assertArrayEquals(lb, la, "step " + t + ": log-probs");
        last = java.util.Arrays.copyOf(y, 3);
      }
      assertEquals(List.of(4, 4, 4, 4, 2, 2, 2, 2), graphBatches);
    } finally {
      fast.close();
      plain.close();
    }
  }

  /** The fixture's first three prompts as one prefill step on both models (equal logits); their greedy next tokens. */
  private static int[] prefillThree(HfReference ref, OptModel a, KvCache ca, OptModel b, KvCache cb) {
    List<OptModel.SeqStep> prefill = new ArrayList<>();
    for (int s = 0; s < 3; s++) {
      prefill.add(new OptModel.SeqStep(s, ints(ref.json.get("prompts").get(s).get("input_ids")), false));
    }
    float[][] pa = a.forward(prefill, ca);
    float[][] pb = b.forward(prefill, cb);
    int[] last = new int[3];
    for (int s = 0; s < 3; s++) {
      assertArrayEquals(pb[s], pa[s], "prefill sequence " + s);
      last[s] = HfReference.argmax(pb[s], 0, a.config().vocabSize());
    }
    return last;
  }
}
