package io.github.optjava.cli;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@link io.github.optjava.api.SamplingParams}' messages name its Java properties ({@code topP}); the CLI says
 * {@code --top-p} and a JSON request {@code top_p}. These rewrite a message into the caller's names. The engine's
 * own messages name a request's fields as JSON does ({@code max_tokens}) and the generator's options as
 * {@link io.github.optjava.api.GeneratorOptions} does ({@code kvCacheTokens}): on the command line both become options.
 */
final class ParamNames {
  /** The camel-case properties of SamplingParams (one-word ones such as temperature read the same everywhere). */
  private static final Pattern NAMES = word("(maxTokens|topK|topP|minP|typicalP|numBeams|lengthPenalty"
      + "|earlyStopping|repetitionPenalty|presencePenalty|frequencyPenalty|noRepeatNgramSize|minTokens|logitBias"
      + "|badWordsIds)");

  /** GeneratorOptions' camel-case properties that are command-line options of every command that runs a model. */
  private static final Pattern OPTIONS = word("(kvCacheTokens|kvBlockSize|maxBatchSize|maxStepTokens"
      + "|tensorParallel|pipelineParallel|promptLookup)");

  /** The JSON names of SamplingParams' camel-case properties, as the engine's messages write them. */
  private static final Pattern JSON_NAMES = word("(max_tokens|top_k|top_p|min_p|typical_p|num_beams"
      + "|length_penalty|early_stopping|repetition_penalty|presence_penalty|frequency_penalty|no_repeat_ngram_size"
      + "|min_tokens|logit_bias|bad_words_ids)");

  /** Options whose names are not their property's in kebab case. */
  private static final java.util.Map<String, String> CLI_EXCEPTIONS = java.util.Map.of(
      "--bad-words-ids", "--bad-word-ids", "--max-batch-size", "--max-batch");

  private ParamNames() {}

  /**
   * {@code names} as a word of a sentence: after the start, a space or "(", before the end, a space, one of "),:;=["
   * or a full stop that ends a sentence. Never inside a path or a file name a message quotes
   * ({@code /data/max_tokens/config.json}), which a plain word boundary would rewrite.
   */
  private static Pattern word(String names) {
    return Pattern.compile("(?<![^\\s(])" + names + "(?=$|[\\s),:;=\\[]|\\.(?:\\s|$))");
  }

  /** {@code topP must be in (0, 1]} → {@code top_p must be in (0, 1]}; {@code kvCacheTokens} → {@code --kv-cache-tokens}. */
  static String json(String message) {
    return renameOptions(rewrite(rewrite(message, NAMES, "_", ""), OPTIONS, "-", "--"));
  }

  /**
   * {@code topP must be in (0, 1]} → {@code --top-p must be in (0, 1]}; {@code max_tokens} → {@code --max-tokens},
   * {@code maxBatchSize} → {@code --max-batch}: for a command-line error.
   */
  static String cli(String message) {
    return renameOptions(rewrite(rewrite(rewrite(message, NAMES, "-", "--"), OPTIONS, "-", "--"), JSON_NAMES, "-",
        "--"));
  }

  private static String renameOptions(String kebab) {
    if (kebab == null) {
      return null;
    }
    for (java.util.Map.Entry<String, String> e : CLI_EXCEPTIONS.entrySet()) {
      kebab = kebab.replace(e.getKey(), e.getValue());
    }
    return kebab;
  }

  /** An IllegalArgumentException with the message rewritten by {@code names}, the original as its cause. */
  static IllegalArgumentException renamed(IllegalArgumentException e, java.util.function.UnaryOperator<String> names) {
    return new IllegalArgumentException(names.apply(e.getMessage()), e);
  }

  private static String rewrite(String message, Pattern names, String separator, String prefix) {
    if (message == null) {
      return null;
    }
    Matcher m = names.matcher(message);
    StringBuilder out = new StringBuilder();
    while (m.find()) {
      String words = m.group(1).replaceAll("([a-z])([A-Z])", "$1" + separator + "$2").replace("_", separator)
          .toLowerCase(java.util.Locale.ROOT);
      m.appendReplacement(out, Matcher.quoteReplacement(prefix + words));
    }
    m.appendTail(out);
    return out.toString();
  }
}
