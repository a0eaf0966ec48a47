package io.github.optjava.engine;

/**
 * HF {@code MinLengthLogitsProcessor}: EOS is banned (-inf) while the whole input (BOS, prompt and
 * generated tokens) is shorter than {@code minLength}. Pipelines built from sampling parameters use
 * {@link MinNewTokensProcessor} instead, which counts new tokens only; this one is for HF parity in
 * custom pipelines ({@link LogitsPipeline#of}).
 *
 * @see io.github.optjava.api.SamplingParams#minTokens()
 */
public final class MinLengthProcessor implements LogitsProcessor {

  private final int minLength;
  private final int eosTokenId;

  /**
   * @param minLength  total input length required before EOS, {@code >= 0}
   * @param eosTokenId the end-of-sequence token (2 for OPT)
   */
  public MinLengthProcessor(int minLength, int eosTokenId) {
    if (minLength < 0 || eosTokenId < 0) {
      throw new IllegalArgumentException("minLength and eosTokenId must be >= 0 (got " + minLength + ", "
          + eosTokenId + ")");
    }
    this.minLength = minLength;
    this.eosTokenId = eosTokenId;
  }

  @Override
  public void process(int[] inputIds, int inputLength, int promptLength, float[] logits) {
    if (inputLength < minLength) {
      logits[eosTokenId] = Float.NEGATIVE_INFINITY;
    }
  }

  @Override
  public String toString() {
    return "MinLength(" + minLength + ", eos=" + eosTokenId + ")";
  }
}
