package io.github.optjava.model;

import static io.github.optjava.model.HfReference.argmax;
import static io.github.optjava.model.HfReference.ints;
import static io.github.optjava.model.HfReference.maxAbsDiff;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.optjava.backend.Ops;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.backend.cpu.FastCpuOps;
import io.github.optjava.checkpoint.DType;
import io.github.optjava.engine.KvCache;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The whole model on {@link FastCpuOps}: Hugging Face's numbers for both fixture models (max abs diff
 * ≤ 1e-3 for logits and log-probs, greedy tokens exact, as docs/fixtures.md sets for float32 on CPU), and
 * a random model of opt-125m's real shape against the reference ops.
 */
class FastCpuOpsModelTest {
  private static final float TOL = 1e-3f;
  private static FastCpuOps ops;

  @BeforeAll
  static void start() {
    ops = new FastCpuOps(3); // more threads than cores: uneven chunks
  }

  @AfterAll
  static void stop() {
    ops.close();
  }

  @ParameterizedTest
  @ValueSource(strings = {"tiny-opt", "tiny-opt-postln"})
  void lastLogitsAndPromptLogProbsMatchHf(String name) {
    HfReference ref = new HfReference(name);
    try (OptModel model = ref.load(ops, null); KvCache cache = HfReference.cache(ops, model.config())) {
      int vocab = model.config().vocabSize();
      float[][] expected = ref.rows("last_logits.bin", vocab);
      long seq = 0;
      for (JsonNode p : ref.json.get("prompts")) {
        int[] ids = ints(p.get("input_ids"));
        float[] all = model.forward(List.of(new OptModel.SeqStep(seq, ids, true)), cache)[0];
        cache.release(seq++);
        float[] last = Arrays.copyOfRange(all, (ids.length - 1) * vocab, ids.length * vocab);
        float diff = maxAbsDiff(last, expected[p.get("last_logits_row").asInt()]);
        assertTrue(diff <= TOL, name + " " + p.get("name") + ": max |logit diff| " + diff);
        JsonNode lps = p.get("prompt_token_logprobs");
        for (int i = 1; i < ids.length; i++) {
          double lp = HfReference.logProb(all, (i - 1) * vocab, vocab, ids[i]);
          assertEquals(lps.get(i).asDouble(), lp, TOL, name + " " + p.get("name") + " token " + i);
        }
      }
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"tiny-opt", "tiny-opt-postln"})
  void greedyDecodeMatchesHf(String name) {
    HfReference ref = new HfReference(name);
    try (OptModel model = ref.load(ops, null); KvCache cache = HfReference.cache(ops, model.config())) {
      long seq = 100;
      for (JsonNode p : ref.json.get("prompts")) {
        int[] expected = ints(p.get("greedy").get("new_tokens"));
        int[] got = OptModelHfTest.greedy(model, cache, seq, ints(p.get("input_ids")), expected.length);
        cache.release(seq++);
        assertArrayEquals(expected, got, name + " " + p.get("name"));
      }
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"tiny-opt", "tiny-opt-postln"})
  void raggedBatchMatchesHfLeftPaddedBatch(String name) {
    HfReference ref = new HfReference(name);
    try (OptModel model = ref.load(ops, null); KvCache cache = HfReference.cache(ops, model.config())) {
      int vocab = model.config().vocabSize();
      JsonNode rows = ref.json.get("batch").get("rows");
      float[][] expectedLogits = ref.rows("batch_last_logits.bin", vocab);
      List<OptModel.SeqStep> step = new ArrayList<>();
      int[][] generated = new int[rows.size()][ref.json.get("batch").get("max_new_tokens").asInt()];
      for (int r = 0; r < rows.size(); r++) {
        int[] ids = ints(rows.get(r).get("input_ids"));
        int[] mask = ints(rows.get(r).get("attention_mask"));
        int pad = 0;
        while (mask[pad] == 0) {
          pad++;
        }
        step.add(new OptModel.SeqStep(r, Arrays.copyOfRange(ids, pad, ids.length), false));
      }
      for (int t = 0; t < generated[0].length; t++) {
        float[][] logits = model.forward(step, cache);
        step = new ArrayList<>();
        for (int r = 0; r < rows.size(); r++) {
          if (t == 0) {
            float diff = maxAbsDiff(logits[r], expectedLogits[r]);
            assertTrue(diff <= TOL, name + " batch row " + r + ": max |logit diff| " + diff);
          }
          generated[r][t] = argmax(logits[r], 0, vocab);
          step.add(new OptModel.SeqStep(r, new int[] {generated[r][t]}, false));
        }
      }
      for (int r = 0; r < rows.size(); r++) {
        assertArrayEquals(ints(rows.get(r).get("new_tokens")), generated[r], name + " batch row " + r);
      }
    }
  }

  /**
   * Real widths (768, 3072, 12 heads of 64, 50272-row lm_head) through all three linear kernels: a ragged
   * prefill of 17 + 5 tokens (transposed kernel), a decode step of two sequences (4-token blocks do not
   * apply: per-token dots) and one of a single sequence. Logits must agree with the reference ops to
   * 1e-4 of their largest magnitude (twelve layers of float32 summation-order differences), and the
   * greedy choices exactly.
   */
  @Test
  void randomOpt125mAgreesWithTheReferenceOps() {
    OptConfig config = OptShapes.of("125m");
    List<List<OptModel.SeqStep>> steps = List.of(
        List.of(new OptModel.SeqStep(0, tokens(17, 5), false), new OptModel.SeqStep(1, tokens(5, 900), false)),
        List.of(new OptModel.SeqStep(0, new int[] {42}, false), new OptModel.SeqStep(1, new int[] {7}, false)),
        List.of(new OptModel.SeqStep(0, new int[] {1234}, false)));
    List<float[][]> expected = run(new CpuOps(), config, steps);
    List<float[][]> actual = run(ops, config, steps);
    for (int s = 0; s < steps.size(); s++) {
      for (int q = 0; q < expected.get(s).length; q++) {
        float[] e = expected.get(s)[q];
        float[] a = actual.get(s)[q];
        float scale = 0;
        for (float v : e) {
          scale = Math.max(scale, Math.abs(v));
        }
        float diff = maxAbsDiff(e, a);
        assertTrue(diff <= 1e-4f * scale, "step " + s + " sequence " + q + ": max |logit diff| " + diff
            + " for logits up to " + scale);
        assertEquals(argmax(e, 0, e.length), argmax(a, 0, a.length), "step " + s + " sequence " + q);
      }
    }
  }

  private static List<float[][]> run(Ops backend, OptConfig config, List<List<OptModel.SeqStep>> steps) {
    List<float[][]> out = new ArrayList<>();
    try (RandomCheckpoint ck = new RandomCheckpoint(config, DType.F16, 3);
        OptModel model = new OptModel(config, new OptWeights(config, ck), backend);
        KvCache cache = new KvCache(backend.kvStore(config.numHiddenLayers(), 4, 16, config.hiddenSize()))) {
      for (List<OptModel.SeqStep> step : steps) {
        out.add(model.forward(step, cache));
      }
    }
    return out;
  }

  private static int[] tokens(int n, int first) {
    int[] ids = new int[n];
    for (int i = 0; i < n; i++) {
      ids[i] = first + 97 * i;
    }
    return ids;
  }
}
