package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.Collections;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Hugging Face's bad_words_ids: token sequences never generated. */
class BadWordsTest {
  private static final float NEG = Float.NEGATIVE_INFINITY;

  @Test
  void bansSingleTokensAlwaysAndLongerOnesAfterTheirPrefix() {
    BadWordsProcessor p = new BadWordsProcessor(List.of(List.of(1), List.of(7, 8, 3), List.of(9, 4),
        List.of(2), List.of(5, 6, 7, 8, 0)), 2);
    int[] ids = {2, 5, 7, 8, 0, 0}; // BOS, then 5 7 8 (two unused slots after the length)
    float[] row = {0, 1, 2, 3, 4, 5};
    p.process(ids, 4, 2, row);
    // 1: banned outright; 3: "7 8" just came; 4: "9" did not; 2 = EOS alone: kept; 5 6 7 8 0: longer than the input
    assertArrayEquals(new float[] {0, NEG, 2, NEG, 4, 5}, row);
  }

  @Test
  void theModelNeverProducesABadWord() {
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    OptTokenizer tokenizer = TinyOpt.tokenizer();
    int[] prompt = tokenizer.encode("The capital of France is");
    SamplingParams greedy = SamplingParams.greedy().toBuilder().maxTokens(16).build();
    try (Engine engine = new Engine(model, tokenizer, model.newCache(32, 16), 4, 128)) {
      List<Integer> plain = engine.submit(prompt, greedy, null).join().choices().get(0).tokenIds();
      int a = plain.get(0);
      int b = plain.get(1);
      List<Integer> noFirst = engine.submit(prompt, greedy.toBuilder().badWordsIds(List.of(List.of(a))).build(), null)
          .join().choices().get(0).tokenIds();
      assertTrue(!noFirst.contains(a), noFirst.toString());
      List<Integer> noPair = engine.submit(prompt, greedy.toBuilder().badWordsIds(List.of(List.of(a, b))).build(),
          null).join().choices().get(0).tokenIds();
      assertEquals(a, noPair.get(0), "the first token alone is allowed");
      for (int i = 0; i + 1 < noPair.size(); i++) {
        assertTrue(noPair.get(i) != a || noPair.get(i + 1) != b, "the pair never follows: " + noPair);
      }
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> engine.submit(prompt,
          greedy.toBuilder().badWordsIds(List.of(List.of(3, model.config().vocabSize()))).build(), null));
      assertTrue(e.getMessage().contains("outside the vocabulary"), e.getMessage());
    }
  }

  @Test
  void parametersAreChecked() {
    assertThrows(IllegalArgumentException.class,
        () -> SamplingParams.builder().badWordsIds(List.of(Collections.emptyList())).build());
    assertThrows(IllegalArgumentException.class, () -> SamplingParams.builder().badWordsIds(List.of(List.of(-3)))
        .build());
  }
}
