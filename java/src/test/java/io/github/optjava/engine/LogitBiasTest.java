package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** OpenAI's logit_bias: added to the listed logits before the pick; checked against the range and the vocabulary. */
class LogitBiasTest {
  private static final OptTokenizer TOKENIZER = TinyOpt.tokenizer();

  @Test
  void addsTheBiasInFloat32() {
    float[] row = {1f, 2f, 3f, 0.1f};
    new LogitBiasProcessor(Map.of(0, 2.5, 3, -0.3)).process(new int[0], 0, 0, row);
    assertArrayEquals(new float[] {3.5f, 2f, 3f, 0.1f + (float) -0.3}, row);
  }

  /** First in the pipeline, as vLLM applies it and HF places sequence_bias: the repetition penalty sees the bias. */
  @Test
  void comesBeforeTheRepetitionPenalty() {
    SamplingParams p = SamplingParams.greedy().toBuilder().repetitionPenalty(2.0).logitBias(Map.of(5, -5.0)).build();
    float[] row = {0, 0, 0, 0, 0, 2f};
    LogitsPipeline.forParams(p, 2).process(new int[] {2, 5}, 2, 2, row); // token 5 is in the input
    assertEquals(-6f, row[5], "(2 - 5) * 2; penalty first would give 2 / 2 - 5 = -4");
  }

  @Test
  void aForcedTokenIsPickedAndABannedOneNever() {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    int[] prompt = TOKENIZER.encode("The capital of France is");
    SamplingParams greedy = SamplingParams.greedy().toBuilder().maxTokens(8).build();
    try (Engine engine = new Engine(model, TOKENIZER, model.newCache(32, 16), 4, 128)) {
      List<Integer> plain = engine.submit(prompt, greedy, null).join().choices().get(0).tokenIds();
      List<Integer> forced = engine.submit(prompt, greedy.toBuilder().logitBias(Map.of(1000, 100.0)).build(), null)
          .join().choices().get(0).tokenIds();
      assertEquals(Collections.nCopies(8, 1000), forced);
      int first = plain.get(0);
      List<Integer> banned = engine.submit(prompt, greedy.toBuilder().logitBias(Map.of(first, -100.0)).build(), null)
          .join().choices().get(0).tokenIds();
      assertTrue(!banned.contains(first), banned.toString());
      assertNotEquals(plain, banned);
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> engine.submit(prompt,
          greedy.toBuilder().logitBias(Map.of(model.config().vocabSize(), 1.0)).build(), null));
      assertTrue(e.getMessage().contains("outside the vocabulary of " + model.config().vocabSize()), e.getMessage());
    }
  }

  @Test
  void parametersAreChecked() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> SamplingParams.builder().logitBias(Map.of(5, 101.0)).build());
    assertTrue(e.getMessage().contains("[-100.0, 100.0]"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> SamplingParams.builder().logitBias(Map.of(-1, 1.0)).build());
    assertEquals("LogitsPipeline[LogitBias(2 tokens)]",
        LogitsPipeline.forParams(SamplingParams.greedy().toBuilder().logitBias(Map.of(4, 1.0, 7, -1.0)).build(), 2)
            .toString());
  }
}
