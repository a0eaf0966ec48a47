package io.github.optjava.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.optjava.backend.Mat;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

/** The worker pool under {@link FastCpuOps}: coverage of the range, threads, failures, concurrency, close. */
class FastCpuOpsPoolTest {

  @Test
  void everyIndexRunsExactlyOnceOnSeveralThreads() {
    try (CpuPool pool = new CpuPool(3)) {
      for (int n : new int[] {1, 2, 7, 1000, 100_003}) {
        for (int grain : new int[] {1, 3, 64, 200_000}) {
          AtomicIntegerArray hits = new AtomicIntegerArray(n);
          pool.forRange(n, grain, (from, to) -> {
            for (int i = from; i < to; i++) {
              hits.incrementAndGet(i);
            }
          });
          for (int i = 0; i < n; i++) {
            assertEquals(1, hits.get(i), "n " + n + " grain " + grain + " index " + i);
          }
        }
      }
    }
  }

  @Test
  void workersAreNamedDaemonThreadsThatTakePart() {
    Set<Thread> seen = ConcurrentHashMap.newKeySet();
    try (CpuPool pool = new CpuPool(3)) {
      // Chunks that wait a little: the caller cannot take them all before the workers wake.
      for (int round = 0; round < 50 && seen.size() < 3; round++) {
        pool.forRange(64, 1, (from, to) -> {
          seen.add(Thread.currentThread());
          sleepMillis(1);
        });
      }
    }
    assertEquals(3, seen.size(), "caller and both workers ran chunks");
    for (Thread t : seen) {
      if (t != Thread.currentThread()) {
        assertTrue(t.isDaemon(), t.getName());
        assertTrue(t.getName().matches("opt-cpu-\\d+-worker-\\d+"), t.getName());
      }
    }
  }

  @Test
  void aFailingChunkIsRethrownToTheCallerAndThePoolStaysUsable() {
    try (CpuPool pool = new CpuPool(2)) {
      IllegalStateException boom = new IllegalStateException("boom");
      IllegalStateException thrown = assertThrows(IllegalStateException.class,
          () -> pool.forRange(100, 1, (from, to) -> {
            if (from == 57) {
              throw boom;
            }
          }));
      assertSame(boom, thrown);
      AtomicIntegerArray hits = new AtomicIntegerArray(10);
      pool.forRange(10, 1, (from, to) -> hits.incrementAndGet(from));
      assertEquals("[1, 1, 1, 1, 1, 1, 1, 1, 1, 1]", hits.toString());
    }
  }

  @Test
  void nestedLoopsRunInlineInsteadOfDeadlocking() {
    try (CpuPool pool = new CpuPool(2)) {
      AtomicIntegerArray hits = new AtomicIntegerArray(16);
      pool.forRange(4, 1, (from, to) -> pool.forRange(4, 1, (f, t) -> {
        for (int i = f; i < t; i++) {
          hits.incrementAndGet(from * 4 + i);
        }
      }));
      for (int i = 0; i < 16; i++) {
        assertEquals(1, hits.get(i));
      }
    }
  }

  @Test
  void concurrentCallersGetTheirOwnResults() throws Exception {
    ExecutorService callers = Executors.newFixedThreadPool(4);
    try (FastCpuOps ops = new FastCpuOps(2)) {
      Mat w = ops.alloc(64, 48);
      float[] wv = FastCpuOpsParityTest.gaussian(new java.util.Random(1), 64 * 48, 1);
      ops.write(w, wv);
      List<Future<Boolean>> results = new ArrayList<>();
      for (int c = 0; c < 4; c++) {
        int tokens = 1 + c * 7; // both kernels, different shapes per caller
        results.add(callers.submit(() -> {
          float[] x = FastCpuOpsParityTest.gaussian(new java.util.Random(tokens), tokens * 48, 1);
          float[] expected = null;
          for (int rep = 0; rep < 200; rep++) {
            Mat xm = FastCpuOpsParityTest.mat(ops, tokens, 48, x);
            Mat out = ops.alloc(tokens, 64);
            ops.linear(out, xm, w, null, false);
            float[] got = ops.read(out);
            if (expected == null) {
              expected = got;
            } else if (!Arrays.equals(expected, got)) {
              return false;
            }
          }
          return true;
        }));
      }
      for (Future<Boolean> f : results) {
        assertTrue(f.get());
      }
    } finally {
      callers.shutdownNow();
    }
  }

  @Test
  void closedOpsFailClearlyAndClosingTwiceIsHarmless() {
    FastCpuOps ops = new FastCpuOps(2);
    Mat x = ops.alloc(1, 4);
    ops.close();
    ops.close();
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> ops.linear(x, x, x, null, false));
    assertTrue(e.getMessage().contains("after close"), e.getMessage());
    assertThrows(IllegalStateException.class, () -> ops.alloc(1, 1));
    assertThrows(IllegalStateException.class, () -> ops.addInPlace(x, x));
  }

  @Test
  void matricesMoveFreelyBetweenTheReferenceAndTheFastOps() {
    CpuOps ref = new CpuOps();
    try (FastCpuOps fast = new FastCpuOps(2)) {
      Mat a = ref.alloc(2, 3);
      fast.write(a, new float[] {1, 2, 3, 4, 5, 6});
      Mat w = fast.alloc(1, 3);
      ref.write(w, new float[] {1, 1, 1});
      Mat out = ref.alloc(2, 1);
      fast.linear(out, a, w, null, false);
      assertArrayEquals(new float[] {6, 15}, ref.read(out));
      assertEquals(2, fast.threads());
    }
  }

  @Test
  void threadCountMustBePositive() {
    assertThrows(IllegalArgumentException.class, () -> new FastCpuOps(0));
  }

  private static void sleepMillis(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
