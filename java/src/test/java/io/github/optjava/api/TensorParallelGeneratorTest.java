package io.github.optjava.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A {@link Generator} with tensor parallelism (one model slice per rank thread, one KV-cache bookkeeping)
 * gives the same greedy tokens, batched tokens and beams as without, on both fixture models (4 heads).
 */
class TensorParallelGeneratorTest {
  private static final List<String> PROMPTS = List.of("Our team won the championship last year", "This",
      "Hello, my dog is cute and", "The capital of France is");

  private static Generator open(String model, int tp) {
    try {
      Path dir = Path.of(TensorParallelGeneratorTest.class.getResource("/fixtures/models/" + model).toURI());
      return Generator.open(dir.toString(), GeneratorOptions.defaults().withDevice(Device.CPU).withThreads(4)
          .withKvCacheTokens(2048).withTensorParallel(tp));
    } catch (URISyntaxException e) {
      throw new IllegalStateException(e);
    }
  }

  /** Greedy one by one, the same prompts submitted together (ragged batch), and 3 beams (all returned). */
  private static List<List<Integer>> run(Generator gen) {
    List<List<Integer>> out = new ArrayList<>();
    SamplingParams greedy = SamplingParams.greedy().toBuilder().maxTokens(12).build();
    for (String p : PROMPTS) {
      out.add(gen.generate(p, greedy).choices().get(0).tokenIds());
    }
    List<CompletableFuture<Completion>> together = new ArrayList<>();
    for (String p : PROMPTS) {
      together.add(gen.generateAsync(p, greedy));
    }
    for (CompletableFuture<Completion> f : together) {
      out.add(f.join().choices().get(0).tokenIds());
    }
    SamplingParams beams = SamplingParams.builder().temperature(0).numBeams(3).n(3).maxTokens(8).build();
    for (String p : PROMPTS.subList(0, 2)) {
      for (Choice c : gen.generate(p, beams).choices()) {
        out.add(c.tokenIds());
      }
    }
    return out;
  }

  /**
   * Prefix caching (a long prompt run twice: the second time from cached blocks, which every rank's store holds
   * under the one block table) and prompt lookup (draft rows truncated on every rank) at degree 2.
   */
  @org.junit.jupiter.api.Test
  void prefixCachingAndPromptLookupGiveTheSameTokensAtDegreeTwo() throws URISyntaxException {
    Path dir = Path.of(TensorParallelGeneratorTest.class.getResource("/fixtures/models/tiny-opt").toURI());
    GeneratorOptions tp2 = GeneratorOptions.defaults().withDevice(Device.CPU).withThreads(4).withKvCacheTokens(2048)
        .withTensorParallel(2);
    String longPrompt = "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age"
        + " of foolishness, it was the epoch of belief"; // more than two 16-token blocks
    SamplingParams greedy = SamplingParams.greedy().toBuilder().maxTokens(12).build();
    List<List<Integer>> expected;
    try (Generator plain = Generator.open(dir.toString(), tp2.withPrefixCaching(false))) {
      expected = run(plain);
      expected.add(plain.generate(longPrompt, greedy).choices().get(0).tokenIds());
      expected.add(plain.generate(longPrompt, greedy).choices().get(0).tokenIds());
    }
    try (Generator both = Generator.open(dir.toString(), tp2.withPrefixCaching(true).withPromptLookup(3))) {
      List<List<Integer>> got = run(both);
      got.add(both.generate(longPrompt, greedy).choices().get(0).tokenIds());
      got.add(both.generate(longPrompt, greedy).choices().get(0).tokenIds());
      assertEquals(expected, got);
      assertTrue(both.stats().prefixCachedTokens() > 0, both.stats().toString());
      assertTrue(both.stats().draftTokens() > 0, both.stats().toString());
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"tiny-opt", "tiny-opt-postln"})
  void degreesTwoAndFourGiveTheTokensOfDegreeOne(String model) {
    List<List<Integer>> expected;
    try (Generator single = open(model, 1)) {
      expected = run(single);
    }
    for (int tp : new int[] {2, 4}) {
      try (Generator parallel = open(model, tp)) {
        assertEquals(expected, run(parallel), model + " tensorParallel " + tp);
      }
    }
  }

  @ParameterizedTest
  @ValueSource(ints = {3, 8})
  void aDegreeThatDoesNotDivideTheHeadsIsRefusedNamingTheValidOnes(int tp) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> open("tiny-opt", tp));
    assertTrue(e.getMessage().contains("tensor-parallel degree " + tp) && e.getMessage().contains("[1, 2, 4]"),
        e.getMessage());
  }

  @ParameterizedTest
  @ValueSource(ints = {0, -1})
  void aDegreeBelowOneIsRefused(int tp) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> GeneratorOptions.defaults().withTensorParallel(tp));
    assertTrue(e.getMessage().contains("tensorParallel must be at least 1"), e.getMessage());
  }
}
