package io.github.optjava.tokenizer;

import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;

/**
 * Finds special (and other added) tokens written literally in the text, such as {@code </s>}: Hugging
 * Face splits the text around them and gives each its own id instead of running it through BPE.
 * At a given position the longest token wins, as with Hugging Face's trie. Immutable.
 */
final class AddedTokenMatcher {

  private final String[] contents;
  private final int[] ids;
  private final boolean[] asciiFirstChar = new boolean[128];
  private final String otherFirstChars;

  /** @param tokens the token strings, each present in {@code vocab} */
  AddedTokenMatcher(List<String> tokens, Map<String, Integer> vocab) {
    contents = tokens.stream()
        .filter(t -> !t.isEmpty())
        .sorted(Comparator.comparingInt(String::length).reversed())
        .toArray(String[]::new);
    ids = Arrays.stream(contents).mapToInt(vocab::get).toArray();
    StringBuilder others = new StringBuilder();
    for (String token : contents) {
      char first = token.charAt(0);
      if (first < 128) {
        asciiFirstChar[first] = true;
      } else {
        others.append(first);
      }
    }
    otherFirstChars = others.toString();
  }

  /** The index of the token that starts at {@code text[i]}, or -1. */
  int matchAt(String text, int i) {
    char c = text.charAt(i);
    if (c < 128 ? !asciiFirstChar[c] : otherFirstChars.indexOf(c) < 0) {
      return -1; // the common case, decided by one character
    }
    for (int k = 0; k < contents.length; k++) {
      if (text.startsWith(contents[k], i)) {
        return k;
      }
    }
    return -1;
  }

  int id(int match) {
    return ids[match];
  }

  int length(int match) {
    return contents[match].length();
  }
}
