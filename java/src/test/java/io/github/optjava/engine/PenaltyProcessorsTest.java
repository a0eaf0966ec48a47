package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

/** Hand-computed cases for the processors that look at the history: penalties, bans, minimum lengths. */
class PenaltyProcessorsTest {

  private static final float NEG_INF = Float.NEGATIVE_INFINITY;

  @Test
  void presenceAndFrequencyCountGeneratedTokensOnly() {
    // prompt = [2, 4, 4]; generated = [3, 0, 3, 3]: token 3 three times, token 0 once; 4 is prompt only.
    int[] ids = {2, 4, 4, 3, 0, 3, 3};
    float[] logits = {1.0f, 2.0f, -1.0f, 1.0f, 0.5f};
    new PresenceFrequencyPenaltyProcessor(0.25, 0.5).process(ids, ids.length, 3, logits);
    // token 0: 1 - 0.5*1 - 0.25 = 0.25; token 3: 1 - 0.5*3 - 0.25 = -0.75; others untouched.
    assertArrayEquals(new float[] {0.25f, 2.0f, -1.0f, -0.75f, 0.5f}, logits);
  }

  @Test
  void negativePenaltiesEncourageRepetition() {
    int[] ids = {2, 1, 1};
    float[] logits = {0f, 0f};
    new PresenceFrequencyPenaltyProcessor(-1.0, -0.5).process(ids, 3, 1, logits);
    assertArrayEquals(new float[] {0f, 2.0f}, logits); // 0 + 0.5*2 + 1
  }

  @Test
  void presenceFrequencyIgnoresTrailingBufferAndEmptyGeneration() {
    int[] ids = {2, 1, 1, 0, 0, 0}; // entries past inputLength are stale buffer contents
    float[] logits = {3f, 3f};
    PresenceFrequencyPenaltyProcessor p = new PresenceFrequencyPenaltyProcessor(1.0, 1.0);
    p.process(ids, 2, 2, logits);
    assertArrayEquals(new float[] {3f, 3f}, logits);
    p.process(ids, 3, 1, logits);
    assertArrayEquals(new float[] {3f, 0f}, logits); // token 1 generated twice: 3 - 2 - 1
  }

  @Test
  void repetitionPenaltyDividesPositiveMultipliesNegativeOncePerToken() {
    int[] ids = {0, 1, 0, 0, 2};
    float[] logits = {2.6f, -2.0f, 0f, 5f};
    new RepetitionPenaltyProcessor(1.3).process(ids, ids.length, 1, logits);
    // token 0 occurs three times and is still divided once; token 3 is not in the input.
    assertArrayEquals(new float[] {2.6f / 1.3f, -2.0f * 1.3f, 0f, 5f}, logits);
  }

  @Test
  void repetitionPenaltyBelowOneRewardsRepetition() {
    float[] logits = {1f, -1f};
    new RepetitionPenaltyProcessor(0.5).process(new int[] {0, 1}, 2, 2, logits);
    assertArrayEquals(new float[] {2f, -0.5f}, logits);
  }

  @Test
  void repetitionPenaltyGrowsItsScratchForLongerInputs() {
    RepetitionPenaltyProcessor p = new RepetitionPenaltyProcessor(2.0);
    float[] logits = {4f, 4f, 4f};
    p.process(new int[] {0}, 1, 1, logits);
    p.process(new int[] {1, 2, 1, 2, 1}, 5, 5, logits);
    assertArrayEquals(new float[] {2f, 2f, 2f}, logits);
  }

  @Test
  void noRepeatNgramBansCompletionsOfEarlierNgrams() {
    // Last two tokens (5, 6) occurred before followed by 7 and by 8: both banned for n = 3.
    int[] ids = {5, 6, 7, 1, 5, 6, 8, 5, 6};
    float[] logits = new float[10];
    new NoRepeatNgramProcessor(3).process(ids, ids.length, 1, logits);
    for (int t = 0; t < logits.length; t++) {
      assertEquals(t == 7 || t == 8 ? NEG_INF : 0f, logits[t], "token " + t);
    }
  }

  @Test
  void noRepeatNgramOfOneBansEveryTokenSeenAndShortInputsBanNothing() {
    float[] logits = new float[5];
    new NoRepeatNgramProcessor(1).process(new int[] {1, 3, 1}, 3, 3, logits);
    assertArrayEquals(new float[] {0, NEG_INF, 0, NEG_INF, 0}, logits);

    float[] untouched = new float[5];
    new NoRepeatNgramProcessor(4).process(new int[] {1, 1, 1}, 3, 3, untouched);
    assertArrayEquals(new float[5], untouched); // no 4-gram exists yet
    new NoRepeatNgramProcessor(2).process(new int[] {1, 2, 3}, 3, 3, untouched);
    assertArrayEquals(new float[5], untouched); // 3 was never followed by anything
  }

  @Test
  void minNewTokensCountsOnlyTokensAfterThePrompt() {
    MinNewTokensProcessor p = new MinNewTokensProcessor(2, 2);
    int[] ids = {2, 7, 7, 9, 9};
    float[] logits = {1f, 1f, 1f};
    p.process(ids, 4, 3, logits); // one new token
    assertEquals(NEG_INF, logits[2]);
    float[] enough = {1f, 1f, 1f};
    p.process(ids, 5, 3, enough); // two new tokens: EOS allowed
    assertArrayEquals(new float[] {1f, 1f, 1f}, enough);
  }

  @Test
  void minLengthCountsTheWholeInput() {
    MinLengthProcessor p = new MinLengthProcessor(3, 0);
    float[] logits = {1f, 1f};
    p.process(new int[] {2, 5}, 2, 2, logits);
    assertArrayEquals(new float[] {NEG_INF, 1f}, logits);
    float[] longEnough = {1f, 1f};
    p.process(new int[] {2, 5, 6}, 3, 3, longEnough);
    assertArrayEquals(new float[] {1f, 1f}, longEnough);
  }

  @Test
  void constructorsRejectInvalidValues() {
    assertThrows(IllegalArgumentException.class, () -> new RepetitionPenaltyProcessor(0));
    assertThrows(IllegalArgumentException.class, () -> new RepetitionPenaltyProcessor(Double.NaN));
    assertThrows(IllegalArgumentException.class, () -> new NoRepeatNgramProcessor(0));
    assertThrows(IllegalArgumentException.class, () -> new MinNewTokensProcessor(-1, 2));
    assertThrows(IllegalArgumentException.class, () -> new MinLengthProcessor(1, -2));
    assertThrows(IllegalArgumentException.class,
        () -> new PresenceFrequencyPenaltyProcessor(Double.POSITIVE_INFINITY, 0));
  }
}
