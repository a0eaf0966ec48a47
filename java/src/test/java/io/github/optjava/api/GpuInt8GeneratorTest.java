package io.github.optjava.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.backend.cuda.GpuTest;
import io.github.optjava.checkpoint.DType;
import org.junit.jupiter.api.Test;

/**
 * int8 weights through the public API on one GPU (no flag since session 17): {@code Generator.open} with Device.CUDA
 * and with AUTO runs them on CUDA, quantized (the scores move away from the unquantized GPU model's) to the same
 * integers as the CPU (the scores equal the CPU int8 model's up to float32 sum order). float32 activations on both.
 */
@GpuTest
class GpuInt8GeneratorTest {
  private static final String TEXT = "Our team won the championship last year, and this year we";

  @Test
  void int8OnOneGpuScoresAsTheCpuInt8Model() {
    String model = MultiProcessGeneratorTest.fixture("tiny-opt");
    GeneratorOptions f32 = GeneratorOptions.defaults().withDtype(DType.F32).withKvCacheTokens(1024);
    GeneratorOptions int8 = f32.withQuantization(Quantization.INT8);
    Score cpu;
    Score plain;
    try (Generator g = Generator.open(model, int8.withDevice(Device.CPU))) {
      cpu = g.score(TEXT);
    }
    try (Generator g = Generator.open(model, f32.withDevice(Device.CUDA))) {
      plain = g.score(TEXT);
    }
    for (Device asked : new Device[] {Device.CUDA, Device.AUTO}) {
      try (Generator g = Generator.open(model, int8.withDevice(asked))) {
        assertEquals(Device.CUDA, g.device(), asked + " with a usable GPU runs int8 there");
        Score gpu = g.score(TEXT);
        assertEquals(cpu.tokenIds(), gpu.tokenIds());
        double moved = 0;
        for (int i = 1; i < cpu.logprobs().size(); i++) {
          double got = gpu.logprobs().get(i).logprob();
          assertEquals(cpu.logprobs().get(i).logprob(), got, 1e-3, asked + ": token " + i);
          moved = Math.max(moved, Math.abs(got - plain.logprobs().get(i).logprob()));
        }
        assertTrue(moved > 1e-4, asked + ": the int8 scores must differ from the unquantized GPU model's (" + moved
            + "): were the weights quantized?");
        assertEquals(8, g.generate("Hello", SamplingParams.greedy().toBuilder().maxTokens(8).minTokens(8).build())
            .choices().get(0).tokenIds().size());
      }
    }
  }
}
