package io.github.optjava.cli;

import static io.github.optjava.cli.CliTest.cli;
import static io.github.optjava.cli.CliTest.fixture;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** SamplingParams' messages in the names the caller used: JSON fields for batch, options for generate. */
class ParamNamesTest {

  @Test
  void javaNamesBecomeJsonFieldsOrOptions() {
    String m = "minTokens (20) must not exceed maxTokens (5); badWordsIds has token id -1; temperature stays";
    assertEquals("min_tokens (20) must not exceed max_tokens (5); bad_words_ids has token id -1; temperature stays",
        ParamNames.json(m));
    assertEquals("--min-tokens (20) must not exceed --max-tokens (5); --bad-words-ids has token id -1; temperature "
        + "stays", ParamNames.cli(m));
    assertEquals("kvCacheTokens and topPx are not SamplingParams'", ParamNames.json("kvCacheTokens and topPx are not "
        + "SamplingParams'"));
  }

  @Test
  void batchAndGenerateSayWhatTheUserWrote() {
    String model = fixture("tiny-opt").toString();
    CliTest.Run batch = cli("{\"prompt\": \"a\", \"temperature\": 1, \"top_p\": 1.5}\n", "batch", "--model", model,
        "--device", "cpu");
    assertTrue(batch.out().contains("line 1: top_p must be in (0, 1]"), batch.out());
    CliTest.Run generate = cli("", "generate", "--model", model, "--device", "cpu", "--prompt", "a", "--top-p", "1.5");
    assertEquals(1, generate.exit());
    assertTrue(generate.err().contains("opt: error: --top-p must be in (0, 1]"), generate.err());
  }
}
