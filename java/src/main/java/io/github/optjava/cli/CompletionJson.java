package io.github.optjava.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.optjava.api.Choice;
import io.github.optjava.api.Completion;
import io.github.optjava.api.TokenLogprob;
import java.util.List;
import java.util.Map;

/** The JSON shape of a completion in {@code opt batch} output (OpenAI's completion choice, plus score). */
final class CompletionJson {
  private CompletionJson() {}

  /**
   * {@code withLogprobs}: whether the request gave {@code "logprobs"} (OpenAI: else {@code "logprobs": null}, even
   * with echo). With 0 each token's {@code top_logprobs} entry is an empty object, the first prompt token's null.
   */
  static ObjectNode of(ObjectMapper json, Completion c, boolean withLogprobs) {
    ObjectNode root = json.createObjectNode();
    ArrayNode prompt = root.putArray("prompt_token_ids");
    c.promptTokenIds().forEach(prompt::add);
    ArrayNode choices = root.putArray("choices");
    for (Choice ch : c.choices()) {
      ObjectNode o = choices.addObject();
      o.put("text", ch.text());
      ArrayNode ids = o.putArray("token_ids");
      ch.tokenIds().forEach(ids::add);
      o.put("finish_reason", ch.finishReason().jsonName());
      if (withLogprobs) {
        o.set("logprobs", logprobs(json, ch.logprobs()));
      } else {
        o.putNull("logprobs");
      }
      put(o, "score", ch.score());
    }
    return root;
  }

  private static ObjectNode logprobs(ObjectMapper json, List<TokenLogprob> lps) {
    ObjectNode o = json.createObjectNode();
    ArrayNode tokenLogprobs = o.putArray("token_logprobs");
    ArrayNode top = o.putArray("top_logprobs");
    for (TokenLogprob t : lps) {
      if (t.logprob() == null) {
        tokenLogprobs.addNull();
        top.addNull();
        continue;
      }
      add(tokenLogprobs, t.logprob());
      ObjectNode alternatives = top.addObject();
      for (Map.Entry<String, Double> e : t.top().entrySet()) {
        put(alternatives, e.getKey(), e.getValue());
      }
    }
    return o;
  }

  /**
   * {@code v}, or null where it is not finite: JSON has no number for NaN (a model that produced invalid numbers,
   * whose greedy picks go on as torch's argmax does) or infinities, and Jackson would write the strings "NaN" and
   * "-Infinity", which a reader takes for text.
   */
  static void put(ObjectNode o, String key, double v) {
    if (Double.isFinite(v)) {
      o.put(key, v);
    } else {
      o.putNull(key);
    }
  }

  /** As {@link #put}, appended to an array. */
  static void add(ArrayNode a, double v) {
    if (Double.isFinite(v)) {
      a.add(v);
    } else {
      a.addNull();
    }
  }
}
