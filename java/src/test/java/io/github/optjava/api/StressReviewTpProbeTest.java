package io.github.optjava.api;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Probe: is a row's result independent of what shares its step, with tensor / pipeline parallelism? */
class StressReviewTpProbeTest {
  @ParameterizedTest
  @CsvSource({"1,1,false", "2,1,false", "1,2,false", "2,1,true", "1,1,true", "1,2,true"})
  void aloneVersusBatched(int tp, int pp, boolean prefix) throws Exception {
    GeneratorOptions o = GeneratorOptions.defaults().withDevice(Device.CPU).withThreads(2).withKvCacheTokens(2048)
        .withTensorParallel(tp).withPipelineParallel(pp).withPrefixCaching(prefix);
    SamplingParams p = SamplingParams.greedy().toBuilder().maxTokens(12).logprobs(0).build();
    String x = "Translate the following sentence into French, keeping the meaning: Once upon a time there";
    try (Generator g = Generator.open(StressReviewTest.dir("tiny-opt").toString(), o)) {
      Completion alone = g.generate(x, p);
      List<CompletableFuture<Completion>> others = new ArrayList<>();
      for (int i = 0; i < 5; i++) {
        others.add(g.generateAsync("Other prompt number " + i + " with some words", p));
      }
      Completion batched = g.generateAsync(x, p).get();
      Completion fresh = null;
      for (CompletableFuture<Completion> f : others) {
        f.get();
      }
      double maxDiff = 0;
      for (int i = 0; i < alone.choices().get(0).logprobs().size(); i++) {
        maxDiff = Math.max(maxDiff, Math.abs(alone.choices().get(0).logprobs().get(i).logprob()
            - batched.choices().get(0).logprobs().get(i).logprob()));
      }
      System.out.printf("[tp-probe] tp=%d pp=%d prefix=%s: same tokens %s, max |dlogprob| %.3g%n", tp, pp, prefix,
          alone.choices().get(0).tokenIds().equals(batched.choices().get(0).tokenIds()), maxDiff);
    }
  }
}
