package io.github.optjava.api;

/** Why a completion ended. */
public enum FinishReason {
  /** The model produced the end-of-sequence token ({@code </s>}, id 2). */
  EOS,
  /** {@code maxTokens} new tokens were generated. */
  LENGTH,
  /** A stop string appeared in the text (it is not part of the returned text). */
  STOP,
  /** The caller cancelled the stream. */
  CANCELLED;

  /** The name used in JSON output: {@code eos}, {@code length}, {@code stop}, {@code cancelled}. */
  public String jsonName() {
    return name().toLowerCase(java.util.Locale.ROOT);
  }
}
