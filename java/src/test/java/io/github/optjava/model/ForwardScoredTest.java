package io.github.optjava.model;

import static io.github.optjava.model.HfReference.ints;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.optjava.backend.Ops;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.backend.cpu.FastCpuOps;
import io.github.optjava.engine.KvCache;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/**
 * {@link OptModel#forwardScored} gives exactly what {@link CausalLm}'s default does from {@link OptModel#forward}'s
 * rows, on both of its paths: the host one (ops that do not score on the device: one read of every row) and the
 * device one ({@link Ops#tokenLogprobs}, then only the needed rows gathered and read; here CpuOps claiming to score
 * on the device, its host default doing the work). Batches put scored prompts first, in the middle and last, two at
 * once, a one-token prompt (nothing to score), fewer score tokens than rows, a row scoring no token (-1), and unscored
 * sequences with all rows or only the last; without and with 3 log-prob alternatives per scored row.
 */
class ForwardScoredTest {

  /** CpuOps whose scores take OptModel's device path (tokenLogprobs + gather), computed by the host default. */
  private static final class ScoringCpuOps extends CpuOps {
    @Override
    public boolean scoresOnDevice() {
      return true;
    }
  }

  @Test
  void bothPathsEqualTheDefaultOnEveryLayout() {
    HfReference ref = new HfReference("tiny-opt");
    List<int[]> prompts = new ArrayList<>();
    for (JsonNode p : ref.json.get("prompts")) {
      prompts.add(ints(p.get("input_ids")));
    }
    int[] a = prompts.get(0);
    int[] b = prompts.get(1);
    int[] c = prompts.get(2);
    int[] one = {a[0]};
    // Each layout: prompts, which get all rows, which are scored (null: not), how many score tokens (-1: all).
    Object[][] layouts = {
        {new int[][] {a, b, c}, new boolean[] {true, true, false}, new boolean[] {true, false, false}},
        {new int[][] {b, a, c}, new boolean[] {true, true, false}, new boolean[] {false, true, false}},
        {new int[][] {c, b, a}, new boolean[] {false, true, true}, new boolean[] {false, false, true}},
        {new int[][] {a, c, b}, new boolean[] {true, false, true}, new boolean[] {true, false, true}},
        {new int[][] {one, a}, new boolean[] {true, true}, new boolean[] {true, true}},
    };
    List<Supplier<Ops>> backends = List.of(CpuOps::new, () -> new FastCpuOps(2), ScoringCpuOps::new);
    for (Supplier<Ops> backend : backends) {
      for (int l = 0; l < layouts.length; l++) {
        int[][] ps = (int[][]) layouts[l][0];
        boolean[] all = (boolean[]) layouts[l][1];
        boolean[] scored = (boolean[]) layouts[l][2];
        List<OptModel.SeqStep> steps = new ArrayList<>();
        int[][] scoreTokens = new int[ps.length][];
        for (int s = 0; s < ps.length; s++) {
          steps.add(new OptModel.SeqStep(s, ps[s], all[s]));
          if (scored[s]) { // the last layout's second prompt scores fewer tokens than it has rows
            int end = l == 4 && s == 1 ? Math.max(1, ps[s].length - 3) : ps[s].length;
            scoreTokens[s] = Arrays.copyOfRange(ps[s], 1, end);
            if (l == 3 && s == 0) {
              scoreTokens[s][0] = -1; // a row nobody scores: its alternatives are listed all the same
            }
          }
        }
        check(ref, backend, steps, scoreTokens, "backend " + backends.indexOf(backend) + " layout " + l);
      }
    }
  }

  private static void check(HfReference ref, Supplier<Ops> backend, List<OptModel.SeqStep> steps, int[][] scoreTokens,
      String what) {
    try (Ops ops = backend.get(); OptModel model = ref.load(ops, null)) {
      int layers = model.config().numHiddenLayers();
      int width = model.config().hiddenSize();
      CausalLm plain = new CausalLm() { // forward only: CausalLm's own forwardScored
        @Override
        public OptConfig config() {
          return model.config();
        }

        @Override
        public float[][] forward(List<OptModel.SeqStep> seqs, KvCache cache) {
          return model.forward(seqs, cache);
        }

        @Override
        public void copyBlocks(KvCache cache, int[] src, int[] dst) {}

        @Override
        public KvCache newCache(int blocks, int blockSize) {
          return model.newCache(blocks, blockSize);
        }

        @Override
        public void close() {}
      };
      for (int top : new int[] {0, 3}) { // 3: each scored row's alternatives too (session 24)
        try (KvCache x = new KvCache(ops.kvStore(layers, 64, 4, width));
            KvCache y = new KvCache(ops.kvStore(layers, 64, 4, width))) {
          CausalLm.Scored got = model.forwardScored(steps, x, scoreTokens, top);
          CausalLm.Scored want = plain.forwardScored(steps, y, scoreTokens, top);
          String w = what + ", top " + top;
          for (int s = 0; s < steps.size(); s++) {
            assertArrayEquals(want.logits()[s], got.logits()[s], 0f, w + ": rows of sequence " + s);
            if (scoreTokens[s] == null) {
              assertNull(got.scores()[s], w + ": sequence " + s + " is not scored");
              assertTrue(top == 0 || got.topIds()[s] == null, w + ": sequence " + s + " lists nothing");
            } else {
              assertArrayEquals(want.scores()[s], got.scores()[s], 0.0, w + ": scores of sequence " + s);
              if (top > 0) {
                assertEquals(scoreTokens[s].length * top, got.topIds()[s].length, w);
                assertArrayEquals(want.topIds()[s], got.topIds()[s], w + ": alternatives of sequence " + s);
                assertArrayEquals(want.topLogprobs()[s], got.topLogprobs()[s], 0.0, w + ": their log-probs");
              }
            }
          }
          assertTrue(top > 0 || got.topIds() == null, w + ": no alternatives asked, none listed");
        }
      }
    }
  }
}
