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
      o.put("score", ch.score());
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
      tokenLogprobs.add(t.logprob());
      ObjectNode alternatives = top.addObject();
      for (Map.Entry<String, Double> e : t.top().entrySet()) {
        alternatives.put(e.getKey(), e.getValue());
      }
    }
    return o;
  }
}
