package io.github.optjava.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** The job's TCP links: which address a peer is dialled at, and links carrying data both ways, per channel. */
class MeshTest {

  private static Rendezvous.Member member(String seen, int port, String named) {
    byte[] host = named.getBytes(StandardCharsets.UTF_8);
    return new Rendezvous.Member(1, seen, ByteBuffer.allocate(8 + host.length).putInt(port).putInt(0).put(host)
        .array());
  }

  @Test
  void aPeerIsDialledWhereRankZeroSawItUnlessThatWasLoopback() {
    // seen from another machine: that address (the peer's own guess may be a wrong interface)
    assertEquals("10.0.0.7", Mesh.address(member("10.0.0.7", 4000, "172.17.0.1")).getHostString());
    assertEquals(4000, Mesh.address(member("10.0.0.7", 4000, "172.17.0.1")).getPort());
    // a peer on rank 0's machine that came in through localhost: its own non-loopback address
    assertEquals("10.0.0.1", Mesh.address(member("127.0.0.1", 4001, "10.0.0.1")).getHostString());
    assertEquals("10.0.0.1", Mesh.address(member("127.0.1.1", 4001, "10.0.0.1")).getHostString());
    // no other address known: loopback it is (a one-machine job)
    assertEquals("127.0.0.1", Mesh.address(member("127.0.0.1", 4002, "")).getHostString());
  }

  @Test
  void linksCarryFloatsAndStringsBothWaysPerChannel() throws Exception {
    Mesh[] mesh = meshes(3);
    try {
      // every pair on two channels, opened as JobLayout would: each side lists its links
      List<CompletableFuture<Void>> opened = new ArrayList<>();
      for (int r = 0; r < 3; r++) {
        int me = r;
        List<int[]> links = new ArrayList<>();
        for (int peer = 0; peer < 3; peer++) {
          if (peer != me) {
            links.add(new int[] {peer, Mesh.Channel.CONTROL.ordinal()});
            links.add(new int[] {peer, Mesh.Channel.ACTIVATIONS.ordinal()});
          }
        }
        opened.add(CompletableFuture.runAsync(() -> mesh[me].open(links)));
      }
      for (CompletableFuture<Void> f : opened) {
        f.get(20, TimeUnit.SECONDS);
      }
      float[] big = new float[200_000]; // larger than the socket buffers: written while the other side reads
      for (int i = 0; i < big.length; i++) {
        big[i] = i * 0.5f - 7;
      }
      CompletableFuture<Void> send = CompletableFuture.runAsync(() -> {
        Mesh.Link l = mesh[2].link(0, Mesh.Channel.ACTIVATIONS);
        l.writeFloats(big);
        l.writeUtf("done ✓");
        l.flush();
      });
      Mesh.Link l = mesh[0].link(2, Mesh.Channel.ACTIVATIONS);
      assertArrayEquals(big, l.readFloats());
      assertEquals("done ✓", l.readUtf());
      send.get(10, TimeUnit.SECONDS);
      Mesh.Link back = mesh[1].link(0, Mesh.Channel.CONTROL);
      back.writeBytes(new byte[] {1, 2, 3});
      back.flush();
      assertArrayEquals(new byte[] {1, 2, 3}, mesh[0].link(1, Mesh.Channel.CONTROL).readBytes());
    } finally {
      closeAll(mesh);
    }
  }

  private static void closeAll(Mesh[] mesh) {
    for (Mesh m : mesh) {
      m.close();
    }
  }

  private static Mesh[] meshes(int world) throws Exception {
    int port;
    try (ServerSocket s = new ServerSocket(0)) {
      port = s.getLocalPort();
    }
    List<CompletableFuture<Mesh>> made = new ArrayList<>();
    for (int r = 0; r < world; r++) {
      Rendezvous.Placement p = new Rendezvous.Placement(r, world, r, "127.0.0.1", port, "test");
      made.add(CompletableFuture.supplyAsync(() -> Mesh.connect(p, Duration.ofSeconds(10))));
    }
    Mesh[] mesh = new Mesh[world];
    for (int r = 0; r < world; r++) {
      mesh[r] = made.get(r).get(20, TimeUnit.SECONDS);
    }
    return mesh;
  }

  /** The driver with every worker, each worker with the driver, as MultiProcessOptModel and StageWorker do. */
  private static void watchAll(Mesh[] mesh, Duration silence) throws Exception {
    List<CompletableFuture<Void>> watching = new ArrayList<>();
    for (int r = 0; r < mesh.length; r++) {
      int me = r;
      List<Integer> peers = me == 0 ? java.util.stream.IntStream.range(1, mesh.length).boxed().toList() : List.of(0);
      watching.add(CompletableFuture.runAsync(() -> mesh[me].watch(peers, silence)));
    }
    for (CompletableFuture<Void> f : watching) {
      f.get(20, TimeUnit.SECONDS);
    }
  }

  /**
   * Rank 1 stops sending heartbeats but keeps its links open, as a stopped process or a vanished machine does. The
   * driver gives up within the silence and its blocked read fails naming rank 1; rank 2, blocked on rank 1's
   * activations (a pipeline), gives up once the driver closed its heartbeat link. Before, both waited forever.
   */
  @Test
  void aSilentPeerIsGivenUpOnAndEveryWaitEnds() throws Exception {
    Mesh[] mesh = meshes(3);
    try {
      List<CompletableFuture<Void>> opened = new ArrayList<>();
      opened.add(CompletableFuture.runAsync(() -> mesh[0].open(List.of(new int[] {2, 0}))));
      opened.add(CompletableFuture.runAsync(() -> mesh[1].open(List.of(new int[] {2, 2}))));
      opened.add(CompletableFuture.runAsync(() -> mesh[2].open(List.of(new int[] {0, 0}, new int[] {1, 2}))));
      for (CompletableFuture<Void> f : opened) {
        f.get(20, TimeUnit.SECONDS);
      }
      java.util.concurrent.atomic.AtomicReference<String> lostWhenCalled =
          new java.util.concurrent.atomic.AtomicReference<>();
      java.util.concurrent.atomic.AtomicInteger calls = new java.util.concurrent.atomic.AtomicInteger();
      mesh[0].onGiveUp(() -> { // where an NCCL group is aborted: the reason known, once
        calls.incrementAndGet();
        lostWhenCalled.set(mesh[0].lost());
      });
      watchAll(mesh, Duration.ofMillis(1000)); // long enough for a loaded 2-core CI machine's scheduling
      Thread.sleep(2500); // several silences long: healthy peers are never given up on
      for (Mesh m : mesh) {
        org.junit.jupiter.api.Assertions.assertNull(m.lost());
      }
      long t0 = System.nanoTime();
      CompletableFuture<String> driverWait = CompletableFuture.supplyAsync(() -> org.junit.jupiter.api.Assertions
          .assertThrows(IllegalStateException.class, () -> mesh[0].link(2, Mesh.Channel.CONTROL).readBytes())
          .getMessage());
      CompletableFuture<String> stage2Wait = CompletableFuture.supplyAsync(() -> org.junit.jupiter.api.Assertions
          .assertThrows(IllegalStateException.class, () -> mesh[2].link(1, Mesh.Channel.ACTIVATIONS).readFloats())
          .getMessage());
      mesh[1].stopWatching(); // rank 1 falls silent
      String driver = driverWait.get(10, TimeUnit.SECONDS);
      org.junit.jupiter.api.Assertions.assertTrue(driver.contains("rank 1 sent no heartbeat for 1 s"), driver);
      String stage2 = stage2Wait.get(10, TimeUnit.SECONDS);
      org.junit.jupiter.api.Assertions.assertTrue(stage2.contains("rank 0 closed its links without ending the job"),
          stage2);
      org.junit.jupiter.api.Assertions.assertTrue((System.nanoTime() - t0) / 1e9 < 10);
      org.junit.jupiter.api.Assertions.assertNull(mesh[1].lost(), "rank 1 itself gave up on nobody");
      assertEquals(1, calls.get());
      assertEquals(mesh[0].lost(), lostWhenCalled.get());
    } finally {
      closeAll(mesh);
    }
  }

  /**
   * A worker whose process ends while the driver waits on nothing (an idle `opt batch`): the driver gives up at once,
   * naming it, and its give-up hook runs (the CLI exits 1 there). Before, nothing noticed until a request came, and
   * an idle batch then ended with exit 0 (session 27's review).
   */
  @Test
  void aWorkerThatExitsWhileTheDriverIsIdleIsGivenUpOn() throws Exception {
    Mesh[] mesh = meshes(2);
    try {
      CompletableFuture<Void> a = CompletableFuture.runAsync(() -> mesh[0].open(List.of(new int[] {1, 0})));
      mesh[1].open(List.of(new int[] {0, 0}));
      a.get(20, TimeUnit.SECONDS);
      java.util.concurrent.CountDownLatch gaveUp = new java.util.concurrent.CountDownLatch(1);
      mesh[0].onGiveUp(gaveUp::countDown);
      watchAll(mesh, Duration.ofSeconds(2)); // the wait for a last message after a closed link: the silence, 2 s
      mesh[1].close(); // its process exits without the job having ended
      long t0 = System.nanoTime();
      org.junit.jupiter.api.Assertions.assertTrue(gaveUp.await(10, TimeUnit.SECONDS));
      org.junit.jupiter.api.Assertions.assertTrue(mesh[0].lost().startsWith("rank 1 closed its heartbeat link")
          || mesh[0].lost().startsWith("rank 1's heartbeat link broke"), mesh[0].lost());
      org.junit.jupiter.api.Assertions.assertTrue((System.nanoTime() - t0) / 1e9 < 5, "after the 2 s wait");
    } finally {
      closeAll(mesh);
    }
  }

  /** A job that ends normally (stopWatching, a last message, close) leaves no side giving up. */
  @Test
  void aJobThatEndsNormallyGivesUpOnNobody() throws Exception {
    Mesh[] mesh = meshes(2);
    try {
      CompletableFuture<Void> a = CompletableFuture.runAsync(() -> mesh[0].open(List.of(new int[] {1, 0})));
      mesh[1].open(List.of(new int[] {0, 0}));
      a.get(20, TimeUnit.SECONDS);
      java.util.concurrent.atomic.AtomicInteger calls = new java.util.concurrent.atomic.AtomicInteger();
      for (Mesh m : mesh) {
        m.onGiveUp(calls::incrementAndGet);
      }
      watchAll(mesh, Duration.ofMillis(1000));
      mesh[0].stopWatching();
      mesh[0].link(1, Mesh.Channel.CONTROL).writeUtf("CLOSE");
      mesh[0].link(1, Mesh.Channel.CONTROL).flush();
      mesh[0].close();
      assertEquals("CLOSE", mesh[1].link(0, Mesh.Channel.CONTROL).readUtf());
      mesh[1].stopWatching();
      Thread.sleep(2500); // past the worker's wait (the silence) after the driver's heartbeat link closed
      org.junit.jupiter.api.Assertions.assertNull(mesh[1].lost());
      org.junit.jupiter.api.Assertions.assertNull(mesh[0].lost());
      assertEquals(0, calls.get(), "no give-up hook on a normal end");
    } finally {
      closeAll(mesh);
    }
  }

  /**
   * A peer's silence counts from its first heartbeat: the driver sends only once every worker reached watch(), so a
   * worker arriving later than the silence must not make an early one give up on a healthy driver (review, session
   * 16: it did, when the clock started at the link's opening).
   */
  @Test
  void aLateWorkerDoesNotMakeAnEarlyOneGiveUpOnTheDriver() throws Exception {
    Mesh[] mesh = meshes(3);
    Duration silence = Duration.ofMillis(1000);
    try {
      CompletableFuture<Void> driver = CompletableFuture.runAsync(() -> mesh[0].watch(List.of(1, 2), silence));
      mesh[1].watch(List.of(0), silence);
      Thread.sleep(2500); // worker 2 arrives late
      mesh[2].watch(List.of(0), silence);
      driver.get(10, TimeUnit.SECONDS);
      Thread.sleep(1000);
      for (Mesh m : mesh) {
        org.junit.jupiter.api.Assertions.assertNull(m.lost());
      }
    } finally {
      closeAll(mesh);
    }
  }

  /** With a silence of zero the heartbeats flow but a silent peer is never given up on; every thread ends on close. */
  @Test
  void aZeroSilenceNeverGivesUpAndEveryHeartbeatThreadEndsOnClose() throws Exception {
    Mesh[] mesh = meshes(3);
    CompletableFuture<Void> driver = CompletableFuture.runAsync(() -> mesh[0].watch(List.of(1, 2), Duration.ZERO));
    CompletableFuture<Void> w1 = CompletableFuture.runAsync(() -> mesh[1].watch(List.of(0), Duration.ZERO));
    mesh[2].watch(List.of(0), Duration.ZERO);
    driver.get(10, TimeUnit.SECONDS);
    w1.get(10, TimeUnit.SECONDS);
    mesh[1].stopWatching(); // falls silent
    Thread.sleep(1500);
    org.junit.jupiter.api.Assertions.assertNull(mesh[0].lost());
    for (Mesh m : mesh) {
      m.stopWatching();
      m.close();
    }
    long deadline = System.nanoTime() + 5_000_000_000L;
    List<String> alive;
    do {
      Thread.sleep(100);
      alive = Thread.getAllStackTraces().keySet().stream().filter(Thread::isAlive).map(Thread::getName)
          .filter(n -> n.startsWith("opt-mesh-heartbeat")).toList();
    } while (!alive.isEmpty() && System.nanoTime() < deadline);
    org.junit.jupiter.api.Assertions.assertTrue(alive.isEmpty(), "still alive 5 s after close: " + alive);
  }

  @Test
  void theHeartbeatPropertyIsReadAndChecked() {
    String before = System.getProperty(Mesh.HEARTBEAT_PROPERTY);
    try {
      System.clearProperty(Mesh.HEARTBEAT_PROPERTY);
      assertEquals(Duration.ofSeconds(60), Mesh.heartbeatSilence());
      System.setProperty(Mesh.HEARTBEAT_PROPERTY, "0.5");
      assertEquals(Duration.ofMillis(500), Mesh.heartbeatSilence());
      System.setProperty(Mesh.HEARTBEAT_PROPERTY, "0");
      assertEquals(Duration.ZERO, Mesh.heartbeatSilence());
      for (String bad : List.of("-1", "soon", "NaN", "1e9")) {
        System.setProperty(Mesh.HEARTBEAT_PROPERTY, bad);
        String m = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
            Mesh::heartbeatSilence).getMessage();
        org.junit.jupiter.api.Assertions.assertTrue(m.contains("-Dopt.multiprocess.heartbeatSeconds=" + bad), m);
      }
    } finally {
      if (before == null) {
        System.clearProperty(Mesh.HEARTBEAT_PROPERTY);
      } else {
        System.setProperty(Mesh.HEARTBEAT_PROPERTY, before);
      }
    }
  }

  @Test
  void torchrunsAgentStoreMovesTheRendezvousPortAndOptRendezvousPortWins() throws IOException {
    Map<String, String> torchrun = Map.of("RANK", "1", "WORLD_SIZE", "2", "MASTER_ADDR", "n0", "MASTER_PORT", "29500",
        "TORCHELASTIC_USE_AGENT_STORE", "True");
    assertEquals(29501, Rendezvous.Placement.fromEnvironment(torchrun).masterPort());
    Map<String, String> explicit = Map.of("RANK", "1", "WORLD_SIZE", "2", "MASTER_ADDR", "n0", "MASTER_PORT", "29500",
        "TORCHELASTIC_USE_AGENT_STORE", "True", "OPT_RENDEZVOUS_PORT", "31000");
    assertEquals(31000, Rendezvous.Placement.fromEnvironment(explicit).masterPort());
    Map<String, String> plain = Map.of("RANK", "1", "WORLD_SIZE", "2", "MASTER_ADDR", "n0", "MASTER_PORT", "29500");
    assertEquals(29500, Rendezvous.Placement.fromEnvironment(plain).masterPort());
  }
}
