package io.github.optjava.engine;

/**
 * Log-probabilities over the vocabulary: {@code log_softmax}, the probability of one token, the k most
 * likely tokens. Computed in double, without allocating.
 *
 * <p><b>Which logits.</b> The log-probs this library reports for a generated token are
 * {@code log_softmax} of the scores the token was chosen from: the logits after the sequence's
 * {@link LogitsPipeline} (penalties, bans and, when sampling, temperature/top-k/top-p). That is
 * OpenAI's meaning (the distribution actually sampled from) and Hugging Face's {@code output_scores}
 * (processed scores); tokens removed by top-k/top-p have log-prob -inf and never appear among the
 * alternatives. When the pipeline is empty (greedy decoding or plain temperature-1 sampling with no
 * penalties) these are the model's own log-probs. Echoed prompt tokens were not chosen, so they are
 * scored with the raw logits ({@code log_softmax(logits[i-1])[input_ids[i]]}, as the fixtures'
 * {@code prompt_token_logprobs}).
 */
public final class LogProbs {

  private LogProbs() {}

  /**
   * {@code log(sum(exp(logits)))}, stable: -inf when every entry is -inf, +inf when one is +inf; a NaN
   * entry makes the result NaN.
   */
  public static double logSumExp(float[] logits) {
    return io.github.optjava.backend.RowMath.logSumExp(logits, 0, logits.length);
  }

  /** {@code log_softmax(logits)[token]}, given {@code logSumExp(logits)} (compute it once per step). */
  public static double logProb(float[] logits, int token, double logSumExp) {
    return logits[token] - logSumExp;
  }

  /** {@code log_softmax(logits)[token]}. */
  public static double logProb(float[] logits, int token) {
    return logProb(logits, token, logSumExp(logits));
  }

  /**
   * The {@code k} most likely tokens, most likely first, ties broken by the lower token id. Tokens with
   * log-prob -inf are never listed, so fewer than {@code k} come back when fewer are possible.
   *
   * @param logits    the scores (not modified)
   * @param logSumExp {@code logSumExp(logits)}
   * @param k         how many, {@code >= 0}
   * @param ids       receives the token ids; length {@code >= k}
   * @param logProbs  receives their log-probs; length {@code >= k}
   * @return how many entries were written, {@code min(k, number of tokens with a finite score)}
   */
  public static int topK(float[] logits, double logSumExp, int k, int[] ids, double[] logProbs) {
    if (k < 0 || ids.length < k || logProbs.length < k) {
      throw new IllegalArgumentException("k must be >= 0 and fit the output arrays (k=" + k + ", ids: "
          + ids.length + ", logProbs: " + logProbs.length + ")");
    }
    return io.github.optjava.backend.RowMath.topK(logits, 0, logits.length, logSumExp, k, ids, logProbs, 0);
  }
}
