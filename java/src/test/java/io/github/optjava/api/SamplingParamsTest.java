package io.github.optjava.api;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalInt;
import java.util.OptionalLong;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;

class SamplingParamsTest {

  /** Builds from the defaults after {@code change} and expects a rejection mentioning {@code fragment}. */
  private static void assertRejected(UnaryOperator<SamplingParams.Builder> change, String fragment) {
    SamplingParams.Builder b = change.apply(SamplingParams.builder());
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, b::build);
    assertTrue(e.getMessage().contains(fragment), "message '" + e.getMessage() + "' lacks '" + fragment + "'");
  }

  @Test
  void defaultsAreOpenAiStyleSampling() {
    SamplingParams p = SamplingParams.defaults();
    assertEquals(16, p.maxTokens());
    assertEquals(1.0, p.temperature());
    assertEquals(0, p.topK());
    assertEquals(1.0, p.topP());
    assertEquals(OptionalLong.empty(), p.seed());
    assertEquals(1, p.n());
    assertEquals(1, p.numBeams());
    assertEquals(1.0, p.lengthPenalty());
    assertFalse(p.earlyStopping());
    assertEquals(1.0, p.repetitionPenalty());
    assertEquals(0.0, p.presencePenalty());
    assertEquals(0.0, p.frequencyPenalty());
    assertEquals(0, p.noRepeatNgramSize());
    assertEquals(0, p.minTokens());
    assertEquals(List.of(), p.stop());
    assertEquals(OptionalInt.empty(), p.logprobs());
    assertFalse(p.echo());
    assertTrue(p.isSampling());
    assertFalse(p.isGreedy() || p.isBeamSearch());
  }

  @Test
  void greedyIsTemperatureZero() {
    SamplingParams g = SamplingParams.greedy();
    assertEquals(0.0, g.temperature());
    assertTrue(g.isGreedy());
    assertFalse(g.isSampling());
    assertEquals(SamplingParams.defaults().toBuilder().temperature(0).build(), g);
  }

  /**
   * Session 27's review: at 1e-39 logits divided by the temperature overflowed to infinity, and the draw was uniform
   * among thousands of tokens (random text where the limit is greedy decoding).
   */
  @Test
  void aTemperatureWhoseDivisionOverflowsIsRefused() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> SamplingParams.builder().temperature(1e-39).build());
    assertTrue(e.getMessage().contains("overflow float32; use 0 for greedy decoding"), e.getMessage());
    assertEquals(SamplingParams.MIN_TEMPERATURE, SamplingParams.builder().temperature(1e-30).build().temperature());
    assertTrue((float) (1000 / SamplingParams.MIN_TEMPERATURE) < Float.POSITIVE_INFINITY, "logits up to 1e3 stay finite");
  }

  @Test
  void toBuilderRoundTripsEveryField() {
    SamplingParams p = SamplingParams.builder().maxTokens(40).temperature(0.8).topK(10).topP(0.95).seed(7L)
        .n(3).repetitionPenalty(1.2).presencePenalty(0.5).frequencyPenalty(-0.5).noRepeatNgramSize(4)
        .minTokens(5).stop(List.of("\n", "END")).logprobs(5).echo(true).build();
    assertEquals(p, p.toBuilder().build());
    assertEquals(p.hashCode(), p.toBuilder().build().hashCode());
    assertEquals(OptionalLong.of(7), p.seed());
    assertEquals(OptionalInt.of(5), p.logprobs());
    assertNotEquals(p, p.toBuilder().seed((Long) null).build());
    assertTrue(p.toString().contains("topP=0.95"), p.toString());
    SamplingParams beams = SamplingParams.builder().numBeams(4).n(4).lengthPenalty(0.5).earlyStopping(true).build();
    assertEquals(beams, beams.toBuilder().build());
    assertTrue(beams.isBeamSearch());
  }

  @Test
  void stopListIsCopiedAndImmutable() {
    List<String> stops = new ArrayList<>(List.of("a"));
    SamplingParams p = SamplingParams.builder().stop(stops).build();
    stops.add("b");
    assertEquals(List.of("a"), p.stop());
    assertThrows(UnsupportedOperationException.class, () -> p.stop().add("c"));
  }

  @Test
  void acceptsTheLimitsThemselves() {
    assertDoesNotThrow(() -> SamplingParams.builder().logprobs(0).build());
    assertDoesNotThrow(() -> SamplingParams.builder().logprobs(20).build());
    assertDoesNotThrow(() -> SamplingParams.builder().stop(List.of("1", "2", "3", "4")).build());
    assertDoesNotThrow(() -> SamplingParams.builder().presencePenalty(-2).frequencyPenalty(2).build());
    assertDoesNotThrow(() -> SamplingParams.builder().maxTokens(0).echo(true).logprobs(1).build());
    assertDoesNotThrow(() -> SamplingParams.builder().numBeams(2).n(2).temperature(0).build());
    assertDoesNotThrow(() -> SamplingParams.builder().topP(1e-6).topK(1).temperature(1e-3).build());
  }

  @Test
  void rejectsOutOfRangeNumbers() {
    assertRejected(b -> b.maxTokens(-1), "maxTokens must be >= 0");
    assertRejected(b -> b.temperature(-0.1), "temperature must be a finite number >= 0");
    assertRejected(b -> b.temperature(Double.NaN), "temperature must be a finite number >= 0");
    assertRejected(b -> b.temperature(Double.POSITIVE_INFINITY), "temperature must be a finite number >= 0");
    assertRejected(b -> b.topK(-1), "topK must be >= 0");
    assertRejected(b -> b.topP(0), "topP must be in (0, 1]");
    assertRejected(b -> b.topP(1.01), "topP must be in (0, 1]");
    assertRejected(b -> b.topP(Double.NaN), "topP must be in (0, 1]");
    assertRejected(b -> b.n(0), "n must be >= 1");
    assertRejected(b -> b.numBeams(0), "numBeams must be >= 1");
    assertRejected(b -> b.numBeams(2).lengthPenalty(Double.NaN), "lengthPenalty must be finite");
    assertRejected(b -> b.repetitionPenalty(0), "repetitionPenalty must be a finite number > 0");
    assertRejected(b -> b.repetitionPenalty(-1.2), "repetitionPenalty must be a finite number > 0");
    assertRejected(b -> b.repetitionPenalty(Double.NaN), "repetitionPenalty must be a finite number > 0");
    assertRejected(b -> b.presencePenalty(2.5), "presencePenalty must be in [-2.0, 2.0]");
    assertRejected(b -> b.presencePenalty(Double.NaN), "presencePenalty must be in [-2.0, 2.0]");
    assertRejected(b -> b.frequencyPenalty(-3), "frequencyPenalty must be in [-2.0, 2.0]");
    assertRejected(b -> b.noRepeatNgramSize(-1), "noRepeatNgramSize must be >= 0");
    assertRejected(b -> b.minTokens(-1), "minTokens must be >= 0");
    assertRejected(b -> b.minTokens(17), "minTokens (17) must not exceed maxTokens (16)");
    assertRejected(b -> b.logprobs(-1), "logprobs must be in [0, 20]");
    assertRejected(b -> b.logprobs(21), "20 is OpenAI's limit");
  }

  @Test
  void rejectsBadStopSequences() {
    assertRejected(b -> b.stop(List.of("a", "b", "c", "d", "e")), "at most 4 stop sequences");
    assertRejected(b -> b.stop(List.of("ok", "")), "stop[1] is empty");
    assertRejected(b -> b.stop(Arrays.asList("ok", null)), "stop[1] is null");
    assertThrows(NullPointerException.class, () -> SamplingParams.builder().stop(null));
  }

  @Test
  void beamSearchIsDeterministic() {
    assertRejected(b -> b.numBeams(4).temperature(0.7), "temperature must be 0 or 1 with numBeams=4");
    assertRejected(b -> b.numBeams(4).topK(50), "topK must be 0 with numBeams=4");
    assertRejected(b -> b.numBeams(4).topP(0.9), "topP must be 1.0 with numBeams=4");
    assertRejected(b -> b.numBeams(4).seed(1), "a seed has no effect with numBeams=4");
    assertRejected(b -> b.numBeams(2).n(3), "n (3) must not exceed numBeams (2)");
    // Refused here, not later on the engine thread (found by GeneratorStressTest, session 16)
    assertRejected(b -> b.numBeams(2).maxTokens(0), "maxTokens must be >= 1 with numBeams=2");
  }

  @Test
  void beamOnlyOptionsNeedBeams() {
    assertRejected(b -> b.lengthPenalty(2.0), "lengthPenalty (2.0) only applies to beam search");
    assertRejected(b -> b.earlyStopping(true), "earlyStopping only applies to beam search");
  }

  @Test
  void greedyRejectsSamplingOnlyOptions() {
    assertRejected(b -> b.temperature(0).topK(5), "topK=5 has no effect with temperature 0");
    assertRejected(b -> b.temperature(0).topP(0.5), "topP=0.5 has no effect with temperature 0");
    assertRejected(b -> b.temperature(0).seed(3), "a seed has no effect with temperature 0");
    assertRejected(b -> b.temperature(0).n(2), "n=2 with temperature 0 (greedy decoding) would return 2 identical");
  }
}
