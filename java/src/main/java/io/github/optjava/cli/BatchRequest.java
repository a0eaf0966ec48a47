package io.github.optjava.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.checkpoint.Untrusted;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * One request line of {@code opt batch}: OpenAI / metaseq field names, mapped to {@link SamplingParams}.
 * Every problem is an IllegalArgumentException naming the field. Keys and values from the line are shown escaped
 * and cut ({@link Untrusted}): a line can be megabytes long.
 */
record BatchRequest(String prompt, SamplingParams params) {

  static final Set<String> FIELDS = Set.of("prompt", "max_tokens", "temperature", "top_k", "top_p", "min_p",
      "typical_p", "logit_bias", "bad_words_ids", "seed", "n", "num_beams", "length_penalty", "early_stopping", "repetition_penalty", "presence_penalty",
      "frequency_penalty", "no_repeat_ngram_size", "min_tokens", "stop", "logprobs", "echo");

  static BatchRequest parse(JsonNode node) {
    if (node == null || !node.isObject()) {
      throw new IllegalArgumentException("expected a JSON object such as {\"prompt\": \"...\"}");
    }
    for (Map.Entry<String, JsonNode> field : node.properties()) {
      String f = field.getKey();
      if (!FIELDS.contains(f)) {
        throw new IllegalArgumentException("unknown field " + Untrusted.jsonString(f) + "; the fields are "
            + new java.util.TreeSet<>(FIELDS));
      }
    }
    JsonNode prompt = node.get("prompt");
    if (prompt == null || !prompt.isTextual()) {
      throw new IllegalArgumentException(prompt == null ? "missing string field \"prompt\""
          : "field \"prompt\" must be a string, not " + JsonLines.kind(prompt) + " (one prompt per line)");
    }
    SamplingParams.Builder b = SamplingParams.builder();
    if (has(node, "max_tokens")) b.maxTokens(integer(node, "max_tokens"));
    if (has(node, "temperature")) b.temperature(number(node, "temperature"));
    if (has(node, "top_k")) b.topK(integer(node, "top_k"));
    if (has(node, "top_p")) b.topP(number(node, "top_p"));
    if (has(node, "min_p")) b.minP(number(node, "min_p"));
    if (has(node, "typical_p")) b.typicalP(number(node, "typical_p"));
    if (has(node, "seed")) b.seed(longValue(node, "seed"));
    if (has(node, "n")) b.n(integer(node, "n"));
    if (has(node, "num_beams")) b.numBeams(integer(node, "num_beams"));
    if (has(node, "length_penalty")) b.lengthPenalty(number(node, "length_penalty"));
    if (has(node, "early_stopping")) b.earlyStopping(bool(node, "early_stopping"));
    if (has(node, "repetition_penalty")) b.repetitionPenalty(number(node, "repetition_penalty"));
    if (has(node, "presence_penalty")) b.presencePenalty(number(node, "presence_penalty"));
    if (has(node, "frequency_penalty")) b.frequencyPenalty(number(node, "frequency_penalty"));
    if (has(node, "no_repeat_ngram_size")) b.noRepeatNgramSize(integer(node, "no_repeat_ngram_size"));
    if (has(node, "min_tokens")) b.minTokens(integer(node, "min_tokens"));
    if (has(node, "stop")) b.stop(strings(node.get("stop")));
    if (has(node, "logit_bias")) b.logitBias(logitBias(node.get("logit_bias")));
    if (has(node, "bad_words_ids")) b.badWordsIds(badWords(node.get("bad_words_ids")));
    if (has(node, "logprobs")) b.logprobs(integer(node, "logprobs"));
    if (has(node, "echo")) b.echo(bool(node, "echo"));
    try {
      return new BatchRequest(prompt.asText(), b.build());
    } catch (IllegalArgumentException e) {
      throw ParamNames.renamed(e, ParamNames::json); // SamplingParams says topP, this request top_p
    }
  }

  private static boolean has(JsonNode n, String f) {
    return n.has(f) && !n.get(f).isNull();
  }

  private static int integer(JsonNode n, String f) {
    JsonNode v = n.get(f);
    if (!v.isIntegralNumber() || !v.canConvertToInt()) {
      throw new IllegalArgumentException("\"" + f + "\" must be an integer, got " + Untrusted.json(v));
    }
    return v.intValue();
  }

  private static long longValue(JsonNode n, String f) {
    JsonNode v = n.get(f);
    if (!v.isIntegralNumber() || !v.canConvertToLong()) {
      throw new IllegalArgumentException("\"" + f + "\" must be an integer, got " + Untrusted.json(v));
    }
    return v.longValue();
  }

  private static double number(JsonNode n, String f) {
    JsonNode v = n.get(f);
    if (!v.isNumber()) {
      throw new IllegalArgumentException("\"" + f + "\" must be a number, got " + Untrusted.json(v));
    }
    return v.doubleValue();
  }

  private static boolean bool(JsonNode n, String f) {
    JsonNode v = n.get(f);
    if (!v.isBoolean()) {
      throw new IllegalArgumentException("\"" + f + "\" must be true or false, got " + Untrusted.json(v));
    }
    return v.booleanValue();
  }

  /** OpenAI's form: an object from token ids (as strings) to numbers, {@code {"50256": -100}}. */
  private static java.util.Map<Integer, Double> logitBias(JsonNode v) {
    if (!v.isObject()) {
      throw new IllegalArgumentException("\"logit_bias\" must be an object of token id to number, got "
          + Untrusted.json(v));
    }
    java.util.Map<Integer, Double> out = new java.util.HashMap<>();
    for (java.util.Iterator<java.util.Map.Entry<String, JsonNode>> it = v.fields(); it.hasNext(); ) {
      java.util.Map.Entry<String, JsonNode> e = it.next();
      int token;
      try {
        token = Integer.parseInt(e.getKey());
      } catch (NumberFormatException x) {
        throw new IllegalArgumentException("\"logit_bias\" keys must be token ids, got "
            + Untrusted.jsonString(e.getKey()));
      }
      if (!e.getValue().isNumber()) {
        throw new IllegalArgumentException("\"logit_bias\" values must be numbers, got "
            + Untrusted.json(e.getValue()));
      }
      out.put(token, e.getValue().doubleValue());
    }
    return out;
  }

  /** HF's form: a list of lists of token ids, {@code [[1, 2], [3]]}. */
  private static List<List<Integer>> badWords(JsonNode v) {
    String form = "\"bad_words_ids\" must be a list of lists of token ids, got ";
    if (!v.isArray()) {
      throw new IllegalArgumentException(form + Untrusted.json(v));
    }
    List<List<Integer>> out = new ArrayList<>();
    for (JsonNode word : v) {
      if (!word.isArray()) {
        throw new IllegalArgumentException(form + Untrusted.json(v));
      }
      List<Integer> ids = new ArrayList<>();
      for (JsonNode id : word) {
        if (!id.isIntegralNumber() || !id.canConvertToInt()) {
          throw new IllegalArgumentException(form + Untrusted.json(v));
        }
        ids.add(id.intValue());
      }
      out.add(ids);
    }
    return out;
  }

  /** A string or a list of strings (OpenAI accepts both). */
  private static List<String> strings(JsonNode v) {
    List<String> out = new ArrayList<>();
    if (v.isTextual()) {
      out.add(v.asText());
    } else if (v.isArray()) {
      for (JsonNode s : v) {
        if (!s.isTextual()) {
          throw new IllegalArgumentException("\"stop\" must be a string or a list of strings, got "
              + Untrusted.json(v));
        }
        out.add(s.asText());
      }
    } else {
      throw new IllegalArgumentException("\"stop\" must be a string or a list of strings, got " + Untrusted.json(v));
    }
    return out;
  }
}
