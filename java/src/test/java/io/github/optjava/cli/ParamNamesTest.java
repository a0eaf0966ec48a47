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
    assertEquals("--min-tokens (20) must not exceed --max-tokens (5); --bad-word-ids has token id -1; temperature "
        + "stays", ParamNames.cli(m));
    // The engine's messages: JSON names of a request's fields, GeneratorOptions' names of the generator's
    String engine = "max_tokens is 1000 and num_beams 2; raise kvCacheTokens or lower max_tokens; maxBatchSize 0";
    assertEquals("--max-tokens is 1000 and --num-beams 2; raise --kv-cache-tokens or lower --max-tokens; --max-batch 0",
        ParamNames.cli(engine));
    assertEquals("max_tokens is 1000 and num_beams 2; raise --kv-cache-tokens or lower max_tokens; --max-batch 0",
        ParamNames.json(engine));
    assertEquals("kvCacheTokensX and topPx are not SamplingParams'", ParamNames.json("kvCacheTokensX and topPx are "
        + "not SamplingParams'"));
    // Names inside a path or file name a message quotes stay as they are (session 26's review: a path was rewritten)
    String path = "--shape /data/max_tokens/config.json: no such file; see /x/topP and topP.json, not topP.";
    assertEquals("--shape /data/max_tokens/config.json: no such file; see /x/topP and topP.json, not --top-p.",
        ParamNames.cli(path));
    assertEquals("--logit-bias[5] must be in", ParamNames.cli("logitBias[5] must be in"));
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
    CliTest.Run tooLong = cli("", "generate", "--model", model, "--device", "cpu", "--prompt", "a", "--max-tokens",
        "100000");
    assertEquals(1, tooLong.exit());
    assertTrue(tooLong.err().contains("--max-tokens is 100000"), tooLong.err());
    CliTest.Run badWord = cli("", "generate", "--model", model, "--device", "cpu", "--prompt", "a", "--bad-word-ids",
        "-5");
    assertTrue(badWord.err().contains("opt: error: --bad-word-ids has token id -5"), badWord.err());
    CliTest.Run words = cli("", "generate", "--model", model, "--device", "cpu", "--prompt", "a", "--bad-word-ids",
        "1,,2");
    assertEquals(2, words.exit(), words.err());
    assertTrue(words.err().contains("--bad-word-ids takes comma-separated token ids, got '1,,2'"), words.err());
    CliTest.Run device = cli("", "generate", "--model", model, "--device", "gpu", "--prompt", "a");
    assertEquals(2, device.exit(), "a malformed value is a usage error, as --quantize int4's");
    assertTrue(device.err().contains("--device must be cpu, cuda or auto, got 'gpu'"), device.err());
    CliTest.Run bench = cli("", "bench", "--device", "gpu");
    assertEquals(2, bench.exit(), "bench's --device too: " + bench.err());
  }
}
