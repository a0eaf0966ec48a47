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
    int port;
    try (ServerSocket s = new ServerSocket(0)) {
      port = s.getLocalPort();
    }
    List<CompletableFuture<Mesh>> made = new ArrayList<>();
    for (int r = 0; r < 3; r++) {
      Rendezvous.Placement p = new Rendezvous.Placement(r, 3, r, "127.0.0.1", port, "test");
      made.add(CompletableFuture.supplyAsync(() -> Mesh.connect(p, Duration.ofSeconds(10))));
    }
    Mesh[] mesh = new Mesh[3];
    for (int r = 0; r < 3; r++) {
      mesh[r] = made.get(r).get(20, TimeUnit.SECONDS);
    }
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
      for (Mesh m : mesh) {
        m.close();
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
