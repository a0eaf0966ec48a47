package io.github.optjava.engine;

import static io.github.optjava.engine.SameChoices.assertSameChoices;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Choice;
import io.github.optjava.api.Completion;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.model.BucketedCpuOps;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/**
 * An n > 1 request whose first completion prefills one token (its prompt's first block from the prefix cache) in a
 * decode-shaped step with two decoding sequences: three one-token sequences, padded to a batch bucket of 4
 * ({@link BucketedCpuOps}, as CudaOps with {@code -Dopt.cuda.batchBuckets=true}). The other completions' extra picks
 * must survive the padding (session 24's review: the padded step's result was cut to the sequences, extra picks too,
 * and every request in flight failed).
 */
class EngineForkPicksPaddedTest {
  private static final int[] P = {2, 40, 41, 42, 43}; // 5 tokens: a full block cached, one token left to prefill
  private static final int[] Q1 = {2, 50, 51, 52, 53, 54, 55};
  private static final int[] Q2 = {2, 60, 61, 62};

  static List<List<Choice>> run(boolean pickedForks, CountingModel model) {
    try (model; KvCache cache = model.newCache(256, 4);
        Engine engine = new Engine(model, TinyOpt.tokenizer(), cache, 8, 128, 0, true, 0)) {
      engine.usePickedForks(pickedForks);
      engine.submit(P, SamplingParams.builder().temperature(0.8).seed(3L).maxTokens(1).build(), null).join();
      SamplingParams longer = SamplingParams.builder().temperature(0.8).seed(4L).maxTokens(20).build();
      List<CompletableFuture<Completion>> futures = new ArrayList<>();
      futures.add(engine.submit(Q1, longer, null));
      CompletableFuture<CompletableFuture<Completion>> forked = new CompletableFuture<>();
      AtomicBoolean once = new AtomicBoolean();
      futures.add(engine.submit(Q2, longer.toBuilder().seed(5L).build(), (choice, token, text) -> {
        if (once.compareAndSet(false, true)) { // on the engine's thread: the next step admits it with Q1, Q2 decoding
          forked.complete(engine.submit(P, SamplingParams.builder().temperature(0.9).seed(6L).n(3).maxTokens(6)
              .logprobs(2).build(), null));
        }
      }));
      futures.add(forked.join());
      List<List<Choice>> out = new ArrayList<>();
      for (CompletableFuture<Completion> f : futures) {
        out.add(f.join().choices());
      }
      assertEquals(2, engine.forkedPrefills());
      return out;
    }
  }

  @Test
  void forkPicksInAPaddedDecodeStep() {
    List<List<Choice>> host = run(false, new CountingModel(TinyOpt.model(new BucketedCpuOps()), true));
    CountingModel model = new CountingModel(TinyOpt.model(new BucketedCpuOps()), true);
    List<List<Choice>> picked = run(true, model);
    assertSameChoices(host, picked, "fork picks in a padded step");
    assertEquals(2, model.forkPicks, "the two other completions picked where the logits are");
    assertTrue(model.forwards == 0, "no row brought to the host");
  }
}
