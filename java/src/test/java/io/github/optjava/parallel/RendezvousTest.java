package io.github.optjava.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** The rendezvous on loopback: ranks as threads, ranks as separate JVMs, and the ways a job goes wrong. */
class RendezvousTest {

  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }

  private static Rendezvous.Placement rank(int rank, int world, int port) {
    return new Rendezvous.Placement(rank, world, rank, "127.0.0.1", port, "test");
  }

  @Test
  void placementFromEachLaunchersVariables() {
    assertEquals(Rendezvous.Placement.single(), Rendezvous.Placement.fromEnvironment(Map.of()));
    Rendezvous.Placement t = Rendezvous.Placement.fromEnvironment(Map.of("RANK", "3", "WORLD_SIZE", "8",
        "LOCAL_RANK", "1", "MASTER_ADDR", "node0", "MASTER_PORT", "29500"));
    assertEquals(new Rendezvous.Placement(3, 8, 1, "node0", 29500, "torchrun"), t);
    Rendezvous.Placement m = Rendezvous.Placement.fromEnvironment(Map.of("OMPI_COMM_WORLD_RANK", "5",
        "OMPI_COMM_WORLD_SIZE", "16", "OMPI_COMM_WORLD_LOCAL_RANK", "5", "MASTER_ADDR", "a", "MASTER_PORT", "1234"));
    assertEquals(new Rendezvous.Placement(5, 16, 5, "a", 1234, "Open MPI"), m);
    Rendezvous.Placement s = Rendezvous.Placement.fromEnvironment(Map.of("SLURM_PROCID", "0", "SLURM_NTASKS", "2",
        "SLURM_LOCALID", "0", "MASTER_ADDR", "b", "MASTER_PORT", "4321"));
    assertEquals(new Rendezvous.Placement(0, 2, 0, "b", 4321, "Slurm"), s);
    assertEquals(1, Rendezvous.Placement.fromEnvironment(Map.of("SLURM_PROCID", "0", "SLURM_NTASKS", "1"))
        .worldSize(), "one task needs no master");

    String noMaster = assertThrows(IllegalArgumentException.class, () -> Rendezvous.Placement.fromEnvironment(
        Map.of("RANK", "1", "WORLD_SIZE", "2"))).getMessage();
    assertTrue(noMaster.contains("MASTER_ADDR is not set"), noMaster);
    String big = assertThrows(IllegalArgumentException.class, () -> Rendezvous.Placement.fromEnvironment(
        Map.of("RANK", "4", "WORLD_SIZE", "4", "MASTER_ADDR", "x", "MASTER_PORT", "1"))).getMessage();
    assertTrue(big.contains("RANK=4 is not below WORLD_SIZE=4"), big);
    String word = assertThrows(IllegalArgumentException.class, () -> Rendezvous.Placement.fromEnvironment(
        Map.of("RANK", "one", "WORLD_SIZE", "4"))).getMessage();
    assertTrue(word.contains("RANK=one is not a non-negative integer"), word);
    String port = assertThrows(IllegalArgumentException.class, () -> Rendezvous.Placement.fromEnvironment(
        Map.of("RANK", "0", "WORLD_SIZE", "2", "MASTER_ADDR", "x", "MASTER_PORT", "70000"))).getMessage();
    assertTrue(port.contains("MASTER_PORT=70000 is not a TCP port"), port);
  }

  @Test
  void everyRankGetsRankZerosPayloadWhicheverStartsFirst() throws Exception {
    int port = freePort();
    byte[] id = "the NCCL unique id, 128 bytes in real life".getBytes(StandardCharsets.UTF_8);
    ExecutorService pool = Executors.newFixedThreadPool(4);
    try {
      List<Future<byte[]>> peers = new ArrayList<>();
      for (int r = 1; r < 4; r++) { // the peers start before rank 0 listens: they retry
        int rank = r;
        peers.add(pool.submit(() -> Rendezvous.exchange(rank(rank, 4, port), null, Duration.ofSeconds(20))));
      }
      Thread.sleep(300);
      assertArrayEquals(id, Rendezvous.exchange(rank(0, 4, port), id, Duration.ofSeconds(20)));
      for (Future<byte[]> f : peers) {
        assertArrayEquals(id, f.get(20, TimeUnit.SECONDS));
      }
    } finally {
      pool.shutdownNow();
    }
    assertArrayEquals(id, Rendezvous.exchange(Rendezvous.Placement.single(), id, Duration.ofSeconds(1)));
  }

  @Test
  void aMissingRankFailsEveryoneWithItsNumber() throws Exception {
    int port = freePort();
    ExecutorService pool = Executors.newSingleThreadExecutor();
    try {
      Future<byte[]> peer = pool.submit(() -> Rendezvous.exchange(rank(1, 3, port), null, Duration.ofSeconds(20)));
      Rendezvous.RendezvousException e = assertThrows(Rendezvous.RendezvousException.class,
          () -> Rendezvous.exchange(rank(0, 3, port), new byte[] {1}, Duration.ofMillis(1500)));
      assertTrue(e.getMessage().contains("rank 2 of 3 did not join within 1500 ms"), e.getMessage());
      Exception peerError = assertThrows(Exception.class, () -> peer.get(20, TimeUnit.SECONDS));
      assertTrue(peerError.getCause().getMessage().contains("rank 0 refused rank 1: rank 2 of 3 did not join"),
          peerError.getCause().getMessage());
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void aRankWithAnotherWorldSizeOrAnUnreachableMasterFailsClearly() throws Exception {
    int port = freePort();
    ExecutorService pool = Executors.newSingleThreadExecutor();
    try {
      Future<byte[]> wrong = pool.submit(() -> Rendezvous.exchange(rank(1, 5, port), null, Duration.ofSeconds(20)));
      Rendezvous.RendezvousException e = assertThrows(Rendezvous.RendezvousException.class,
          () -> Rendezvous.exchange(rank(0, 2, port), new byte[] {1}, Duration.ofSeconds(20)));
      assertTrue(e.getMessage().contains("rank 1 joined with a world size of 5 but rank 0 has 2"), e.getMessage());
      Exception peerError = assertThrows(Exception.class, () -> wrong.get(20, TimeUnit.SECONDS));
      assertTrue(peerError.getCause().getMessage().contains("world size of 5"), peerError.getCause().getMessage());
    } finally {
      pool.shutdownNow();
    }
    int nobody = freePort();
    Rendezvous.RendezvousException e = assertThrows(Rendezvous.RendezvousException.class,
        () -> Rendezvous.exchange(rank(1, 2, nobody), null, Duration.ofMillis(800)));
    assertTrue(e.getMessage().contains("could not reach rank 0 at 127.0.0.1:" + nobody + " within 800 ms"),
        e.getMessage());
  }

  /**
   * A rank that fails before it can join (its model missing, no GPU on its machine) tells rank 0, which tells every
   * rank at once: the one already waiting, and the one that arrives afterwards. Before, they all waited for the
   * rendezvous timeout and then blamed the failed rank for not joining.
   */
  @Test
  void aRankThatFailsBeforeJoiningStopsEveryRankAtOnce() throws Exception {
    int port = freePort();
    Duration timeout = Duration.ofSeconds(60);
    ExecutorService pool = Executors.newFixedThreadPool(4);
    try {
      long t0 = System.nanoTime();
      Future<?> rank0 = pool.submit(() -> Rendezvous.exchange(rank(0, 4, port), new byte[] {1}, timeout));
      Future<?> early = pool.submit(() -> Rendezvous.exchange(rank(1, 4, port), null, timeout));
      Thread.sleep(300);
      Future<?> failed = pool.submit(() -> Rendezvous.abandon(rank(2, 4, port), "no model at /models/opt-66b\n"
          + "(a second line)", timeout));
      failed.get(20, TimeUnit.SECONDS); // returns once told, long before the timeout
      Thread.sleep(300);
      Future<?> late = pool.submit(() -> Rendezvous.exchange(rank(3, 4, port), null, timeout));
      String expected = "rank 2 failed before joining: no model at /models/opt-66b (a second line)";
      for (Future<?> f : List.of(rank0, early, late)) {
        Exception e = assertThrows(Exception.class, () -> f.get(20, TimeUnit.SECONDS));
        assertTrue(e.getCause() instanceof Rendezvous.RendezvousException, String.valueOf(e.getCause()));
        assertTrue(e.getCause().getMessage().contains(expected), e.getCause().getMessage());
      }
      assertTrue((System.nanoTime() - t0) / 1e9 < 20, "told at once, not at the 60 s timeout");
    } finally {
      pool.shutdownNow();
    }
  }

  /** Rank 0 failing before it joins answers every rank that arrives with its reason, then returns. */
  @Test
  void rankZeroFailingBeforeJoiningTellsEveryRank() throws Exception {
    int port = freePort();
    Duration timeout = Duration.ofSeconds(60);
    ExecutorService pool = Executors.newFixedThreadPool(3);
    try {
      Future<?> rank0 = pool.submit(() -> Rendezvous.abandon(rank(0, 3, port), "CUDA cannot be used here", timeout));
      List<Future<?>> workers = new ArrayList<>();
      for (int r = 1; r < 3; r++) {
        int rank = r;
        workers.add(pool.submit(() -> Rendezvous.exchange(rank(rank, 3, port), null, timeout)));
      }
      for (Future<?> f : workers) {
        Exception e = assertThrows(Exception.class, () -> f.get(20, TimeUnit.SECONDS));
        assertTrue(e.getCause().getMessage().matches("rank 0 refused rank \\d: rank 0 failed before joining: CUDA "
            + "cannot be used here"), e.getCause().getMessage());
      }
      rank0.get(20, TimeUnit.SECONDS); // every rank told: rank 0 stops waiting
    } finally {
      pool.shutdownNow();
    }
  }

  /**
   * Another program on the master port (torchrun's store, a web server) is named within the greeting's wait, whether
   * it answers something else or nothing; before, a joining rank waited for the whole timeout and then blamed the
   * other ranks. A MASTER_ADDR that does not resolve is retried (on a cluster the name may appear late) and named.
   */
  @Test
  void anotherProgramOnTheMasterPortOrAnUnknownHostIsNamed() throws Exception {
    try (ServerSocket other = new ServerSocket(0)) {
      ExecutorService pool = Executors.newSingleThreadExecutor();
      try {
        pool.submit(() -> {
          List<java.net.Socket> held = new ArrayList<>();
          while (!other.isClosed()) {
            java.net.Socket s = other.accept();
            held.add(s);
            if (held.size() == 1) {
              s.getOutputStream().write("SSH-2.0-OpenSSH_9.6\r\n".getBytes(StandardCharsets.US_ASCII));
            } // later ones: accepted and left silent, as a store that waits for its clients' requests
          }
          return null;
        });
        long t0 = System.nanoTime();
        String talks = assertThrows(Rendezvous.RendezvousException.class, () -> Rendezvous.allGather(
            rank(1, 2, other.getLocalPort()), new byte[0], Duration.ofSeconds(60), 1500)).getMessage();
        assertTrue(talks.contains("another program answered there (it sent 0x5353482d"), talks);
        String silent = assertThrows(Rendezvous.RendezvousException.class, () -> Rendezvous.allGather(
            rank(1, 2, other.getLocalPort()), new byte[0], Duration.ofSeconds(60), 1500)).getMessage();
        assertTrue(silent.contains("did not greet it as an opt-java rank 0 within 1500 ms"), silent);
        // A rendezvous timeout shorter than the greeting's wait: still named, not blamed on the other ranks (review,
        // session 27: "reached rank 0 ... but got no answer: some other rank did not join").
        String shortWait = assertThrows(Rendezvous.RendezvousException.class, () -> Rendezvous.allGather(
            rank(1, 2, other.getLocalPort()), new byte[0], Duration.ofMillis(1500), 30_000)).getMessage();
        assertTrue(shortWait.contains("did not greet it as an opt-java rank 0 within")
            && shortWait.contains("(the rest of the rendezvous timeout)"), shortWait);
        assertTrue((System.nanoTime() - t0) / 1e9 < 20, "named in seconds, not at the 60 s timeout");
      } finally {
        pool.shutdownNow();
      }
    }
    Rendezvous.Placement unknown = new Rendezvous.Placement(1, 2, 1, "no-such-host.invalid", 29500, "test");
    String e = assertThrows(Rendezvous.RendezvousException.class,
        () -> Rendezvous.exchange(unknown, null, Duration.ofMillis(800))).getMessage();
    assertTrue(e.contains("could not reach rank 0 at no-such-host.invalid:29500 within 800 ms (MASTER_ADDR="
        + "no-such-host.invalid does not resolve)"), e);
  }

  /**
   * Two processes given RANK=1 of a job of two: one joins; the other is told the job was complete, naming the
   * duplicate RANK (session 27's review: it was told that rank 0 "closed the connection: it may have failed").
   * The stray one is a raw connection, greeted before the real rank 1 starts, so that it is surely heard.
   */
  @Test
  void aSecondProcessWithTheSameRankIsToldTheJobWasComplete() throws Exception {
    int port = freePort();
    ExecutorService pool = Executors.newFixedThreadPool(2);
    try {
      Future<List<Rendezvous.Member>> driver = pool.submit(() -> Rendezvous.allGather(rank(0, 2, port), new byte[0],
          Duration.ofSeconds(30)));
      try (java.net.Socket stray = connectWhenListening(port)) {
        java.io.DataInputStream in = new java.io.DataInputStream(stray.getInputStream());
        assertEquals(Rendezvous.MAGIC, in.readInt()); // greeted: rank 0 hears it before it ends
        in.readInt();
        Future<List<Rendezvous.Member>> real = pool.submit(() -> Rendezvous.allGather(rank(1, 2, port), new byte[0],
            Duration.ofSeconds(30)));
        java.io.DataOutputStream out = new java.io.DataOutputStream(stray.getOutputStream());
        for (int v : new int[] {Rendezvous.MAGIC, Rendezvous.VERSION, 1, 2, Rendezvous.JOIN, 0}) {
          out.writeInt(v);
        }
        out.flush();
        stray.setSoTimeout(20_000);
        int status = in.readInt(); // 1: refused with a reason; 0: it joined, and the real rank 1 is the late one
        String told;
        if (status == 1) {
          told = in.readUTF();
          assertEquals(2, real.get(20, TimeUnit.SECONDS).size());
        } else {
          told = assertThrows(java.util.concurrent.ExecutionException.class, () -> real.get(20, TimeUnit.SECONDS))
              .getCause().getMessage();
        }
        assertTrue(told.contains("the job's 2 ranks had all joined") && told.contains("two processes were given "
            + "RANK=1"), told);
        assertEquals(2, driver.get(20, TimeUnit.SECONDS).size(), "the job itself went on");
      }
    } finally {
      pool.shutdownNow();
    }
  }

  private static java.net.Socket connectWhenListening(int port) throws InterruptedException {
    for (int tries = 0; tries < 200; tries++) {
      try {
        return new java.net.Socket("127.0.0.1", port);
      } catch (IOException e) {
        Thread.sleep(50);
      }
    }
    throw new AssertionError("rank 0 never listened on " + port);
  }

  /**
   * Silent connections queued ahead of a rank (a port scan, a health check) do not delay its greeting: each
   * connection is heard on its own thread (review, session 16: three of them, heard one by one for 10 s each, made
   * a healthy rank fail after the 30 s greeting wait, saying another program used the port).
   */
  @Test
  void silentStrayConnectionsDoNotDelayARank() throws Exception {
    int port = freePort();
    Duration timeout = Duration.ofSeconds(60);
    ExecutorService pool = Executors.newFixedThreadPool(2);
    List<java.net.Socket> strays = new ArrayList<>();
    try {
      Future<?> rank0 = pool.submit(() -> Rendezvous.exchange(rank(0, 2, port), new byte[] {7}, timeout));
      for (int i = 0; i < 3; i++) {
        strays.add(connectWhenListening(port)); // connected, says nothing
      }
      long t0 = System.nanoTime();
      byte[] got = Rendezvous.allGather(rank(1, 2, port), new byte[0], timeout, 2000).get(0).payload();
      assertArrayEquals(new byte[] {7}, got);
      rank0.get(10, TimeUnit.SECONDS);
      assertTrue((System.nanoTime() - t0) / 1e9 < 5, "greeted at once");
    } finally {
      for (java.net.Socket s : strays) {
        s.close();
      }
      pool.shutdownNow();
    }
  }

  /** A process of another rendezvous version fails the job, named as such (before: taken for a stray, a timeout). */
  @Test
  void aProcessOfAnotherVersionFailsTheJobNamingIt() throws Exception {
    int port = freePort();
    ExecutorService pool = Executors.newSingleThreadExecutor();
    try {
      Future<?> rank0 = pool.submit(() -> Rendezvous.exchange(rank(0, 2, port), new byte[] {7},
          Duration.ofSeconds(60)));
      try (java.net.Socket v2 = connectWhenListening(port)) {
        java.io.DataOutputStream out = new java.io.DataOutputStream(v2.getOutputStream());
        out.writeInt(0x4f505452); // version 2's hello: magic, version, rank, world, length, payload
        out.writeInt(2);
        out.writeInt(1);
        out.writeInt(2);
        out.writeInt(0);
        out.flush();
        Exception e = assertThrows(Exception.class, () -> rank0.get(20, TimeUnit.SECONDS));
        assertTrue(e.getCause().getMessage().contains("a process of another opt-java version joined (rendezvous "
            + "version 2, rank 0 has 3)"), e.getCause().getMessage());
      }
    } finally {
      pool.shutdownNow();
    }
  }

  /** A process that failed before joining spends at most the timeout (30 s at most) telling absent ranks. */
  @Test
  void abandoningWithNobodyToTellEndsAtTheTimeout() {
    long t0 = System.nanoTime();
    Rendezvous.abandon(rank(0, 2, 0), "no such model", Duration.ofMillis(1500));
    Rendezvous.abandon(rank(1, 2, 1), "no such model", Duration.ofMillis(1500)); // nobody listens on port 1
    double s = (System.nanoTime() - t0) / 1e9;
    assertTrue(s >= 2.5 && s < 10, s + " s");
  }

  /** Separate JVMs on loopback, placed through torchrun's variables as a launcher would. */
  @Test
  void separateProcessesJoinThroughTheirEnvironment() throws Exception {
    int port = freePort();
    String java = ProcessHandle.current().info().command().orElse("java");
    List<Process> procs = new ArrayList<>();
    for (int r = 0; r < 3; r++) {
      ProcessBuilder pb = new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"),
          RendezvousPeerMain.class.getName(), "payload-from-rank-0");
      Map<String, String> env = pb.environment();
      env.keySet().removeIf(k -> k.startsWith("SLURM_") || k.startsWith("OMPI_"));
      env.put("RANK", String.valueOf(r));
      env.put("WORLD_SIZE", "3");
      env.put("LOCAL_RANK", String.valueOf(r));
      env.put("MASTER_ADDR", "127.0.0.1");
      env.put("MASTER_PORT", String.valueOf(port));
      env.put("TEST_TIMEOUT_MS", "30000");
      pb.redirectErrorStream(true);
      procs.add(pb.start());
    }
    for (Process p : procs) {
      assertTrue(p.waitFor(60, TimeUnit.SECONDS), "a rank did not finish");
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
      assertEquals(0, p.exitValue(), out);
      assertTrue(out.endsWith("OK payload-from-rank-0"), out);
    }
  }

  /**
   * A socket connected to itself (bound to a port, then connected to that port on the same host: TCP's simultaneous
   * open, which a retried connect to a port nobody listens on can also hit) is recognised, so that a joining rank
   * lets the master port go instead of holding it; a connection to a listener is not.
   */
  @Test
  void aSocketConnectedToItselfIsRecognised() throws IOException {
    try (java.net.Socket self = new java.net.Socket()) {
      self.bind(new java.net.InetSocketAddress("127.0.0.1", 0));
      self.connect(new java.net.InetSocketAddress("127.0.0.1", self.getLocalPort()), 2_000);
      assertTrue(Rendezvous.selfConnected(self), self.toString());
    }
    try (ServerSocket server = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress());
        java.net.Socket client = new java.net.Socket(java.net.InetAddress.getLoopbackAddress(), server.getLocalPort());
        java.net.Socket accepted = server.accept()) {
      assertTrue(!Rendezvous.selfConnected(client) && !Rendezvous.selfConnected(accepted));
    }
  }
}
