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
import io.github.optjava.engine.KvCache;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import java.util.stream.Stream;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The OPT forward pass on the reference CPU ops against Hugging Face transformers' own numbers for
 * both fixture models (pre-LN; post-LN with project_in/out). Tolerance from docs/fixtures.md: fp32 on
 * CPU, max abs diff ≤ 1e-3 for logits and log-probs; greedy tokens exact.
 */
class OptModelHfTest {
  private static final float TOL = 1e-3f;

  /** Every CPU backend × both fixture models. */
  static Stream<Arguments> backendsAndModels() {
    return Stream.of("reference", "fast")
        .flatMap(b -> Stream.of(Arguments.of(b, "tiny-opt"), Arguments.of(b, "tiny-opt-postln")));
  }

  /** The reference ops, or the fast ones with more threads than cores (uneven chunks). */
  static Ops backend(String name) {
    return name.equals("fast") ? new FastCpuOps(3) : new CpuOps();
  }

  @ParameterizedTest(name = "{0} {1}")
  @MethodSource("backendsAndModels")
  void lastLogitsAndPromptLogProbsMatchHf(String backend, String name) {
    HfReference ref = new HfReference(name);
    try (Ops ops = backend(backend); OptModel model = ref.load(ops, null)) {
      int vocab = model.config().vocabSize();
      float[][] expected = ref.rows("last_logits.bin", vocab);
      long seq = 0;
      try (KvCache cache = HfReference.cache(ops, model.config())) {
        for (JsonNode p : ref.json.get("prompts")) {
          int[] ids = ints(p.get("input_ids"));
          float[] all = model.forward(List.of(new OptModel.SeqStep(seq, ids, true)), cache)[0];
          cache.release(seq++);
          float[] last = java.util.Arrays.copyOfRange(all, (ids.length - 1) * vocab, ids.length * vocab);
          float diff = maxAbsDiff(last, expected[p.get("last_logits_row").asInt()]);
          assertTrue(diff <= TOL, name + " " + p.get("name") + ": max |logit diff| " + diff);
          JsonNode lps = p.get("prompt_token_logprobs");
          assertTrue(lps.get(0).isNull());
          for (int i = 1; i < ids.length; i++) {
            double lp = HfReference.logProb(all, (i - 1) * vocab, vocab, ids[i]);
            assertEquals(lps.get(i).asDouble(), lp, TOL, name + " " + p.get("name") + " token " + i);
          }
        }
      }
    }
  }

  @ParameterizedTest(name = "{0} {1}")
  @MethodSource("backendsAndModels")
  void greedyDecodeWithKvCacheMatchesHf(String backend, String name) {
    HfReference ref = new HfReference(name);
    try (Ops ops = backend(backend); OptModel model = ref.load(ops, null); KvCache cache = HfReference.cache(ops, model.config())) {
      long seq = 100;
      for (JsonNode p : ref.json.get("prompts")) {
        int[] expected = ints(p.get("greedy").get("new_tokens"));
        int[] got = greedy(model, cache, seq, ints(p.get("input_ids")), expected.length);
        cache.release(seq++);
        assertArrayEquals(expected, got, name + " " + p.get("name"));
      }
    }
  }

  @ParameterizedTest(name = "{0} {1}")
  @MethodSource("backendsAndModels")
  void raggedBatchEqualsHfLeftPaddedBatch(String backend, String name) {
    HfReference ref = new HfReference(name);
    try (Ops ops = backend(backend); OptModel model = ref.load(ops, null); KvCache cache = HfReference.cache(ops, model.config())) {
      int vocab = model.config().vocabSize();
      JsonNode rows = ref.json.get("batch").get("rows");
      float[][] expectedLogits = ref.rows("batch_last_logits.bin", vocab);
      List<OptModel.SeqStep> step = new ArrayList<>();
      List<int[]> generated = new ArrayList<>();
      for (int r = 0; r < rows.size(); r++) {
        int[] ids = ints(rows.get(r).get("input_ids"));
        int[] mask = ints(rows.get(r).get("attention_mask"));
        int pad = 0;
        while (mask[pad] == 0) {
          pad++;
        }
        step.add(new OptModel.SeqStep(r, java.util.Arrays.copyOfRange(ids, pad, ids.length), false));
        generated.add(new int[0]);
      }
      int steps = ref.json.get("batch").get("max_new_tokens").asInt();
      for (int t = 0; t < steps; t++) {
        float[][] logits = model.forward(step, cache);
        List<OptModel.SeqStep> next = new ArrayList<>();
        for (int r = 0; r < rows.size(); r++) {
          if (t == 0) {
            float diff = maxAbsDiff(logits[r], expectedLogits[r]);
            assertTrue(diff <= TOL, name + " batch row " + r + ": max |logit diff| " + diff);
          }
          int tok = argmax(logits[r], 0, vocab);
          int[] g = java.util.Arrays.copyOf(generated.get(r), t + 1);
          g[t] = tok;
          generated.set(r, g);
          next.add(new OptModel.SeqStep(r, new int[] {tok}, false));
        }
        step = next;
      }
      for (int r = 0; r < rows.size(); r++) {
        assertArrayEquals(ints(rows.get(r).get("new_tokens")), generated.get(r), name + " batch row " + r);
      }
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"tiny-opt-postln"}) // the fixture with a .bin (tiny-opt's left in session 21: size)
  void pytorchBinGivesBitIdenticalLogits(String name, @TempDir Path tmp) throws IOException {
    Ops ops = new CpuOps();
    HfReference ref = new HfReference(name);
    for (String f : List.of("config.json", "pytorch_model.bin")) {
      Files.copy(ref.modelDir.resolve(f), tmp.resolve(f));
    }
    int[] ids = ints(ref.json.get("prompts").get(0).get("input_ids"));
    float[] a;
    float[] b;
    try (OptModel st = ref.load(ops, null); KvCache c = HfReference.cache(ops, st.config())) {
      a = st.forward(List.of(new OptModel.SeqStep(1, ids, false)), c)[0];
    }
    try (OptModel bin = ref.load(ops, tmp); KvCache c = HfReference.cache(ops, bin.config())) {
      b = bin.forward(List.of(new OptModel.SeqStep(1, ids, false)), c)[0];
    }
    assertArrayEquals(a, b, 0f);
  }

  /** Greedy decoding through the KV cache: prefill, then one token per step. */
  static int[] greedy(OptModel model, KvCache cache, long seq, int[] prompt, int newTokens) {
    int vocab = model.config().vocabSize();
    int[] out = new int[newTokens];
    int[] next = prompt;
    for (int t = 0; t < newTokens; t++) {
      float[] logits = model.forward(List.of(new OptModel.SeqStep(seq, next, false)), cache)[0];
      out[t] = argmax(logits, 0, vocab);
      next = new int[] {out[t]};
    }
    return out;
  }
}
