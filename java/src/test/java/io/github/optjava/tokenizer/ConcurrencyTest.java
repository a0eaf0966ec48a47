package io.github.optjava.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.optjava.tokenizer.TokenizerFixtures.Case;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/** One tokenizer shared by several threads, starting with a cold cache that they fill together. */
class ConcurrencyTest {

  @Test
  void encodeFromManyThreadsGivesTheReferenceIds() throws Exception {
    OptTokenizer tok = OptTokenizer.load(TokenizerFixtures.tokenizerDir().resolve("vocab.json"),
        TokenizerFixtures.tokenizerDir().resolve("merges.txt"));
    List<Case> cases = TokenizerFixtures.cases();
    int threads = 8;
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    CountDownLatch start = new CountDownLatch(1);
    try {
      List<Future<Integer>> results = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        List<Case> order = new ArrayList<>(cases);
        Collections.shuffle(order, new Random(t)); // threads meet different words first
        results.add(pool.submit(() -> {
          start.await();
          int checked = 0;
          for (int round = 0; round < 5; round++) {
            for (Case c : order) {
              assertArrayEquals(c.ids(), tok.encode(c.text()), c.toString());
              assertEquals(c.decoded(), tok.decode(c.ids()), c.toString());
              checked++;
            }
          }
          return checked;
        }));
      }
      start.countDown();
      for (Future<Integer> result : results) {
        assertEquals(5 * cases.size(), result.get()); // rethrows any assertion failure of the thread
      }
    } finally {
      pool.shutdownNow();
    }
  }
}
