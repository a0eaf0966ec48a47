package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import io.github.optjava.api.TokenLogprob;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Echoed prompts are scored row by row on several threads when long: every entry must equal the one-row
 * computation (log-softmax of row i-1 at token i, and the top alternatives), whatever the threads did.
 */
class TokenLogprobsTest {

  @Test
  void aLongPromptScoresEveryRowAsAloneWithAndWithoutAlternatives() {
    int vocab = 700;
    int[] prompt = new SplittableRandom(3).ints(200, 0, vocab).toArray();
    float[] logits = new float[prompt.length * vocab];
    SplittableRandom r = new SplittableRandom(4);
    for (int i = 0; i < logits.length; i++) {
      logits[i] = (float) (r.nextGaussian() * 3);
    }
    logits[5 * vocab + 7] = Float.NEGATIVE_INFINITY; // a banned token somewhere
    for (int top : new int[] {0, 3}) {
      TokenLogprobs scorer = new TokenLogprobs(TinyOpt.tokenizer(), top);
      List<TokenLogprob> got = scorer.prompt(prompt, logits, vocab);
      assertEquals(prompt.length, got.size());
      assertNull(got.get(0).logprob());
      for (int i = 1; i < prompt.length; i++) {
        float[] row = Arrays.copyOfRange(logits, (i - 1) * vocab, i * vocab);
        TokenLogprob want = scorer.of(prompt[i], row, LogProbs.logSumExp(row));
        assertEquals(want, got.get(i), "row " + i + ", top " + top);
        assertEquals(top == 0 ? 0 : Math.min(top, vocab), got.get(i).top().size(), "alternatives of row " + i);
      }
    }
  }
}
