package io.github.optjava.api;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** Probes: print what happens, assert nothing (exploration). */
class StressReviewProbeTest {
  static Generator open() {
    return Generator.open(StressReviewTest.dir("tiny-opt").toString(),
        GeneratorOptions.defaults().withDevice(Device.CPU).withThreads(2).withKvCacheTokens(512));
  }

  @Test
  void probes() throws Exception {
    try (Generator g = open()) {
      // EOS after 3 tokens: chunks
      SamplingParams eos = SamplingParams.greedy().toBuilder().maxTokens(10).minTokens(3)
          .logitBias(Map.of(2, 100.0)).build();
      List<TokenStream.Chunk> chunks = new ArrayList<>();
      Completion c = g.generate("Hello", eos, chunks::add);
      System.out.println("[probe] EOS: " + c.choices() + "\n   chunks " + chunks);
      // beam stream cancel
      try (TokenStream ts = g.stream("Beam me", SamplingParams.builder().numBeams(3).maxTokens(60).build())) {
        ts.cancel();
        for (TokenStream.Chunk ch : ts) {
          System.out.println("[probe] beam chunk " + ch);
        }
        try {
          System.out.println("[probe] beam cancelled stream completion: " + ts.completion().get(10, TimeUnit.SECONDS));
        } catch (Exception e) {
          System.out.println("[probe] beam cancelled stream completion failed: " + e);
        }
      }
      try (TokenStream ts = g.stream("Greedy me", SamplingParams.greedy().toBuilder().maxTokens(60).build())) {
        ts.cancel();
        for (TokenStream.Chunk ch : ts) {
          System.out.println("[probe] greedy chunk " + ch);
        }
        System.out.println("[probe] greedy cancelled stream completion: " + ts.completion().get(10, TimeUnit.SECONDS).choices());
      }
      // beam maxTokens 0
      try {
        System.out.println("[probe] beam max 0: " + g.generate("x", SamplingParams.builder().numBeams(2).maxTokens(0).build()));
      } catch (Exception e) {
        System.out.println("[probe] beam max 0 threw " + e);
      }
      // n>1 maxTokens 0
      System.out.println("[probe] n=3 max 0: " + g.generate("x", SamplingParams.builder().n(3).seed(1L).maxTokens(0).build()).choices());
      System.out.println("[probe] stats " + g.stats());
    }
    Generator g = open();
    CompletableFuture<Completion> f = g.generateAsync("x", SamplingParams.greedy().toBuilder().maxTokens(100).build());
    Thread a = new Thread(g::close);
    Thread b = new Thread(g::close);
    a.start();
    b.start();
    a.join(20000);
    b.join(20000);
    System.out.println("[probe] concurrent close done: " + !a.isAlive() + " " + !b.isAlive() + " f=" + f.handle((x, e) -> e));
    g.close();
    System.out.println("[probe] stats after close " + g.stats());
    try {
      g.stream("y", SamplingParams.greedy());
    } catch (Exception e) {
      System.out.println("[probe] stream after close: " + e);
    }
    try {
      g.score("y");
    } catch (Exception e) {
      System.out.println("[probe] score after close: " + e);
    }
  }
}
