package io.github.optjava.engine;

import static io.github.optjava.engine.SameChoices.assertSameChoices;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Choice;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.model.OptModel;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The other completions of an n > 1 request whose fork finds no free block (their fork picks' numbers were peeked, not
 * taken) prefill the prompt themselves in a later step and must draw with the same numbers of their streams: the
 * completions equal those of n separate prefills, and of forks that succeed. (Written by session 25's review.)
 */
class EngineForkWithoutBlockTest {
  private static final OptTokenizer TOKENIZER = TinyOpt.tokenizer();
  private static final long DUMMY = Long.MAX_VALUE;

  /** Takes every free block right after the step that prefilled a prompt of {@code promptLength} tokens. */
  private static final class BlockingModel extends WrappedModel {
    final int promptLength;
    boolean block;
    KvCache held;
    int blocked;

    BlockingModel(int promptLength, boolean block) {
      super(TinyOpt.model(new CpuOps()), true);
      this.promptLength = promptLength;
      this.block = block;
    }

    @Override
    public float[][] forward(List<OptModel.SeqStep> seqs, KvCache cache) {
      float[][] out = model.forward(seqs, cache);
      for (OptModel.SeqStep q : seqs) {
        if (block && q.newTokens().length == promptLength && cache.freeBlocks() > 0) {
          cache.reserve(DUMMY, cache.freeBlocks() * cache.blockSize());
          held = cache;
          block = false;
          blocked++;
        }
      }
      return out;
    }

    void unblock() {
      if (held != null) {
        held.release(DUMMY);
        held = null;
      }
    }
  }

  private static List<Choice> run(SamplingParams p, int[] prompt, boolean block, boolean share, long[] forked,
      int[] blocked) {
    BlockingModel model = new BlockingModel(prompt.length, block);
    try (model; KvCache cache = model.newCache(64, 4);
        Engine engine = new Engine(model, TOKENIZER, cache, 8, 128, 0, false, 0)) {
      engine.sharePrompts = share;
      Engine.Listener listener = (choice, token, text) -> model.unblock(); // (commit: after forkSiblings)
      List<Choice> out = engine.submit(prompt, p, listener).join().choices();
      forked[0] = engine.forkedPrefills();
      blocked[0] = model.blocked;
      return out;
    }
  }

  @Test
  void completionsThatCannotForkDrawWhatTheyWouldHave() {
    int[] prompt = TOKENIZER.encodeWithBos("Once upon a time there was a little"); // not a multiple of 4 tokens
    assertTrue(prompt.length % 4 != 0, "prompt of " + prompt.length);
    List<SamplingParams> params = List.of(
        SamplingParams.builder().temperature(0.9).topP(0.9).seed(5L).n(3).maxTokens(12).build(),
        SamplingParams.builder().temperature(0.8).seed(9L).n(3).maxTokens(10).repetitionPenalty(1.3).logprobs(2)
            .build());
    for (SamplingParams p : params) {
      long[] forked = new long[1];
      int[] blocked = new int[1];
      List<List<Choice>> separate = List.of(run(p, prompt, false, false, forked, blocked));
      List<List<Choice>> forks = List.of(run(p, prompt, false, true, forked, blocked));
      assertEquals(2, forked[0]);
      List<List<Choice>> failedForks = List.of(run(p, prompt, true, true, forked, blocked));
      assertEquals(1, blocked[0]);
      assertEquals(0, forked[0], "no completion could fork");
      assertSameChoices(separate, forks, "forks");
      assertSameChoices(separate, failedForks, "completions that could not fork");
    }
  }
}
