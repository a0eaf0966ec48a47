package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Choice;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.cpu.CpuOps;
import io.github.optjava.model.OptModel;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * A NaN in the row of a rejected draft (a row plain decoding never computes) must not fail a request that checks its
 * drafts where the logits are, as it does not on the host path, which reads the rows in order and stops at the first
 * rejected one (found by session 24's review: the step's NaN check read every drafted row).
 */
class DraftRowNanTest {
  private static final OptTokenizer TOKENIZER = TinyOpt.tokenizer();
  private static final String PROMPT = "the cat sat on the mat. the cat sat on the mat. the cat sat on the";

  /**
   * CpuOps' model, whose rows fed a token other than the plain run's at that position come out NaN (recording the
   * plain run's tokens when {@code plainFed} is null). Its picks are CausalLm's defaults, over its forward.
   */
  private static final class PoisonModel extends WrappedModel {
    final Map<Integer, Integer> plainFed; // position -> token; null: record into fed
    final Map<Integer, Integer> fed = new HashMap<>();
    int poisoned;

    PoisonModel(boolean onDevice, Map<Integer, Integer> plainFed) {
      super(TinyOpt.model(new CpuOps()), onDevice);
      this.plainFed = plainFed;
    }

    @Override
    public float[][] forward(List<OptModel.SeqStep> seqs, KvCache cache) {
      int[] past = pastLengths(seqs, cache);
      float[][] out = model.forward(seqs, cache);
      int vocab = config().vocabSize();
      for (int s = 0; s < seqs.size(); s++) {
        int[] t = seqs.get(s).newTokens();
        for (int i = 0; i < t.length; i++) {
          int pos = past[s] + i;
          if (plainFed == null) {
            fed.put(pos, t[i]);
          } else if (seqs.get(s).allLogits() && i > 0 && !Integer.valueOf(t[i]).equals(plainFed.get(pos))) {
            java.util.Arrays.fill(out[s], i * vocab, (i + 1) * vocab, Float.NaN); // a rejected draft's row
            poisoned++;
          }
        }
      }
      return out;
    }
  }

  private static List<Choice> run(PoisonModel model, int lookup) {
    SamplingParams p = SamplingParams.builder().temperature(0.8).topP(0.95).seed(1L).maxTokens(30).build();
    try (model; KvCache cache = model.newCache(64, 4);
        Engine engine = new Engine(model, TOKENIZER, cache, 4, 128, 0, false, lookup)) {
      return engine.submit(TOKENIZER.encode(PROMPT), p, null).join().choices();
    }
  }

  @Test
  void aNanInARejectedDraftRowDoesNotFailTheRequest() {
    PoisonModel recorder = new PoisonModel(true, null);
    List<Choice> plain = run(recorder, 0);
    for (boolean onDevice : new boolean[] {false, true}) { // the host path's rows, then the picks
      PoisonModel poisoned = new PoisonModel(onDevice, recorder.fed);
      List<Choice> drafted = run(poisoned, 4);
      assertTrue(poisoned.poisoned > 0, "some drafts were rejected");
      assertEquals(plain.get(0).tokenIds(), drafted.get(0).tokenIds(), onDevice ? "picked where the logits are"
          : "the host path");
    }
  }
}
