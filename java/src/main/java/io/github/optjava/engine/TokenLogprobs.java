package io.github.optjava.engine;

import io.github.optjava.api.TokenLogprob;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Builds {@link TokenLogprob}s: a chosen token's log-prob with its top alternatives, and echoed prompts. */
final class TokenLogprobs {
  private final OptTokenizer tokenizer;
  private final int top;

  /** @param top how many alternatives to list per token (0: none) */
  TokenLogprobs(OptTokenizer tokenizer, int top) {
    this.tokenizer = tokenizer;
    this.top = top;
  }

  /** The entry of {@code token} chosen from {@code logits} (whose log-sum-exp is {@code lse}). */
  TokenLogprob of(int token, float[] logits, double lse) {
    return new TokenLogprob(token, text(token), LogProbs.logProb(logits, token, lse), alternatives(logits, lse));
  }

  /**
   * The entry of {@code token} picked where the logits are, with its log-prob and, when alternatives are listed, those
   * the model found: ids and log-probs at {@code from} in {@code ids} / {@code lps} (most likely first, -1 after the
   * last; the order of {@link LogProbs#topK}).
   */
  TokenLogprob chosen(int token, double logprob, int[] ids, double[] lps, int from) {
    if (top == 0) {
      return new TokenLogprob(token, text(token), logprob, Map.of());
    }
    if (ids == null) {
      throw new IllegalStateException("alternatives need the row of logits or the model's top tokens");
    }
    Map<String, Double> out = new LinkedHashMap<>();
    for (int i = 0; i < top && ids[from + i] >= 0; i++) {
      out.putIfAbsent(text(ids[from + i]), lps[from + i]); // two ids can decode to the same text: keep the likelier
    }
    return new TokenLogprob(token, text(token), logprob, out);
  }

  /** How many alternatives each entry lists (0: none; they need the rows or the model's top tokens). */
  int top() {
    return top;
  }

  /**
   * Echo / scoring: log P(prompt[i] | prompt[&lt;i]) from the prefill's raw logits ({@code prompt.length × vocab},
   * row i-1 predicts token i); the first token has no context, so its log-prob is null. The rows are independent
   * and each is a vocabulary of exponentials, so a long prompt's rows are scored on several threads (a 2,047-token
   * prompt is about 10⁸ of them: most of a GPU {@code score} call's time when done on one thread); the result does
   * not depend on the threads.
   */
  List<TokenLogprob> prompt(int[] prompt, float[] logits, int vocab) {
    if (top == 0) { // the scores alone: RowMath's row scorer
      return prompt(prompt, io.github.optjava.backend.RowMath.tokenLogprobs(logits, vocab,
          Arrays.copyOfRange(prompt, 1, prompt.length)), null, null, 0);
    }
    TokenLogprob[] out = new TokenLogprob[prompt.length];
    out[0] = new TokenLogprob(prompt[0], text(prompt[0]), null, Map.of());
    java.util.stream.IntStream rows = java.util.stream.IntStream.range(1, prompt.length);
    if (prompt.length > PARALLEL_ROWS) {
      rows = rows.parallel();
    }
    rows.forEach(i -> out[i] = promptRow(prompt[i], logits, (i - 1) * vocab, vocab));
    return Arrays.asList(out);
  }

  /** The prompt's tokens without scores: an echo prompt never read (its request was cancelled before its turn). */
  List<TokenLogprob> unscored(int[] prompt) {
    List<TokenLogprob> out = new java.util.ArrayList<>(prompt.length);
    for (int id : prompt) {
      out.add(new TokenLogprob(id, text(id), null, Map.of()));
    }
    return out;
  }

  /**
   * Echo / scoring from scores the model computed ({@code scores[i - 1]} = log P(prompt[i] | prompt[&lt;i])), as
   * {@link #prompt(int[], float[], int)} gives them, with the alternatives the model listed ({@code k} per row: row
   * i - 1's at {@code ids[(i - 1) * k ..]} / {@code lps[(i - 1) * k ..]}, -1 after the last; at least {@link #top}
   * of them; {@code ids} null and {@code k} 0 when this lists none).
   */
  List<TokenLogprob> prompt(int[] prompt, double[] scores, int[] ids, double[] lps, int k) {
    if (scores.length != prompt.length - 1 || (top != 0 && (ids == null || k < top
        || ids.length < scores.length * k || lps.length < scores.length * k))) {
      throw new IllegalArgumentException("prompt scores: " + scores.length + " for a prompt of " + prompt.length
          + " tokens" + (top != 0 ? ", " + k + " alternatives listed per row for " + top + " asked" : ""));
    }
    TokenLogprob[] out = new TokenLogprob[prompt.length];
    out[0] = new TokenLogprob(prompt[0], text(prompt[0]), null, Map.of());
    for (int i = 1; i < prompt.length; i++) {
      out[i] = chosen(prompt[i], scores[i - 1], ids, lps, (i - 1) * k);
    }
    return Arrays.asList(out);
  }

  /** Prompts longer than this are scored on several threads. */
  private static final int PARALLEL_ROWS = 16;

  /** The entry of {@code token}, with its alternatives, scored by the row of {@code logits} at {@code from}. */
  private TokenLogprob promptRow(int token, float[] logits, int from, int vocab) {
    double lse = io.github.optjava.backend.RowMath.logSumExp(logits, from, from + vocab);
    float[] row = Arrays.copyOfRange(logits, from, from + vocab);
    return new TokenLogprob(token, text(token), LogProbs.logProb(row, token, lse), alternatives(row, lse));
  }

  private String text(int token) {
    return tokenizer.decode(new int[] {token}, false, false);
  }

  private Map<String, Double> alternatives(float[] logits, double lse) {
    if (top == 0) {
      return Map.of();
    }
    int[] ids = new int[top];
    double[] lps = new double[top];
    int k = LogProbs.topK(logits, lse, top, ids, lps);
    Map<String, Double> out = new LinkedHashMap<>();
    for (int i = 0; i < k; i++) {
      out.putIfAbsent(text(ids[i]), lps[i]); // two ids can decode to the same text: keep the likelier
    }
    return out;
  }
}
