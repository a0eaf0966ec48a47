package io.github.optjava.engine;

import io.github.optjava.backend.LogitEdits;

/**
 * A processor that changes only a few named tokens' logits, each by a fixed float operation: it can say what it
 * would do ({@link #edits}) without the row, so the model applies it where the logits are
 * ({@link LogitEdits}; on a GPU then only a token per row is copied back). {@link #edits} followed by
 * {@link LogitEdits#applyTo} gives the same bits as {@link #process}.
 */
interface SparseLogitsProcessor extends LogitsProcessor {
  /** Where in {@link LogitEdits}' fixed order its operation comes: 0 bias, 1 repetition penalty, 2 presence and
   * frequency, 3 bans. A pipeline can run its processors as edits only if this never decreases along it. */
  int stage();

  /** Names to {@code out} (its row already chosen) what {@link #process} would do for these arguments. */
  void edits(int[] inputIds, int inputLength, int promptLength, LogitEdits.Builder out);
}
