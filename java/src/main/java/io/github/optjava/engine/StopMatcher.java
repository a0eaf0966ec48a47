package io.github.optjava.engine;

import java.util.List;

/**
 * Finds stop strings in generated text. A stop string can span several tokens, so matching is on the
 * decoded text, and streamed text is held back while its end could still be the start of a stop string.
 */
final class StopMatcher {
  private final List<String> stops;
  private final int longest;

  StopMatcher(List<String> stops) {
    this.stops = List.copyOf(stops);
    this.longest = stops.stream().mapToInt(String::length).max().orElse(0);
  }

  boolean isEmpty() {
    return stops.isEmpty();
  }

  /**
   * The earliest index at which a stop string starts in {@code text}, or -1. Only matches that end after
   * {@code newFrom} are looked for (earlier text was already checked).
   */
  int find(CharSequence text, int newFrom) {
    int from = Math.max(0, newFrom - longest + 1);
    String s = text.toString();
    int best = -1;
    for (String stop : stops) {
      int i = s.indexOf(stop, from);
      if (i >= 0 && (best < 0 || i < best)) {
        best = i;
      }
    }
    return best;
  }

  /** How much of {@code text} can be shown: all of it but a suffix that is a proper prefix of a stop string. */
  int safeLength(CharSequence text) {
    int n = text.length();
    for (int k = Math.min(longest - 1, n); k > 0; k--) {
      CharSequence suffix = text.subSequence(n - k, n);
      for (String stop : stops) {
        if (stop.length() > k && stop.startsWith(suffix.toString())) {
          return n - k;
        }
      }
    }
    return n;
  }
}
