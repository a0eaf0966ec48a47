package io.github.optjava.engine;

import io.github.optjava.backend.LogitEdits;
/**
 * HF {@code NoRepeatNGramLogitsProcessor}: bans (sets to -inf) every token that would complete an n-gram
 * already present in the input ids, prompt included.
 *
 * <p>HF builds a dictionary of all n-grams; this scans the ids for earlier occurrences of the last
 * {@code n - 1} tokens instead, which bans the same set without allocating. The cost is
 * O(length × n) per step, small next to a forward pass.
 */
public final class NoRepeatNgramProcessor implements SparseLogitsProcessor {

  private final int n;

  /** @param n the n-gram size, {@code >= 1} (1 bans every token already present) */
  public NoRepeatNgramProcessor(int n) {
    if (n < 1) {
      throw new IllegalArgumentException("no-repeat n-gram size must be >= 1 (got " + n + ")");
    }
    this.n = n;
  }

  @Override
  public int stage() {
    return 3;
  }

  @Override
  public void edits(int[] inputIds, int inputLength, int promptLength, LogitEdits.Builder out) {
    if (inputLength + 1 < n) {
      return;
    }
    int prefixStart = inputLength - (n - 1);
    for (int i = 0; i + n <= inputLength; i++) {
      if (matches(inputIds, i, prefixStart)) {
        out.ban(inputIds[i + n - 1]);
      }
    }
  }

  @Override
  public void process(int[] inputIds, int inputLength, int promptLength, float[] logits) {
    // HF: no n-gram can be completed until the input holds n - 1 tokens plus at least one n-gram.
    if (inputLength + 1 < n) {
      return;
    }
    int prefixStart = inputLength - (n - 1);
    // Every n-gram starting at i whose first n-1 tokens equal the current last n-1 tokens.
    for (int i = 0; i + n <= inputLength; i++) {
      if (matches(inputIds, i, prefixStart)) {
        logits[inputIds[i + n - 1]] = Float.NEGATIVE_INFINITY;
      }
    }
  }

  private boolean matches(int[] ids, int start, int prefixStart) {
    for (int j = 0; j < n - 1; j++) {
      if (ids[start + j] != ids[prefixStart + j]) {
        return false;
      }
    }
    return true;
  }

  @Override
  public String toString() {
    return "NoRepeatNgram(" + n + ")";
  }
}
