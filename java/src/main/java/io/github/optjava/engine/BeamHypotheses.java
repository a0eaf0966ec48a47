package io.github.optjava.engine;

import io.github.optjava.engine.BeamSearch.Hypothesis;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.List;

/**
 * The n-best list of one beam search: Hugging Face's {@code BeamHypotheses} (transformers 4.36), kept
 * line for line in its semantics because its quirks decide which hypotheses survive and when the
 * search stops.
 *
 * <p>Scores are normalised as {@code sum_logprobs / generated_len ** length_penalty}, where
 * {@code generated_len} counts generated tokens only (the EOS included for finished hypotheses). This
 * is the 4.36 rule; up to 4.35 HF divided by the whole length, prompt included.
 */
final class BeamHypotheses {

  private final int numBeams;
  private final double lengthPenalty;
  private final boolean earlyStopping;
  /** In insertion order, as HF's list: the order breaks ties both when dropping and when returning. */
  private final List<Hypothesis> beams = new ArrayList<>();
  /** HF starts at 1e9 and only ever lowers it with min() until the list is full. */
  private double worstScore = 1e9;

  BeamHypotheses(int numBeams, double lengthPenalty, boolean earlyStopping) {
    this.numBeams = numBeams;
    this.lengthPenalty = lengthPenalty;
    this.earlyStopping = earlyStopping;
  }

  int size() {
    return beams.size();
  }

  /**
   * Offers a hypothesis; it is kept when the list is not full or it beats the worst kept one, which is
   * then dropped.
   *
   * @param tokens       the generated tokens (EOS included when {@code finished})
   * @param sumLogprobs  the beam's running score: float32 as in HF, widened exactly as {@code .item()} does
   * @param generatedLen number of generated tokens the score is normalised by
   */
  void add(int[] tokens, float sumLogprobs, int generatedLen, boolean finished) {
    double score = sumLogprobs / Math.pow(generatedLen, lengthPenalty);
    if (beams.size() < numBeams || score > worstScore) {
      beams.add(new Hypothesis(tokens, score, finished));
      if (beams.size() > numBeams) {
        // HF sorts (score, index) pairs: the lowest score goes, the earliest added among equals.
        int drop = 0;
        for (int i = 1; i < beams.size(); i++) {
          if (beams.get(i).score() < beams.get(drop).score()) {
            drop = i;
          }
        }
        beams.remove(drop);
        worstScore = beams.stream().mapToDouble(Hypothesis::score).min().orElseThrow();
      } else {
        worstScore = Math.min(score, worstScore);
      }
    }
  }

  /**
   * HF's {@code is_done}: with {@code earlyStopping}, done as soon as {@code numBeams} hypotheses exist;
   * otherwise also only when the best candidate of this step, normalised by the current generated
   * length, cannot beat the worst kept hypothesis (a heuristic: with a positive length penalty a live
   * beam could still improve later, which HF accepts for its {@code early_stopping=False}).
   *
   * @param bestSumLogprobs the top candidate score of this step (rank 0, EOS or not)
   * @param generatedLen    generated tokens including this step's
   */
  boolean isDone(float bestSumLogprobs, int generatedLen) {
    if (beams.size() < numBeams) {
      return false;
    }
    if (earlyStopping) {
      return true;
    }
    double highestAttainable = bestSumLogprobs / Math.pow(generatedLen, lengthPenalty);
    return worstScore >= highestAttainable;
  }

  /**
   * The best {@code n} hypotheses, best first. HF stable-sorts ascending and pops from the end, so among
   * equal scores the later-added one comes first; reversing before a stable descending sort does that.
   */
  List<Hypothesis> best(int n) {
    List<Hypothesis> sorted = new ArrayList<>(beams);
    Collections.reverse(sorted);
    sorted.sort(Comparator.comparingDouble(Hypothesis::score).reversed());
    return List.copyOf(sorted.subList(0, Math.min(n, sorted.size())));
  }
}
