package io.github.optjava.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.backend.Mat;
import io.github.optjava.backend.Ops;
import io.github.optjava.backend.cpu.CpuOps;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.IntFunction;
import org.junit.jupiter.api.Test;

/** The in-process collectives: sums, gathers, rank-order determinism, and failure instead of a hang. */
class LocalTpGroupTest {
  private final Ops ops = new CpuOps();

  /** Runs {@code body(rank)} on one thread per rank and returns the results in rank order. */
  static <T> List<T> onRanks(int world, IntFunction<T> body) throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(world);
    try {
      List<Future<T>> futures = new ArrayList<>();
      for (int r = 0; r < world; r++) {
        int rank = r;
        futures.add(pool.submit(() -> body.apply(rank)));
      }
      List<T> out = new ArrayList<>();
      for (Future<T> f : futures) {
        out.add(f.get(60, TimeUnit.SECONDS));
      }
      return out;
    } finally {
      pool.shutdownNow();
    }
  }

  private Mat mat(int rows, int cols, float[] data) {
    Mat m = ops.alloc(rows, cols);
    ops.write(m, data);
    return m;
  }

  @Test
  void allReduceSumsEveryRanksMatrix() throws Exception {
    int world = 4;
    List<TpGroup> group = LocalTpGroup.create(world);
    List<float[]> got = onRanks(world, r -> {
      Mat m = mat(2, 3, new float[] {r, 10 * r, 100 * r, 1, 2, 3});
      for (int i = 0; i < 3; i++) { // several rounds reuse the same group
        group.get(r).allReduce(m);
      }
      return ops.read(m);
    });
    // round 1: (6, 60, 600, 4, 8, 12); rounds 2 and 3 multiply by 4 each
    float[] expected = {96, 960, 9600, 64, 128, 192};
    for (int r = 0; r < world; r++) {
      assertEquals(r, group.get(r).rank());
      assertEquals(world, group.get(r).worldSize());
      assertArrayEquals(expected, got.get(r), 0f, "rank " + r);
    }
  }

  @Test
  void allReduceSumsInRankOrderWhateverTheTiming() throws Exception {
    // In float32, 1e8 + 1 == 1e8: rank order gives ((1e8 + 1) - 1e8) + 1 = 1; any other order gives 0 or 2.
    float[] values = {1e8f, 1f, -1e8f, 1f};
    for (int trial = 0; trial < 30; trial++) {
      List<TpGroup> group = LocalTpGroup.create(4);
      List<float[]> got = onRanks(4, r -> {
        try {
          Thread.sleep(ThreadLocalRandom.current().nextInt(3)); // arrive in a different order each trial
        } catch (InterruptedException e) {
          throw new IllegalStateException(e);
        }
        Mat m = mat(1, 1, new float[] {values[r]});
        group.get(r).allReduce(m);
        return ops.read(m);
      });
      for (float[] g : got) {
        assertEquals(1f, g[0], 0f, "trial " + trial);
      }
    }
  }

  @Test
  void allGatherConcatenatesInRankOrder() throws Exception {
    int world = 3;
    List<TpGroup> group = LocalTpGroup.create(world);
    List<float[]> got = onRanks(world, r -> {
      Mat in = mat(1, 2, new float[] {r, -r});
      Mat out = ops.alloc(world, 2);
      group.get(r).allGather(out, in);
      return ops.read(out);
    });
    for (float[] g : got) {
      assertArrayEquals(new float[] {0, -0f, 1, -1, 2, -2}, g, 0f);
    }
    Mat small = ops.alloc(2, 2);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> group.get(0).allGather(small, ops.alloc(1, 2)));
    assertTrue(e.getMessage().contains("cannot hold 3"), e.getMessage());
  }

  @Test
  void aMissingRankTimesOutWithAClearError() throws Exception {
    List<TpGroup> group = LocalTpGroup.create(3, Duration.ofMillis(200));
    // ranks 0 and 1 arrive, rank 2 never does
    List<String> messages = onRanks(2, r -> {
      try {
        group.get(r).allReduce(mat(1, 1, new float[] {1}));
        return "returned";
      } catch (IllegalStateException e) {
        return e.getMessage();
      }
    });
    String all = String.join("\n", messages);
    assertTrue(all.contains("allReduce timed out after 200 ms"), all);
    assertTrue(all.contains("rank(s) [2] never arrived"), all);
    for (String m : messages) {
      assertTrue(m.contains("the group is broken"), m);
    }
    // the group stays broken: the late rank fails at once instead of waiting
    IllegalStateException late = assertThrows(IllegalStateException.class,
        () -> group.get(2).allReduce(mat(1, 1, new float[] {1})));
    assertTrue(late.getMessage().contains("broken"), late.getMessage());
  }

  @Test
  void ranksDisagreeingOnTheCollectiveFail() throws Exception {
    List<TpGroup> group = LocalTpGroup.create(2, Duration.ofSeconds(10));
    List<String> messages = onRanks(2, r -> {
      try {
        group.get(r).allReduce(mat(1, r + 1, new float[r + 1]));
        return "returned";
      } catch (IllegalStateException e) {
        return e.getMessage();
      }
    });
    for (String m : messages) {
      assertTrue(m.contains("ranks disagree"), m);
    }
  }

  @Test
  void worldSizeOneIsANoOpAndBadArgumentsAreRefused() throws ExecutionException {
    TpGroup one = LocalTpGroup.create(1).get(0);
    Mat m = mat(1, 2, new float[] {3, 4});
    one.allReduce(m);
    one.allGather(m, m);
    assertArrayEquals(new float[] {3, 4}, ops.read(m), 0f);
    assertThrows(IllegalArgumentException.class, () -> LocalTpGroup.create(0));
    assertThrows(IllegalArgumentException.class, () -> LocalTpGroup.create(2, Duration.ZERO));
  }

  /** abort() wakes a rank already waiting, and a rank that arrives only afterwards fails at once too. */
  @org.junit.jupiter.api.Test
  void abortBreaksTheGroupForRanksWaitingAndRanksStillToCome() throws Exception {
    List<TpGroup> g = LocalTpGroup.create(3, java.time.Duration.ofMinutes(2));
    io.github.optjava.backend.cpu.CpuOps ops = new io.github.optjava.backend.cpu.CpuOps();
    java.util.concurrent.CompletableFuture<Void> waiting = java.util.concurrent.CompletableFuture.runAsync(() -> {
      try (io.github.optjava.backend.Mat m = ops.alloc(1, 4)) {
        g.get(0).allReduce(m);
      }
    });
    Thread.sleep(200); // rank 0 waits in the barrier
    long t0 = System.nanoTime();
    g.get(2).abort(); // rank 2 failed
    java.util.concurrent.ExecutionException woken = org.junit.jupiter.api.Assertions.assertThrows(
        java.util.concurrent.ExecutionException.class, () -> waiting.get(30, java.util.concurrent.TimeUnit.SECONDS));
    org.junit.jupiter.api.Assertions.assertTrue(woken.getCause().getMessage().contains("broken"),
        woken.getCause().getMessage());
    try (io.github.optjava.backend.Mat m = ops.alloc(1, 4)) { // rank 1 arrives after the abort
      IllegalStateException late = org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class,
          () -> g.get(1).allReduce(m));
      org.junit.jupiter.api.Assertions.assertTrue(late.getMessage().contains("aborted"), late.getMessage());
    }
    org.junit.jupiter.api.Assertions.assertTrue((System.nanoTime() - t0) / 1e9 < 20, "no timeout was waited for");
  }
}
