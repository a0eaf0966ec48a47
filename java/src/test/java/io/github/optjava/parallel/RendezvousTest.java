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
