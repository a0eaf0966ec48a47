package io.github.optjava.engine;

import io.github.optjava.backend.LogitEdits;
/**
 * HF {@code MinNewTokensLengthLogitsProcessor}: EOS is banned (-inf) while fewer than
 * {@code minNewTokens} tokens have been generated, counting only tokens after the prompt.
 */
public final class MinNewTokensProcessor implements SparseLogitsProcessor {

  private final int minNewTokens;
  private final int eosTokenId;

  /**
   * @param minNewTokens new tokens required before EOS, {@code >= 0}
   * @param eosTokenId   the end-of-sequence token (2 for OPT)
   */
  public MinNewTokensProcessor(int minNewTokens, int eosTokenId) {
    if (minNewTokens < 0 || eosTokenId < 0) {
      throw new IllegalArgumentException("minNewTokens and eosTokenId must be >= 0 (got " + minNewTokens
          + ", " + eosTokenId + ")");
    }
    this.minNewTokens = minNewTokens;
    this.eosTokenId = eosTokenId;
  }

  @Override
  public int stage() {
    return 3;
  }

  @Override
  public void edits(int[] inputIds, int inputLength, int promptLength, LogitEdits.Builder out) {
    if (inputLength - promptLength < minNewTokens) {
      out.ban(eosTokenId);
    }
  }

  @Override
  public void process(int[] inputIds, int inputLength, int promptLength, float[] logits) {
    if (inputLength - promptLength < minNewTokens) {
      logits[eosTokenId] = Float.NEGATIVE_INFINITY;
    }
  }

  @Override
  public String toString() {
    return "MinNewTokens(" + minNewTokens + ", eos=" + eosTokenId + ")";
  }
}
