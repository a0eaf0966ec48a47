package io.github.optjava.cli;

import static io.github.optjava.cli.CliTest.cli;
import static io.github.optjava.cli.CliTest.fixture;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** generate / batch / score on the pre-LN fixture model; expected tokens are Hugging Face's. */
class CliGenerationTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  // HF greedy for this prompt (reference.json, prompt "english")
  private static final String PROMPT = "Our team won the championship last year";
  private static final String HF_TEXT = " cab definescgi projection projection projection projection unrelated"
      + " unrelated unrelated unrelated unrelated 920 920usp peace";

  private static String model() {
    return fixture("tiny-opt").toString();
  }

  @Test
  void generateStreamsTheCompletionAndReportsSpeed() {
    CliTest.Run r = cli("", "generate", "--model", model(), "--device", "cpu", "--prompt", PROMPT,
        "--temperature", "0", "--max-tokens", "16");
    assertEquals(0, r.exit(), r.err());
    assertEquals(HF_TEXT + "\n", r.out());
    assertTrue(r.err().contains("tokens/s") && r.err().contains("finish: length"), r.err());
  }

  @Test
  void promptLookupGivesTheSameTextAndSaysHowManyDraftsWereAccepted() {
    CliTest.Run r = cli("", "generate", "--model", model(), "--device", "cpu", "--prompt", PROMPT,
        "--temperature", "0", "--max-tokens", "16", "--prompt-lookup", "3");
    assertEquals(0, r.exit(), r.err());
    assertEquals(HF_TEXT + "\n", r.out(), "drafts change the steps, not the text");
    assertTrue(r.err().matches("(?s).*\\[.*finish: length, \\d+ of \\d+ draft tokens accepted\\].*"), r.err());
  }

  @Test
  void aStepTokenBudgetGivesTheSameTextAndIsChecked() {
    CliTest.Run r = cli("", "generate", "--model", model(), "--device", "cpu", "--prompt", PROMPT,
        "--temperature", "0", "--max-tokens", "16", "--max-batch", "2", "--max-step-tokens", "2");
    assertEquals(0, r.exit(), r.err());
    assertEquals(HF_TEXT + "\n", r.out(), "the prompt prefilled 2 tokens at a time");
    CliTest.Run bad = cli("", "generate", "--model", model(), "--prompt", PROMPT, "--max-step-tokens", "8",
        "--max-batch", "9");
    assertEquals(1, bad.exit(), bad.err());
    assertTrue(bad.err().contains("--max-step-tokens must be 0 (no limit) or at least --max-batch (9)"), bad.err());
    CliTest.Run batch = cli("", "batch", "--model", model(), "--max-step-tokens", "8");
    assertEquals(1, batch.exit(), batch.err());
    assertTrue(batch.err().contains("at least --max-batch (16)"), batch.err());
  }

  @Test
  void int8WeightsGenerateAndTheOptionIsChecked() {
    CliTest.Run r = cli("", "generate", "--model", model(), "--device", "cpu", "--prompt", PROMPT,
        "--temperature", "0", "--max-tokens", "16", "--quantize", "int8");
    assertEquals(0, r.exit(), r.err());
    assertTrue(r.err().contains("finish: length"), r.err());
    CliTest.Run bad = cli("", "generate", "--model", model(), "--prompt", PROMPT, "--quantize", "fp8");
    assertEquals(2, bad.exit(), "a malformed value is a command-line error: " + bad.err());
    assertTrue(bad.err().contains("--quantize must be none or int8, got 'fp8'") && bad.err().contains("Usage"),
        bad.err());
  }

  @Test
  void anFp16KvCacheGivesHfTextAndTheOptionIsChecked() {
    CliTest.Run r = cli("", "generate", "--model", model(), "--device", "cpu", "--prompt", PROMPT,
        "--temperature", "0", "--max-tokens", "16", "--kv-cache-dtype", "f16");
    assertEquals(0, r.exit(), r.err());
    assertEquals(HF_TEXT + "\n", r.out(), "keys and values rounded to fp16: the same greedy text on this model");
    CliTest.Run bad = cli("", "generate", "--model", model(), "--prompt", PROMPT, "--kv-cache-dtype", "bf16");
    assertEquals(2, bad.exit(), bad.err());
    assertTrue(bad.err().contains("--kv-cache-dtype must be auto, f32 or f16, got 'bf16'"), bad.err());
  }

  @Test
  void logitBiasFromTheCommandLineAndFromBatchJson() throws IOException {
    CliTest.Run r = cli("", "generate", "--model", model(), "--device", "cpu", "--prompt", PROMPT,
        "--temperature", "0", "--max-tokens", "3", "--logit-bias", "1000=100");
    assertEquals(0, r.exit(), r.err());
    String forced = io.github.optjava.tokenizer.OptTokenizer.load(java.nio.file.Path.of(model()))
        .decode(new int[] {1000, 1000, 1000}, true, false);
    assertEquals(forced + "\n", r.out());
    CliTest.Run b = cli("{\"prompt\": \"" + PROMPT + "\", \"temperature\": 0, \"max_tokens\": 2, \"logit_bias\": {\"1000\": 100}}\n"
        + "{\"prompt\": \"x\", \"logit_bias\": {\"a\": 1}}\n", "batch", "--model", model(), "--device", "cpu");
    List<String> lines = b.out().lines().toList();
    assertEquals("[1000,1000]", JSON.readTree(lines.get(0)).get("choices").get(0).get("token_ids").toString());
    assertTrue(JSON.readTree(lines.get(1)).get("error").asText().contains("keys must be token ids"), lines.get(1));
    // bad words from both: token 1000 forced, and banned after itself, so the second token is another one
    CliTest.Run g = cli("", "generate", "--model", model(), "--device", "cpu", "--prompt", PROMPT, "--temperature",
        "0", "--max-tokens", "2", "--logit-bias", "1000=100", "--bad-word-ids", "1000,1000");
    assertEquals(0, g.exit(), g.err());
    String once = io.github.optjava.tokenizer.OptTokenizer.load(java.nio.file.Path.of(model()))
        .decode(new int[] {1000}, true, false);
    assertTrue(g.out().startsWith(once) && !g.out().equals(once + once + "\n"), g.out());
    CliTest.Run j = cli("{\"prompt\": \"" + PROMPT + "\", \"temperature\": 0, \"max_tokens\": 2, \"logit_bias\": {\"1000\": 100}, "
        + "\"bad_words_ids\": [[1000, 1000]]}\n", "batch", "--model", model(), "--device", "cpu");
    JsonNode ids = JSON.readTree(j.out().lines().findFirst().orElseThrow()).get("choices").get(0).get("token_ids");
    assertEquals(1000, ids.get(0).asInt());
    assertTrue(ids.get(1).asInt() != 1000, ids.toString());
  }

  @Test
  void promptLookupGivesTheSameTextAndIsChecked() {
    CliTest.Run r = cli("", "generate", "--model", model(), "--device", "cpu", "--prompt", PROMPT,
        "--temperature", "0", "--max-tokens", "16", "--prompt-lookup", "4");
    assertEquals(0, r.exit(), r.err());
    assertEquals(HF_TEXT + "\n", r.out(), "draft tokens checked by the model");
    CliTest.Run bad = cli("", "generate", "--model", model(), "--prompt", PROMPT, "--prompt-lookup", "-1");
    assertEquals(1, bad.exit(), bad.err());
    assertTrue(bad.err().contains("--prompt-lookup must be >= 0"), bad.err());
  }

  @Test
  void batchAnswersEveryLineInOrderAndReportsBadOnes() throws IOException {
    String in = String.join("\n",
        "{\"prompt\": \"" + PROMPT + "\", \"temperature\": 0}",
        "{\"prompt\": \"x\", \"top-k\": 3}",
        "{\"prompt\": \"x\", \"temperature\": -1}",
        "{\"prompt\": \"x\", \"max_tokens\": 500}",
        "{\"prompt\": \"" + PROMPT + "\", \"echo\": true, \"max_tokens\": 0, \"logprobs\": 1}",
        "{\"prompt\": \"This\", \"temperature\": 0.7, \"seed\": 1, \"n\": 2, \"max_tokens\": 4, \"stop\": \"zz\"}",
        "") ;
    CliTest.Run r = cli(in, "batch", "--model", model(), "--device", "cpu");
    assertEquals(1, r.exit(), r.err());
    List<JsonNode> out = new ArrayList<>();
    for (String l : r.out().lines().toList()) {
      out.add(JSON.readTree(l));
    }
    assertEquals(6, out.size(), r.out());
    JsonNode first = out.get(0).get("choices").get(0);
    assertEquals(HF_TEXT, first.get("text").asText());
    assertEquals("length", first.get("finish_reason").asText());
    assertEquals(16, first.get("token_ids").size());
    assertTrue(out.get(1).get("error").asText().contains("unknown field \"top-k\""), out.get(1).toString());
    assertTrue(out.get(2).get("error").asText().startsWith("line 3: "), out.get(2).toString());
    assertTrue(out.get(3).get("error").asText().contains("max_tokens"), out.get(3).toString());
    JsonNode echo = out.get(4).get("choices").get(0);
    assertEquals(PROMPT, echo.get("text").asText());
    assertTrue(echo.get("logprobs").get("token_logprobs").get(0).isNull());
    assertEquals(echo.get("token_ids").size(), echo.get("logprobs").get("token_logprobs").size());
    assertEquals(2, out.get(5).get("choices").size());
    assertTrue(r.err().contains("[6 lines (3 failed) in ") && r.err().contains(" model steps, "), r.err());
  }

  @Test
  void echoAloneGivesNullLogprobsAndLogprobsZeroGivesScoresWithoutAlternatives() throws IOException {
    // OpenAI's legacy completions (and vLLM): "logprobs" is null unless the request gives "logprobs", echo or not.
    String echo = "{\"prompt\": \"" + PROMPT + "\", \"echo\": true, \"temperature\": 0, \"max_tokens\": 2";
    String in = String.join("\n", echo + "}", echo + ", \"logprobs\": 0}",
        "{\"prompt\": \"" + PROMPT + "\", \"temperature\": 0, \"max_tokens\": 2, \"logprobs\": 0}", "");
    CliTest.Run r = cli(in, "batch", "--model", model(), "--device", "cpu");
    assertEquals(0, r.exit(), r.err());
    List<String> lines = r.out().lines().toList();
    assertEquals(3, lines.size(), r.out());
    JsonNode alone = JSON.readTree(lines.get(0)).get("choices").get(0);
    assertTrue(alone.get("logprobs").isNull(), alone.toString());
    assertTrue(alone.get("text").asText().startsWith(PROMPT), alone.toString());

    JsonNode zero = JSON.readTree(lines.get(1)).get("choices").get(0);
    assertEquals(alone.get("token_ids"), zero.get("token_ids"), "logprobs changes the JSON, not the tokens");
    assertEquals(alone.get("text"), zero.get("text"));
    JsonNode tokenLogprobs = zero.get("logprobs").get("token_logprobs");
    JsonNode top = zero.get("logprobs").get("top_logprobs");
    int n = zero.get("token_ids").size();
    assertEquals(n, tokenLogprobs.size(), zero.toString());
    assertEquals(n, top.size(), zero.toString());
    assertTrue(tokenLogprobs.get(0).isNull() && top.get(0).isNull(), "the first prompt token has no context");
    for (int i = 1; i < n; i++) {
      assertTrue(tokenLogprobs.get(i).isNumber(), zero.toString());
      assertTrue(top.get(i).isObject() && top.get(i).isEmpty(), "no alternatives with logprobs 0: " + zero);
    }

    JsonNode generatedOnly = JSON.readTree(lines.get(2)).get("choices").get(0);
    assertEquals(2, generatedOnly.get("logprobs").get("token_logprobs").size(), generatedOnly.toString());
    assertEquals("[{},{}]", generatedOnly.get("logprobs").get("top_logprobs").toString(), generatedOnly.toString());
  }

  @Test
  void batchAndScoreExitWithOneWhenOneLineFails() throws IOException {
    String good = "{\"prompt\": \"" + PROMPT + "\", \"temperature\": 0, \"max_tokens\": 1}";
    CliTest.Run ok = cli(good + "\n", "batch", "--model", model(), "--device", "cpu");
    assertEquals(0, ok.exit(), ok.err());
    CliTest.Run oneBad = cli(good + "\n{\"prompt\": 5}\n" + good + "\n", "batch", "--model", model(), "--device", "cpu");
    assertEquals(1, oneBad.exit(), oneBad.err());
    assertEquals(3, oneBad.out().lines().count(), oneBad.out());
    assertTrue(oneBad.err().contains("[3 lines (1 failed) in "), oneBad.err());

    String text = "{\"text\": \"" + PROMPT + "\"}\n";
    CliTest.Run scored = cli(text, "score", "--model", model(), "--device", "cpu");
    assertEquals(0, scored.exit(), scored.err());
    CliTest.Run scoredOneBad = cli(text + "not json\n" + text, "score", "--model", model(), "--device", "cpu");
    assertEquals(1, scoredOneBad.exit(), scoredOneBad.err());
    List<String> lines = scoredOneBad.out().lines().toList();
    assertEquals(3, lines.size(), scoredOneBad.out());
    assertTrue(JSON.readTree(lines.get(1)).get("error").asText().startsWith("line 2: "), lines.get(1));
    assertEquals(lines.get(0), lines.get(2), "the lines after a bad one still run");
  }

  @Test
  void prefixCachingReusesAnEarlierPromptAndGivesTheSameLines() throws IOException {
    String longPrompt = (PROMPT + " ").repeat(6).trim(); // several 16-token blocks
    String line = "{\"prompt\": \"" + longPrompt + "\", \"temperature\": 0, \"max_tokens\": 8}";
    String in = line + "\n" + line + "\n";
    // --max-batch 1: the second line runs after the first, whose blocks are then cached.
    CliTest.Run plain = cli(in, "batch", "--model", model(), "--device", "cpu", "--max-batch", "1",
        "--no-prefix-caching");
    CliTest.Run cached = cli(in, "batch", "--model", model(), "--device", "cpu", "--max-batch", "1");
    assertEquals(0, plain.exit(), plain.err());
    assertEquals(0, cached.exit(), cached.err());
    List<String> expected = plain.out().lines().toList();
    List<String> got = cached.out().lines().toList();
    assertEquals(2, got.size(), cached.out());
    for (int i = 0; i < 2; i++) {
      // The same tokens and text; the score up to float rounding (the CPU backend sums the uncached rest of a
      // prompt in another order than the whole prompt).
      JsonNode e = JSON.readTree(expected.get(i)).get("choices").get(0);
      JsonNode a = JSON.readTree(got.get(i)).get("choices").get(0);
      assertEquals(e.get("token_ids"), a.get("token_ids"), "line " + (i + 1));
      assertEquals(e.get("text"), a.get("text"), "line " + (i + 1));
      assertEquals(e.get("score").asDouble(), a.get("score").asDouble(), 1e-4, "line " + (i + 1));
    }
    assertTrue(cached.err().contains(" prompt tokens from cached prefixes]"), cached.err());
    assertTrue(!plain.err().contains("cached prefixes"), plain.err());
  }

  @Test
  void scoreGivesPerTokenLogprobs() throws IOException {
    CliTest.Run r = cli("{\"text\": \"" + PROMPT + "\"}\n{\"txt\": 1}\n", "score", "--model", model(), "--device", "cpu");
    assertEquals(1, r.exit(), r.err());
    List<String> lines = r.out().lines().toList();
    JsonNode s = JSON.readTree(lines.get(0));
    assertEquals(8, s.get("token_ids").size());
    assertTrue(s.get("token_logprobs").get(0).isNull());
    assertTrue(s.get("perplexity").asDouble() > 1);
    assertTrue(JSON.readTree(lines.get(1)).has("error"));
  }
}
