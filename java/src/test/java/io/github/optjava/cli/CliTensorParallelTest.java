package io.github.optjava.cli;

import static io.github.optjava.cli.CliTest.cli;
import static io.github.optjava.cli.CliTest.fixture;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** {@code --tensor-parallel} and {@code --pipeline-parallel} on the commands that run the model. */
class CliTensorParallelTest {
  private static final String BATCH = String.join("\n",
      "{\"prompt\": \"Our team won the championship last year\", \"temperature\": 0, \"max_tokens\": 12}",
      "{\"prompt\": \"This\", \"temperature\": 0, \"num_beams\": 2, \"n\": 2, \"max_tokens\": 6}",
      "{\"prompt\": \"Hello, my dog is cute and\", \"echo\": true, \"max_tokens\": 4, \"temperature\": 0, "
          + "\"logprobs\": 1}",
      "");

  private static String model() {
    return fixture("tiny-opt").toString();
  }

  @Test
  void batchWithTensorParallelTwoEqualsWithout() {
    CliTest.Run single = cli(BATCH, "batch", "--model", model(), "--device", "cpu");
    CliTest.Run parallel = cli(BATCH, "batch", "--model", model(), "--device", "cpu", "--tensor-parallel", "2");
    assertEquals(0, single.exit(), single.err());
    assertEquals(0, parallel.exit(), parallel.err());
    assertEquals(3, single.out().lines().count(), single.out());
    // Token ids and texts must match; log-probs may differ in the last float bits (sums in another order).
    assertEquals(single.out().replaceAll("-?\\d+\\.\\d+(E-?\\d+)?", "#"),
        parallel.out().replaceAll("-?\\d+\\.\\d+(E-?\\d+)?", "#"));
  }

  @Test
  void generateAndScoreAcceptTensorParallel() {
    CliTest.Run g1 = cli("", "generate", "--model", model(), "--device", "cpu", "--prompt", "This",
        "--temperature", "0", "--max-tokens", "8");
    CliTest.Run g4 = cli("", "generate", "--model", model(), "--device", "cpu", "--prompt", "This",
        "--temperature", "0", "--max-tokens", "8", "--tensor-parallel", "4");
    assertEquals(0, g4.exit(), g4.err());
    assertEquals(g1.out(), g4.out());
    CliTest.Run s = cli("{\"text\": \"Hello there\"}\n", "score", "--model", model(), "--device", "cpu",
        "--tensor-parallel", "2");
    assertEquals(0, s.exit(), s.err());
    assertTrue(s.out().contains("perplexity"), s.out());
  }

  @Test
  void aDegreeThatDoesNotDivideTheModelIsAClearError() {
    CliTest.Run r = cli("", "generate", "--model", model(), "--device", "cpu", "--prompt", "This",
        "--tensor-parallel", "3");
    assertEquals(1, r.exit(), r.err());
    assertTrue(r.err().contains("tensor-parallel degree 3") && r.err().contains("degrees that do: [1, 2, 4]"),
        r.err());
  }

  @Test
  void batchWithPipelineParallelTwoEqualsWithoutAndBadDegreesAreClearErrors() {
    CliTest.Run single = cli(BATCH, "batch", "--model", model(), "--device", "cpu");
    CliTest.Run pipeline = cli(BATCH, "batch", "--model", model(), "--device", "cpu", "--pipeline-parallel", "2");
    assertEquals(0, pipeline.exit(), pipeline.err());
    assertEquals(single.out(), pipeline.out(), "the same arithmetic: identical output, log-probs included");

    CliTest.Run tooMany = cli("", "generate", "--model", model(), "--device", "cpu", "--prompt", "This",
        "--pipeline-parallel", "3");
    assertEquals(1, tooMany.exit(), tooMany.err());
    assertTrue(tooMany.err().contains("a pipeline of 3 stages for a model of 2 layers"), tooMany.err());
    CliTest.Run badTp = cli("", "generate", "--model", model(), "--device", "cpu", "--prompt", "This",
        "--pipeline-parallel", "2", "--tensor-parallel", "3");
    assertEquals(1, badTp.exit(), badTp.err());
    assertTrue(badTp.err().contains("tensor-parallel degree 3"), badTp.err());
  }

  @Test
  void batchWithTensorTimesPipelineParallelEqualsWithout() {
    CliTest.Run single = cli(BATCH, "batch", "--model", model(), "--device", "cpu");
    CliTest.Run both = cli(BATCH, "batch", "--model", model(), "--device", "cpu", "--pipeline-parallel", "2",
        "--tensor-parallel", "2");
    assertEquals(0, both.exit(), both.err());
    assertEquals(3, both.out().lines().count(), both.out());
    // As with tensor parallelism alone: tokens and texts identical, log-probs up to the last float bits.
    assertEquals(single.out().replaceAll("-?\\d+\\.\\d+(E-?\\d+)?", "#"),
        both.out().replaceAll("-?\\d+\\.\\d+(E-?\\d+)?", "#"));
  }
}
