package io.github.optjava.cli;

import io.github.optjava.tokenizer.OptTokenizer;
import io.github.optjava.tokenizer.TokenizerBenchmark;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code opt bench-tokenizer --model MODEL}: tokenizer throughput on English text (a benchmark, not a test). */
@Command(name = "bench-tokenizer", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
    description = "Measure tokenizer throughput (MB/s, tokens/s) on English text.")
final class BenchTokenizerCommand implements Callable<Integer> {

  @ParentCommand
  Main parent;

  @Mixin
  ModelOption model;

  @Option(names = "--megabytes", defaultValue = "1", description = "Size of the text. Default: ${DEFAULT-VALUE}.")
  int megabytes;

  @Option(names = "--iterations", defaultValue = "5", description = "Timed runs (median reported). Default: ${DEFAULT-VALUE}.")
  int iterations;

  @Override
  public Integer call() {
    if (megabytes < 1 || iterations < 1) {
      throw new IllegalArgumentException("--megabytes and --iterations must be at least 1");
    }
    OptTokenizer tokenizer = OptTokenizer.load(model.resolve());
    String text = TokenizerBenchmark.sampleEnglishText(megabytes << 20);
    parent.out.println(TokenizerBenchmark.run(tokenizer, text, 2, iterations));
    return 0;
  }
}
