package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.github.optjava.api.SamplingParams;
import java.io.IOException;
import java.io.InputStream;
import org.junit.jupiter.api.Test;

/**
 * Min-p and typical sampling against a transliteration of Hugging Face's warpers ({@code scripts/dev/warper_cases.py}:
 * 40 random rows, -inf entries among them, cuts at least 1e-4 away from any token) and a hand-worked row each.
 */
class MinPTypicalProcessorTest {

  @Test
  void matchesHfOnRandomRows() throws IOException {
    JsonNode doc;
    try (InputStream in = getClass().getResourceAsStream("/warpers/warper_cases.json")) {
      doc = new ObjectMapper().readTree(in);
    }
    int removed = 0;
    for (JsonNode c : doc.get("cases")) {
      float[] logits = floats(c.get("logits"));
      float[] expected = floats(c.get("expected"));
      double p = c.get("p").asDouble();
      LogitsProcessor warper = c.get("kind").asText().equals("min_p") ? new MinPProcessor(p) : new TypicalProcessor(p);
      warper.process(new int[0], 0, 0, logits);
      assertArrayEquals(expected, logits, c.get("kind").asText() + " " + p + " on " + c.get("logits"));
      for (int i = 0; i < logits.length; i++) {
        removed += c.get("logits").get(i).isNull() || !c.get("expected").get(i).isNull() ? 0 : 1;
      }
    }
    assertTrue(removed > 1000, "the cases remove tokens: " + removed);
  }

  @Test
  void minPKeepsTokensAboveAFractionOfTheTop() {
    // softmax of (2, 1, 0, -1): 0.644, 0.237, 0.087, 0.032; 0.3 x 0.644 = 0.193
    float[] row = {2, 1, 0, -1};
    new MinPProcessor(0.3).process(new int[0], 0, 0, row);
    assertArrayEquals(new float[] {2, 1, Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY}, row);
    float[] one = {Float.NEGATIVE_INFINITY, 5, Float.NEGATIVE_INFINITY};
    new MinPProcessor(1.0).process(new int[0], 0, 0, one);
    assertArrayEquals(new float[] {Float.NEGATIVE_INFINITY, 5, Float.NEGATIVE_INFINITY}, one, "the top one stays");
  }

  @Test
  void typicalKeepsTheTokensClosestToTheEntropy() {
    // p = (0.5, 0.25, 0.25): H = 1.0397; |-log p - H| = 0.347, 0.347, 0.347: all equally typical, all kept
    float[] flatish = {(float) Math.log(2), 0, 0};
    new TypicalProcessor(0.5).process(new int[0], 0, 0, flatish);
    assertEquals(3, count(flatish));
    // p = (0.248, 0.150 x 5): H = 1.768; the top token's surprise 1.394 is 0.374 from it, the others' 1.897 only
    // 0.129: they come first and four of them reach the mass 0.5, so the top token goes, the five stay
    float[] row = {2, 1.5f, 1.5f, 1.5f, 1.5f, 1.5f};
    new TypicalProcessor(0.5).process(new int[0], 0, 0, row);
    assertArrayEquals(new float[] {Float.NEGATIVE_INFINITY, 1.5f, 1.5f, 1.5f, 1.5f, 1.5f}, row,
        "the most likely token is not typical here");
    // a peaked row: the top token (p 0.907, surprise 0.097) is the closest to the entropy (0.382) and alone holds 0.2
    float[] peaked = {6, 3, 3, 0};
    new TypicalProcessor(0.2).process(new int[0], 0, 0, peaked);
    assertArrayEquals(new float[] {6, Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY},
        peaked);
  }

  @Test
  void parametersAreCheckedAndRoutedToTheHostPath() {
    assertThrows(IllegalArgumentException.class, () -> SamplingParams.builder().minP(1.5).build());
    assertThrows(IllegalArgumentException.class, () -> SamplingParams.builder().typicalP(0).build());
    assertThrows(IllegalArgumentException.class, () -> SamplingParams.greedy().toBuilder().minP(0.1).build());
    assertThrows(IllegalArgumentException.class,
        () -> SamplingParams.builder().temperature(0).numBeams(2).typicalP(0.5).build());
    SamplingParams p = SamplingParams.builder().temperature(0.7).topK(50).minP(0.05).typicalP(0.9).build();
    assertEquals("LogitsPipeline[Temperature(0.7), TopK(50), MinP(0.05), Typical(0.9)]",
        LogitsPipeline.forParams(p, 2).toString());
  }

  private static int count(float[] row) {
    int n = 0;
    for (float v : row) {
      n += v > Float.NEGATIVE_INFINITY ? 1 : 0;
    }
    return n;
  }

  private static float[] floats(JsonNode array) {
    float[] out = new float[array.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = array.get(i).isNull() ? Float.NEGATIVE_INFINITY : (float) array.get(i).asDouble();
    }
    return out;
  }
}
