package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Choice;
import io.github.optjava.api.Completion;
import io.github.optjava.api.FinishReason;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.model.OptModel;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * A NaN in a row that a draft step computes after an accepted draft that ENDS the sequence (a stop string, or EOS)
 * must fail nothing: plain decoding never computes that row, and the host path ({@link Sequence#acceptDrafts}) stops
 * at the finish. (Found by session 25's review: {@code Engine.runModel}, now {@code ModelStep.run}, checked the
 * picked rows for NaN up to the first rejected draft, and a NaN there failed every request of the batch, an unrelated
 * one included. The check now
 * happens where a sequence takes a row, and fails only its own request, as on the host path.) And a NaN in a row a
 * sampled sequence does take fails that request alone.
 *
 * <p>The model: tiny-opt's forward (so the KV cache advances), its rows replaced by a script (each fed token's row
 * puts 30 on its successor, 0 elsewhere: the draw is certain), and a row fed the poison token after the prompt made
 * NaN: a row plain decoding never computes.
 */
class DraftRowAfterFinishNanTest {
  private static final OptTokenizer TOKENIZER = TinyOpt.tokenizer();

  private static final class ScriptModel extends WrappedModel {
    final Map<Integer, Integer> next;
    final int poison;
    final int poisonFrom; // positions at or after this (the request's prompt length)
    int poisoned;

    ScriptModel(boolean onDevice, Map<Integer, Integer> next, int poison, int poisonFrom) {
      super(TinyOpt.model(new CpuOps()), onDevice);
      this.next = next;
      this.poison = poison;
      this.poisonFrom = poisonFrom;
    }

    @Override
    public float[][] forward(List<OptModel.SeqStep> seqs, KvCache cache) {
      int[] past = pastLengths(seqs, cache);
      float[][] out = model.forward(seqs, cache);
      int vocab = config().vocabSize();
      for (int s = 0; s < seqs.size(); s++) {
        int[] t = seqs.get(s).newTokens();
        int rows = out[s].length / vocab;
        for (int r = 0; r < rows; r++) {
          int i = seqs.get(s).allLogits() ? r : t.length - 1; // the fed token this row follows
          int pos = past[s] + i;
          java.util.Arrays.fill(out[s], r * vocab, (r + 1) * vocab, 0f);
          if (t[i] == poison && pos >= poisonFrom) {
            java.util.Arrays.fill(out[s], r * vocab, (r + 1) * vocab, Float.NaN);
            poisoned++;
          } else {
            out[s][r * vocab + next.getOrDefault(t[i], t[i])] = 30f;
          }
        }
      }
      return out;
    }
  }

  private record Run(Completion sampled, Completion other, Throwable failure, int poisoned) {}

  private static Run run(boolean onDevice, int lookup, int[] prompt, Map<Integer, Integer> next, int poison,
      SamplingParams p, int[] otherPrompt) {
    ScriptModel model = new ScriptModel(onDevice, next, poison, prompt.length);
    try (model; KvCache cache = model.newCache(64, 4);
        Engine engine = new Engine(model, TOKENIZER, cache, 4, 128, 0, false, lookup)) {
      // an unrelated, long greedy request first, so that it shares the sampled request's steps
      CompletableFuture<Completion> other = engine.submit(otherPrompt,
          SamplingParams.greedy().toBuilder().maxTokens(60).build(), null);
      CompletableFuture<Completion> sampled = engine.submit(prompt, p, null);
      Completion s = null;
      Completion o = null;
      Throwable failure = null;
      try {
        s = sampled.join();
      } catch (RuntimeException e) {
        failure = e;
      }
      try {
        o = other.join();
      } catch (RuntimeException e) {
        failure = failure == null ? e : failure;
      }
      return new Run(s, o, failure, model.poisoned);
    }
  }

  private static int tok(String word) {
    int[] ids = TOKENIZER.encode(word);
    assertEquals(1, ids.length, "'" + word + "' is one token");
    return ids[0];
  }

  private static void check(int[] prompt, Map<Integer, Integer> next, int poison, SamplingParams p,
      FinishReason expected) {
    int red = tok(" red");
    int green = tok(" green");
    next.put(red, green);
    next.put(green, red);
    int[] other = {2, red, green, red, green};
    Run plain = run(true, 0, prompt, next, poison, p, other);
    assertEquals(null, plain.failure(), "plain decoding");
    assertEquals(expected, plain.sampled().choices().get(0).finishReason());
    Run host = run(false, 4, prompt, next, poison, p, other);
    assertEquals(null, host.failure(), "drafts checked on the host");
    assertEquals(plain.sampled().choices().get(0).tokenIds(), host.sampled().choices().get(0).tokenIds());
    Run picked = run(true, 4, prompt, next, poison, p, other);
    assertTrue(picked.poisoned() > 0, "a row after the finishing draft was computed");
    if (picked.failure() != null) {
      throw new AssertionError("drafts picked where the logits are: a NaN in a row after the accepted draft that ended "
          + "the sequence failed the step (sampled request failed: " + (picked.sampled() == null)
          + ", unrelated greedy request failed: " + (picked.other() == null) + ")", picked.failure());
    }
    List<Integer> tokens = new ArrayList<>(picked.sampled().choices().get(0).tokenIds());
    assertEquals(plain.sampled().choices().get(0).tokenIds(), tokens);
    assertEquals(plain.other().choices().get(0).tokenIds(), picked.other().choices().get(0).tokenIds());
  }

  /**
   * A NaN in the row a sampled request takes (no drafts) fails that request, with the sampler's message, and not the
   * greedy request sharing its steps: on the host path (the row brought to the host) and where the logits are alike.
   */
  @Test
  void aNanInATakenRowFailsItsOwnRequestOnly() {
    int a = tok(" one");
    int b = tok(" two");
    int c = tok(" three");
    int red = tok(" red");
    int green = tok(" green");
    // " one" -> " two" -> " three", whose row (after the prompt) is NaN: the third token cannot be drawn
    Map<Integer, Integer> next = new HashMap<>(Map.of(a, b, b, c, red, green, green, red));
    int[] prompt = {2, a};
    int[] other = {2, red, green, red, green};
    SamplingParams p = SamplingParams.builder().temperature(0.8).topP(0.95).seed(1L).maxTokens(20).build();
    Completion alone = run(true, 0, other, next, c, SamplingParams.greedy().toBuilder().maxTokens(60).build(),
        other).other();
    for (boolean onDevice : new boolean[] {false, true}) {
      Run r = run(onDevice, 0, prompt, next, c, p, other);
      assertTrue(r.poisoned() > 0, "the row was computed");
      assertTrue(r.sampled() == null && r.failure() != null
          && String.valueOf(r.failure().getMessage()).contains("a logit is NaN"), "onDevice " + onDevice + ": "
          + r.failure());
      assertTrue(r.other() != null, "onDevice " + onDevice + ": the greedy request failed too");
      assertEquals(alone.choices().get(0).tokenIds(), r.other().choices().get(0).tokenIds());
    }
  }

  @Test
  void aStopStringInsideTheAcceptedDraftsDoesNotFailTheBatch() {
    int a = tok(" one");
    int b = tok(" two");
    int c = tok(" three");
    int d = tok(" four");
    Map<Integer, Integer> next = new HashMap<>(Map.of(a, b, b, c, c, d, d, a));
    int[] prompt = {2, a, b, c, d, a, b, c, d, a, b};
    // generates " three", then a draft step fed [three, four, one, two, three]: " one" (row 1) ends it on the stop
    // string; row 2 (fed " one") is never computed by plain decoding
    SamplingParams p = SamplingParams.builder().temperature(0.8).topP(0.95).seed(1L).maxTokens(20)
        .stop(List.of("one")).build();
    check(prompt, next, a, p, FinishReason.STOP);
  }

  @Test
  void anEosInsideTheAcceptedDraftsDoesNotFailTheBatch() {
    int a = tok(" one");
    int b = tok(" two");
    // a prompt of "</s>"-separated parts: prompt lookup proposes the EOS that followed " one two" there
    Map<Integer, Integer> next = new HashMap<>(Map.of(a, b, b, 2, 2, a));
    int[] prompt = {2, a, b, 2, a, b, 2, a};
    SamplingParams p = SamplingParams.builder().temperature(0.8).topP(0.95).seed(1L).maxTokens(20).build();
    check(prompt, next, 2, p, FinishReason.EOS);
  }
}
