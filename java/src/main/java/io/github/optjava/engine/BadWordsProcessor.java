package io.github.optjava.engine;

import io.github.optjava.backend.LogitEdits;
import java.util.ArrayList;
import java.util.List;

/**
 * Hugging Face's {@code NoBadWordsLogitsProcessor} ({@code bad_words_ids}): token sequences that are never generated.
 * A one-token sequence is banned outright; a longer one bans its last token whenever the input ids (prompt included)
 * end with the rest of it. A bad word that is the EOS token alone is dropped, as HF drops it (EOS stays possible).
 */
public final class BadWordsProcessor implements SparseLogitsProcessor {
  private final int[] single;      // banned outright
  private final List<int[]> longer; // banned as their last token after the rest

  /** @param badWords non-empty token sequences (ids within the vocabulary: the engine checks them) */
  public BadWordsProcessor(List<List<Integer>> badWords, int eosTokenId) {
    List<Integer> one = new ArrayList<>();
    List<int[]> more = new ArrayList<>();
    for (List<Integer> word : badWords) {
      if (word.size() == 1) {
        if (word.get(0) != eosTokenId) {
          one.add(word.get(0));
        }
      } else {
        more.add(word.stream().mapToInt(Integer::intValue).toArray());
      }
    }
    single = one.stream().mapToInt(Integer::intValue).toArray();
    longer = List.copyOf(more);
  }

  @Override
  public int stage() {
    return 3;
  }

  @Override
  public void edits(int[] inputIds, int inputLength, int promptLength, LogitEdits.Builder out) {
    for (int token : single) {
      out.ban(token);
    }
    for (int[] word : longer) {
      int prefix = word.length - 1;
      if (word.length <= inputLength
          && java.util.Arrays.equals(inputIds, inputLength - prefix, inputLength, word, 0, prefix)) {
        out.ban(word[prefix]);
      }
    }
  }

  @Override
  public void process(int[] inputIds, int inputLength, int promptLength, float[] logits) {
    for (int token : single) {
      logits[token] = Float.NEGATIVE_INFINITY;
    }
    for (int[] word : longer) {
      int prefix = word.length - 1;
      if (word.length > inputLength) {
        continue; // longer than the context: HF ignores it
      }
      if (java.util.Arrays.equals(inputIds, inputLength - prefix, inputLength, word, 0, prefix)) {
        logits[word[prefix]] = Float.NEGATIVE_INFINITY;
      }
    }
  }

  @Override
  public String toString() {
    return "BadWords(" + (single.length + longer.size()) + ")";
  }
}
