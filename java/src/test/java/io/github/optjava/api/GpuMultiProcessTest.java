package io.github.optjava.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.backend.cuda.GpuTest;
import io.github.optjava.parallel.Rendezvous;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The multi-process path on CUDA as far as one GPU takes it: two pipeline-stage "processes" (threads with
 * their own placements and TCP links) both on GPU 0 give the greedy tokens and beams of one CUDA generator.
 * Hidden states go over TCP here ({@code opt.multiprocess.transport=tcp}): NCCL refuses two ranks on one GPU,
 * so its send/recv path needs two GPUs.
 */
@GpuTest
class GpuMultiProcessTest {

  private static List<String> run(Generator gen) {
    List<String> out = new ArrayList<>();
    SamplingParams greedy = SamplingParams.greedy().toBuilder().maxTokens(12).build();
    for (String p : List.of("Our team won the championship last year", "This", "Hello, my dog is cute and")) {
      out.add(gen.generate(p, greedy).choices().get(0).tokenIds().toString());
    }
    SamplingParams beams = SamplingParams.builder().temperature(0).numBeams(2).n(2).maxTokens(6).build();
    for (Choice c : gen.generate("This", beams).choices()) {
      out.add("beam " + c.tokenIds());
    }
    return out;
  }

  @Test
  void twoStagesOnOneGpuGiveTheTokensOfOneGenerator() throws Exception {
    String model = MultiProcessGeneratorTest.fixture("tiny-opt");
    GeneratorOptions options = GeneratorOptions.defaults().withDevice(Device.CUDA)
        .withDtype(io.github.optjava.checkpoint.DType.F32).withKvCacheTokens(1024);
    List<String> expected;
    try (Generator single = Generator.open(model, options)) {
      expected = run(single);
    }
    int port = MultiProcessGeneratorTest.freePort();
    ExecutorService processes = Executors.newFixedThreadPool(2);
    System.setProperty("opt.multiprocess.transport", "tcp");
    try {
      List<Future<Optional<Generator>>> opened = new ArrayList<>();
      for (int r = 0; r < 2; r++) {
        // local rank 0 for both: the one GPU
        Rendezvous.Placement p = new Rendezvous.Placement(r, 2, 0, "127.0.0.1", port, "test");
        opened.add(processes.submit(() -> Generator.openMultiProcess(model, options.withPipelineParallel(2), p,
            Duration.ofSeconds(60))));
      }
      try (Generator gen = opened.get(0).get(120, TimeUnit.SECONDS).orElseThrow()) {
        assertEquals(Device.CUDA, gen.device());
        assertEquals(expected, run(gen));
      }
      assertTrue(opened.get(1).get(60, TimeUnit.SECONDS).isEmpty());
    } finally {
      System.clearProperty("opt.multiprocess.transport");
      processes.shutdownNow();
    }
  }
}
