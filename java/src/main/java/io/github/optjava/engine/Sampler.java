package io.github.optjava.engine;

import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cpu.RowKernels;
import java.util.SplittableRandom;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Chooses the next token of one sequence from its processed logits: greedy (argmax) or a random draw
 * from their softmax.
 *
 * <p><b>Determinism.</b> Every sampling sequence owns its random stream, seeded from the request's seed
 * and the completion's index ({@link #streamSeed}). So a seeded request draws the same random numbers
 * whatever else shares its batch, and the {@code n} completions of one request differ from each other. The
 * logits it draws from are the same up to float rounding: with prefix caching (on by default) a prompt read from
 * cached blocks gives log-probs a few 1e-6 apart from one computed afresh (session 16's GeneratorStressTest), which can
 * change a draw at a high temperature among very unlikely tokens; without prefix caching the tokens repeat exactly.
 * Token choices cannot match Hugging Face's sampled tokens (torch's generator is a different RNG);
 * the distribution sampled from does match.
 *
 * <p><b>Arithmetic.</b> Each weight {@code exp(logit - max)} is a float ({@link RowKernels#exp}, the precision of
 * torch's float32 softmax), the weights are summed in double, then one uniform draw in {@code [0, sum)} is walked
 * through their cumulative sums in token-id order. An instance keeps its weights' buffer, so nothing is allocated
 * per step; it is not thread-safe (its RNG is the sequence's): create one per sequence.
 */
public final class Sampler {

  /** Null for greedy decoding. */
  private final SplittableRandom random;
  /** The weights of the last draw (grown to the vocabulary on the first). */
  private float[] weights = new float[0];
  /** Uniform numbers taken from {@link #random} by {@link #peekUniform} and not yet handed out, oldest first. */
  private double[] ahead = new double[0];
  private int aheadStart;
  private int aheadCount;

  private Sampler(SplittableRandom random) {
    this.random = random;
  }

  /** A greedy sampler: always the argmax. */
  public static Sampler greedy() {
    return new Sampler(null);
  }

  /** A sampling sampler with the stream of completion {@code completionIndex} of a request seeded {@code seed}. */
  public static Sampler seeded(long seed, int completionIndex) {
    return new Sampler(new SplittableRandom(streamSeed(seed, completionIndex)));
  }

  /**
   * The sampler for completion {@code completionIndex} (0 .. n-1) of a request: greedy for temperature
   * 0, otherwise sampling seeded from {@code params.seed()}, or from a fresh random seed when absent.
   *
   * @throws IllegalArgumentException for beam search, which chooses tokens itself
   */
  public static Sampler forParams(SamplingParams params, int completionIndex) {
    if (params.isBeamSearch()) {
      throw new IllegalArgumentException("beam search (numBeams=" + params.numBeams()
          + ") chooses its own tokens; a Sampler is for greedy decoding and sampling");
    }
    if (completionIndex < 0 || completionIndex >= params.n()) {
      throw new IllegalArgumentException("completionIndex must be in [0, n=" + params.n() + ") (got "
          + completionIndex + ")");
    }
    if (params.isGreedy()) {
      return greedy();
    }
    long seed = params.seed().orElseGet(() -> ThreadLocalRandom.current().nextLong());
    return seeded(seed, completionIndex);
  }

  /**
   * The seed of a completion's stream: both inputs pass through SplitMix64's finaliser, because
   * {@link SplittableRandom}s seeded with nearby values (s and s + its gamma) would share a shifted
   * stream.
   */
  public static long streamSeed(long seed, int completionIndex) {
    return mix64(seed ^ mix64(completionIndex + 0x9e3779b97f4a7c15L));
  }

  /**
   * The next uniform number in [0, 1) of this sequence's stream: what {@link #sample} scales by the weights'
   * sum, handed instead to a sampler elsewhere (the GPU's), so that the stream advances the same way.
   *
   * @throws IllegalStateException for a greedy sampler
   */
  public double nextUniform() {
    if (random == null) {
      throw new IllegalStateException("a greedy sampler draws nothing");
    }
    if (aheadCount > 0) {
      aheadCount--;
      return ahead[aheadStart++];
    }
    return random.nextDouble();
  }

  /**
   * The uniform number {@link #nextUniform} will return after {@code i} more calls ({@code i = 0}: the next one),
   * without advancing the stream: a step that checks draft tokens draws each row with the number the plain step that
   * row stands for would use, and the stream then advances by the rows taken.
   *
   * @throws IllegalStateException for a greedy sampler
   */
  public double peekUniform(int i) {
    if (random == null) {
      throw new IllegalStateException("a greedy sampler draws nothing");
    }
    if (i < 0) {
      throw new IllegalArgumentException("i must be >= 0 (got " + i + ")");
    }
    if (i >= aheadCount) {
      if (aheadStart + i + 1 > ahead.length) { // compact, then grow if still short
        System.arraycopy(ahead, aheadStart, ahead, 0, aheadCount);
        aheadStart = 0;
        if (i + 1 > ahead.length) {
          ahead = java.util.Arrays.copyOf(ahead, Math.max(8, 2 * (i + 1)));
        }
      }
      while (aheadCount <= i) {
        ahead[aheadStart + aheadCount++] = random.nextDouble();
      }
    }
    return ahead[aheadStart + i];
  }

  /** True when this sampler always takes the argmax. */
  public boolean isGreedy() {
    return random == null;
  }

  /**
   * The next token.
   *
   * @param logits the processed scores of this step (not modified)
   * @throws IllegalStateException when sampling and no token has a finite score, or a score is NaN
   */
  public int next(float[] logits) {
    if (random == null) {
      return argmax(logits);
    }
    if (aheadCount > 0) { // its own draw reads the stream directly (and may take an int): never after a peek
      throw new IllegalStateException("a sampler with peeked uniform numbers draws only through nextUniform()");
    }
    if (weights.length < logits.length) {
      weights = new float[logits.length];
    }
    return sample(logits, random, weights);
  }

  /**
   * Index of the largest score, the first one on ties, as {@code torch.argmax}; like torch, a NaN
   * counts as larger than everything (so a broken model shows up rather than hiding).
   */
  public static int argmax(float[] logits) {
    return io.github.optjava.backend.RowMath.argmax(logits, 0, logits.length);
  }

  /**
   * Draws a token with probability {@code softmax(logits)}. When some scores are +inf (an overflowed
   * temperature division) the draw is uniform among them, the limit of the softmax.
   *
   * @throws IllegalStateException when every score is -inf (every token banned) or a score is NaN
   */
  public static int sample(float[] logits, SplittableRandom random) {
    return sample(logits, random, new float[logits.length]);
  }

  private static int sample(float[] logits, SplittableRandom random, float[] weights) {
    float max = RowKernels.max(logits, 0, logits.length);
    if (max != max) {
      throw new IllegalStateException("cannot sample: a logit is NaN (the model produced invalid numbers)");
    }
    if (max == Float.NEGATIVE_INFINITY) {
      throw new IllegalStateException("cannot sample: every token has probability 0 (all logits are -inf);"
          + " the processors banned every token");
    }
    if (max == Float.POSITIVE_INFINITY) {
      return uniformAmongMax(logits, max, random);
    }
    double sum = RowKernels.expInto(logits, 0, logits.length, max, weights);
    double u = random.nextDouble() * sum;
    double cumulative = 0;
    int lastPositive = -1;
    for (int i = 0; i < logits.length; i++) {
      float w = weights[i];
      if (w > 0) {
        cumulative += w;
        lastPositive = i;
        if (cumulative > u) {
          return i;
        }
      }
    }
    return lastPositive; // u fell past the last partial sum through rounding
  }

  private static int uniformAmongMax(float[] logits, float max, SplittableRandom random) {
    int count = 0;
    for (float v : logits) {
      if (v == max) {
        count++;
      }
    }
    int pick = random.nextInt(count);
    for (int i = 0; i < logits.length; i++) {
      if (logits[i] == max && pick-- == 0) {
        return i;
      }
    }
    throw new AssertionError("unreachable");
  }

  /** SplitMix64's finaliser (Stafford's mix 13), the one {@link SplittableRandom} uses. */
  private static long mix64(long z) {
    z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
    z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
    return z ^ (z >>> 31);
  }
}
