package io.github.optjava.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.api.Choice;
import io.github.optjava.api.FinishReason;
import io.github.optjava.api.SamplingParams;
import io.github.optjava.tokenizer.OptTokenizer;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * A cancelled sequence streams the text it held back for a possible stop string: the chunks, joined, are its choice's
 * text, as for every other finish reason. (Found by session 26's concurrency review: a cancellation set the reason
 * without the final flush, so a stream read to its end lacked the held-back text that {@code Choice.text} had.)
 */
class CancelledStreamFlushTest {
  private static final OptTokenizer TOKENIZER = TinyOpt.tokenizer();

  @Test
  void heldBackTextIsStreamedWhenTheCallerCancels() throws Exception {
    try (Engine engine = TinyOpt.engine(64)) {
      int[] prompt = TOKENIZER.encode("Hello world");
      SamplingParams.Builder greedy = SamplingParams.greedy().toBuilder().maxTokens(12);
      List<Integer> ids = engine.submit(prompt, greedy.build(), null).get(60, TimeUnit.SECONDS).choices().get(0)
          .tokenIds();
      int k = 2; // cancel after the second token, whose text's last character may begin the stop string
      String upToK = TOKENIZER.decode(ids.subList(0, k).stream().mapToInt(Integer::intValue).toArray(), true, false);
      assertTrue(!upToK.isEmpty() && upToK.charAt(upToK.length() - 1) != '\uFFFD', upToK);
      String stop = upToK.charAt(upToK.length() - 1) + "\u0001"; // never completed: its first character is held

      StringBuilder streamed = new StringBuilder();
      AtomicInteger tokens = new AtomicInteger();
      Choice c = engine.submit(prompt, greedy.stop(List.of(stop)).build(), new Engine.Listener() {
        @Override
        public void onToken(int choice, int tokenId, String text) {
          streamed.append(text);
          if (tokenId >= 0) {
            tokens.incrementAndGet();
          }
        }

        @Override
        public boolean cancelled() {
          return tokens.get() >= k;
        }
      }).get(60, TimeUnit.SECONDS).choices().get(0);
      assertEquals(FinishReason.CANCELLED, c.finishReason());
      assertEquals(ids.subList(0, k), c.tokenIds());
      assertEquals(upToK, c.text());
      assertEquals(c.text(), streamed.toString(), "the chunks, joined, are the choice's text");
    }
  }
}
