package io.github.optjava.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.optjava.api.Completion;
import io.github.optjava.api.Generator;
import io.github.optjava.api.GeneratorOptions;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.api.Score;
import io.github.optjava.api.TokenStream;
import java.nio.file.Path;
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
}
