package io.github.optjava.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** close() and cancellation while requests wait: the defects GeneratorStressTest found in session 16, each reduced. */
class GeneratorCloseAndCancelTest {

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
    Generator g = Generator.open(GeneratorStressTest.dir("tiny-opt").toString(), small());
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

  /**
   * A TokenStream closed while its request waits in the queue (the batch is full) does not end until the request is
   * admitted, which needs a free batch slot and KV room for a prompt it will never run: Engine.admit drops only the
   * waiting requests whose future is done (r.future.isDone()), not those whose listener says cancelled. A future
   * cancelled the same way ends at once.
   */
  @Test
  void aStreamClosedWhileQueuedEndsWithoutWaitingForABatchSlot() throws Exception {
    try (Generator g = Generator.open(GeneratorStressTest.dir("tiny-opt").toString(), small().withMaxBatchSize(1))) {
      CompletableFuture<Completion> running = g.generateAsync("Hold the only slot", SamplingParams.greedy()
          .toBuilder().maxTokens(110).build());
      while (g.stats().running() == 0) {
        Thread.sleep(1);
      }
      TokenStream queued = g.stream("Queued behind it", SamplingParams.greedy().toBuilder().maxTokens(5).build());
      Thread.sleep(20);
      long t0 = System.nanoTime();
      queued.close();
      Completion c = queued.completion().get(60, TimeUnit.SECONDS);
      double waited = (System.nanoTime() - t0) / 1e9;
      boolean runningDoneFirst = running.isDone();
      System.out.printf("[repro] closed queued stream ended after %.3f s (%s); the running request was done first: %s%n",
          waited, c.finishReason(), runningDoneFirst);
      assertEquals(FinishReason.CANCELLED, c.finishReason());
      assertTrue(!runningDoneFirst, "the closed stream waited for the running request to finish (" + waited + " s)");
    }
  }

  /**
   * TokenStream.Chunk's Javadoc: tokenId is -1 for the final flush. A sequence that ends on EOS sends a last chunk
   * that repeats the previous token's id (Sequence.commit -> finish(EOS) -> emit(generated.last)), so a consumer
   * counting tokens from chunks counts one token twice.
   */
  @Test
  void theFinalFlushAfterEosHasTokenIdMinusOne() throws Exception {
    try (Generator g = Generator.open(GeneratorStressTest.dir("tiny-opt").toString(), small())) {
      SamplingParams eosAfter3 = SamplingParams.greedy().toBuilder().maxTokens(10).minTokens(3)
          .logitBias(java.util.Map.of(2, 100.0)).build();
      List<TokenStream.Chunk> chunks = new ArrayList<>();
      Completion c = g.generate("Hello", eosAfter3, chunks::add);
      assertEquals(FinishReason.EOS, c.finishReason());
      List<Integer> streamedIds = chunks.stream().map(TokenStream.Chunk::tokenId).filter(t -> t >= 0).toList();
      assertEquals(c.choices().get(0).tokenIds(), streamedIds, "chunks: " + chunks);
    }
  }
}
