package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.github.optjava.api.SamplingParams;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Reproduces Hugging Face 4.36's logits-processor outputs ({@code fixtures/logits_processors/}) bit for
 * bit: each case runs on {@code inputs.bin} with the recorded {@code history_input_ids}, and the
 * SHA-256 of the float32 little-endian result must equal the one recorded for HF's output file. Per-row
 * finite/-inf counts and argmax are compared first, so a mismatch is readable, not just a hash.
 */
class LogitsProcessorFixtureTest {

  private static final String DIR = "/fixtures/logits_processors/";
  private static final int EOS = 2;

  private static JsonNode reference;
  private static float[][] inputs;
  private static int[][] history;

  @BeforeAll
  static void load() throws IOException {
    reference = new ObjectMapper().readTree(resource("reference.json"));
    int rows = reference.get("rows").asInt();
    int vocab = reference.get("vocab_size").asInt();
    byte[] raw = resource("inputs.bin");
    assertEquals(sha256(raw), reference.at("/files/inputs/sha256").asText(), "inputs.bin is not the fixture's");
    ByteBuffer buf = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN);
    inputs = new float[rows][vocab];
    for (float[] row : inputs) {
      buf.asFloatBuffer().get(row);
      buf.position(buf.position() + 4 * vocab);
    }
    history = new int[rows][];
    for (int r = 0; r < rows; r++) {
      JsonNode ids = reference.get("history_input_ids").get(r);
      history[r] = new int[ids.size()];
      for (int i = 0; i < ids.size(); i++) {
        history[r][i] = ids.get(i).asInt();
      }
    }
  }

  /** Each case built through SamplingParams where the option exists, i.e. in generate()'s order. */
  static Stream<Arguments> cases() {
    Map<String, Supplier<LogitsPipeline>> cases = Map.of(
        "temperature_0.7", () -> pipeline(SamplingParams.builder().temperature(0.7)),
        "top_k_40", () -> pipeline(SamplingParams.builder().topK(40)),
        "top_p_0.9", () -> pipeline(SamplingParams.builder().topP(0.9)),
        "temperature_0.7_top_k_40_top_p_0.9",
        () -> pipeline(SamplingParams.builder().temperature(0.7).topK(40).topP(0.9)),
        "repetition_penalty_1.3", () -> pipeline(SamplingParams.builder().repetitionPenalty(1.3)),
        "no_repeat_ngram_3", () -> pipeline(SamplingParams.builder().noRepeatNgramSize(3)),
        "min_length_30_eos_2", () -> LogitsPipeline.of(new MinLengthProcessor(30, EOS)),
        "full_sampling_chain", () -> pipeline(fullChain()));
    return cases.entrySet().stream().sorted(Map.Entry.comparingByKey())
        .map(e -> Arguments.of(e.getKey(), e.getValue()));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("cases")
  void reproducesHuggingFaceBitExactly(String name, Supplier<LogitsPipeline> pipeline) {
    int promptLength = history[0].length; // no case counts new tokens
    assertMatches(name, apply(pipeline.get(), promptLength));
  }

  /** min_new_tokens with the whole history counted as new equals HF's MinLength over the same ids. */
  @Test
  void minTokensFromParamsMatchesMinLengthFixture() {
    LogitsPipeline p = pipeline(SamplingParams.builder().minTokens(30).maxTokens(30));
    assertEquals(List.of(MinNewTokensProcessor.class), classes(p));
    assertMatches("min_length_30_eos_2", apply(p, 0));
  }

  /** The pipeline's order is the one HF's generate() built for the same configuration. */
  @Test
  void fullChainOrderIsHuggingFaceOrder() {
    List<String> hf = Stream.of(reference.get("hf_generate_processor_order_for_equivalent_config"))
        .flatMap(n -> Stream.iterate(0, i -> i < n.size(), i -> i + 1).map(i -> n.get(i).asText()))
        .toList();
    List<String> ours = classes(pipeline(fullChain())).stream()
        .map(c -> c.getSimpleName().replace("Processor", ""))
        .toList();
    assertEquals(List.of("RepetitionPenalty", "NoRepeatNgram", "Temperature", "TopK", "TopP"), ours);
    assertEquals(List.of("RepetitionPenaltyLogitsProcessor", "NoRepeatNGramLogitsProcessor",
        "TemperatureLogitsWarper", "TopKLogitsWarper", "TopPLogitsWarper"), hf);
  }

  private static SamplingParams.Builder fullChain() {
    return SamplingParams.builder().repetitionPenalty(1.3).noRepeatNgramSize(3).temperature(0.7).topK(40).topP(0.9);
  }

  private static LogitsPipeline pipeline(SamplingParams.Builder b) {
    return LogitsPipeline.forParams(b.build(), EOS);
  }

  private static List<Class<?>> classes(LogitsPipeline p) {
    return p.processors().stream().<Class<?>>map(Object::getClass).toList();
  }

  private static float[][] apply(LogitsPipeline pipeline, int promptLength) {
    float[][] out = new float[inputs.length][];
    for (int r = 0; r < inputs.length; r++) {
      out[r] = inputs[r].clone();
      pipeline.process(history[r], history[r].length, promptLength, out[r]);
    }
    return out;
  }

  private static void assertMatches(String name, float[][] out) {
    JsonNode c = reference.get("cases").get(name);
    int rows = out.length;
    int[] finite = new int[rows];
    int[] negInf = new int[rows];
    int[] argmax = new int[rows];
    for (int r = 0; r < rows; r++) {
      for (float v : out[r]) {
        if (v == Float.NEGATIVE_INFINITY) {
          negInf[r]++;
        } else if (Float.isFinite(v)) {
          finite[r]++;
        }
      }
      argmax[r] = Sampler.argmax(out[r]);
    }
    assertArrayEquals(ints(c.get("neg_inf_count_per_row")), negInf, name + ": -inf entries per row");
    assertArrayEquals(ints(c.get("finite_count_per_row")), finite, name + ": finite entries per row");
    assertArrayEquals(ints(c.get("argmax_per_row")), argmax, name + ": argmax per row");
    ByteBuffer bytes = ByteBuffer.allocate(4 * rows * out[0].length).order(ByteOrder.LITTLE_ENDIAN);
    for (float[] row : out) {
      for (float v : row) {
        bytes.putFloat(v);
      }
    }
    assertEquals(reference.at("/files/" + name + "/sha256").asText(), sha256(bytes.array()),
        name + ": same masks and argmax, but some finite value differs from HF's in its float32 bits");
  }

  private static int[] ints(JsonNode array) {
    int[] a = new int[array.size()];
    for (int i = 0; i < a.length; i++) {
      a[i] = array.get(i).asInt();
    }
    return a;
  }

  private static byte[] resource(String file) {
    try (InputStream in = LogitsProcessorFixtureTest.class.getResourceAsStream(DIR + file)) {
      if (in == null) {
        throw new IllegalStateException("missing test resource " + DIR + file);
      }
      return in.readAllBytes();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static String sha256(byte[] data) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
    } catch (NoSuchAlgorithmException e) {
      throw new AssertionError(e);
    }
  }
}
