package io.github.optjava.checkpoint.hub;

import io.github.optjava.checkpoint.CheckpointException;

/**
 * The hub could not be asked at all: no network, a timeout, a server error (5xx), or an answer that
 * is not from a hub (a proxy's page). Unlike "not found" or "access denied", this is worth falling
 * back to a complete cached snapshot for, as huggingface_hub does.
 */
final class HubUnavailableException extends CheckpointException {
  private static final long serialVersionUID = 1L;

  HubUnavailableException(String message) {
    super(message);
  }

  HubUnavailableException(String message, Throwable cause) {
    super(message, cause);
  }
}
