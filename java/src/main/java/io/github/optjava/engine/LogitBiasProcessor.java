package io.github.optjava.engine;

import io.github.optjava.backend.LogitEdits;
import java.util.Map;

/**
 * OpenAI's {@code logit_bias}: a fixed amount added to the logit of each listed token before sampling (-100 or 100
 * in effect bans or forces a token). Float32 arithmetic: {@code logit + (float) bias}. Hugging Face's nearest
 * equivalent is {@code sequence_bias} with one-token sequences.
 */
public final class LogitBiasProcessor implements SparseLogitsProcessor {
  private final int[] tokens;
  private final float[] biases;

  /** @param bias token id to the amount added to its logit (ids within the vocabulary: the engine checks them) */
  public LogitBiasProcessor(Map<Integer, Double> bias) {
    tokens = new int[bias.size()];
    biases = new float[bias.size()];
    int i = 0;
    for (Map.Entry<Integer, Double> e : new java.util.TreeMap<>(bias).entrySet()) {
      tokens[i] = e.getKey();
      biases[i++] = (float) (double) e.getValue();
    }
  }

  @Override
  public int stage() {
    return 0;
  }

  @Override
  public void edits(int[] inputIds, int inputLength, int promptLength, LogitEdits.Builder out) {
    for (int i = 0; i < tokens.length; i++) {
      out.bias(tokens[i], biases[i]);
    }
  }

  @Override
  public void process(int[] inputIds, int inputLength, int promptLength, float[] logits) {
    for (int i = 0; i < tokens.length; i++) {
      logits[tokens[i]] += biases[i];
    }
  }

  @Override
  public String toString() {
    return "LogitBias(" + tokens.length + " tokens)";
  }
}
