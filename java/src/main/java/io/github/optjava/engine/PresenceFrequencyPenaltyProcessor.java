package io.github.optjava.engine;

import io.github.optjava.backend.LogitEdits;
import java.util.Arrays;

/**
 * OpenAI's presence and frequency penalties (also metaseq's and vLLM's), which Hugging Face does not
 * have. For every token {@code t} generated so far, {@code c(t)} times:
 *
 * <pre>logit[t] -= frequencyPenalty * c(t) + presencePenalty * (c(t) &gt; 0 ? 1 : 0)</pre>
 *
 * <p>Only generated tokens count (the ids at {@code [promptLength, inputLength)}), as OpenAI documents
 * ("how often token j was sampled prior to the current position") and vLLM implements; the prompt is
 * the repetition penalty's business. Arithmetic is float32, in vLLM's order: first
 * {@code logit - (float) (frequencyPenalty * c)}, then {@code - (float) presencePenalty}. Positive
 * penalties discourage repetition, negative ones encourage it.
 */
public final class PresenceFrequencyPenaltyProcessor implements SparseLogitsProcessor {

  private final double presencePenalty;
  private final double frequencyPenalty;
  /** The generated ids, sorted so that equal ids are adjacent and can be counted without a map. */
  private int[] sorted = new int[0];

  /**
   * @param presencePenalty  subtracted once from every token generated at least once
   * @param frequencyPenalty subtracted once per earlier generation of the token
   */
  public PresenceFrequencyPenaltyProcessor(double presencePenalty, double frequencyPenalty) {
    if (!Double.isFinite(presencePenalty) || !Double.isFinite(frequencyPenalty)) {
      throw new IllegalArgumentException("presence and frequency penalties must be finite (got "
          + presencePenalty + ", " + frequencyPenalty + ")");
    }
    this.presencePenalty = presencePenalty;
    this.frequencyPenalty = frequencyPenalty;
  }

  @Override
  public int stage() {
    return 2;
  }

  @Override
  public void edits(int[] inputIds, int inputLength, int promptLength, LogitEdits.Builder out) {
    forEachGenerated(inputIds, inputLength, promptLength, (token, count) ->
        out.presenceFrequency(token, (float) (frequencyPenalty * count), (float) presencePenalty));
  }

  private interface TokenCount {
    void accept(int token, int count);
  }

  /** Each distinct generated token with its count, in token order. */
  private void forEachGenerated(int[] inputIds, int inputLength, int promptLength,
      TokenCount action) {
    int generated = inputLength - promptLength;
    if (generated <= 0) {
      return;
    }
    if (sorted.length < generated) {
      sorted = new int[Math.max(generated, 2 * sorted.length)];
    }
    System.arraycopy(inputIds, promptLength, sorted, 0, generated);
    Arrays.sort(sorted, 0, generated);
    int runStart = 0;
    for (int i = 1; i <= generated; i++) {
      if (i == generated || sorted[i] != sorted[runStart]) {
        action.accept(sorted[runStart], i - runStart);
        runStart = i;
      }
    }
  }

  @Override
  public void process(int[] inputIds, int inputLength, int promptLength, float[] logits) {
    float presence = (float) presencePenalty;
    forEachGenerated(inputIds, inputLength, promptLength, (token, count) ->
        logits[token] = logits[token] - (float) (frequencyPenalty * count) - presence);
  }

  @Override
  public String toString() {
    return "PresenceFrequencyPenalty(presence=" + presencePenalty + ", frequency=" + frequencyPenalty + ")";
  }
}
