package io.github.optjava.checkpoint.hub;

import java.util.Optional;
import java.util.regex.Pattern;

/**
 * A Hugging Face model repository id, {@code namespace/name} (e.g. {@code facebook/opt-125m}).
 *
 * <p>Validation follows {@code huggingface_hub.utils.validate_repo_id}: letters, digits, {@code -},
 * {@code _} and {@code .}; each part starts and ends with a letter or digit (the Python regex uses
 * word boundaries); the name is at most 96 characters; no {@code --} or {@code ..}; no {@code .git}
 * suffix. Unlike huggingface_hub we require the namespace: a bare name such as {@code gpt2} is far
 * more likely to be a mistyped local directory, and every OPT checkpoint lives under an organisation.
 */
record RepoId(String namespace, String name) {

  /** Shown in error messages so users know what to type. */
  static final String EXAMPLE = "facebook/opt-125m";

  // The Python regex's \b around [\w\-.] means "first and last characters are word characters".
  private static final Pattern PART = Pattern.compile("[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?");
  private static final int MAX_NAME_LENGTH = 96;

  RepoId {
    if (!isValidPart(namespace, false) || !isValidPart(name, true)) {
      throw new IllegalArgumentException("invalid Hugging Face repo id: " + namespace + "/" + name);
    }
  }

  /** The id if {@code text} is a well-formed {@code namespace/name}, else empty. */
  static Optional<RepoId> parse(String text) {
    if (text == null) {
      return Optional.empty();
    }
    int slash = text.indexOf('/');
    if (slash < 0 || slash != text.lastIndexOf('/')) {
      return Optional.empty();
    }
    String namespace = text.substring(0, slash);
    String name = text.substring(slash + 1);
    if (!isValidPart(namespace, false) || !isValidPart(name, true)) {
      return Optional.empty();
    }
    return Optional.of(new RepoId(namespace, name));
  }

  /** The cache folder name huggingface_hub uses: {@code models--namespace--name}. */
  String cacheFolderName() {
    return "models--" + namespace + "--" + name;
  }

  @Override
  public String toString() {
    return namespace + "/" + name;
  }

  private static boolean isValidPart(String part, boolean isName) {
    if (part == null || part.contains("--") || part.contains("..")) {
      return false;
    }
    if (isName && (part.length() > MAX_NAME_LENGTH || part.endsWith(".git"))) {
      return false;
    }
    return PART.matcher(part).matches();
  }
}
