package io.github.optjava.engine;

import io.github.optjava.model.OptModel;
import java.util.List;

/**
 * One step's inputs: the sequences in it, what each feeds, whether the step gives each its next token (a decode
 * step or the last chunk of a prefill; an earlier chunk only fills the KV cache, and its logits are not used),
 * the draft tokens each decoding sequence feeds to be checked, and each one's first output row (a sequence with
 * drafts has one per fed token).
 */
record StepBatch(List<Sequence> seqs, List<OptModel.SeqStep> steps, boolean[] gives, int[] drafted,
    int[] firstRow, int rows, int tokens) {
  int size() {
    return seqs.size();
  }
}
