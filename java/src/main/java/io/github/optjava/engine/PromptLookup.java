package io.github.optjava.engine;

import java.util.Arrays;

/**
 * Draft tokens for speculative decoding without a draft model (prompt lookup decoding, as Hugging Face's
 * {@code prompt_lookup_num_tokens}): the last few tokens of a sequence are looked up earlier in it (its prompt or
 * what it generated), and the tokens that followed there are proposed as its next ones. The model then checks them
 * all in one step ({@link Engine}), so the drafts change how fast tokens come, never which tokens: text that
 * repeats its input (summaries, code edits, extraction, greedy loops) gets several tokens per step.
 */
final class PromptLookup {
  /** The longest n-gram matched, as Hugging Face's default {@code max_matching_ngram_size}. */
  static final int MAX_NGRAM = 2;

  private PromptLookup() {}

  /**
   * Up to {@code maxDrafts} tokens that followed an earlier occurrence of the last n tokens of
   * {@code tokens[0 .. length)}, for the longest n ≤ {@link #MAX_NGRAM} that occurs; empty when none does. The most
   * recent occurrence followed by {@code maxDrafts} tokens, else the earliest (the most tokens follow it). Hugging
   * Face takes the earliest; the most recent is likelier to continue the same way, but in a loop it is followed by
   * one period only, hence the rule.
   */
  static int[] propose(int[] tokens, int length, int maxDrafts) {
    if (maxDrafts <= 0) {
      return new int[0];
    }
    for (int n = Math.min(MAX_NGRAM, length - 1); n >= 1; n--) {
      int found = -1;
      for (int start = length - n - 1; start >= 0; start--) { // an occurrence ending before the last token
        if (Arrays.equals(tokens, start, start + n, tokens, length - n, length)) {
          found = start;
          if (length - (start + n) >= maxDrafts) {
            break;
          }
        }
      }
      if (found >= 0) {
        int from = found + n;
        return Arrays.copyOfRange(tokens, from, Math.min(from + maxDrafts, length));
      }
    }
    return new int[0];
  }
}
