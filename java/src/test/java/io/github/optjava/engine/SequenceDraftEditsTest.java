package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.SamplingParams;
import io.github.optjava.backend.LogitEdits;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/**
 * The logit edits of a step that checks drafts where the logits are: row r must carry exactly the edits of the plain
 * step it stands for, the one after drafts 0..r-1 were accepted (penalties count them, an n-gram ban sees them, a
 * minimum length counts them).
 */
class SequenceDraftEditsTest {
  private static final OptTokenizer TOKENIZER = TinyOpt.tokenizer();
  private static final int VOCAB = 50272;
  private static final int EOS = 2;
  // BOS, then a phrase said twice and begun a third time: prompt lookup proposes the rest of it
  private static final int[] PROMPT = {2, 100, 200, 300, 400, 500, 100, 200, 300, 400, 500, 100, 200};

  private static Sequence sequence(SamplingParams p) {
    Engine.Listener quiet = (choice, token, text) -> { };
    return new Sequence(new Request(PROMPT, p, quiet, new AtomicLong()), 0, 1, TOKENIZER, EOS);
  }

  /** {@code rows} copies of one random row with the edits applied. */
  private static float[] edited(LogitEdits edits, float[] row, int rows) {
    float[] out = new float[rows * VOCAB];
    for (int r = 0; r < rows; r++) {
      System.arraycopy(row, 0, out, r * VOCAB, VOCAB);
    }
    edits.applyTo(out);
    return out;
  }

  @Test
  void eachDraftRowHasTheEditsOfThePlainStepItStandsFor() {
    SamplingParams p = SamplingParams.greedy().toBuilder().maxTokens(20).minTokens(3).repetitionPenalty(1.3)
        .presencePenalty(0.4).frequencyPenalty(0.2).noRepeatNgramSize(3).build();
    float[] row = new float[VOCAB];
    SplittableRandom random = new SplittableRandom(5);
    for (int i = 0; i < VOCAB; i++) {
      row[i] = (float) random.nextGaussian();
    }
    Sequence s = sequence(p);
    s.acceptGreedy(300, -1.0); // prefilled, one token generated: history ... 100 200 300
    int drafts = s.proposeDrafts(4);
    assertEquals(4, drafts, "the phrase continues 400 500 100 200");
    int[] proposed = Arrays.copyOfRange(s.nextStep(5).newTokens(), 1, 5);
    assertArrayEquals(new int[] {400, 500, 100, 200}, proposed);

    LogitEdits.Builder b = new LogitEdits.Builder(VOCAB);
    s.edits(b, 0, drafts);
    float[] got = edited(b.build(), row, drafts + 1);

    float[][] want = new float[drafts + 1][];
    for (int r = 0; r <= drafts; r++) {
      Sequence plain = sequence(p); // the same history with drafts 0..r-1 accepted one step at a time
      plain.acceptGreedy(300, -1.0);
      for (int i = 0; i < r; i++) {
        plain.acceptGreedy(proposed[i], -1.0);
      }
      LogitEdits.Builder one = new LogitEdits.Builder(VOCAB);
      plain.edits(one, 0, 0);
      want[r] = edited(one.build(), row, 1);
      assertArrayEquals(want[r], Arrays.copyOfRange(got, r * VOCAB, (r + 1) * VOCAB), "row " + r);
    }
    // the rows differ, or the test could not tell a row's history from the first's
    for (int r = 1; r <= drafts; r++) {
      assertFalse(Arrays.equals(want[0], want[r]), "row " + r + " equals row 0");
    }
    // min_tokens 3: EOS is banned while fewer than 3 tokens are generated (1 before the step, then 1 per draft row)
    assertEquals(Float.NEGATIVE_INFINITY, want[1][EOS], "2 generated: EOS banned");
    assertTrue(Float.isFinite(want[2][EOS]), "3 generated: EOS allowed");
  }
}
