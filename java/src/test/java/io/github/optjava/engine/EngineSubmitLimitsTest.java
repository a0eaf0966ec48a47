package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Completion;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Requests whose sizes overflow an int in {@link Engine#submit}'s checks are refused there, with the usual message.
 * (Found by session 26's new-user review: {@code max_tokens} 2^31 − 1 wrapped the prompt-plus-max-tokens sum to a
 * negative number, which passed the length check; the sequence's token array then failed to allocate on the engine
 * thread after its request had left the queue, so nothing failed its future: the caller, and a CLI batch behind it,
 * waited for ever. A huge {@code n} did the same through the KV-block count.)
 */
class EngineSubmitLimitsTest {
  private static final OptTokenizer TOKENIZER = TinyOpt.tokenizer();

  @Test
  void maxTokensNearIntMaxIsRefusedAndTheEngineGoesOn() throws Exception {
    try (Engine engine = TinyOpt.engine(32)) {
      int[] prompt = TOKENIZER.encode("A prompt");
      for (int maxTokens : new int[] {Integer.MAX_VALUE, Integer.MAX_VALUE - prompt.length + 1, 1 << 30}) {
        SamplingParams p = SamplingParams.greedy().toBuilder().maxTokens(maxTokens).build();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> engine.submit(prompt, p, null));
        assertTrue(e.getMessage().contains("exceed the limit of 128"), e.getMessage());
        assertTrue(e.getMessage().contains("max_tokens is " + maxTokens), e.getMessage());
      }
      Completion c = engine.submit(prompt, SamplingParams.greedy().toBuilder().maxTokens(3).build(), null)
          .get(30, TimeUnit.SECONDS);
      assertEquals(3, c.choices().get(0).tokenIds().size());
    }
  }

  /**
   * A request whose admission throws (here: the model's answer while its sequences are made) fails alone; it was out
   * of the queue and not yet in the batch, so the loop's failure handling never reached it and its caller hung.
   */
  @Test
  void aRequestWhoseAdmissionThrowsFailsAloneAndTheEngineGoesOn() throws Exception {
    java.util.concurrent.atomic.AtomicBoolean armed = new java.util.concurrent.atomic.AtomicBoolean();
    WrappedModel model = new WrappedModel(TinyOpt.model(new CpuOps()), false) {
      @Override
      public float[][] forward(java.util.List<io.github.optjava.model.OptModel.SeqStep> seqs, KvCache kv) {
        return this.model.forward(seqs, kv);
      }

      @Override
      public boolean samplesTypicalOnDevice() {
        if (armed.getAndSet(false)) {
          throw new OutOfMemoryError("planted: admission fails");
        }
        return false;
      }
    };
    try (Engine engine = new Engine(model, TOKENIZER, model.newCache(32, 4), 4, 128)) {
      int[] prompt = TOKENIZER.encode("A prompt");
      SamplingParams p = SamplingParams.greedy().toBuilder().maxTokens(3).build();
      armed.set(true);
      java.util.concurrent.ExecutionException e = assertThrows(java.util.concurrent.ExecutionException.class,
          () -> engine.submit(prompt, p, null).get(30, TimeUnit.SECONDS));
      assertTrue(e.getCause() instanceof OutOfMemoryError && e.getCause().getMessage().contains("planted"),
          String.valueOf(e.getCause()));
      assertEquals(3, engine.submit(prompt, p, null).get(30, TimeUnit.SECONDS).choices().get(0).tokenIds().size());
    }
  }

  @Test
  void nTimesBlocksBeyondIntMaxIsRefused() {
    io.github.optjava.model.OptModel m = TinyOpt.model(new CpuOps());
    try (Engine engine = new Engine(m, TOKENIZER, m.newCache(32, 4), Integer.MAX_VALUE, 128)) {
      SamplingParams p = SamplingParams.builder().temperature(1).n(1_500_000_000).maxTokens(16).build();
      int[] prompt = TOKENIZER.encode("x");
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> engine.submit(prompt, p, null));
      long blocks = 1_500_000_000L * ((prompt.length + 16 + 3) / 4); // past an int's range
      assertTrue(blocks > Integer.MAX_VALUE);
      assertTrue(e.getMessage().contains("needs " + blocks + " KV-cache blocks"), e.getMessage());
    }
  }

  /**
   * At most maxBatchSize sequences per step (session 27's review: a request with n = 12 decoded 12 rows per step at a
   * max batch of 2): a larger n takes turns, with the tokens it gets without the cap; more beams than that are refused,
   * since a beam search steps all its beams at once.
   */
  @Test
  void noStepHasMoreSequencesThanTheMaxBatch() throws Exception {
    int[] prompt = TOKENIZER.encode("A prompt");
    SamplingParams six = SamplingParams.builder().temperature(1).seed(1).n(6).maxTokens(5).build();
    CountingModel model = new CountingModel(TinyOpt.model(new CpuOps()), false);
    java.util.List<io.github.optjava.api.Choice> wide;
    try (Engine engine = new Engine(model, TOKENIZER, model.newCache(64, 4), 8, 128)) {
      wide = engine.submit(prompt, six, null).get(30, TimeUnit.SECONDS).choices();
    }
    model.maxStepSequences = 0;
    try (Engine engine = new Engine(model, TOKENIZER, model.newCache(64, 4), 4, 128)) {
      Completion c = engine.submit(prompt, six, null).get(30, TimeUnit.SECONDS);
      assertEquals(wide, c.choices(), "n = 6 taking turns at a max batch of 4");
      assertEquals(4, model.maxStepSequences, "the most sequences in one step");
      SamplingParams beams = SamplingParams.builder().numBeams(5).maxTokens(3).build();
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> engine.submit(prompt, beams, null));
      assertTrue(e.getMessage().startsWith("num_beams 5 is more than maxBatchSize (4)"), e.getMessage());
    }
  }
}
