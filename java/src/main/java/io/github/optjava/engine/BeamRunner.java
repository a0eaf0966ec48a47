package io.github.optjava.engine;

import io.github.optjava.api.Choice;
import io.github.optjava.api.FinishReason;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.api.TokenLogprob;
import io.github.optjava.model.CausalLm;
import io.github.optjava.model.OptModel;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.ArrayList;
import java.util.List;
import java.util.function.LongSupplier;

/**
 * Runs a beam-search request (Hugging Face's algorithm, {@link BeamSearch}) and turns its best
 * hypotheses into choices: EOS is dropped from text and token ids, stop strings cut the text as for
 * sampling, and the score is HF's length-normalised beam score. When log-probs are asked for, each
 * returned beam is scored once more as a whole (one prefill): the log-probs are the model's raw ones,
 * token by token given its prefix.
 */
final class BeamRunner {
  private BeamRunner() {}

  static List<Choice> run(CausalLm model, KvCache cache, LongSupplier ids, int[] prompt, SamplingParams params,
      OptTokenizer tokenizer) {
    int eos = model.config().eosTokenId();
    List<BeamSearch.Hypothesis> best = BeamSearch.run(model, cache, ids, prompt,
        BeamSearch.Config.of(params, eos, model.config().padTokenId()),
        LogitsPipeline.forParams(params, eos).processors());
    StopMatcher stops = new StopMatcher(params.stop());
    List<Choice> choices = new ArrayList<>();
    for (int i = 0; i < best.size(); i++) {
      BeamSearch.Hypothesis h = best.get(i);
      int[] tokens = h.tokens();
      int n = h.finished() && tokens.length > 0 && tokens[tokens.length - 1] == eos ? tokens.length - 1 : tokens.length;
      FinishReason reason = n < tokens.length ? FinishReason.EOS : FinishReason.LENGTH;
      String text = tokenizer.decode(java.util.Arrays.copyOf(tokens, n), true, false);
      int at = stops.isEmpty() ? -1 : stops.find(text, 0);
      if (at >= 0) {
        text = text.substring(0, at);
        reason = FinishReason.STOP;
        n = tokensThroughStop(tokens, n, stops, tokenizer); // the ids (and log-probs) end where sampling's would
      }
      List<Integer> tokenIds = new ArrayList<>();
      if (params.echo()) {
        for (int id : prompt) {
          tokenIds.add(id);
        }
        text = tokenizer.decode(prompt, true, false) + text;
      }
      for (int t = 0; t < n; t++) {
        tokenIds.add(tokens[t]);
      }
      List<TokenLogprob> lps = List.of();
      if (params.echo() || params.logprobs().isPresent()) {
        int[] whole = java.util.Arrays.copyOf(prompt, prompt.length + n);
        System.arraycopy(tokens, 0, whole, prompt.length, n);
        lps = score(model, cache, ids, whole, params, tokenizer);
        lps = params.echo() ? lps : lps.subList(prompt.length, lps.size());
      }
      choices.add(new Choice(i, text, List.copyOf(tokenIds), reason, List.copyOf(lps), h.score()));
    }
    return choices;
  }

  /**
   * How many of the first {@code n} tokens it takes for their text to hold a stop string: the ids end with the token
   * that completed it, as a sampled or greedy choice's do (the search itself ran on, as Hugging Face's does: a beam
   * is ranked by its whole hypothesis, so the choice's score is that of the hypothesis as searched).
   */
  private static int tokensThroughStop(int[] tokens, int n, StopMatcher stops, OptTokenizer tokenizer) {
    for (int k = 1; k < n; k++) {
      if (stops.find(tokenizer.decode(java.util.Arrays.copyOf(tokens, k), true, false), 0) >= 0) {
        return k;
      }
    }
    return n;
  }

  /** Log-probs of every token of {@code tokens} given its prefix (the first: null), one prefill. */
  private static List<TokenLogprob> score(CausalLm model, KvCache cache, LongSupplier ids, int[] prompt,
      SamplingParams params, OptTokenizer tokenizer) {
    long seq = ids.getAsLong();
    try {
      float[] all = model.forward(List.of(new OptModel.SeqStep(seq, prompt, true)), cache)[0];
      return new TokenLogprobs(tokenizer, params.logprobs().orElse(0)).prompt(prompt, all, model.config().vocabSize());
    } finally {
      cache.release(seq);
    }
  }
}
