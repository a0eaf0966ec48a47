package io.github.optjava.api;

import java.util.List;

/**
 * The result of one prompt: its completions and what they cost.
 *
 * @param promptTokenIds   the prompt as the model saw it ({@code </s>} = 2 first, as Hugging Face does)
 * @param choices          the {@code n} completions (or {@code n} best beams, best first)
 * @param completionTokens tokens generated over all choices
 * @param timeToFirstTokenMillis time from submission to the first generated token
 * @param totalMillis      time from submission to the end
 */
public record Completion(List<Integer> promptTokenIds, List<Choice> choices, int completionTokens,
    double timeToFirstTokenMillis, double totalMillis) {

  /** The first choice's text: what most callers want. */
  public String text() {
    return choices.get(0).text();
  }

  /** The first choice's finish reason. */
  public FinishReason finishReason() {
    return choices.get(0).finishReason();
  }

  /** Prompt tokens (BOS included). */
  public int promptTokens() {
    return promptTokenIds.size();
  }
}
