package io.github.optjava.model;

import static io.github.optjava.model.HfReference.ints;
import static io.github.optjava.model.HfReference.maxAbsDiff;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.optjava.backend.Mat;
import io.github.optjava.backend.Ops;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.backend.cpu.FastCpuOps;
import io.github.optjava.checkpoint.Tensor;
import io.github.optjava.engine.KvCache;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The model with int8 Linear weights ({@link io.github.optjava.backend.Int8Rows}): the fast CPU ops against the
 * reference ops over the same integers (float rounding only), and the quantized model against Hugging Face's
 * float32 numbers (the quantization's own error, which must be there and must stay small).
 */
class Int8ModelTest {

  /**
   * Exactly the decoder layers' four Linear weights go through {@link Ops#linearWeight} (q/k/v stacked as one),
   * everything else (embeddings, project_in/out, norms, biases) through {@link Ops#weight}.
   */
  @ParameterizedTest
  @ValueSource(strings = {"tiny-opt", "tiny-opt-postln"})
  void exactlyTheLayersLinearWeightsAreQuantized(String name) {
    List<String> quantized = new ArrayList<>();
    List<String> kept = new ArrayList<>();
    CpuOps recording = new CpuOps(true) {
      @Override
      public Mat linearWeight(Tensor t) {
        quantized.add(t.name());
        return super.linearWeight(t);
      }

      @Override
      public Mat weight(Tensor t) {
        kept.add(t.name());
        return super.weight(t);
      }
    };
    HfReference ref = new HfReference(name);
    try (OptModel model = ref.load(recording, null)) {
      List<String> expected = new ArrayList<>();
      for (int l = 0; l < model.config().numHiddenLayers(); l++) {
        String p = "model.decoder.layers." + l + ".";
        expected.addAll(List.of(p + "self_attn.q_proj.weight+2", p + "self_attn.out_proj.weight", p + "fc1.weight",
            p + "fc2.weight"));
      }
      assertEquals(expected, quantized.stream().map(n -> n.replaceFirst("^decoder\\.", "model.decoder.")).toList());
      assertTrue(kept.stream().noneMatch(n -> n.matches(".*(proj|fc\\d)\\.weight.*") && n.contains("layers.")), kept.toString());
      assertTrue(kept.stream().anyMatch(n -> n.endsWith("embed_tokens.weight")), kept.toString());
    }
  }

  /** As {@code FastCpuOpsModelTest} at opt-125m's widths, both backends quantizing. */
  @Test
  void fastOpsAgreeWithTheReferenceOpsOverTheSameIntegers() {
    OptConfig config = OptShapes.of("125m");
    List<List<OptModel.SeqStep>> steps = FastCpuOpsModelTest.threeSteps();
    try (CpuOps ref = new CpuOps(true); FastCpuOps fast = FastCpuOps.create(3, true)) {
      FastCpuOpsModelTest.assertAgree(FastCpuOpsModelTest.run(ref, config, steps),
          FastCpuOpsModelTest.run(fast, config, steps), 1e-4f);
    }
  }

  /**
   * Each fixture prompt's last logits, quantized, against HF's float32 ones: further off than float rounding (so
   * the weights really are int8) and within {@value #INT8_LOGIT_REL} of the largest logit. (Measured: 0.9–2.0 % on
   * tiny-opt, 2.0–4.5 % on tiny-opt-postln, whose hidden size of 64 gives each sum few terms to average the
   * rounding over.)
   */
  @ParameterizedTest
  @ValueSource(strings = {"tiny-opt", "tiny-opt-postln"})
  void quantizedLogitsStayCloseToHf(String name) {
    HfReference ref = new HfReference(name);
    try (Ops ops = FastCpuOps.create(2, true); OptModel model = ref.load(ops, null);
        KvCache cache = HfReference.cache(ops, model.config())) {
      int vocab = model.config().vocabSize();
      float[][] expected = ref.rows("last_logits.bin", vocab);
      long seq = 0;
      float worst = 0f;
      for (JsonNode p : ref.json.get("prompts")) {
        int[] ids = ints(p.get("input_ids"));
        float[] last = model.forward(List.of(new OptModel.SeqStep(seq, ids, false)), cache)[0];
        cache.release(seq++);
        float[] hf = expected[p.get("last_logits_row").asInt()];
        float rel = maxAbsDiff(last, hf) / maxAbs(hf);
        worst = Math.max(worst, rel);
        assertTrue(rel <= INT8_LOGIT_REL, name + " " + p.get("name") + ": " + rel);
      }
      assertTrue(worst > 1e-5f, name + ": the logits equal float32's (" + worst + "): were the weights quantized?");
    }
  }

  /** The quantized model's largest logit error allowed, relative to the largest logit. */
  static final float INT8_LOGIT_REL = 0.08f;

  private static float maxAbs(float[] v) {
    float m = 0f;
    for (float x : v) {
      m = Math.max(m, Math.abs(x));
    }
    return m;
  }
}
