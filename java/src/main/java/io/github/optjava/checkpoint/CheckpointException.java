package io.github.optjava.checkpoint;

/**
 * A checkpoint (config, weights, tokenizer files, or their download) is missing, malformed or
 * inconsistent. The message says which file, what is wrong and what to do about it.
 */
public class CheckpointException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public CheckpointException(String message) {
    super(message);
  }

  public CheckpointException(String message, Throwable cause) {
    super(message, cause);
  }
}
