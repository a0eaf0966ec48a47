package io.github.optjava.model;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.optjava.checkpoint.CheckpointException;

/**
 * Typed access to the fields of a {@code config.json} object, with messages that name the file and field.
 * JSON {@code null} counts as a wrong type rather than as absent: a config that writes
 * {@code "pad_token_id": null} means something other than the default.
 */
final class ConfigFields {
  private final JsonNode json;
  private final String source;

  ConfigFields(JsonNode json, String source) {
    this.json = json;
    this.source = source;
  }

  int requiredInt(String field) {
    JsonNode v = json.get(field);
    if (v == null) {
      throw new CheckpointException(source + ": required field '" + field + "' is missing");
    }
    return toInt(field, v);
  }

  int optionalInt(String field, int fallback) {
    JsonNode v = json.get(field);
    return v == null ? fallback : toInt(field, v);
  }

  boolean bool(String field, boolean fallback) {
    JsonNode v = json.get(field);
    if (v == null) {
      return fallback;
    }
    if (!v.isBoolean()) {
      throw wrongType(field, "true or false", v);
    }
    return v.booleanValue();
  }

  /** A string field; {@code fallback} (possibly null) if absent. */
  String string(String field, String fallback) {
    JsonNode v = json.get(field);
    if (v == null) {
      return fallback;
    }
    if (!v.isTextual()) {
      throw wrongType(field, "a string", v);
    }
    return v.textValue();
  }

  private int toInt(String field, JsonNode v) {
    if (!v.isIntegralNumber() || !v.canConvertToInt()) {
      throw wrongType(field, "an integer", v);
    }
    return v.intValue();
  }

  private CheckpointException wrongType(String field, String expected, JsonNode found) {
    return new CheckpointException(source + ": field '" + field + "' must be " + expected + ", found "
        + io.github.optjava.checkpoint.Untrusted.json(found)); // (cut: a 5 MB value must not become the message)
  }
}
