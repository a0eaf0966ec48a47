package io.github.optjava.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.github.optjava.api.Choice;
import io.github.optjava.api.Completion;
import io.github.optjava.api.FinishReason;
import io.github.optjava.api.TokenLogprob;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Numbers JSON cannot hold (NaN from a model that produced invalid numbers, infinities) are written as null, not as
 * Jackson's strings "NaN" / "-Infinity". (Found by session 26's new-user review: greedy decoding of a checkpoint with
 * NaN weights goes on, as torch's argmax does, and its log-probs and score came out as strings.)
 */
class CompletionJsonTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  @Test
  void nonFiniteNumbersAreNull() throws Exception {
    Choice c = new Choice(0, "ab", List.of(5, 6), FinishReason.LENGTH, List.of(
        new TokenLogprob(5, "a", Double.NaN, Map.of("a", Double.NaN)),
        new TokenLogprob(6, "b", -0.5, Map.of("b", Double.NEGATIVE_INFINITY))), Double.NaN);
    JsonNode out = JSON.readTree(JSON.writeValueAsString(
        CompletionJson.of(JSON, new Completion(List.of(2), List.of(c), 2, 1, 2), true)));
    JsonNode choice = out.get("choices").get(0);
    assertEquals("null", choice.get("score").toString());
    assertEquals("[null,-0.5]", choice.get("logprobs").get("token_logprobs").toString());
    assertEquals("[{\"a\":null},{\"b\":null}]", choice.get("logprobs").get("top_logprobs").toString());
  }
}
