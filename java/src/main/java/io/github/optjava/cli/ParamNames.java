package io.github.optjava.cli;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@link io.github.optjava.api.SamplingParams}' messages name its Java properties ({@code topP}); the CLI says
 * {@code --top-p} and a JSON request {@code top_p}. These rewrite a message into the caller's names.
 */
final class ParamNames {
  /** The camel-case properties of SamplingParams (one-word ones such as temperature read the same everywhere). */
  private static final Pattern NAMES = Pattern.compile("\\b(maxTokens|topK|topP|minP|typicalP|numBeams|lengthPenalty"
      + "|earlyStopping|repetitionPenalty|presencePenalty|frequencyPenalty|noRepeatNgramSize|minTokens|logitBias"
      + "|badWordsIds)\\b");

  private ParamNames() {}

  /** {@code topP must be in (0, 1]} → {@code top_p must be in (0, 1]}. */
  static String json(String message) {
    return rewrite(message, "_", "");
  }

  /** {@code topP must be in (0, 1]} → {@code --top-p must be in (0, 1]}. */
  static String cli(String message) {
    return rewrite(message, "-", "--");
  }

  /** An IllegalArgumentException with the message rewritten by {@code names}, the original as its cause. */
  static IllegalArgumentException renamed(IllegalArgumentException e, java.util.function.UnaryOperator<String> names) {
    return new IllegalArgumentException(names.apply(e.getMessage()), e);
  }

  private static String rewrite(String message, String separator, String prefix) {
    if (message == null) {
      return null;
    }
    Matcher m = NAMES.matcher(message);
    StringBuilder out = new StringBuilder();
    while (m.find()) {
      String words = m.group(1).replaceAll("([a-z])([A-Z])", "$1" + separator + "$2").toLowerCase(java.util.Locale.ROOT);
      m.appendReplacement(out, Matcher.quoteReplacement(prefix + words));
    }
    m.appendTail(out);
    return out.toString();
  }
}
