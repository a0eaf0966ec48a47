package io.github.optjava.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** Minimal reproductions of what StressReviewTest's review found. */
class StressReviewReproTest {

  static GeneratorOptions small() {
    return GeneratorOptions.defaults().withDevice(Device.CPU).withThreads(2).withKvCacheTokens(512);
  }

  /**
   * close() while beam-search requests are queued: Generator.close's Javadoc says pending requests fail, but the
   * engine runs every queued beam search to completion after close (Engine.admit runs them back to back without
   * looking at `closed`, and a beam search in flight never looks at it either).
   */
  @Test
  void closeFailsQueuedBeamSearchesInsteadOfRunningThemAll() throws Exception {
    Generator g = Generator.open(StressReviewTest.dir("tiny-opt").toString(), small());
    SamplingParams beam = SamplingParams.builder().numBeams(4).maxTokens(60).build();
    List<CompletableFuture<Completion>> queued = new ArrayList<>();
    // A short greedy request holds the batch, so the beam requests queue behind it in the engine's waiting list;
    // when it ends, admit() runs them one after another.
    CompletableFuture<Completion> first = g.generateAsync("Hold the batch", SamplingParams.greedy().toBuilder()
        .maxTokens(20).build());
    for (int i = 0; i < 40; i++) {
      queued.add(g.generateAsync("Beam number " + i, beam));
    }
    first.get(30, TimeUnit.SECONDS);
    Thread.sleep(100); // the first beam search is running
    long t0 = System.nanoTime();
    g.close();
    double closeSecs = (System.nanoTime() - t0) / 1e9;
    int completedNormally = 0;
    for (CompletableFuture<Completion> f : queued) {
      try {
        f.get(60, TimeUnit.SECONDS);
        completedNormally++;
      } catch (java.util.concurrent.ExecutionException e) {
        assertTrue(e.getCause() instanceof IllegalStateException, String.valueOf(e.getCause()));
      }
    }
    System.out.printf("[repro] close took %.2f s; %d of %d queued beam requests completed normally after close%n",
        closeSecs, completedNormally, queued.size());
    assertTrue(completedNormally <= 2, completedNormally + " beam searches still ran after close() (close took "
        + closeSecs + " s)");
  }
}
