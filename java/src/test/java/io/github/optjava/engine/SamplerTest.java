package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.SamplingParams;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class SamplerTest {

  private static final float NEG_INF = Float.NEGATIVE_INFINITY;
  private static final float[] FLAT = new float[64]; // uniform over 64 tokens: streams are easy to tell apart

  private static int[] draws(Sampler s, float[] logits, int count) {
    int[] out = new int[count];
    for (int i = 0; i < count; i++) {
      out[i] = s.next(logits);
    }
    return out;
  }

  @Test
  void sameSeedAndIndexGiveTheSameTokens() {
    assertArrayEquals(draws(Sampler.seeded(42, 0), FLAT, 200), draws(Sampler.seeded(42, 0), FLAT, 200));
  }

  @Test
  void completionIndexAndSeedSelectDifferentStreams() {
    int[] base = draws(Sampler.seeded(42, 0), FLAT, 200);
    assertFalse(java.util.Arrays.equals(base, draws(Sampler.seeded(42, 1), FLAT, 200)));
    assertFalse(java.util.Arrays.equals(base, draws(Sampler.seeded(43, 0), FLAT, 200)));
    assertNotEquals(Sampler.streamSeed(42, 0), Sampler.streamSeed(42, 1));
  }

  @Test
  void aSequenceDrawsTheSameTokensWhateverElseIsSampledAlongside() {
    int[] alone = draws(Sampler.seeded(7, 0), FLAT, 100);
    Sampler mine = Sampler.seeded(7, 0);
    Sampler neighbour = Sampler.seeded(9, 3);
    int[] interleaved = new int[100];
    for (int i = 0; i < 100; i++) {
      neighbour.next(FLAT); // another sequence of the batch steps first
      interleaved[i] = mine.next(FLAT);
      neighbour.next(FLAT);
    }
    assertArrayEquals(alone, interleaved);
  }

  @Test
  void forParamsSeedsFromTheRequestAndPicksGreedyForTemperatureZero() {
    SamplingParams seeded = SamplingParams.builder().seed(5).n(2).build();
    assertArrayEquals(draws(Sampler.seeded(5, 1), FLAT, 50), draws(Sampler.forParams(seeded, 1), FLAT, 50));
    assertTrue(Sampler.forParams(SamplingParams.greedy(), 0).isGreedy());
    assertFalse(Sampler.forParams(SamplingParams.defaults(), 0).isGreedy());
    assertThrows(IllegalArgumentException.class, () -> Sampler.forParams(seeded, 2));
    SamplingParams beams = SamplingParams.builder().numBeams(4).build();
    assertThrows(IllegalArgumentException.class, () -> Sampler.forParams(beams, 0));
  }

  @Test
  void unseededRequestsGetDifferentRandomStreams() {
    SamplingParams p = SamplingParams.defaults();
    assertFalse(java.util.Arrays.equals(draws(Sampler.forParams(p, 0), FLAT, 200),
        draws(Sampler.forParams(p, 0), FLAT, 200)));
  }

  @Test
  void samplingFrequenciesFollowTheSoftmax() {
    float[] logits = {0f, 1f, 2f, NEG_INF, -1f};
    double[] expected = new double[logits.length];
    double z = 0;
    for (float v : logits) {
      z += Math.exp(v);
    }
    for (int i = 0; i < logits.length; i++) {
      expected[i] = Math.exp(logits[i]) / z;
    }
    int n = 200_000;
    int[] counts = new int[logits.length];
    Sampler s = Sampler.seeded(2024, 0);
    for (int i = 0; i < n; i++) {
      counts[s.next(logits)]++;
    }
    assertEquals(0, counts[3], "a -inf token was drawn");
    for (int i = 0; i < logits.length; i++) {
      // The standard error is at most 0.0012 here; 0.006 is five of them.
      assertEquals(expected[i], counts[i] / (double) n, 0.006, "frequency of token " + i);
    }
  }

  @Test
  void greedyIsTheFirstArgmax() {
    assertEquals(1, Sampler.argmax(new float[] {1f, 3f, 3f, 2f}));
    assertEquals(0, Sampler.argmax(new float[] {NEG_INF, NEG_INF}));
    assertEquals(2, Sampler.argmax(new float[] {1f, 3f, Float.NaN, 5f}), "NaN wins, as in torch.argmax");
    assertEquals(1, Sampler.greedy().next(new float[] {1f, 3f, 3f, 2f}));
  }

  @Test
  void samplingRejectsImpossibleDistributions() {
    Sampler s = Sampler.seeded(1, 0);
    IllegalStateException banned = assertThrows(IllegalStateException.class, () -> s.next(new float[] {NEG_INF}));
    assertTrue(banned.getMessage().contains("all logits are -inf"), banned.getMessage());
    assertThrows(IllegalStateException.class, () -> s.next(new float[] {0f, Float.NaN}));
  }

  @Test
  void positiveInfinityIsDrawnUniformlyAmongInfinities() {
    float inf = Float.POSITIVE_INFINITY;
    float[] logits = {inf, 100f, inf, 0f};
    int[] counts = new int[4];
    SplittableRandom random = new SplittableRandom(3);
    for (int i = 0; i < 10_000; i++) {
      counts[Sampler.sample(logits, random)]++;
    }
    assertEquals(0, counts[1] + counts[3]);
    assertEquals(0.5, counts[0] / 10_000.0, 0.03);
  }

  @Test
  void aSingleLiveTokenIsAlwaysChosen() {
    float[] logits = {NEG_INF, NEG_INF, -50f, NEG_INF};
    Sampler s = Sampler.seeded(11, 0);
    for (int i = 0; i < 100; i++) {
      assertEquals(2, s.next(logits));
    }
  }

  /** A peeked number is the one the stream hands out later, and peeking does not move the stream. */
  @Test
  void peekedUniformNumbersComeNextInOrder() {
    Sampler plain = Sampler.seeded(7, 0);
    double[] expected = new double[12];
    for (int i = 0; i < expected.length; i++) {
      expected[i] = plain.nextUniform();
    }
    Sampler s = Sampler.seeded(7, 0);
    assertEquals(expected[0], s.nextUniform());
    assertEquals(expected[3], s.peekUniform(2)); // peeks grow the buffer out of order
    assertEquals(expected[1], s.peekUniform(0));
    assertEquals(expected[8], s.peekUniform(7));
    assertEquals(expected[1], s.nextUniform());
    assertEquals(expected[2], s.nextUniform());
    assertEquals(expected[4], s.peekUniform(1)); // relative to what is next now
    for (int i = 3; i < expected.length; i++) {
      assertEquals(expected[i], s.nextUniform(), "number " + i);
    }
    assertThrows(IllegalStateException.class, () -> Sampler.greedy().peekUniform(0));
    assertThrows(IllegalArgumentException.class, () -> s.peekUniform(-1));
  }

  /** Its own draw reads the stream directly: after a peek it refuses rather than drawing out of order. */
  @Test
  void aDrawAfterAPeekIsRefused() {
    Sampler s = Sampler.seeded(7, 0);
    s.peekUniform(0);
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> s.next(FLAT));
    assertTrue(e.getMessage().contains("nextUniform"), e.getMessage());
    s.nextUniform();
    s.next(FLAT); // nothing peeked any more
  }
}
