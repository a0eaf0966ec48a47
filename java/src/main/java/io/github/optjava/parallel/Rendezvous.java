package io.github.optjava.parallel;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * How the processes of a multi-process job find each other: each learns its {@link Placement} from the
 * environment its launcher set, then every rank hands rank 0 a small payload over TCP and rank 0 hands
 * every rank all of them ({@link #allGather}: the address each rank listens on for {@link Mesh}), or only
 * its own ({@link #exchange}: the NCCL unique id, NCCL does the rest). Nothing else travels this way.
 *
 * <p>Written by hand rather than taken from a library: the whole protocol is "every peer says hello,
 * rank 0 answers each with the payloads once all have arrived", about a page, with the checks a user needs
 * when a job is misconfigured (a peer that never arrives, a peer that disagrees on the world size, two
 * peers with one rank), each failing on every side with a message naming the variables to fix.
 *
 * <p>Wire format (big-endian, one connection per peer): the peer sends {@code MAGIC, VERSION, rank,
 * worldSize, length, payload}; rank 0 answers {@code 0} and then per rank {@code host (UTF), length,
 * payload}, or {@code 1, message} (UTF). The host is the peer's address as rank 0 saw it (rank 0's own:
 * {@code MASTER_ADDR}): an address the others can reach it at.
 */
public final class Rendezvous {
  private static final int MAGIC = 0x4f505452; // "OPTR"
  private static final int VERSION = 2;
  private static final int MAX_PAYLOAD = 1 << 20;

  private Rendezvous() {}

  /**
   * This process's place in the job.
   *
   * @param rank       0 .. worldSize - 1
   * @param worldSize  processes in the job
   * @param localRank  rank among the processes of this machine (picks the GPU)
   * @param masterAddr host of rank 0 (null at world size 1)
   * @param masterPort its rendezvous port (0 at world size 1)
   * @param source     which launcher's variables were read, for messages
   */
  public record Placement(int rank, int worldSize, int localRank, String masterAddr, int masterPort, String source) {

    /** A job of one process. */
    public static Placement single() {
      return new Placement(0, 1, 0, null, 0, "single process");
    }

    /**
     * Reads the launcher's variables: torchrun's ({@code RANK}, {@code WORLD_SIZE}, {@code LOCAL_RANK}), else
     * Open MPI's ({@code OMPI_COMM_WORLD_RANK}, {@code _SIZE}, {@code _LOCAL_RANK}), else Slurm's
     * ({@code SLURM_PROCID}, {@code SLURM_NTASKS}, {@code SLURM_LOCALID}); none of them means a single
     * process. Above one process, {@code MASTER_ADDR} and {@code MASTER_PORT} name rank 0 in every case
     * (Slurm and mpirun do not set them: the launch scripts in {@code scripts/} do). {@code OPT_RENDEZVOUS_PORT}
     * overrides the port; under torchrun's own agent store ({@code TORCHELASTIC_USE_AGENT_STORE=True}, which
     * holds {@code MASTER_PORT}) the default is {@code MASTER_PORT + 1}.
     *
     * @throws IllegalArgumentException naming the variable that is missing or wrong
     */
    public static Placement fromEnvironment(Map<String, String> env) {
      String[][] launchers = {
          {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"},
          {"Open MPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
          {"Slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"}};
      for (String[] l : launchers) {
        if (env.containsKey(l[1]) || env.containsKey(l[2])) {
          int world = positive(env, l[2], l[0]);
          int rank = nonNegative(env, l[1], l[0]);
          if (rank >= world) {
            throw new IllegalArgumentException(l[1] + "=" + rank + " is not below " + l[2] + "=" + world + " ("
                + l[0] + " variables)");
          }
          int local = env.containsKey(l[3]) ? nonNegative(env, l[3], l[0]) : 0;
          if (world == 1) {
            return new Placement(0, 1, local, null, 0, l[0]);
          }
          String addr = env.get("MASTER_ADDR");
          if (addr == null || addr.isBlank()) {
            throw new IllegalArgumentException(l[0] + " says this is rank " + rank + " of " + world
                + " but MASTER_ADDR is not set: set it to the host of rank 0 (and MASTER_PORT to a free port there)");
          }
          String portName = env.containsKey("OPT_RENDEZVOUS_PORT") ? "OPT_RENDEZVOUS_PORT" : "MASTER_PORT";
          int port = nonNegative(env, portName, l[0]);
          if (portName.equals("MASTER_PORT") && "true".equalsIgnoreCase(env.get("TORCHELASTIC_USE_AGENT_STORE"))) {
            port++; // torchrun's agent serves its TCPStore on MASTER_PORT itself
          }
          if (port < 1 || port > 65535) {
            throw new IllegalArgumentException(portName + "=" + port + " is not a TCP port (1..65535)");
          }
          return new Placement(rank, world, local, addr.trim(), port, l[0]);
        }
      }
      return single();
    }

    private static int nonNegative(Map<String, String> env, String name, String launcher) {
      String v = env.get(name);
      if (v == null) {
        throw new IllegalArgumentException(name + " is not set (" + launcher + " variables)");
      }
      try {
        int i = Integer.parseInt(v.trim());
        if (i < 0) {
          throw new NumberFormatException();
        }
        return i;
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException(name + "=" + v + " is not a non-negative integer (" + launcher
            + " variables)");
      }
    }

    private static int positive(Map<String, String> env, String name, String launcher) {
      int i = nonNegative(env, name, launcher);
      if (i == 0) {
        throw new IllegalArgumentException(name + "=0: a job has at least one process (" + launcher + " variables)");
      }
      return i;
    }
  }

  /** A rendezvous that failed: a peer missing, misconfigured, or unreachable. */
  public static final class RendezvousException extends RuntimeException {
    public RendezvousException(String message) {
      super(message);
    }
  }

  /** One rank's share of an {@link #allGather}: where rank 0 saw it connect from, and its payload. */
  public record Member(int rank, String host, byte[] payload) {}

  /**
   * Rank 0 gives {@code payload} to every other rank and returns it; every other rank returns what rank 0
   * gave. Blocks until all {@code worldSize} processes have joined or {@code timeout} has passed.
   *
   * @param payload rank 0's bytes (ignored on other ranks; at most 1 MiB)
   * @throws RendezvousException on every rank that can tell, with what to check
   */
  public static byte[] exchange(Placement p, byte[] payload, Duration timeout) {
    if (p.rank() == 0 && (payload == null || payload.length > MAX_PAYLOAD)) {
      throw new IllegalArgumentException("rank 0 needs a payload of at most " + MAX_PAYLOAD + " bytes");
    }
    return allGather(p, p.rank() == 0 ? payload : new byte[0], timeout).get(0).payload();
  }

  /**
   * Every rank's payload, in rank order, on every rank. Blocks until all {@code worldSize} processes have
   * joined or {@code timeout} has passed.
   *
   * @param payload this rank's bytes (at most 1 MiB)
   * @throws RendezvousException on every rank that can tell, with what to check
   */
  public static List<Member> allGather(Placement p, byte[] payload, Duration timeout) {
    if (payload == null || payload.length > MAX_PAYLOAD) {
      throw new IllegalArgumentException("a rendezvous payload of at most " + MAX_PAYLOAD + " bytes is needed");
    }
    if (p.worldSize() == 1) {
      return List.of(new Member(0, "127.0.0.1", payload));
    }
    long deadline = System.nanoTime() + timeout.toNanos();
    return p.rank() == 0 ? serve(p, payload, timeout, deadline) : join(p, payload, timeout, deadline);
  }

  private record Peer(Socket socket, int rank) {}

  private static List<Member> serve(Placement p, byte[] payload, Duration timeout, long deadline) {
    List<Peer> peers = new ArrayList<>();
    Member[] members = new Member[p.worldSize()];
    members[0] = new Member(0, p.masterAddr(), payload);
    TreeSet<Integer> missing = new TreeSet<>();
    for (int r = 1; r < p.worldSize(); r++) {
      missing.add(r);
    }
    String error = null;
    try (ServerSocket server = new ServerSocket()) {
      server.setReuseAddress(true);
      server.bind(new InetSocketAddress(p.masterPort()));
      while (!missing.isEmpty() && error == null) {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          error = "rank" + (missing.size() == 1 ? " " : "s ") + join(missing) + " of " + p.worldSize()
              + " did not join within " + seconds(timeout) + ": check that every process started and that "
              + "MASTER_ADDR=" + p.masterAddr() + " and MASTER_PORT=" + p.masterPort() + " reach rank 0 from them";
          break;
        }
        server.setSoTimeout((int) Math.max(1, Math.min(Integer.MAX_VALUE, left / 1_000_000)));
        Socket s;
        try {
          s = server.accept();
        } catch (SocketTimeoutException e) {
          continue;
        }
        try {
          s.setSoTimeout((int) Math.max(1000, Math.min(10_000, left / 1_000_000)));
          DataInputStream in = new DataInputStream(s.getInputStream());
          if (in.readInt() != MAGIC || in.readInt() != VERSION) {
            refuse(s, "not an opt-java rendezvous of version " + VERSION);
            continue; // a stray connection (a port scanner, another program): not one of ours
          }
          int rank = in.readInt();
          int world = in.readInt();
          if (world != p.worldSize()) {
            error = "rank " + rank + " joined with a world size of " + world + " but rank 0 has " + p.worldSize()
                + ": every process must see the same WORLD_SIZE (" + p.source() + " variables)";
            refuse(s, error);
          } else if (rank < 1 || rank >= world) {
            error = "a process joined as rank " + rank + ", outside 1.." + (world - 1);
            refuse(s, error);
          } else if (!missing.remove(rank)) {
            error = "two processes joined as rank " + rank + ": every process needs its own RANK";
            refuse(s, error);
          } else {
            int n = in.readInt();
            if (n < 0 || n > MAX_PAYLOAD) {
              error = "rank " + rank + " sent a payload of " + n + " bytes: not an opt-java rendezvous";
              refuse(s, error);
              continue;
            }
            byte[] got = new byte[n];
            in.readFully(got);
            members[rank] = new Member(rank, s.getInetAddress().getHostAddress(), got);
            peers.add(new Peer(s, rank));
          }
        } catch (IOException e) {
          s.close(); // a peer that hung up half way: it retries, or times out on its side
        }
      }
    } catch (IOException e) {
      error = "rank 0 could not listen on port " + p.masterPort() + " (" + e.getMessage() + "): choose a free "
          + "MASTER_PORT";
    }
    for (Peer peer : peers) {
      try (Socket s = peer.socket) {
        DataOutputStream out = new DataOutputStream(s.getOutputStream());
        if (error == null) {
          out.writeInt(0);
          for (Member m : members) {
            out.writeUTF(m.host());
            out.writeInt(m.payload().length);
            out.write(m.payload());
          }
        } else {
          out.writeInt(1);
          out.writeUTF(error);
        }
        out.flush();
      } catch (IOException e) {
        if (error == null) {
          error = "rank " + peer.rank + " hung up before it got the payload: " + e.getMessage();
        }
      }
    }
    if (error != null) {
      throw new RendezvousException(error);
    }
    return List.of(members);
  }

  private static List<Member> join(Placement p, byte[] payload, Duration timeout, long deadline) {
    IOException last = null;
    while (System.nanoTime() < deadline) {
      try (Socket s = new Socket()) {
        long left = Math.max(1, (deadline - System.nanoTime()) / 1_000_000);
        s.connect(new InetSocketAddress(p.masterAddr(), p.masterPort()), (int) Math.min(left, 5_000));
        if (selfConnected(s)) { // holds the master port while rank 0 is not listening yet: give it back
          throw new java.net.ConnectException("connected to itself (rank 0 not listening yet)");
        }
        s.setSoTimeout((int) Math.min(Integer.MAX_VALUE, Math.max(1, (deadline - System.nanoTime()) / 1_000_000)));
        DataOutputStream out = new DataOutputStream(s.getOutputStream());
        out.writeInt(MAGIC);
        out.writeInt(VERSION);
        out.writeInt(p.rank());
        out.writeInt(p.worldSize());
        out.writeInt(payload.length);
        out.write(payload);
        out.flush();
        DataInputStream in = new DataInputStream(s.getInputStream());
        int status = in.readInt();
        if (status != 0) {
          throw new RendezvousException("rank 0 refused rank " + p.rank() + ": " + in.readUTF());
        }
        List<Member> members = new ArrayList<>();
        for (int r = 0; r < p.worldSize(); r++) {
          String host = in.readUTF();
          int n = in.readInt();
          if (n < 0 || n > MAX_PAYLOAD) {
            throw new RendezvousException("rank 0 sent a payload of " + n + " bytes: not an opt-java rendezvous");
          }
          byte[] got = new byte[n];
          in.readFully(got);
          members.add(new Member(r, host, got));
        }
        return members;
      } catch (SocketTimeoutException e) {
        throw new RendezvousException("rank " + p.rank() + " reached rank 0 at " + p.masterAddr() + ":"
            + p.masterPort() + " but got no answer within " + seconds(timeout) + ": some other rank did not join");
      } catch (EOFException e) {
        throw new RendezvousException("rank 0 at " + p.masterAddr() + ":" + p.masterPort() + " closed the "
            + "connection without an answer: it may have failed; see its log");
      } catch (IOException e) {
        last = e; // rank 0 not listening yet: try again shortly
        try {
          Thread.sleep(100);
        } catch (InterruptedException ie) {
          Thread.currentThread().interrupt();
          throw new RendezvousException("interrupted while waiting for rank 0");
        }
      }
    }
    throw new RendezvousException("rank " + p.rank() + " could not reach rank 0 at " + p.masterAddr() + ":"
        + p.masterPort() + " within " + seconds(timeout) + (last == null ? "" : " (" + last.getMessage() + ")")
        + ": check MASTER_ADDR and MASTER_PORT and that rank 0 started");
  }

  /**
   * Whether s is connected to itself: on one host, a connect to a port nobody listens on yet can pick that very
   * port as its own ephemeral port and complete (TCP's simultaneous open), and would then hold rank 0's port, so
   * that rank 0 fails to listen with "Address already in use" (seen once in CI, 2026-11-27).
   */
  static boolean selfConnected(Socket s) {
    return s.isConnected() && s.getLocalPort() == s.getPort() && s.getLocalAddress().equals(s.getInetAddress());
  }

  private static void refuse(Socket s, String message) {
    try (s) {
      DataOutputStream out = new DataOutputStream(s.getOutputStream());
      out.writeInt(1);
      out.writeUTF(message);
      out.flush();
    } catch (IOException e) {
      // the peer is gone already; rank 0 reports the problem itself
    }
  }

  private static String join(TreeSet<Integer> ranks) {
    StringBuilder b = new StringBuilder();
    for (int r : ranks) {
      b.append(b.length() == 0 ? "" : ", ").append(r);
    }
    return b.toString();
  }

  private static String seconds(Duration d) {
    return d.toMillis() % 1000 == 0 ? d.toSeconds() + " s" : d.toMillis() + " ms";
  }
}
