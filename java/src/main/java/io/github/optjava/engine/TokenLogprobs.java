package io.github.optjava.engine;

import io.github.optjava.api.TokenLogprob;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.ArrayList;
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
   * Echo / scoring: log P(prompt[i] | prompt[&lt;i]) from the prefill's raw logits ({@code prompt.length × vocab},
   * row i-1 predicts token i); the first token has no context, so its log-prob is null.
   */
  List<TokenLogprob> prompt(int[] prompt, float[] logits, int vocab) {
    List<TokenLogprob> out = new ArrayList<>(prompt.length);
    out.add(new TokenLogprob(prompt[0], text(prompt[0]), null, Map.of()));
    for (int i = 1; i < prompt.length; i++) {
      float[] row = Arrays.copyOfRange(logits, (i - 1) * vocab, i * vocab);
      out.add(of(prompt[i], row, LogProbs.logSumExp(row)));
    }
    return out;
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
