package io.github.optjava.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/** The benchmark's inputs and bookkeeping (its speed is not tested). */
class TokenizerBenchmarkTest {

  @Test
  void sampleTextHasTheRequestedSize() {
    for (int bytes : new int[] {0, 1, 1000, 100_000}) {
      String text = TokenizerBenchmark.sampleEnglishText(bytes);
      assertEquals(bytes, text.getBytes(StandardCharsets.UTF_8).length);
    }
    assertTrue(TokenizerBenchmark.sampleEnglishText(200).startsWith("The Lighthouse Keeper's Year"));
    assertThrows(IllegalArgumentException.class, () -> TokenizerBenchmark.sampleEnglishText(-1));
  }

  @Test
  void resultCountsTokensAndBytes() {
    OptTokenizer tok = TokenizerFixtures.tokenizer();
    String text = TokenizerBenchmark.sampleEnglishText(20_000);
    TokenizerBenchmark.Result result = TokenizerBenchmark.run(tok, text, 1, 3);
    assertEquals(20_000, result.bytes());
    assertEquals(tok.encode(text).length, result.tokens());
    assertEquals(3, result.iterations());
    assertTrue(result.medianSeconds() > 0);
    assertEquals(result.tokens() / result.medianSeconds(), result.tokensPerSecond(), 1e-6);
    assertTrue(result.toString().contains("MB/s"), result.toString());
    assertThrows(IllegalArgumentException.class, () -> TokenizerBenchmark.run(tok, text, 0, 0));
  }
}
