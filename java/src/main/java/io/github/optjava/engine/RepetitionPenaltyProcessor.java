package io.github.optjava.engine;

import io.github.optjava.backend.LogitEdits;
/**
 * HF {@code RepetitionPenaltyLogitsProcessor} (the CTRL paper's penalty): every token present in the
 * input ids (prompt and generated) gets {@code s < 0 ? s * penalty : s / penalty}.
 *
 * <p>As in HF ({@code gather}, {@code where}, {@code scatter_}), all original scores are read before any
 * is written, so a token that occurs several times is penalised once. The arithmetic is float32 with
 * the penalty cast to float32, as torch does for a Python scalar: bit-exact with HF.
 */
public final class RepetitionPenaltyProcessor implements SparseLogitsProcessor {

  private final float penalty;
  /** The gathered scores of the input ids; grows with the sequence and is then reused. */
  private float[] gathered = new float[0];

  /** @param penalty a finite value {@code > 0}; above 1 discourages repetition, 1 does nothing */
  public RepetitionPenaltyProcessor(double penalty) {
    if (!(penalty > 0) || !Double.isFinite(penalty)) {
      throw new IllegalArgumentException("repetition penalty must be a finite number > 0 (got " + penalty + ")");
    }
    this.penalty = (float) penalty;
  }

  @Override
  public int stage() {
    return 1;
  }

  @Override
  public void edits(int[] inputIds, int inputLength, int promptLength, LogitEdits.Builder out) {
    for (int i = 0; i < inputLength; i++) {
      out.repetitionPenalty(inputIds[i], penalty);
    }
  }

  @Override
  public void process(int[] inputIds, int inputLength, int promptLength, float[] logits) {
    if (gathered.length < inputLength) {
      gathered = new float[Math.max(inputLength, 2 * gathered.length)];
    }
    for (int i = 0; i < inputLength; i++) {
      gathered[i] = logits[inputIds[i]];
    }
    for (int i = 0; i < inputLength; i++) {
      float s = gathered[i];
      logits[inputIds[i]] = s < 0 ? s * penalty : s / penalty;
    }
  }

  @Override
  public String toString() {
    return "RepetitionPenalty(" + penalty + ")";
  }
}
