package io.github.optjava.backend;

import java.util.Arrays;

/**
 * Per row of a step's logits: how {@link Ops#sampleRows} draws its token by {@link RowSampling}'s rules. Row r is
 * drawn from softmax(row / {@code temperature[r]}) after top-k ({@code topK[r] > 0}), top-p ({@code topP[r] < 1}),
 * min-p ({@code minP[r] > 0}) and typical sampling ({@code typicalP[r]} in (0, 1)), in HF's order, with the uniform
 * number {@code uniform[r]} in [0, 1); temperature 0 marks a greedy row (its other entries are ignored). Every array
 * has one entry per row. The arrays are shared, not copied: a caller fills them and hands them over.
 */
public record SamplingRows(float[] temperature, int[] topK, float[] topP, float[] minP, float[] typicalP,
    double[] uniform) {

  /** Checks that every array has one entry per row. */
  public SamplingRows {
    int n = temperature.length;
    if (topK.length != n || topP.length != n || minP.length != n || typicalP.length != n || uniform.length != n) {
      throw new IllegalArgumentException("SamplingRows: arrays of different lengths (temperature " + n + ", topK "
          + topK.length + ", topP " + topP.length + ", minP " + minP.length + ", typicalP " + typicalP.length
          + ", uniform " + uniform.length + ")");
    }
  }

  /** Temperature, top-k and top-p only (min-p and typical sampling off). */
  public static SamplingRows of(float[] temperature, int[] topK, float[] topP, double[] uniform) {
    int n = temperature.length;
    return new SamplingRows(temperature, topK, topP, new float[n], ones(n), uniform);
  }

  /** {@code rows} greedy rows (temperature 0, no cuts): a caller sets the rows it draws with {@link #set}. */
  public static SamplingRows greedy(int rows) {
    return new SamplingRows(new float[rows], new int[rows], ones(rows), new float[rows], ones(rows),
        new double[rows]);
  }

  /** The number of rows. */
  public int rows() {
    return temperature.length;
  }

  /** Row {@code r} takes row {@code from} of {@code other}'s parameters. */
  public void set(int r, SamplingRows other, int from) {
    temperature[r] = other.temperature[from];
    topK[r] = other.topK[from];
    topP[r] = other.topP[from];
    minP[r] = other.minP[from];
    typicalP[r] = other.typicalP[from];
    uniform[r] = other.uniform[from];
  }

  /**
   * Row {@code r} becomes a padding row: drawn at temperature 1 without cuts (the sampler's cheapest draw), for a row
   * whose token is dropped (a padded step's padding, a prefill chunk that gives no token).
   */
  public void setPadding(int r) {
    temperature[r] = 1f;
    topK[r] = 0;
    topP[r] = 1f;
    minP[r] = 0f;
    typicalP[r] = 1f;
    uniform[r] = 0.5;
  }

  /**
   * These rows for {@code rows} rows: itself when it has as many or more; else padded with padding rows
   * ({@link #setPadding}).
   */
  public SamplingRows paddedTo(int rows) {
    int n = rows();
    if (n >= rows) {
      return this;
    }
    SamplingRows padded = new SamplingRows(Arrays.copyOf(temperature, rows), Arrays.copyOf(topK, rows),
        Arrays.copyOf(topP, rows), Arrays.copyOf(minP, rows), Arrays.copyOf(typicalP, rows),
        Arrays.copyOf(uniform, rows));
    for (int r = n; r < rows; r++) {
      padded.setPadding(r);
    }
    return padded;
  }

  /** Whether a row draws (not greedy) with min-p on. */
  public boolean anyMinP() {
    for (int r = 0; r < rows(); r++) {
      if (temperature[r] != 0f && minP[r] > 0f) {
        return true;
      }
    }
    return false;
  }

  /** Whether a row draws (not greedy) with typical sampling on. */
  public boolean anyTypical() {
    for (int r = 0; r < rows(); r++) {
      if (temperature[r] != 0f && RowSampling.typicalOn(typicalP[r])) {
        return true;
      }
    }
    return false;
  }

  private static float[] ones(int n) {
    float[] v = new float[n];
    Arrays.fill(v, 1f);
    return v;
  }
}
