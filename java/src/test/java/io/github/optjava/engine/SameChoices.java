package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.optjava.api.Choice;
import java.util.List;

/** The engine tests' "every request got exactly the same": tokens, text, finish reason, log-probs and score. */
final class SameChoices {
  private SameChoices() {}

  /** {@code expected} and {@code actual}: per request, its choices; {@code what} names the run in a failure. */
  static void assertSameChoices(List<List<Choice>> expected, List<List<Choice>> actual, String what) {
    assertEquals(expected.size(), actual.size(), what + ": requests");
    for (int i = 0; i < expected.size(); i++) {
      assertEquals(expected.get(i).size(), actual.get(i).size(), what + ", request " + i);
      for (int c = 0; c < expected.get(i).size(); c++) {
        Choice e = expected.get(i).get(c);
        Choice a = actual.get(i).get(c);
        String where = what + ", request " + i + " choice " + c;
        assertEquals(e.tokenIds(), a.tokenIds(), where);
        assertEquals(e.text(), a.text(), where);
        assertEquals(e.finishReason(), a.finishReason(), where);
        assertEquals(e.logprobs(), a.logprobs(), where);
        assertEquals(e.score(), a.score(), where);
      }
    }
  }
}
