package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.SamplingParams;
import java.util.List;
import org.junit.jupiter.api.Test;

class LogitsPipelineTest {

  private static List<Class<?>> classes(SamplingParams.Builder b) {
    return LogitsPipeline.forParams(b.build(), 2).processors().stream().<Class<?>>map(Object::getClass).toList();
  }

  @Test
  void everyOptionInHuggingFaceOrder() {
    SamplingParams.Builder all = SamplingParams.builder().topP(0.9).topK(40).temperature(0.7)
        .minTokens(3).noRepeatNgramSize(2).frequencyPenalty(0.1).presencePenalty(0.2).repetitionPenalty(1.1);
    assertEquals(List.of(RepetitionPenaltyProcessor.class, PresenceFrequencyPenaltyProcessor.class,
        NoRepeatNgramProcessor.class, MinNewTokensProcessor.class, TemperatureProcessor.class,
        TopKProcessor.class, TopPProcessor.class), classes(all));
  }

  @Test
  void defaultsBuildAnEmptyPipeline() {
    assertTrue(LogitsPipeline.forParams(SamplingParams.defaults(), 2).isEmpty());
    assertTrue(LogitsPipeline.forParams(SamplingParams.greedy(), 2).isEmpty());
  }

  @Test
  void temperatureOneAddsNoWarper() {
    assertEquals(List.of(TopKProcessor.class), classes(SamplingParams.builder().temperature(1.0).topK(5)));
  }

  @Test
  void onlyOnePenaltyTurnsOnThePresenceFrequencyProcessor() {
    assertEquals(List.of(PresenceFrequencyPenaltyProcessor.class),
        classes(SamplingParams.builder().frequencyPenalty(0.5)));
  }

  @Test
  void greedyAndBeamSearchKeepProcessorsButNoWarpers() {
    assertEquals(List.of(RepetitionPenaltyProcessor.class, NoRepeatNgramProcessor.class),
        classes(SamplingParams.greedy().toBuilder().repetitionPenalty(1.2).noRepeatNgramSize(3)));
    assertEquals(List.of(MinNewTokensProcessor.class),
        classes(SamplingParams.builder().numBeams(4).minTokens(2).temperature(0)));
  }

  @Test
  void minTokensBansTheGivenEos() {
    LogitsPipeline p = LogitsPipeline.forParams(SamplingParams.builder().minTokens(1).build(), 3);
    float[] logits = {1f, 1f, 1f, 1f};
    p.process(new int[] {2, 9}, 2, 2, logits);
    assertArrayEquals(new float[] {1f, 1f, 1f, Float.NEGATIVE_INFINITY}, logits);
  }

  @Test
  void processorsRunInListOrder() {
    // Repetition penalty, then temperature: (4 / 2) / 0.5 = 4 for the repeated token, 1 / 0.5 = 2 for the other.
    LogitsPipeline p = LogitsPipeline.of(new RepetitionPenaltyProcessor(2), new TemperatureProcessor(0.5));
    float[] logits = {4f, 1f};
    p.process(new int[] {0}, 1, 1, logits);
    assertArrayEquals(new float[] {4f, 2f}, logits);
    assertEquals("LogitsPipeline[RepetitionPenalty(2.0), Temperature(0.5)]", p.toString());
  }
}
