package io.github.optjava.tokenizer;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Objects;

/**
 * Tokenizer throughput on English text: a benchmark for the command line, not a test.
 *
 * <p>The tokenizer's piece cache stays warm across runs, as it does in a long-running server; the
 * sample text repeats a 10 KB story, so after the first copy nearly every piece is a cache hit.
 */
public final class TokenizerBenchmark {

  private static final String SAMPLE = "sample-english.txt";

  private TokenizerBenchmark() {}

  /**
   * The outcome of {@link #run}.
   *
   * @param bytes UTF-8 size of the text
   * @param tokens ids produced by one encode
   * @param iterations timed runs
   * @param medianSeconds median time of one encode
   */
  public record Result(long bytes, int tokens, int iterations, double medianSeconds) {

    /** Megabytes (2^20 bytes) of UTF-8 text per second, at the median time. */
    public double megabytesPerSecond() {
      return bytes / (1024.0 * 1024.0) / medianSeconds;
    }

    /** Tokens produced per second, at the median time. */
    public double tokensPerSecond() {
      return tokens / medianSeconds;
    }

    @Override
    public String toString() {
      return String.format("tokenizer: %,d bytes -> %,d tokens, median of %d runs %.1f ms: %.1f MB/s, %.2f M tokens/s",
          bytes, tokens, iterations, medianSeconds * 1e3, megabytesPerSecond(), tokensPerSecond() / 1e6);
    }
  }

  /**
   * Encodes {@code text} {@code warmups} times untimed (JIT compilation, cache filling), then
   * {@code iterations} times timed, and reports the median.
   */
  public static Result run(OptTokenizer tokenizer, String text, int warmups, int iterations) {
    Objects.requireNonNull(tokenizer, "tokenizer");
    Objects.requireNonNull(text, "text");
    if (warmups < 0 || iterations < 1) {
      throw new IllegalArgumentException("need warmups >= 0 and iterations >= 1, got " + warmups + " and "
          + iterations);
    }
    int tokens = 0;
    for (int i = 0; i < warmups; i++) {
      tokens = tokenizer.encode(text).length;
    }
    long[] nanos = new long[iterations];
    for (int i = 0; i < iterations; i++) {
      long start = System.nanoTime();
      tokens = tokenizer.encode(text).length;
      nanos[i] = System.nanoTime() - start;
    }
    Arrays.sort(nanos);
    double median = iterations % 2 == 1 ? nanos[iterations / 2]
        : (nanos[iterations / 2 - 1] + nanos[iterations / 2]) / 2.0;
    return new Result(text.getBytes(StandardCharsets.UTF_8).length, tokens, iterations, median / 1e9);
  }

  /**
   * English text of exactly {@code bytes} bytes (it is ASCII, so also that many chars): a public
   * domain story bundled with the library, repeated as often as needed and cut to size.
   */
  public static String sampleEnglishText(int bytes) {
    if (bytes < 0) {
      throw new IllegalArgumentException("bytes must be >= 0, got " + bytes);
    }
    String sample = readSample();
    StringBuilder text = new StringBuilder(bytes + sample.length());
    while (text.length() < bytes) {
      text.append(sample).append('\n');
    }
    text.setLength(bytes);
    return text.toString();
  }

  private static String readSample() {
    try (InputStream in = TokenizerBenchmark.class.getResourceAsStream(SAMPLE)) {
      if (in == null) {
        throw new IllegalStateException("resource " + SAMPLE + " is missing from the opt-java jar");
      }
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read the resource " + SAMPLE, e);
    }
  }
}
