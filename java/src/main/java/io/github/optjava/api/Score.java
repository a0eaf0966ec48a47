package io.github.optjava.api;

import java.util.List;

/**
 * How likely the model finds a text: the log-probability of each token given the ones before it.
 *
 * @param tokenIds the text's tokens, {@code </s>} (BOS) first
 * @param logprobs one per token; the first (BOS) has a null log-prob
 */
public record Score(List<Integer> tokenIds, List<TokenLogprob> logprobs) {

  /** Sum of the log-probs of every token after the BOS (natural log). */
  public double totalLogprob() {
    double sum = 0;
    for (TokenLogprob t : logprobs) {
      if (t.logprob() != null) {
        sum += t.logprob();
      }
    }
    return sum;
  }

  /** exp(−mean log-prob) over the scored tokens; NaN when the text has no token to score. */
  public double perplexity() {
    int n = logprobs.size() - 1;
    return n <= 0 ? Double.NaN : Math.exp(-totalLogprob() / n);
  }
}
