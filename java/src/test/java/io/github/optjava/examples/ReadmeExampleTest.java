package io.github.optjava.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.optjava.api.Completion;
import io.github.optjava.api.Generator;
import io.github.optjava.api.GeneratorOptions;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.api.Score;
import io.github.optjava.api.TokenStream;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** The README's Java example, run as written (on the fixture model instead of facebook/opt-125m). */
class ReadmeExampleTest {

  @Test
  void readmeExampleRuns() throws Exception {
    String model = Path.of(getClass().getResource("/fixtures/models/tiny-opt").toURI()).toString();
    // --- as in README.md ---
    try (Generator gen = Generator.open(model, GeneratorOptions.defaults())) {
      Completion c = gen.generate("The capital of France is", SamplingParams.greedy().toBuilder().maxTokens(16).build());
      System.out.println(c.text());
      // ---
      assertEquals(16, c.completionTokens());
      StringBuilder streamed = new StringBuilder();
      try (TokenStream s = gen.stream("The capital of France is", SamplingParams.greedy().toBuilder().maxTokens(16).build())) {
        s.forEach(chunk -> streamed.append(chunk.text()));
      }
      assertEquals(c.text(), streamed.toString());
      Score score = gen.score("The capital of France is");
      assertEquals(6, score.tokenIds().size()); // </s> The capital of France is
    }
  }

  @Test
  void readmeServingExampleRuns() throws Exception {
    String model = Path.of(getClass().getResource("/fixtures/models/tiny-opt").toURI()).toString();
    // --- as in README.md ---
    GeneratorOptions serving = GeneratorOptions.defaults()
        .withPrefixCaching(true)   // prompts starting like an earlier one reuse its KV cache (system prompts, few-shot)
        .withPromptLookup(4)       // check up to 4 draft tokens from the prompt per step (speculative decoding)
        .withMaxStepTokens(256);   // prefill long prompts in chunks while the others keep decoding
    try (Generator gen = Generator.open(model, serving)) {
      CompletableFuture<Completion> answer = gen.generateAsync("You are a helpful assistant. Q: Who wrote Hamlet? A:",
          SamplingParams.builder().temperature(0.7).minP(0.05).maxTokens(32).build());
      answer.orTimeout(30, TimeUnit.SECONDS); // cancelled or timed out, a request stops and frees its slot
      System.out.println(answer.join().text());
      // ---
      int n = answer.join().completionTokens(); // sampled without a seed: EOS may come early
      org.junit.jupiter.api.Assertions.assertTrue(n <= 32, "completion tokens: " + n);
      assertEquals(1, answer.join().choices().size());
    }
  }
}
