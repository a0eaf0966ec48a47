package io.github.optjava.backend;

import java.util.Arrays;

/**
 * Changes to a few logits of a step's rows, made where the logits are before a token is picked
 * ({@link Ops#argmaxRows(Mat, double[], LogitEdits)}, {@link Ops#sampleRows(Mat, SamplingRows, double[],
 * LogitEdits)}): what Hugging Face's logits processors do to a row (a logit bias, the repetition penalty,
 * the presence and frequency penalties, bans by n-gram, bad words and min_tokens) touches only the tokens of the
 * sequence's history or of its request, so a GPU can apply them to its own copy and copy back a token per row instead
 * of a vocabulary (docs/perf.md, session 19: the host path cost 0.1–0.5 ms per row per step on top of the copy).
 *
 * <p>Each edited logit gets, in this order, each step its flags name: {@code x + bias}; the repetition penalty
 * {@code x < 0 ? x * penalty : x / penalty}; {@code x + frequency} then {@code x + presence} (the penalties'
 * negated terms); a ban to -inf. Each is one float operation rounded to nearest, the same as the processors' own
 * {@code process} in that order ({@code engine.LogitsPipeline}), so both give the same bits. The CUDA kernel
 * ({@code native/src/logit_edits.cu}) does the same operations one thread per edit, never fused.
 *
 * <p>Immutable; built by a {@link Builder}, one edit per (row, token).
 */
public final class LogitEdits {
  /** Adds {@link #bias}. */
  public static final int BIAS = 1;
  /** Applies the repetition penalty {@link #penalty}. */
  public static final int PENALTY = 2;
  /** Adds the (negated) frequency term, then the (negated) presence term. */
  public static final int PRESENCE_FREQUENCY = 4;
  /** Sets the logit to -inf. */
  public static final int BAN = 8;

  /** No edit. */
  public static final LogitEdits NONE = new LogitEdits(0, new int[0], new int[0], new float[0], new float[0],
      new float[0], new float[0]);

  private final int count;
  private final int[] index;
  private final int[] flags;
  private final float[] bias;
  private final float[] penalty;
  private final float[] frequency;
  private final float[] presence;

  private LogitEdits(int count, int[] index, int[] flags, float[] bias, float[] penalty, float[] frequency,
      float[] presence) {
    this.count = count;
    this.index = index;
    this.flags = flags;
    this.bias = bias;
    this.penalty = penalty;
    this.frequency = frequency;
    this.presence = presence;
  }

  /** How many logits are edited. */
  public int count() {
    return count;
  }

  /** True when nothing is edited. */
  public boolean isEmpty() {
    return count == 0;
  }

  /** The edited logits' positions in the row-major logits ({@code row * vocab + token}), one per edit. */
  public int[] index() {
    return Arrays.copyOf(index, count);
  }

  /**
   * The edits as the kernel takes them: {@code 6 × count} ints, the positions, the flags, then the bias, penalty,
   * frequency and presence floats' bits, each block {@code count} long.
   */
  public int[] packed() {
    int[] p = new int[6 * count];
    System.arraycopy(index, 0, p, 0, count);
    System.arraycopy(flags, 0, p, count, count);
    for (int i = 0; i < count; i++) {
      p[2 * count + i] = Float.floatToRawIntBits(bias[i]);
      p[3 * count + i] = Float.floatToRawIntBits(penalty[i]);
      p[4 * count + i] = Float.floatToRawIntBits(frequency[i]);
      p[5 * count + i] = Float.floatToRawIntBits(presence[i]);
    }
    return p;
  }

  /**
   * Applies the edits to row-major logits on the heap ({@code logits.length} must cover every edited position): the
   * twin of the CUDA kernel.
   *
   * @throws IllegalArgumentException when an edit lies outside {@code logits}
   */
  public void applyTo(float[] logits) {
    for (int i = 0; i < count; i++) {
      if (index[i] >= logits.length) {
        throw new IllegalArgumentException("edit " + i + " at " + index[i] + " lies outside " + logits.length
            + " logits");
      }
      logits[index[i]] = edit(logits[index[i]], flags[i], bias[i], penalty[i], frequency[i], presence[i]);
    }
  }

  /** One edited logit (what each thread of the kernel computes). */
  static float edit(float x, int flags, float bias, float penalty, float frequency, float presence) {
    if ((flags & BIAS) != 0) {
      x = x + bias;
    }
    if ((flags & PENALTY) != 0) {
      x = x < 0 ? x * penalty : x / penalty;
    }
    if ((flags & PRESENCE_FREQUENCY) != 0) {
      x = x + frequency;
      x = x + presence;
    }
    if ((flags & BAN) != 0) {
      x = Float.NEGATIVE_INFINITY;
    }
    return x;
  }

  @Override
  public String toString() {
    return "LogitEdits(" + count + ")";
  }

  /**
   * Collects one step's edits: {@link #row} picks the logits row, then each processor, in the pipeline's order, names
   * its tokens. A token edited twice by one kind keeps the last value (the repetition penalty of a token seen twice is
   * applied once, as HF's gather and scatter do). Not thread-safe; reusable after {@link #build}.
   */
  public static final class Builder {
    private final int vocab;
    private final int[] slotOfToken; // this row's edit of each token + 1 (0: none yet)
    private int[] touched = new int[64]; // tokens with a slot in the current row, to clear slotOfToken
    private int touchedCount;
    private int row = -1;
    private int count;
    private int[] index = new int[64];
    private int[] flags = new int[64];
    private float[] bias = new float[64];
    private float[] penalty = new float[64];
    private float[] frequency = new float[64];
    private float[] presence = new float[64];

    /** @param vocab the rows' width */
    public Builder(int vocab) {
      if (vocab < 1) {
        throw new IllegalArgumentException("vocab must be >= 1 (got " + vocab + ")");
      }
      this.vocab = vocab;
      this.slotOfToken = new int[vocab];
    }

    /** Starts the edits of logits row {@code r} (rows in any order, each once). */
    public Builder row(int r) {
      if (r < 0 || (long) r * vocab + vocab > Integer.MAX_VALUE) {
        throw new IllegalArgumentException("row " + r + " of " + vocab + " logits lies outside an int index");
      }
      clearRow();
      row = r;
      return this;
    }

    /** {@code logit += value} (before the penalties). */
    public Builder bias(int token, float value) {
      int s = slot(token);
      flags[s] |= BIAS;
      bias[s] = value;
      return this;
    }

    /** HF's repetition penalty: {@code x < 0 ? x * penalty : x / penalty}. */
    public Builder repetitionPenalty(int token, float value) {
      int s = slot(token);
      flags[s] |= PENALTY;
      penalty[s] = value;
      return this;
    }

    /** {@code logit = logit - frequencyTerm - presence} (two float subtractions, in that order). */
    public Builder presenceFrequency(int token, float frequencyTerm, float presenceTerm) {
      int s = slot(token);
      flags[s] |= PRESENCE_FREQUENCY;
      frequency[s] = -frequencyTerm;
      presence[s] = -presenceTerm;
      return this;
    }

    /** {@code logit = -inf}. */
    public Builder ban(int token) {
      int s = slot(token); // before indexing flags: slot() may grow it
      flags[s] |= BAN;
      return this;
    }

    /** Forgets the edits so far (after a step whose edits could not all be named). */
    public void clear() {
      clearRow();
      row = -1;
      count = 0;
    }

    /** The edits so far (this builder is then empty again). */
    public LogitEdits build() {
      clearRow();
      row = -1;
      if (count == 0) {
        return NONE;
      }
      LogitEdits e = new LogitEdits(count, Arrays.copyOf(index, count), Arrays.copyOf(flags, count),
          Arrays.copyOf(bias, count), Arrays.copyOf(penalty, count), Arrays.copyOf(frequency, count),
          Arrays.copyOf(presence, count));
      count = 0;
      return e;
    }

    private int slot(int token) {
      if (row < 0) {
        throw new IllegalStateException("call row(r) before naming tokens");
      }
      if (token < 0 || token >= vocab) {
        throw new IllegalArgumentException("token " + token + " outside the vocabulary [0, " + vocab + ")");
      }
      int s = slotOfToken[token] - 1;
      if (s >= 0) {
        return s;
      }
      if (count == index.length) {
        int n = 2 * count;
        index = Arrays.copyOf(index, n);
        flags = Arrays.copyOf(flags, n);
        bias = Arrays.copyOf(bias, n);
        penalty = Arrays.copyOf(penalty, n);
        frequency = Arrays.copyOf(frequency, n);
        presence = Arrays.copyOf(presence, n);
      }
      s = count++;
      index[s] = row * vocab + token;
      flags[s] = 0;
      slotOfToken[token] = s + 1;
      if (touchedCount == touched.length) {
        touched = Arrays.copyOf(touched, 2 * touchedCount);
      }
      touched[touchedCount++] = token;
      return s;
    }

    private void clearRow() {
      for (int i = 0; i < touchedCount; i++) {
        slotOfToken[touched[i]] = 0;
      }
      touchedCount = 0;
    }
  }
}
