package io.github.optjava.engine;

import java.util.List;

/**
 * What the model returned for a step: the tokens it picked where the logits are (the argmax of every output row,
 * or one per sequence from the sampler: drawn, or for the sequences {@code greedy} marks the argmax) with their
 * log-probs, and the logits of the sequences it did not pick for (null: none; with picks, null entries for the
 * picked ones); {@code scores}: per sequence, its echoed prompt's scores (and their alternatives) when the model
 * computed them (else null).
 */
record StepOutput(boolean argmaxOnly, int[] tokens, double[] logprobs, float[][] logits,
    Sequence.PromptScores[] scores, int top, int[] topIds, double[] topLogprobs, boolean[] greedy,
    List<Sequence> forkPicks) {
  StepOutput(boolean argmaxOnly, int[] tokens, double[] logprobs, float[][] logits, Sequence.PromptScores[] scores) {
    this(argmaxOnly, tokens, logprobs, logits, scores, 0, null, null, null, List.of());
  }

  /** Sequence j's rows of logits, when they came to the host (else null: the model picked its token). */
  float[] rowsOf(int j) {
    return logits == null ? null : logits[j];
  }
}
