package io.github.optjava.engine;

import io.github.optjava.api.Choice;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.model.OptModel;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.List;
import java.util.function.LongSupplier;

/** Runs a beam-search request and turns its hypotheses into choices. */
final class BeamRunner {
  private BeamRunner() {}

  static List<Choice> run(OptModel model, KvCache cache, LongSupplier ids, int[] prompt, SamplingParams params,
      OptTokenizer tokenizer) {
    throw new UnsupportedOperationException("beam search is being written");
  }
}
