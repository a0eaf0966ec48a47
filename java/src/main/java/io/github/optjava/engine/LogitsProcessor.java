package io.github.optjava.engine;

/**
 * Changes the next-token scores of one sequence in place, as a Hugging Face {@code LogitsProcessor} or
 * {@code LogitsWarper} does for one row of its batch.
 *
 * <p>Implementations do not allocate on this path (it runs once per sequence per decoding step over
 * the whole vocabulary). Some keep scratch buffers, so an instance must not be used by two threads at
 * once; build one {@link LogitsPipeline} per sequence.
 */
public interface LogitsProcessor {

  /**
   * Processes the scores for the next token of one sequence.
   *
   * @param inputIds     HF's {@code input_ids} for this sequence in {@code [0, inputLength)}: BOS, the
   *                     prompt, then the tokens generated so far (entries past {@code inputLength} are
   *                     ignored, so a growing buffer can be passed as is)
   * @param inputLength  number of valid entries of {@code inputIds}
   * @param promptLength how many of them are the prompt, BOS included (HF's {@code input_ids_seq_length});
   *                     the tokens at {@code [promptLength, inputLength)} are the generated ones
   * @param logits       scores over the vocabulary, changed in place; -inf marks a banned token
   */
  void process(int[] inputIds, int inputLength, int promptLength, float[] logits);
}
