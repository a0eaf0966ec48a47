package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Choice;
import io.github.optjava.api.FinishReason;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * A beam-search choice cut by a stop string: its token ids and log-probs end with the token that completed the stop,
 * as a sampled or greedy choice's do. (Found by session 26's new-user review: the text was cut, but the ids and the
 * log-probs ran on to the end of the hypothesis.)
 */
class BeamStopTokensTest {
  private static final OptTokenizer TOKENIZER = TinyOpt.tokenizer();

  @Test
  void tokenIdsAndLogprobsEndWithTheTokenThatCompletedTheStop() throws Exception {
    try (Engine engine = TinyOpt.engine(64)) {
      int[] prompt = TOKENIZER.encode("Hello world");
      SamplingParams.Builder beams = SamplingParams.builder().numBeams(2).maxTokens(8).logprobs(0);
      Choice whole = engine.submit(prompt, beams.build(), null).get(60, TimeUnit.SECONDS).choices().get(0);
      List<Integer> ids = whole.tokenIds();
      assertEquals(8, ids.size(), "the test needs a hypothesis that ran to max_tokens");
      // A stop string that the text of the first 3 tokens completes, not the first 2.
      String two = decode(ids.subList(0, 2));
      String three = decode(ids.subList(0, 3));
      assertTrue(three.length() > two.length(), "the third token adds text");
      String stop = three.substring(Math.max(0, two.length() - 1));
      assertFalse(two.contains(stop));
      assertTrue(whole.text().indexOf(stop) == three.length() - stop.length(), "no earlier match in " + whole.text());

      Choice cut = engine.submit(prompt, beams.stop(List.of(stop)).build(), null).get(60, TimeUnit.SECONDS)
          .choices().get(0);
      assertEquals(FinishReason.STOP, cut.finishReason());
      assertEquals(three.substring(0, three.length() - stop.length()), cut.text());
      assertEquals(ids.subList(0, 3), cut.tokenIds(), "the ids end with the token that completed the stop");
      assertEquals(3, cut.logprobs().size());
      assertEquals(whole.logprobs().subList(0, 3), cut.logprobs());
      assertEquals(whole.score(), cut.score(), "the hypothesis as searched: the search does not see stop strings");
    }
  }

  private static String decode(List<Integer> ids) {
    return TOKENIZER.decode(ids.stream().mapToInt(Integer::intValue).toArray(), true, false);
  }
}
